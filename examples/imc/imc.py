#!/usr/bin/env python3
"""imc: run a command in an "immutable" container (see README.md).

    sudo ./imc.py [options] -- CMD [ARGS...]

The same as ``lxactors imc``; the machinery is :mod:`lxactors.imc`.
"""

from __future__ import annotations

import sys

from lxactors.imc import main

if __name__ == "__main__":
    sys.exit(main())
