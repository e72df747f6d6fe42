"""`make cluster`: three hosts as network namespaces, one killed under load, then checked.

Not part of `make test`: run it as root with `python -m tests.cluster` (docs/operations.md,
"Multi-host run"). Only `test_*.py` files here are collected by pytest, and they are pure
unit tests of the run's own logic.
"""
