# Every target installs what it needs first: `make run` and `make test` work on a fresh clone.
# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set, nothing would cache it,
# and every `leadline` process would compile its imports again (3 s of CPU instead of 1).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9
PORT ?= 8000
SANDBOX_PORT ?= 8025
# Test processes (pytest-xdist): each has its own database, Redis namespace and free ports, or
# its own embedded servers. Most tests wait on subprocesses and round trips, so two processes
# halve the suite on 2 cores (17 to 10.5 minutes).
TEST_PROCESSES ?= 2

.PHONY: install browser run test demo bench chaos cluster lint format lock openapi clean compose-config

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m compileall -q leadline models workers tasks intake scheduler
	touch $(STAMP)

# Debian's Chromium for the browser tests, installed only where that is possible without
# asking (root with apt-get, as on CI). Never fails: without it those tests are skipped, and
# under CI=true they fail (tests/browser_support.py).
browser:
	@if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then \
	  :; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
	  echo "browser: no chromium; the browser tests will be skipped (sudo apt-get install chromium enables them)"; \
	else \
	  echo "browser: installing Debian's chromium for the browser tests"; \
	  log=$$(mktemp); \
	  if ! { apt-get update -qq -o Acquire::Retries=0 -o Acquire::http::Timeout=20 \
	         && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >"$$log" 2>&1; then \
	    echo "browser: could not install chromium (apt-get output in $$log); the browser tests will be skipped"; \
	  else rm -f "$$log"; fi; \
	fi

run: install
	$(BIN)/leadline up --port $(PORT) --sandbox-port $(SANDBOX_PORT)

# Its own temporary state directory (or database and Redis namespace) and free ports: it runs
# next to `make run` without touching it.
demo: install
	$(BIN)/leadline up --demo

test: install browser
	$(BIN)/python -m pytest -q -n $(TEST_PROCESSES)

bench: install
	$(BIN)/python -m bench

# The whole stack on a PostgreSQL and a Redis of its own (free ports, a temporary directory),
# under load while it kills workers, Redis and PostgreSQL; then it checks. Not part of `test`.
chaos: install
	$(BIN)/python -m tests.chaos

# Three hosts as network namespaces (PostgreSQL, Redis and an S3 store on one; an intake, a
# worker and a scheduler on each of the two others), under load while every process of one
# application host is killed; then it checks. Root and iproute2 only. Not part of `test`.
cluster: install
	$(BIN)/python -m tests.cluster

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The tenant API's OpenAPI document, committed; tests/api/test_openapi.py fails when it is stale.
openapi: install
	$(BIN)/python -m intake.openapi docs/openapi.json

# `docker compose config` on compose.yaml (.ci/compose-config says how it finds compose).
compose-config:
	.ci/compose-config

lock:
	uv pip compile pyproject.toml --extra dev --extra embedded -o requirements.lock

clean:
	rm -rf $(VENV) .leadline .pytest_cache .mypy_cache .ruff_cache
