# Two commands on a fresh machine: `make demo` and `make test`.
# Each bootstraps .venv from pyproject.toml when it is missing or older than pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench serve clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[bot,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/probecast demo

test: $(STAMP) lint
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check bot reporter tests bench
	$(BIN)/mypy bot reporter

bench: $(STAMP)
	$(BIN)/python bench/estimate_speed.py
	$(BIN)/python bench/calibrate_band.py --check
	$(BIN)/python bench/eta_accuracy.py
	$(BIN)/python bench/triggers.py
	$(BIN)/python bench/xgpu.py
	$(BIN)/python bench/reporter_overhead.py
	$(BIN)/python bench/ingest_load.py

serve: $(STAMP)
	$(BIN)/probecast serve

clean:
	rm -rf $(VENV) *.egg-info
