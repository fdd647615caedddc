"""A Ray driver inside a test namespace: runs functions of ``tests.cluster.scenarios`` on request.

``python -m tests.cluster.driver ADDRESS REQ_FD ANS_FD [MODULE]``: each request is a
length-prefixed pickle ``(function, args, kwargs)``; each answer
``(True, value)`` or ``(False, traceback text)``.  EOF on the request pipe
ends the driver.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
import traceback

import ray


def _read(fd: int, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def main() -> None:
    address, req, ans = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    # This node's address (see harness.NODE_IP_ENV): the driver joins its own node's raylet.
    ray.init(address=address, log_to_driver=False, namespace="lxactors-tests",
             _node_ip_address=os.environ.get("LXACTORS_TEST_NODE_IP"))
    import importlib

    scenarios = importlib.import_module(sys.argv[4] if len(sys.argv) > 4 else "tests.cluster.scenarios")

    while True:
        try:
            (size,) = struct.unpack("!I", _read(req, 4))
            fn, args, kwargs = pickle.loads(_read(req, size))
        except EOFError:
            break
        try:
            answer = (True, getattr(scenarios, fn)(*args, **kwargs))
        except BaseException:
            answer = (False, traceback.format_exc())
        data = pickle.dumps(answer)
        os.write(ans, struct.pack("!I", len(data)) + data)
    ray.shutdown()


if __name__ == "__main__":
    main()
