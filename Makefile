# The two commands of the README: `make demo` (the app on its demo study) and `make test`.
# Both create .venv, install what is missing (system packages as root), then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Run under a virtual X server when there is no display.
XRUN := $(if $(DISPLAY),,xvfb-run -a -s "-screen 0 1600x1000x24")

.PHONY: demo test setup lint bench clean package

demo: $(STAMP)
ifeq ($(DISPLAY),)
	@echo "No display: rendering the demo offscreen to demo.png"
	$(XRUN) $(BIN)/medseg-gui --screenshot demo.png
else
	$(BIN)/medseg-gui
endif

test: $(STAMP)
	$(BIN)/ruff check medseg_gui tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(XRUN) $(BIN)/python -m pytest $(PYTEST_ARGS)

setup: $(STAMP)

$(STAMP): pyproject.toml packaging/system-deps.sh
	bash packaging/system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU build of torch first, so no later requirement pulls the CUDA wheels.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,onnx]'
	touch $(STAMP)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_load.py

package: $(STAMP)
	bash packaging/build.sh
	bash packaging/smoke_test.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist
