"""pytest hooks and options of pytest-crbench (under construction)."""
