"""``python -I -m lxactors._helper FD [LOG_DIR PID]``: run the helper.

FD is the SOCK_SEQPACKET socket to the user's process; LOG_DIR is that
process's log directory, removed if the process (PID) is killed.
"""

from __future__ import annotations

import os
import socket
import sys

from lxactors._helper import host
from lxactors._helper.server import serve


def main(argv: list[str]) -> int:
    # Everything a worker needs is imported above and learnt here, once,
    # before the first fork (not again in every worker).
    host.learn()
    fd = int(argv[1])
    sock = socket.socket(fileno=fd)
    os.set_inheritable(fd, False)
    # The user's process and its log directory, if given (by pid: a wrapper
    # command such as strace may stand between it and us).
    log_dir = argv[2] if len(argv) > 3 else None
    try:
        owner_pidfd = os.pidfd_open(int(argv[3])) if log_dir else -1
    except (OSError, ValueError):
        owner_pidfd = -1
    serve(sock, log_dir, owner_pidfd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
