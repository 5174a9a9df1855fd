# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install lint format bench screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The app and its runtime dependencies at the versions tested (constraints.txt), reinstalled
# when either file changes.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

# The test dependencies on top (the runtime ones stay at their pinned versions).
# kosoku (the Autobahn cases) declares Python 3.12+, yet its wheel works on 3.11.
$(VENV)/.installed-test: pyproject.toml constraints.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,scale]'
	$(BIN)/pip install --quiet --ignore-requires-python kosoku==0.1.0
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/signage demo

# Finds a Chromium (SIGNAGE_CHROMIUM, the PATH, or Playwright's own); installs Debian's when
# none is found and we may; likewise PostgreSQL and Redis, which the tests start themselves;
# then runs the whole suite. Browser and PostgreSQL tests are never skipped in CI.
# TEST_WORKERS processes (pytest-xdist) share the suite a module at a time: most tests wait on
# loopback sockets and browsers rather than the CPU, so two workers finish far sooner than one on
# a 2-core machine. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: $(VENV)/.installed-test
	@CHROMIUM="$$(scripts/ensure-chromium.sh)" && \
	  PG_BIN="$$(scripts/ensure-services.sh)" && \
	  SIGNAGE_CHROMIUM="$$CHROMIUM" SIGNAGE_PG_BIN="$$PG_BIN" \
	  $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check signage tests bench
	$(BIN)/ruff format --check signage tests bench

format: $(VENV)/.installed-test
	$(BIN)/ruff format signage tests bench
	$(BIN)/ruff check --fix signage tests bench

bench: $(VENV)/.installed-test
	$(BIN)/python bench/relay.py

# The kiosk's pictures in docs/screenshots/ (the repository's only committed screenshots, each
# under 200 KB): landscape, portrait, stale, phone, German, French and an emergency, of the layout
# lint's floor.
screenshots: $(VENV)/.installed-test
	@CHROMIUM="$$(scripts/ensure-chromium.sh)" && SIGNAGE_CHROMIUM="$$CHROMIUM" $(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
