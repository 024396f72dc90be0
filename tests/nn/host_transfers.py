"""Count copies of host data to a device, on a machine without a GPU (issue 18 row 6).

The "meta" device stands in for CUDA: tensors there have shapes and dtypes but no storage, so any code path that
runs on it is device code, and any tensor that lands on it from host memory is what on a GPU would be a
host-to-device copy (blocking unless pinned and ``non_blocking``). :class:`HostToDevice` is a
``TorchFunctionMode`` that sees every torch call and records those copies.
"""
from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

_FROM_HOST_DATA = ("tensor", "as_tensor")  # factories whose values come from Python / NumPy data


class HostToDevice(TorchFunctionMode):
    """Records ``(function name, non_blocking)`` of every copy of host data to ``device_type`` in ``copies``.

    CPU scalars (0-dim) mixed into device ops are not copies: CUDA reads them as kernel arguments."""

    def __init__(self, device_type: str = "meta"):
        super().__init__()
        self.device_type = device_type
        self.copies: list[tuple[str, bool]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if isinstance(out, torch.Tensor) and out.device.type == self.device_type:
            name = getattr(func, "__name__", str(func))
            inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
            from_host = any(t.device.type == "cpu" and t.dim() > 0 for t in inputs)
            if from_host or (not inputs and name in _FROM_HOST_DATA):
                self.copies.append((name, bool(kwargs.get("non_blocking", False))))
        return out
