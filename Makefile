# Two commands do all the set-up: `make test` and `make demo`.
# Each creates .venv when missing and installs the pinned requirements with pip.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench clean venv docs-check docs-update

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -n 2 -m "not slow"

demo: $(STAMP)
	$(PY) -m mstbnn demo -o build/demo

bench: $(STAMP)
	$(PY) benchmarks/bench_mst.py

# Every table in README.md and docs/*.md is a figure block equal to its record in
# benchmarks/records/ (or marked not-figures): docs-check fails otherwise, docs-update rewrites the blocks.
docs-check: $(STAMP)
	$(PY) benchmarks/_record.py check

docs-update: $(STAMP)
	$(PY) benchmarks/_record.py update

clean:
	rm -rf build .pytest_cache
