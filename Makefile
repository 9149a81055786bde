# Two commands set everything up on a fresh machine: `make quickstart` and `make test`. Each target installs the
# extra it uses (pyproject.toml): quickstart needs `train`, the tests and the linters `dev`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CHECKED := lrv_hf tests benchmarks metrics spaces_app dataset_scripts

.PHONY: install quickstart test test-fast quality style bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# the CPU build of torch first, so nothing below pulls a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0

# one stamp per extra: `make quickstart` does not install the test tools, a pyproject change reinstalls
$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[$*]"
	touch $@

install: $(VENV)/.installed-dev

quickstart: $(VENV)/.installed-train
	$(BIN)/lrv-hf quickstart --output-dir runs/quickstart

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

test-fast: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m "not slow and not browser"

quality: $(VENV)/.installed-dev
	$(BIN)/ruff check $(CHECKED)
	$(BIN)/ruff format --check $(CHECKED)

style: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix $(CHECKED)
	$(BIN)/ruff format $(CHECKED)

bench: $(VENV)/.installed-dev
	@echo "benchmarks (figures and the exact commands in BENCHMARKS.md):"; ls benchmarks/*.py

clean:
	rm -rf $(VENV) runs build *.egg-info
