"""`make chaos`: the whole stack on servers of its own, under load and faults, then checked.

Not part of `make test`: run it with `python -m tests.chaos` (docs/operations.md, "Chaos
run"). Only `test_*.py` files here are collected by pytest, and they are pure unit tests of
the checks.
"""
