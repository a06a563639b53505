# owjax — everything a user needs: `make run` and `make test` install into .venv first if needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.owjax-installed
EXTRAS ?= dev,reference,cluster,bench
# test processes (pytest-xdist; each test file stays in one process): `make test PYTEST_WORKERS=0` runs in one
PYTEST_WORKERS ?= auto

.PHONY: install run test test-fast bench lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m owjax.simulate $(ARGS)

test: install
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile --durations=25 $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -q -m "not slow and not reference" $(PYTEST_ARGS)

bench: install
	$(PY) -m benchmarks.run_all $(ARGS)

lint: install
	$(VENV)/bin/ruff check owjax tests benchmarks

clean:
	rm -rf outputs multirun .pytest_cache
