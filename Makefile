# FleetForge developer commands. Needs only Python >= 3.11 and make.
#   make demo   run Hello Fleet: four agents on LangGraph, AutoGen, CrewAI and Python (offline, embedded SQLite)
#   make test   create .venv, install everything from the lock, lint, type-check, run pytest
#   make check-mcp  drive `fleetforge mcp` with the MCP Inspector CLI (needs Node.js/npx)
#   make bench  run the benchmarks (prints a table, writes benchmarks/results/*.json)
#   make stress envelope delivery under repetition, outside CI (50 runs of each framework example,
#               the once flaky Worker test 50 times in a row, a 10,000-item map on both stores,
#               followers under 8 concurrent writers, and lease exclusivity at full size (8 worker
#               processes x 2,000 tasks on each store, from the event log); ~30 min)
#   make lock   re-resolve the dev environment into requirements-dev.lock
#
# The installer is uv, bootstrapped from PyPI into .venv at the version the lock pins; when it
# cannot be had (or with INSTALLER=pip) pip installs the same lock, more slowly.

PYTHON    ?= python3
INSTALLER ?= uv
VENV      := .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed-stamp
PKGS      := sdk fleet adapters mcp_server armory schemas
UV_PIN    := $(shell grep -m1 '^uv==' requirements-dev.lock 2>/dev/null || echo uv)

# `$(call ticking,COMMAND)`: run COMMAND and print a line every 5 s while it runs, so a long
# install never looks stuck; the exit status is COMMAND's.
ticking = start=$$(date +%s); \
	( while sleep 5; do echo "  ... $$(( $$(date +%s) - start ))s"; done ) & tick=$$!; \
	$(1); rc=$$?; kill $$tick 2>/dev/null; exit $$rc

.PHONY: install demo test lint types pytest postgres-server chromium screenshots check-mcp bench stress lock schemas clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "FleetForge needs Python >= 3.11; set PYTHON=python3.11 (or newer)")'
	@echo "creating $(VENV) with $$($(PYTHON) --version)"
	@$(PYTHON) -m venv $(VENV)

# Dependencies come from the lock; the project is installed editable in strict mode so that
# type checkers see the package-dir mapping. New modules need a re-install: the stamp tracks them.
$(STAMP): $(BIN)/python pyproject.toml requirements-dev.lock $(shell find $(PKGS) -name '*.py' -o -name '*.json' -o -name '*.toml' -o -name '*.sql' -o -name '*.css' -o -name '*.js' 2>/dev/null)
	@if [ "$(INSTALLER)" = uv ] && { [ -x $(BIN)/uv ] || $(BIN)/python -m pip install --quiet \
			--disable-pip-version-check "$(UV_PIN)"; }; then \
		echo "installing the lock into $(VENV) with $$($(BIN)/uv --version)"; \
		$(call ticking,$(BIN)/uv pip install --quiet --python $(BIN)/python -c requirements-dev.lock \
			--group dev --config-setting editable_mode=strict -e ".[all]" "pip>=25.1"); \
	else \
		echo "installing the lock into $(VENV) with pip (slower than uv)"; \
		$(call ticking,$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade \
			"pip>=25.1" && PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip \
			install --quiet --disable-pip-version-check -c requirements-dev.lock --group dev \
			--config-settings editable_mode=strict -e ".[all]"); \
	fi
	@touch $@
	@echo "installed: run the CLI as $(BIN)/fleetforge (or: . $(BIN)/activate)"

install: $(STAMP)

demo: install
	$(BIN)/fleetforge demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: install
	$(BIN)/mypy

# The PostgreSQL tests start a private server from Debian's `postgresql` package. With CI=true
# they must run, so a machine without the server programs gets them here (CI runs as root).
postgres-server:
	@if [ "$$CI" = "true" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "installing PostgreSQL (CI=true and no server programs found)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	fi

# The dashboard's browser tests drive Debian's Chromium (Playwright cannot download browsers
# here); with CI=true they must run, so CI gets it the same way.
chromium:
	@if [ "$$CI" = "true" ] && [ ! -x /usr/bin/chromium ]; then \
		echo "installing Chromium (CI=true and no /usr/bin/chromium)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

# The run page and the runs list, as docs/images/*.png for the README (not part of the tests).
screenshots: install chromium
	$(BIN)/python -m tests.ui_screenshots docs/images

# pytest exits 5 when it collected no test: on this project that means the suite is broken.
pytest: install postgres-server chromium
	@$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the suite is empty or misconfigured" >&2; exit 1; fi; \
	exit $$rc

# A real external client: the MCP Inspector CLI (fetched with npx) drives `fleetforge mcp`.
check-mcp: install
	FLEETFORGE_CHECK_MCP=1 $(BIN)/python -m pytest tests/test_mcp_inspector.py

# CI also runs the external-client check (~20 s, fetches the Inspector from the npm registry).
test: lint types pytest
	@if [ "$$CI" = "true" ]; then $(MAKE) --no-print-directory check-mcp; fi

bench: install
	$(BIN)/python benchmarks/run.py

stress: install
	$(BIN)/python -m tests.stress
	FLEETFORGE_LEASE_FULL=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_lease_exclusive.py

schemas: install
	$(BIN)/python -m fleetforge.schemas._build --out schemas
	$(BIN)/python -m fleetforge.mcp_server._build --out mcp_server

lock: $(BIN)/python
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/python -m pip install --quiet --upgrade "pip>=25.1"
	.lockvenv/bin/python -m pip install --quiet --group dev ".[all]"
	.lockvenv/bin/python -m pip freeze --all --exclude pip --exclude fleetforge > requirements-dev.lock
	rm -rf .lockvenv

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache .hypothesis
