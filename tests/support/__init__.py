"""Plain helper functions for tests (fixtures live in conftest.py files)."""
