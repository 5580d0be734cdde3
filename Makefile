# Two entry points from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := demo
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[train,dev,bench]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(BIN)/edgerec demo-data $(DEMO)/store.db
	$(BIN)/edgerec train $(DEMO)/store.db --model mf --out $(DEMO)/models/mf
	$(BIN)/edgerec info $(DEMO)/models/mf
	$(BIN)/edgerec recommend $(DEMO)/store.db $(DEMO)/models/mf u0 -n 10
	$(BIN)/edgerec recommend $(DEMO)/store.db $(DEMO)/models/mf new-visitor -n 5

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(DEMO) *.egg-info
