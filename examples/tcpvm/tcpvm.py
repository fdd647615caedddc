#!/usr/bin/env python3
"""tcpvm: a shell in a new container for every TCP client (see README.md).

    sudo ./tcpvm.py [--listen ADDR:PORT] [--max-clients N] [--config KEY=VALUE ...]

The same as ``lxactors tcpvm``; the server itself is :mod:`lxactors.tcpvm`.
"""

from __future__ import annotations

import sys

from lxactors.tcpvm import main

if __name__ == "__main__":
    sys.exit(main())
