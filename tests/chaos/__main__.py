"""`python -m tests.chaos` (`make chaos`)."""

from tests.chaos.runner import main

raise SystemExit(main())
