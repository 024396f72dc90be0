"""Seeding from training progress (EDM2 style, style guide principle 10).

Every random draw of a training step comes from generators reseeded from ``(seed, stream, cur_nimg, slot, phase)``,
so a run resumed at ``cur_nimg`` continues on exactly the random stream an uninterrupted run would have used, and the
result does not depend on how the global batch is split over processes and accumulation rounds (``slot`` is the
global index of the micro-batch, not the rank). ``stream`` changes after a divergence rollback (3DGP ref §10.2 pain).
"""
from __future__ import annotations

import random

import numpy as np


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integer ``parts`` with numpy's SeedSequence (stable across platforms)."""
    words = np.random.SeedSequence([int(p) & 0xFFFFFFFFFFFFFFFF for p in parts]).generate_state(2, dtype=np.uint32)
    return int((int(words[0]) << 31) ^ int(words[1])) & 0x7FFFFFFFFFFFFFFF


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy's global RNG and torch (CPU and every CUDA device) with one integer."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def seed_step(seed: int, stream: int, cur_nimg: int, slot: int = 0, phase: int = 0) -> int:
    """Reseed all global RNGs for one micro-batch of one phase at ``cur_nimg``; returns the derived seed."""
    derived = derive_seed(seed, stream, cur_nimg, slot, phase)
    seed_everything(derived)
    return derived


def capture_rng_state() -> dict:
    """RNG states of python/numpy/torch(+CUDA) as tensors and primitive containers (``weights_only`` safe)."""
    import torch

    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": [list(random.getstate()[1]), random.getstate()[0]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of :func:`capture_rng_state`."""
    import torch

    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    keys = np_state["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, np_state["pos"], np_state["has_gauss"], np_state["gauss"]))
    internal, version = state["python"]
    random.setstate((version, tuple(int(v) for v in internal), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
