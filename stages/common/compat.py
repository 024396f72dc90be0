"""Import-time compatibility for third-party packages (no torch import at module import).

* ``HF_HUB_OFFLINE=1`` unless the user set it: nothing may reach a model hub unless asked (timm otherwise
  retries for ~47 s before failing offline).
* The torchvision shim: PyPI's torchvision wheels are CUDA builds; next to a CPU torch their C++ ops fail to
  register and ``import torchvision`` (hence timm, clean-fid) raises ``operator torchvision::nms does not exist``.
  Defining the two unguarded op schemas first makes every part we use (transforms, model classes) import; only
  torchvision's C++ ops stay unavailable, and we never call them. On a matching torch/torchvision pair this is a no-op.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

_shim_done = False


def ensure_torchvision() -> None:
    """Make ``import torchvision`` (and timm, clean-fid) work beside a CPU torch. Idempotent."""
    global _shim_done
    if _shim_done:
        return
    import sys

    import torch

    try:
        import torchvision  # noqa: F401 - a matching torch/torchvision pair imports cleanly
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        lib = torch.library.Library("torchvision", "FRAGMENT")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
        globals()["_torchvision_lib"] = lib  # keep the registration alive
        import torchvision  # noqa: F401
    except ImportError:
        pass  # torchvision is optional for most of the code
    _shim_done = True


def import_timm():
    """Import and return ``timm`` with the shim applied."""
    ensure_torchvision()
    import timm

    return timm
