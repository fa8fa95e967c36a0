# The two commands: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-unit bench fuzz audit lock lint migrate clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## run web + workers on PORT (default 8000), embedded servers unless URLs are set
	$(BIN)/booking up

test: $(STAMP)  ## the whole suite against real PostgreSQL, Redis and worker processes
	$(BIN)/pytest

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit

bench: $(STAMP)  ## every system side by side; writes bench-results/latest.json and .png
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m benchmarks.run

fuzz: $(STAMP)  ## schemathesis against the live OpenAPI with a larger budget than make test's
	BOOKING_FUZZ_EXAMPLES=$${BOOKING_FUZZ_EXAMPLES:-200} $(BIN)/pytest tests/fuzz

audit: $(STAMP)  ## pip-audit over the locked dependency set (needs PyPI's vulnerability API)
	$(BIN)/pip-audit --strict --no-deps --disable-pip -r requirements.lock

lock: $(STAMP)  ## refresh requirements.lock from the installed set
	$(BIN)/pip freeze --exclude-editable > requirements.lock

lint: $(STAMP)
	$(BIN)/ruff check .

migrate: $(STAMP)
	$(BIN)/booking migrate

clean:
	rm -rf $(VENV) .booking-test build *.egg-info
