"""CUDA ops that verify themselves: a parity check against the reference on first use (issue 12 §1; ref §9).

A kernel that builds but computes wrong values would silently corrupt a run; the build fallback only covers a failed
build. So the first time an op is about to run on the CUDA extension on a device, :func:`verify` runs it and its
pure-PyTorch reference on a small fixed input, forward and backward (the input gradients for a fixed upstream
gradient), and compares them (relative error <= :data:`TOLERANCE`; a few milliseconds). The verdict is cached per
process; a pass is also cached on disk beside a built extension (``selfcheck-<device>.json``: one check per build
and GPU model). On a mismatch it warns once, naming the op and the error, and the op uses the reference path, or
it raises :class:`OpsBuildError` under ``THREEDGP_STRICT_OPS=1``.

A check must judge the kernel, not the state of its caller (issue 18 row 11). The first op call usually happens
inside the generator's bf16 autocast, where the reference convolution of ``upfirdn2d`` would run in bf16 (error
2e-3 to 4e-3 > 1e-3) and condemn a correct kernel. So checks run with autocast off, outside inference mode and in
float32 whatever the default dtype. And a failure is never written to disk, nor read from it (a file from an older
3dgp may hold one caused by autocast): a broken kernel costs each process a few milliseconds and one warning,
whereas a saved false failure would slow every later run down to the reference path.

:func:`report` says what was checked and whether it passed; ``3dgp doctor`` and the training log show it.
Tests inject a deliberately wrong extension (a kernel mirror with an error) on CPU tensors.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import warnings
from pathlib import Path

import torch

from stages.common.errors import OpsBuildError

logger = logging.getLogger(__name__)

TOLERANCE = 1e-3  # max |fast - ref| / (1 + max |ref|), float32 inputs
OPS = ("bias_act", "upfirdn2d", "composite")

_lock = threading.RLock()
_results: dict[tuple[str, str], dict] = {}  # (op, device key) -> {"passed", "max_error", "device", "source"}
_warned: set[tuple[str, str]] = set()
_local = threading.local()


def _device_key(device: torch.device) -> str:
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        return torch.cuda.get_device_name(index).replace(" ", "_")
    return device.type


def _relative_error(fast, ref) -> float:
    fast, ref = fast.detach().double(), ref.detach().double()
    if fast.shape != ref.shape or not torch.isfinite(fast).all():
        return float("inf")
    return float((fast - ref).abs().max() / (1.0 + ref.abs().max()))


def _compare(fast_fn, ref_fn, inputs: list[torch.Tensor]) -> float:
    """Max relative error of outputs and input gradients (for a fixed random upstream gradient)."""
    errors = []
    outs = []
    for fn in (fast_fn, ref_fn):
        xs = [x.detach().clone().requires_grad_(x.is_floating_point()) for x in inputs]
        with torch.enable_grad():
            out = fn(*xs)
            out = out if isinstance(out, (tuple, list)) else (out,)
            gen = torch.Generator().manual_seed(7)
            upstream = [torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o) for o in out]
            grads = torch.autograd.grad(out, [x for x in xs if x.requires_grad], upstream, allow_unused=True)
        outs.append((out, grads))
    (fast_out, fast_grads), (ref_out, ref_grads) = outs
    errors += [_relative_error(f, r) for f, r in zip(fast_out, ref_out)]
    errors += [_relative_error(f, r) for f, r in zip(fast_grads, ref_grads) if r is not None and f is not None]
    return max(errors)


def _inputs(device, *shapes):
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(shape, generator=gen, dtype=torch.float32).to(device) for shape in shapes]


def check_bias_act(ext, device) -> float:
    from stages.ops._bias_act_cuda import bias_act_cuda
    from stages.ops.bias_act import bias_act_ref

    x, b = _inputs(device, (2, 8, 5, 5), (8,))
    errors = [_compare(lambda x, b, a=act: bias_act_cuda(ext, x, b, 1, a, 0.2, 1.4, 0.9 if a == "lrelu" else -1.0),
                       lambda x, b, a=act: bias_act_ref(x, b, 1, a, 0.2, 1.4, 0.9 if a == "lrelu" else -1.0), [x, b])
              for act in ("linear", "lrelu", "softplus")]
    return max(errors)


def check_upfirdn2d(ext, device) -> float:
    from stages.ops._upfirdn2d_cuda import upfirdn2d_cuda
    from stages.ops.upfirdn2d import setup_filter, upfirdn2d_ref

    (x,) = _inputs(device, (2, 3, 9, 9))
    f = setup_filter([1, 3, 3, 1], device=device)
    errors = []
    for up, down, pads in ((2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)), (1, 1, (1, 2, 1, 2))):
        errors.append(_compare(lambda x, u=up, d=down, p=pads: upfirdn2d_cuda(ext, x, f, u, d, p, False, 1.5),
                               lambda x, u=up, d=down, p=pads: upfirdn2d_ref(x, f, u, d, p, False, 1.5), [x]))
    return max(errors)


def check_composite(ext, device) -> float:
    from stages.ops._composite_cuda import composite_cuda
    from stages.ops.volume_composite import composite_ref

    rgb, sigma = _inputs(device, (64, 24, 3), (64, 24))
    gen = torch.Generator().manual_seed(1)
    t = (0.75 + 0.5 * torch.rand(64, 24, generator=gen, dtype=torch.float32).sort(dim=1).values).to(device)
    return _compare(lambda r, s, t: composite_cuda(ext, r, s, t), composite_ref, [rgb, sigma * 3, t])


CHECKS = {"bias_act": check_bias_act, "upfirdn2d": check_upfirdn2d, "composite": check_composite}


@contextlib.contextmanager
def _neutral_state(device: torch.device):
    """No autocast (on the checked device and on the CPU, where inputs are made), no inference mode: the caller's
    numerics must not decide the verdict (module docstring)."""
    with contextlib.ExitStack() as stack:
        for device_type in sorted({device.type, "cpu"}):
            stack.enter_context(torch.autocast(device_type=device_type, enabled=False))
        stack.enter_context(torch.inference_mode(False))
        yield


def _disk_cache(device_key: str) -> Path | None:
    from stages.ops import _build

    if _build.loaded_extension() is None:
        return None
    try:
        return _build.cache_root() / _build.build_key() / f"selfcheck-{device_key}.json"
    except Exception:  # noqa: BLE001 - no cache is fine
        return None


def _load_disk(path: Path | None) -> dict:
    try:
        return json.loads(path.read_text()) if path is not None and path.is_file() else {}
    except (OSError, ValueError):
        return {}


def _save_disk(path: Path | None, record: dict) -> None:
    if path is None:
        return
    try:
        data = {**_load_disk(path), **record}
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass


def running() -> bool:
    """True while a self-check runs in this thread (the op calls inside it must not trigger another check)."""
    return getattr(_local, "active", False)


def verify(op: str, ext, device) -> bool:
    """Whether ``op`` may use ``ext`` on ``device``: checked once (module docstring); False = use the reference."""
    from stages.ops import _build

    key = (op, _device_key(device))
    with _lock:
        if key not in _results:
            disk = _disk_cache(key[1])
            cached = _load_disk(disk).get(op)
            if cached is not None and cached.get("passed") is True:  # a saved failure is checked again
                _results[key] = {**cached, "source": "cache"}
            else:
                _local.active = True
                try:
                    with _neutral_state(torch.device(device)):
                        error = CHECKS[op](ext, torch.device(device))
                    problem = None if error <= TOLERANCE else f"max relative error {error:.2e} > {TOLERANCE:g}"
                except Exception as exc:  # noqa: BLE001 - a kernel that crashes fails its check
                    error, problem = float("inf"), f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160]}"
                finally:
                    _local.active = False
                record = {"passed": problem is None, "max_error": error, "device": key[1], "problem": problem}
                _results[key] = {**record, "source": "checked"}
                if record["passed"]:
                    _save_disk(disk, {op: record})
        result = _results[key]
        if not result["passed"]:
            message = (f"the CUDA kernel of {op} failed its self-check on {key[1]} ({result['problem']}); using the "
                       f"reference implementation")
            if _build.strict():
                raise OpsBuildError(f"{message} ({_build.STRICT_ENV}=1)")
            if key not in _warned:
                _warned.add(key)
                warnings.warn(message, RuntimeWarning, stacklevel=3)
                logger.warning("%s", message)
        return bool(result["passed"])


def verify_all(ext, device) -> dict:
    """Check every op on ``device`` (``3dgp doctor --build-ops`` on a GPU); returns :func:`report`."""
    for op in OPS:
        verify(op, ext, device)
    return report()


def report() -> dict[str, dict]:
    """``{op: {"passed", "max_error", "device", "problem", "source"}}`` of every check so far in this process."""
    with _lock:
        return {f"{op}@{dev}" if sum(k[0] == op for k in _results) > 1 else op: dict(v)
                for (op, dev), v in sorted(_results.items())}


def reset() -> None:
    """Forget every verdict (tests use this)."""
    with _lock:
        _results.clear()
        _warned.clear()
