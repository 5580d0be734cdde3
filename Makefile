# Two entry points from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := demo
STAMP := $(VENV)/.installed
# e.g. DEMO_TRAIN_ARGS="--epochs 3" for a quick demo (tests/test_cli.py runs it so)
DEMO_TRAIN_ARGS ?=

.PHONY: demo test bench quality clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[train,dev,bench]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(BIN)/edgerec demo-data $(DEMO)/store.db
	$(BIN)/edgerec train $(DEMO)/store.db --model mf --out $(DEMO)/models/mf $(DEMO_TRAIN_ARGS)
	$(BIN)/edgerec info $(DEMO)/models/mf
	$(BIN)/edgerec recommend $(DEMO)/store.db $(DEMO)/models/mf u0 -n 10
	$(BIN)/edgerec recommend $(DEMO)/store.db $(DEMO)/models/mf new-visitor -n 5
	$(BIN)/edgerec record $(DEMO)/store.db new-visitor i0 --event purchase
	$(BIN)/edgerec recommend $(DEMO)/store.db $(DEMO)/models/mf new-visitor -n 5

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Latency (JSON + PNG in benchmarks/out); `make bench ARGS=--quick` for a smoke run,
# `ARGS="--provider cuda"` on a machine with a GPU.
bench: $(STAMP)
	$(BIN)/python benchmarks/latency.py --out benchmarks/out $(ARGS)

# Quality of every model kind on a ratings file: `make quality DATA=path/to/u.data`.
quality: $(STAMP)
	$(BIN)/python benchmarks/quality.py $(DATA) --out benchmarks/out

clean:
	rm -rf $(VENV) $(DEMO) *.egg-info
