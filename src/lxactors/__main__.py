"""``python -m lxactors``: the ``lxactors`` command (:mod:`lxactors.apps.cli`)."""

import sys

from lxactors.apps.cli import main

if __name__ == "__main__":
    sys.exit(main())
