"""What users run: the ``lxactors`` command and its applications, on the public API only."""
