"""`python -m tests.cluster` (`make cluster`)."""

from tests.cluster.runner import main

raise SystemExit(main())
