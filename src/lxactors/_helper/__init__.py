"""The helper process: runs every liblxc call that forks.

liblxc's daemonized ``start`` forks its caller (each ``[lxc monitor]`` would
be a copy of the user's whole process, threads and heap included), ``attach``
changes the caller's signal dispositions, and on cgroup v1 hosts ``start``
moves its caller into the new container's monitor cgroup.  So none of these
run in the user's process: they run in a small re-executed Python,
``python -I -m lxactors._helper FD [LOG_DIR PID]`` (``__main__``), one worker
forked per request (``server``).  The user's end is ``lxactors._helperclient``;
both ends speak ``wire``.

Import rule: the standard library, the cffi extension through
``lxactors._ffi``, and the stdlib-only siblings ``lxactors._errlog``,
``lxactors._userns`` and ``lxactors._policy`` -- never pykka, nor anything
that imports it (``lxactors/__init__.py`` is lazy, so importing the package
costs nothing).  ``tests/test_helper_package.py`` holds it to that.
"""
