"""Compute precision of the generator's heavy parts (issue 12 §4).

``fp32`` is the official setting (3DGP ref §5.3: fp32 G, TF32 off). ``tf32`` lets CUDA convolutions and matmuls use
TF32 tensor cores. ``bf16`` additionally runs the tri-plane synthesis backbone and the tri-plane decoder MLP under
bfloat16 autocast; their outputs are cast back to float32, so the renderer's compositing, the cameras, the depth
adaptor, the losses and the regularizers stay fp32 (:meth:`stages.nn.generator.Generator.set_precision`). On CPU,
TF32 does not exist (``tf32`` = ``fp32``) and bf16 autocast works but is rarely faster.

Public API: ``PRECISIONS`` (from :mod:`stages.nn.config`); ``autocast(reference, dtype)``; ``compute_dtype(precision)``;
``configure_matmul_precision(precision)``; ``full_fp32()`` (TF32 off inside, for metrics); ``tf32_switches()``.
"""
from __future__ import annotations

import contextlib

import torch

from stages.nn.config import PRECISIONS


def compute_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of the generator's backbone and MLP for ``precision`` (None = full fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
    return torch.bfloat16 if precision == "bf16" else None


def autocast(reference: torch.Tensor, dtype: torch.dtype | None):
    """``torch.autocast`` on ``reference``'s device type in ``dtype``; a no-op context when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(reference.device.type, dtype=dtype)


def configure_matmul_precision(precision: str) -> None:
    """Process-wide TF32 switches: on for ``tf32`` and ``bf16`` (whatever stays fp32 uses TF32), off for ``fp32``."""
    compute_dtype(precision)  # validates
    allow = precision != "fp32"
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow


@contextlib.contextmanager
def full_fp32():
    """TF32 off for CUDA matmuls and cuDNN convolutions inside the block, restored after (issue 18 row 4).

    Metrics are measurements: the official ``calc_metrics`` turns both switches off, while PyTorch's default leaves
    cuDNN's on, and training may have turned them on for ``--precision tf32|bf16``. Every metric computation runs
    inside this block, so training, ``3dgp eval`` and the paper's protocol give one number for one snapshot."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def tf32_switches() -> dict[str, bool]:
    """The current TF32 switches, as the metric card records them."""
    return {"cuda_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "cudnn": bool(torch.backends.cudnn.allow_tf32)}
