# Two commands set everything up on a fresh machine: `make quickstart` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install quickstart test test-fast quality style bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# the CPU build of torch first, so nothing below pulls a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/lrv-hf quickstart --output-dir runs/quickstart

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not browser"

quality: $(STAMP)
	$(BIN)/ruff check lrv_hf tests benchmarks metrics spaces_app dataset_scripts
	$(BIN)/ruff format --check lrv_hf tests benchmarks metrics spaces_app dataset_scripts

style: $(STAMP)
	$(BIN)/ruff check --fix lrv_hf tests benchmarks metrics spaces_app dataset_scripts
	$(BIN)/ruff format lrv_hf tests benchmarks metrics spaces_app dataset_scripts

bench: $(STAMP)
	@echo "benchmarks (figures and the exact commands in BENCHMARKS.md):"; ls benchmarks/*.py

clean:
	rm -rf $(VENV) runs build *.egg-info
