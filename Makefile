# Two commands: `make run` and `make test`. Both set up .venv on their own.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint typecheck pytest worker migrate fuzz bench screenshots clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# Re-install only when a requirements file or pyproject changes.
$(VENV)/.stamp-runtime: $(BIN)/activate requirements.txt pyproject.toml
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.stamp-dev: $(VENV)/.stamp-runtime requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

## Start the whole product on the embedded defaults (SQLite, local analyzer, console email).
run: $(VENV)/.stamp-runtime
	DEBUG=$${DEBUG:-true} $(BIN)/ticketing serve --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

## Lint, type-check and run the whole suite (SQLite and PostgreSQL).
test: $(VENV)/.stamp-dev lint typecheck pytest

lint: $(VENV)/.stamp-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(VENV)/.stamp-dev
	$(BIN)/mypy

pytest: $(VENV)/.stamp-dev
	$(BIN)/pytest $(PYTEST_ARGS)

worker: $(VENV)/.stamp-runtime
	$(BIN)/ticketing worker

migrate: $(VENV)/.stamp-runtime
	$(BIN)/ticketing db upgrade

## Benchmarks (not part of `make test`): API vs a minimal baseline, the triage pipeline, the
## support mailbox read into tickets (needs dovecot-imapd), the summary report, and the SLA timers.
bench: $(VENV)/.stamp-dev
	$(PY) -m bench.api $(BENCH_API_ARGS)
	$(PY) -m bench.pipeline $(BENCH_PIPELINE_ARGS)
	$(PY) -m bench.latency $(BENCH_LATENCY_ARGS)
	$(PY) -m bench.mail $(BENCH_MAIL_ARGS)
	$(PY) -m bench.sla $(BENCH_SLA_ARGS)
	$(PY) -m bench.reports $(BENCH_REPORTS_ARGS)
	$(PY) -m bench.routing $(BENCH_ROUTING_ARGS)

## Longer schemathesis run: FUZZ_EXAMPLES cases per operation (default 100) plus the coverage phase.
fuzz: $(VENV)/.stamp-dev
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-100} $(BIN)/pytest tests/test_fuzz.py $(PYTEST_ARGS)

## Re-take docs/screenshots/ from the real pages (needs Debian's chromium).
screenshots: $(VENV)/.stamp-dev
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/pytest tests/web

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
