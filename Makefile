# The two set-up commands: `make demo` and `make test`. Both install from requirements/lock.txt,
# so a fresh machine gets exactly the versions CI tested.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements/lock.txt
PIP := $(BIN)/python -m pip --disable-pip-version-check --quiet
CHROMIUM := /usr/bin/chromium
POSTGRES_URL := postgresql://postgres@127.0.0.1:5432/test

.PHONY: demo test lint typecheck pytest install install-dev lock bench clean

demo: $(VENV)/.runtime
	$(BIN)/mlwarden demo

test: lint typecheck pytest

lint: $(VENV)/.dev
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench

typecheck: $(VENV)/.dev
	$(BIN)/mypy

# The store tests run on SQLite and on this machine's PostgreSQL (started here when it is down);
# under CI a missing PostgreSQL fails the run instead of skipping those tests.
pytest: $(VENV)/.dev $(CHROMIUM)
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql 2>/dev/null) main start 2>/dev/null || true
	@if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then \
	  export MLWARDEN_TEST_POSTGRES_URL=$${MLWARDEN_TEST_POSTGRES_URL:-$(POSTGRES_URL)}; fi; \
	$(BIN)/pytest -n 2 -q --durations=20

# The browser tests drive real pages in Debian's Chromium (Playwright never downloads a browser).
$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "Install Chromium for the browser tests."; exit 1; }
	SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -c $(LOCK) pip

# The package is installed without build isolation so that the build backend, too, comes from the lock.
$(VENV)/.runtime: $(BIN)/python pyproject.toml $(LOCK)
	$(PIP) install -c $(LOCK) hatchling editables
	$(PIP) install -c $(LOCK) --no-build-isolation -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime
	$(PIP) install -c $(LOCK) --no-build-isolation -e '.[dev]'
	touch $@

# Re-resolve every dependency to its newest allowed version and pin the result (run by hand).
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip --disable-pip-version-check --quiet install --upgrade pip hatchling editables
	.lock-venv/bin/python -m pip --disable-pip-version-check --quiet install --no-build-isolation -e '.[dev]'
	( echo "# Exact versions installed by 'make demo' and 'make test'. Regenerate with 'make lock'."; \
	  .lock-venv/bin/python -m pip freeze --all --exclude-editable | grep -v '^mlwarden' ) > $(LOCK)
	rm -rf .lock-venv

bench: $(VENV)/.dev
	$(BIN)/python bench/profile_bench.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build dist
