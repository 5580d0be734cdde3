# Two entry points from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := demo
STAMP := $(VENV)/.installed
# The JavaScript runtime's npm packages (js/), from the committed lockfile.
JS_STAMP := js/node_modules/.installed

.PHONY: demo test bench quality clean kiosk kiosk-screenshot

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[train,dev,bench]'
	touch $(STAMP)

# Without npm the JavaScript tests skip (and say so); better-sqlite3 compiles on install.
$(JS_STAMP): js/package.json js/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd js && npm ci --no-audit --no-fund && touch node_modules/.installed; \
	else echo "npm not found: the JavaScript runtime's tests will be skipped"; fi

demo: $(STAMP)
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(BIN)/edgerec demo-data $(DEMO)/store.db
	$(BIN)/edgerec train $(DEMO)/store.db --model mf --out $(DEMO)/models/mf
	$(BIN)/edgerec info $(DEMO)/models/mf
	$(BIN)/edgerec recommend $(DEMO)/store.db $(DEMO)/models/mf u0 -n 10
	$(BIN)/edgerec recommend $(DEMO)/store.db $(DEMO)/models/mf new-visitor -n 5
	$(BIN)/edgerec record $(DEMO)/store.db new-visitor i0 --event purchase
	$(BIN)/edgerec recommend $(DEMO)/store.db $(DEMO)/models/mf new-visitor -n 5

test: $(STAMP) $(JS_STAMP)
	$(BIN)/python -m pytest -q

# Latency (JSON + PNG in benchmarks/out); `make bench ARGS=--quick` for a smoke run,
# `ARGS="--provider cuda"` on a machine with a GPU.
bench: $(STAMP)
	$(BIN)/python benchmarks/latency.py --out benchmarks/out $(ARGS)

# Quality of every model kind on a ratings file: `make quality DATA=path/to/u.data`.
quality: $(STAMP)
	$(BIN)/python benchmarks/quality.py $(DATA) --out benchmarks/out

# The kiosk page (js/examples/kiosk) over the demo's model, after `make demo`: open the URL.
kiosk: $(STAMP) $(JS_STAMP)
	$(BIN)/edgerec export-web $(DEMO)/models/mf $(DEMO)/web --store $(DEMO)/store.db
	node js/examples/kiosk/serve.js $(DEMO)/web

# docs/kiosk.png, the README's picture, as the kiosk page's browser test takes it.
kiosk-screenshot: $(STAMP) $(JS_STAMP)
	EDGEREC_KIOSK_PNG=$(CURDIR)/docs/kiosk.png $(BIN)/python -m pytest -q tests/test_js_runtime.py -k kiosk

clean:
	rm -rf $(VENV) $(DEMO) *.egg-info
