# The README's commands. Every target starts from a bare Python 3.11.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

.PHONY: demo test test-explore test-slow lint bench figures clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEVSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(STAMP)

demo: $(STAMP)
	$(BIN)/fesr-sim demo

test: $(DEVSTAMP)
	$(BIN)/python -m pytest -n 2 -q

test-explore: $(DEVSTAMP)
	HYPOTHESIS_PROFILE=explore $(BIN)/python -m pytest -n 2 -q

test-slow: $(DEVSTAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(DEVSTAMP)
	$(BIN)/ruff check simulator tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info

bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench

# The README's figures, from a 200-replication run of the reference scenario.
figures: $(STAMP)
	rm -rf build/figures-run
	$(BIN)/fesr-sim run scenarios/wecare_fesr_2018.toml -n 200 --out build/figures-run --no-report
	$(BIN)/python -c "from simulator.report import write_doc_figures; write_doc_figures('build/figures-run', 'docs/img')"
