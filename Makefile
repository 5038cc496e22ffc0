# peerwatch: `make demo` runs the main job, `make test` runs the suite. Both set themselves up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: demo test test-pg suite-pg lint ui web assets bench clean

# The NHS.UK design system's stylesheet and scripts, and axe-core for the accessibility tests:
# fetched once from the npm registry at pinned versions, checked against their published
# sha512 integrity (web/assets.py), unpacked under var/assets/.
ASSETS := var/assets/.stamp

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; sys.exit("peerwatch needs Python 3.11+") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP) $(ASSETS)
	$(BIN)/peerwatch demo

# Fetched by web/assets.py (ASSETS above).
$(ASSETS): web/assets.py $(STAMP)
	$(BIN)/python -m web.assets

assets: $(ASSETS)

# The web application for network staff: http://127.0.0.1:8000 (sign in with an account
# `make demo` printed). It serves PEERWATCH_DATABASE_URL if set, else the demo's database.
# `peerwatch web --help` for the host, port and production settings.
WEB_DATABASE ?= $(or $(PEERWATCH_DATABASE_URL),sqlite:///$(CURDIR)/var/demo/peerwatch.db)
web: $(STAMP) $(ASSETS)
	PEERWATCH_DATABASE_URL='$(WEB_DATABASE)' $(BIN)/peerwatch web

test: lint $(ASSETS)
	$(BIN)/python -m pytest -q --durations=25

# The packages mypy holds to strict (pyproject.toml [tool.mypy]); the rest get the baseline there.
TYPED := states models

# The gates every change passes before its tests run (pyproject.toml configures each).
lint: $(STAMP)
	$(BIN)/ruff check --quiet .
	$(BIN)/ruff format --check --quiet .
	$(BIN)/lint-imports --no-cache >/dev/null || $(BIN)/lint-imports --no-cache
	$(BIN)/mypy $(TYPED)

# The same suite on a throw-away PostgreSQL server on 127.0.0.1 (installed from the OS
# packages if missing, as root); a fresh schema per test. See docs/scale.md.
test-pg: lint suite-pg

# The suite on PostgreSQL alone, without the lint gates (.ci/run has passed them in its first pass).
suite-pg: $(STAMP) $(ASSETS)
	.ci/with-postgres $(BIN)/python -m pytest -q --durations=25 $(PYTEST_ARGS)

# Browse the demo's flow runs and artifacts at http://127.0.0.1:4200
ui: $(STAMP)
	PREFECT_HOME=var/prefect $(BIN)/prefect server start --host 127.0.0.1 --port 4200

bench: $(STAMP)
	$(BIN)/python -m bench

# Everything under var/ but the audit key (var/audit.key): without it a database's audit chain
# can never be verified again (peerwatch audit verify), so it is removed only by hand.
clean:
	if [ -d var ]; then find var -mindepth 1 -maxdepth 1 ! -name audit.key -exec rm -rf {} +; fi
	rm -rf .pytest_cache .hypothesis
