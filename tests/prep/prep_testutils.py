"""Helpers for the prep tests: small image files, a CLI subprocess, reading packed items."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def write_image(path: Path, size=(40, 30), color=(200, 30, 60), fmt=None, seed=None) -> Path:
    """An RGB image file: a flat colour, or random noise when ``seed`` is given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if seed is None:
        im = Image.new("RGB", size, color)
    else:
        im = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    im.save(path, format=fmt)
    return path


def write_depth16(path: Path, depth: np.ndarray) -> Path:
    """A 16-bit grayscale depth PNG."""
    Image.fromarray(depth.astype(np.uint16)).save(path)
    return path


def cli_subprocess(*args, **kwargs) -> subprocess.Popen:
    """Start ``python -m threedgp_cli ARGS`` as a separate process (for kill -9 tests)."""
    env = dict(os.environ, THREEDGP_NO_PROGRESS="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env.pop("THREEDGP_DEBUG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "threedgp_cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
        **kwargs,
    )


def read_items(path: Path) -> list[bytes]:
    """The packed records of a finished dataset, in index order."""
    from stages.data.format import item_key
    from stages.data.lmdb_store import open_readonly, read_meta

    num = read_meta(path)["num_items"]
    with open_readonly(path).begin() as txn:
        return [bytes(txn.get(item_key(i))) for i in range(num)]
