# Two entry points from a fresh clone: `make demo` and `make test`.
# Python keeps the bytecode it compiles (in __pycache__, git-ignored) even where the
# environment says not to (PYTHONDONTWRITEBYTECODE, set in some CI images): without it every
# process compiles again each module it imports: 20.0 s to import edgerec.trainer, against
# 10.3 s with its bytecode, in each CLI run, benchmark and Ray or Spark worker the suite
# starts. A fresh clone's `.ci/run` took 13 min 46 s with it, 14 min 22 s-14 min 51 s before.
unexport PYTHONDONTWRITEBYTECODE
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := demo
STAMP := $(VENV)/.installed
# The base-only venv for the runtime's suite (`make test-base`, part of `make test`).
BASE_VENV ?= .venv-base
BASE_STAMP := $(BASE_VENV)/.installed
# The JavaScript runtime's npm packages (js/), from the committed lockfile.
JS_STAMP := js/node_modules/.installed
# e.g. DEMO_TRAIN_ARGS="--epochs 3" for a quick demo (tests/test_cli.py runs it so)
DEMO_TRAIN_ARGS ?=

.PHONY: demo test test-base bench quality clean kiosk kiosk-screenshot dist kiosk-exe shipping

# --no-compile: pip would byte-compile all ~14,000 modules of TensorFlow, Ray, Spark...
# (most never imported by anything here); Python compiles each module on its first import.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -e '.[train,dev,bench]'
	touch $(STAMP)

# Without npm the JavaScript tests skip (and say so); better-sqlite3 compiles on install.
$(JS_STAMP): js/package.json js/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd js && npm ci --no-audit --no-fund && touch node_modules/.installed; \
	else echo "npm not found: the JavaScript runtime's tests will be skipped"; fi

demo: $(STAMP)
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(BIN)/edgerec write-demo $(DEMO)/store.db
	$(BIN)/edgerec train $(DEMO)/store.db --model mf --out $(DEMO)/models/mf $(DEMO_TRAIN_ARGS)
	$(BIN)/edgerec describe $(DEMO)/models/mf
	$(BIN)/edgerec recommend $(DEMO)/store.db $(DEMO)/models/mf u0 -n 10
	$(BIN)/edgerec recommend $(DEMO)/store.db $(DEMO)/models/mf new-visitor -n 5
	$(BIN)/edgerec record $(DEMO)/store.db new-visitor i0 --event purchase
	$(BIN)/edgerec recommend $(DEMO)/store.db $(DEMO)/models/mf new-visitor -n 5

# The import contracts first (pyproject's [tool.importlinter], README "Layout").
# Each test runs once: the runtime's own tests (marked `runtime`) in the base-only venv
# (test-base), all the others here. `$(BIN)/python -m pytest` alone runs every test.
# test-base runs beside the main suite, which leaves one of two cores idle much of its
# time (imports, subprocesses, single-threaded Python); its report, kept in a file so that
# the two do not interleave, is printed once both are done. Either failing fails `make test`.
BASE_LOG := $(BASE_VENV)/test-base.log
test: $(STAMP) $(JS_STAMP) $(BASE_STAMP)
	$(BIN)/python tools/lint_imports.py
	@$(MAKE) --no-print-directory test-base >$(BASE_LOG) 2>&1 & base=$$!; \
	$(BIN)/python -m pytest -q -m 'not runtime' --durations=15; main=$$?; \
	wait $$base; runtime=$$?; echo "--- make test-base (ran beside the suite above) ---"; \
	cat $(BASE_LOG); [ $$main -eq 0 ] && [ $$runtime -eq 0 ]

# The runtime's own suite (tests marked `runtime`, on hand-built bundles) in a venv with the
# base install and the test extra only: the light install is proven on every run, not
# assumed. TensorFlow must not be importable there. Shares pip's cache with $(VENV).
$(BASE_STAMP): pyproject.toml
	$(PYTHON) -m venv $(BASE_VENV)
	$(BASE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BASE_VENV)/bin/python -m pip install --quiet --no-compile -e '.[test]'
	touch $(BASE_STAMP)

test-base: $(BASE_STAMP) $(JS_STAMP)
	@if $(BASE_VENV)/bin/python -c 'import tensorflow' 2>/dev/null; then \
		echo "$(BASE_VENV) can import tensorflow: the base install is not light"; exit 1; fi
	$(BASE_VENV)/bin/python -m pytest -q -m runtime

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
# Shipping (README "Shipping edgerec inside an app"). `make dist`: wheel + sdist in $(DIST).
# `make kiosk-exe`: examples/kiosk_app frozen by PyInstaller into $(DIST)/kiosk/, built in a
# slim venv (CPU-only onnxruntime, see tools/slim_install.py) so no CUDA build is shipped.
# `make shipping [ARGS="--runs 10"]`: installed sizes of both variants, executable size and
# start-up times.
DIST ?= dist
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' runtime/version.py)
WHEEL = $(DIST)/edgerec-$(VERSION)-py3-none-any.whl
PACKAGE := pyproject.toml MANIFEST.in README.md LICENSE $(wildcard runtime/*.py runtime/store/*.py trainer/*.py exporters/*.py pipelines/*.py)
KIOSK_VENV ?= .venv-kiosk
KIOSK_WORK ?= build/kiosk

dist: $(WHEEL)

$(WHEEL): $(STAMP) $(PACKAGE)
	rm -f $(DIST)/edgerec-*
	$(BIN)/python -m build --outdir $(DIST) .

$(KIOSK_VENV)/.installed: $(WHEEL) tools/slim_install.py
	$(PYTHON) tools/slim_install.py $(KIOSK_VENV) $(WHEEL) --extra kiosk
	touch $@

# One folder, not one file: it starts without unpacking itself to a temporary folder first.
# The hook for onnxruntime (its shared libraries) comes with pyinstaller-hooks-contrib.
kiosk-exe: $(KIOSK_VENV)/.installed
	$(KIOSK_VENV)/bin/pyinstaller --noconfirm --log-level WARN --onedir --name kiosk \
	    --distpath $(DIST) --workpath $(KIOSK_WORK) --specpath $(KIOSK_WORK) \
	    --exclude-module tensorflow --exclude-module edgerec.trainer \
	    --exclude-module edgerec.exporters --exclude-module edgerec.pipelines \
	    examples/kiosk_app/kiosk.py
	@du -sh $(DIST)/kiosk && du -h $(DIST)/kiosk/kiosk

shipping: kiosk-exe
	$(BIN)/python benchmarks/shipping.py --wheel $(WHEEL) --kiosk-venv $(KIOSK_VENV) \
	    --exe $(DIST)/kiosk/kiosk --out benchmarks/out $(ARGS)

clean:
	rm -rf $(VENV) $(DEMO) *.egg-info dist build $(KIOSK_VENV) $(BASE_VENV)
