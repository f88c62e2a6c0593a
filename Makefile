# f1twin: the two commands are `make demo` (the main job, no server) and `make test` (everything,
# against a real local Kafka broker). Every install step lives here: a fresh clone needs only
# Python 3.11, Java 17 and Maven.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SESSION ?= data/telemetry_2025-09-12_19-00-17.csv
KAFKA := $(BIN)/python tools/kafka_local.py
# pytest runs in parallel workers (pytest-xdist, `-n auto` in pyproject.toml: 2 to 4): most tests wait on a game, a
# broker, a kernel or a browser, not on a core. The tests of the one secured broker instance run in one worker, the
# browser tests in one (tests/conftest.py).
PYTEST := $(BIN)/python -m pytest -q

.PHONY: install demo test test-offline pytest nbtest lab kafka-up kafka-down kafka-status export clean help browser-deps bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): settings.ini setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip "setuptools>=64,<82" wheel
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip check
	@touch $@

install: $(STAMP) ## create .venv and install f1twin with its dev tools

demo: install ## the main job: lap table and HTML report of the bundled real session, no server needed
	$(BIN)/f1twin laps $(SESSION)
	$(BIN)/f1twin report $(SESSION) --out reports

export: install ## export f1twin/ from nbs/ and clean the notebooks (run before each commit)
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean
	$(BIN)/python tools/trim_outputs.py

pytest: install
	$(PYTEST) tests

nbtest: install
	$(BIN)/nbdev_test --n_workers 2

test-offline: install ## the tests and notebooks that need no broker and no browser
	$(PYTEST) -m "not kafka and not browser" tests
	$(BIN)/nbdev_test --n_workers 2

# Debian's Chromium drives JupyterLab in the browser test (Playwright never downloads a browser here).
browser-deps: ## install Debian's chromium for the browser test, if missing
	@test -x /usr/bin/chromium || { (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null || \
		{ echo 'make browser-deps: could not install chromium (needs root and Debian packages)'; exit 1; }; }

bench: install ## run the benchmarks in bench/ against a local broker
	@started=0; \
	if ! $(KAFKA) status >/dev/null 2>&1; then $(KAFKA) up >/dev/null || exit 1; started=1; fi; \
	trap '[ $$started = 1 ] && $(KAFKA) down' EXIT; \
	bootstrap=$$($(KAFKA) status | grep -o '127.0.0.1:[0-9]*'); \
	$(BIN)/python bench/laps_bench.py && \
	$(BIN)/python bench/collector_bench.py --kafka $$bootstrap && \
	$(BIN)/python bench/live_bench.py --kafka $$bootstrap && \
	$(BIN)/python bench/agents_bench.py --kafka $$bootstrap && \
	$(BIN)/python bench/report_bench.py --laps 23 && \
	$(BIN)/python bench/library_bench.py

# Starts the broker unless one is already running (then leaves it running), runs pytest and the
# notebooks, stops the broker it started even when tests fail, and fails if anything failed.
test: install browser-deps ## the whole suite against a real local Kafka broker
	@started=0; \
	if ! $(KAFKA) status >/dev/null 2>&1; then $(KAFKA) up || exit 1; started=1; fi; \
	trap '[ $$started = 1 ] && $(KAFKA) down' EXIT; \
	rc=0; \
	$(PYTEST) tests || rc=1; \
	$(BIN)/nbdev_test --n_workers 2 --flags kafka || rc=1; \
	exit $$rc

# Jupyter refuses to start as root unless told; containers often run as root. LAB_ARGS passes more options.
lab: install ## JupyterLab on nbs/ with the package installed (as root too)
	$(BIN)/jupyter lab --notebook-dir=nbs $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)

kafka-up: install ## start a single-node KRaft broker on 127.0.0.1 (jars from Maven Central, cached)
	$(KAFKA) up

kafka-down: ## stop the local broker by its PID
	@if [ -x $(BIN)/python ]; then $(KAFKA) down; else python3 tools/kafka_local.py down; fi

kafka-status: ## is the local broker running?
	$(KAFKA) status

clean: ## remove build leftovers (keeps .venv and the Kafka jar cache)
	rm -rf build dist *.egg-info _proc
