"""The applications: the ``lxactors`` command and what it runs.

``cli`` is the command's skeleton; each other module is one subcommand and
exposes ``register(subparsers)`` (``tcpvm`` and ``imc`` are also libraries,
importable as ``lxactors.tcpvm`` and ``lxactors.imc``).  The rule here: the
public API only (``lxactors``, ``lxactors.liblxc``), never a private
``lxactors._*`` module, as any user's program would; tests/test_layout.py
checks it.
"""
