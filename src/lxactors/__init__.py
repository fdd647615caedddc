"""lxactors."""
