# Two commands on a fresh machine: `make demo` and `make test`.
# Each bootstraps .venv from pyproject.toml when it is missing or older than pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench serve clean frameworks

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[bot,dev]'
	touch $(STAMP)

# `make frameworks`: real torch (CPU), transformers, accelerate, lightning and tqdm in a
# venv of their own (about 6 GB: PyPI's torch wheel brings the CUDA libraries), then short
# real trainings reported to a real bot, zero-code and with the callbacks. Not in `make test`.
FW_VENV := .venv-frameworks
FW_STAMP := $(FW_VENV)/.installed

$(FW_STAMP): pyproject.toml
	$(PYTHON) -m venv $(FW_VENV)
	$(FW_VENV)/bin/pip install --quiet --upgrade pip
	$(FW_VENV)/bin/pip install --quiet -e '.[bot,callbacks,frameworks]'
	touch $(FW_STAMP)

frameworks: $(FW_STAMP)
	$(FW_VENV)/bin/python bench/frameworks/check.py

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
	$(BIN)/python bench/live_overhead.py
	$(BIN)/python bench/parse_logs.py

serve: $(STAMP)
	$(BIN)/probecast serve

clean:
	rm -rf $(VENV) $(FW_VENV) *.egg-info
