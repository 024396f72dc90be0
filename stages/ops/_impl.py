"""Which implementation an op call takes, and the per-process record of what ran (3DGP ref §9; style guide 7).

Every public op takes ``impl in ("auto", "ref", "cuda")`` and asks :func:`choose` which path to run:

* CPU tensors (and any device but CUDA) always take the pure-PyTorch reference path, whatever ``impl`` says.
  ``impl="cuda"`` on a CPU tensor is therefore *not* an error: it quietly runs ``ref`` (documented choice).
* ``"ref"`` always takes the reference path.
* ``"auto"`` on a CUDA tensor builds the extension on the first such call (never at import) and uses it; if the
  build fails it warns once and falls back to ``ref`` -- or raises :class:`OpsBuildError` under
  ``THREEDGP_STRICT_OPS=1``. ``THREEDGP_OPS`` narrows what ``"auto"`` may run on the extension, process-wide:
  ``auto`` (every op; the default), ``ref`` (none) or a comma list of op names (:data:`OPS`), e.g.
  ``THREEDGP_OPS=composite``. On the first H200 run the CUDA ops made the imagenet step 7 % slower at fp32
  (benchmarks/RESULTS.md "GPU check"), so the choice is the user's until each op is measured.
* ``"cuda"`` on a CUDA tensor is an explicit request: a failed build raises :class:`OpsBuildError`.
* Before an op first runs on the extension on a device, ``stages.ops.selfcheck.verify`` compares it with the
  reference (forward and backward, a small input); a kernel that fails runs the reference instead (one warning).
* A CUDA call whose inputs the kernel does not cover (a dtype, a bias in another dtype than the input) runs the
  reference path too, and says so once per op and cause in the log (issue 18 row 10: a bf16 run whose bias_act
  quietly ran the slow path). Every fallback from CUDA to the reference is thus visible in a training log.

:func:`impl_report` says what each op actually ran so far; the training log records it.
"""
from __future__ import annotations

import functools
import logging
import os
import threading

from stages.common.errors import ThreeDGPError

logger = logging.getLogger(__name__)

IMPLS = ("auto", "ref", "cuda")
OPS = ("bias_act", "upfirdn2d", "composite")  # the ops with a CUDA kernel
POLICY_ENV = "THREEDGP_OPS"

_lock = threading.Lock()
_used: dict[str, set[str]] = {}  # op name -> {"ref", "cuda"} actually run in this process
_refusals_logged: set[tuple[str, str]] = set()  # (op, why) already logged


def check_impl(impl: str) -> None:
    """Raise ValueError for an unknown ``impl`` value (a programming error: no option sets it)."""
    if impl not in IMPLS:
        raise ValueError(f"impl: must be one of {', '.join(IMPLS)}, got {impl!r}")


def cuda_policy() -> frozenset[str]:
    """The ops that ``impl="auto"`` may run on the CUDA extension, from ``$THREEDGP_OPS`` (module docstring)."""
    return _parse_policy(os.environ.get(POLICY_ENV, "auto").strip().lower() or "auto")


@functools.lru_cache(maxsize=8)
def _parse_policy(raw: str) -> frozenset[str]:
    if raw in ("auto", "cuda"):
        return frozenset(OPS)
    if raw in ("ref", "none"):
        return frozenset()
    names = {name.strip() for name in raw.split(",") if name.strip()}
    unknown = sorted(names - set(OPS))
    if unknown:
        raise ThreeDGPError(f"{POLICY_ENV}={raw}: unknown op {', '.join(unknown)} (expected auto, ref or a comma "
                            f"list of {', '.join(OPS)})")
    return frozenset(names)


def choose(op: str, impl: str, x, cuda_ok: bool = True, why: str | None = None):
    """Return the loaded CUDA extension module if ``op`` should run on it for tensor ``x``, else ``None`` (= ref).

    ``cuda_ok=False`` lets an op refuse the CUDA path for inputs its kernel does not cover (e.g. a dtype); the
    call then runs ``ref`` and is recorded as such, and ``why`` (what the kernel does not cover; None for a
    harmless refusal such as an empty tensor) is logged once for a CUDA tensor. The choice is recorded for
    :func:`impl_report`.
    """
    check_impl(impl)
    if impl == "auto" and _is_cuda(x) and op not in cuda_policy():  # CPU tensors never read the policy
        impl = "ref"
    module = None
    if impl != "ref" and not cuda_ok and why and _is_cuda(x):
        _log_refusal(op, why)
    if impl != "ref" and cuda_ok and _is_cuda(x):
        from stages.ops import _build, selfcheck

        module = _build.get_extension(explicit=(impl == "cuda"))
        if module is not None and not selfcheck.running() and not selfcheck.verify(op, module, getattr(x, "device", "cuda")):
            module = None  # the kernel failed its parity self-check: reference path (issue 12 §1)
    record(op, "cuda" if module is not None else "ref")
    return module


def _is_cuda(x) -> bool:
    """Whether ``x`` lives on a CUDA device (a function so tests can route CPU tensors through the CUDA path)."""
    return bool(getattr(x, "is_cuda", False))


def _log_refusal(op: str, why: str) -> None:
    """One warning per (op, cause) for a CUDA call sent to the reference path by its inputs."""
    with _lock:
        if (op, why) in _refusals_logged:
            return
        _refusals_logged.add((op, why))
    logger.warning("%s: the CUDA kernel does not cover %s; running the slow reference implementation", op, why)


def record(op: str, which: str) -> None:
    """Note that ``op`` ran with implementation ``which`` ("ref" or "cuda")."""
    with _lock:
        _used.setdefault(op, set()).add(which)


def impl_report() -> dict[str, str]:
    """Which implementation each op used so far in this process: ``{"bias_act": "cuda", ...}``.

    Values are ``"ref"`` or ``"cuda"``; an op that ran both ways (e.g. on CPU and on GPU tensors) reads
    ``"cuda+ref"``. Ops never called are absent. (3DGP ref §9)
    """
    with _lock:
        return {op: "+".join(sorted(used)) for op, used in sorted(_used.items())}


def reset_report() -> None:
    """Forget what ran and which refusals were logged (tests use this)."""
    with _lock:
        _used.clear()
        _refusals_logged.clear()


def reference_grads(reference, inputs: tuple, needs, grad_out) -> tuple:
    """Gradients of ``reference(*inputs)`` (a differentiable PyTorch formula of an op) w.r.t. the inputs that
    ``needs`` marks, with ``create_graph=True``; None for the others. What a kernel op's backward returns when
    autograd records the backward itself (R1-style higher derivatives): the saved inputs themselves are used, so
    the new graph links to theirs."""
    import torch

    wanted = [t for t, want in zip(inputs, needs) if want]
    with torch.enable_grad():
        grads = iter(torch.autograd.grad(reference(*inputs), wanted, grad_out, create_graph=True))
    return tuple(next(grads) if want else None for want in needs)
