"""How much host memory an evaluation needs on rank 0, and a one-line refusal where the machine cannot hold it
(issue 18 "Evaluation at scale").

Rank 0 assembles what the metrics are computed from (``stages.metrics.shard``). With F = 2048 Inception features:

* FID: the fake rows (N_fakes x F x 4 bytes, kept so that smaller sizes reuse them) plus two sets of moments
  (2 x F^2 x 8 bytes) and ``sqrtm``'s complex work space (about 6 x F^2 x 16 bytes): 0.4 GB for fid50k_full,
  whatever the number of reals (their statistics are summed as they stream);
* KID: the fake rows plus the rows of min(N_reals, 1,000,000) reals (the official cap): 8.2 GB at the cap;
* IS: N_fakes x 1008 x 4 bytes of class probabilities;
* NFS, mvc, depth, camera: a few values per sample (depth: the fake depth maps, N x R^2 x 4 bytes).

Public API:
  required_bytes(specs, num_reals, resolution=256, feature_dim=2048) -> int
  available_bytes() -> int | None        # MemAvailable of /proc/meminfo (None where unknown)
  check_memory(specs, num_reals, resolution=256)   # raises ThreeDGPError when required > available
"""
from __future__ import annotations

from stages.common.errors import ThreeDGPError
from stages.metrics.features import KID_MAX_REALS

FLOAT32, FLOAT64, COMPLEX128 = 4, 8, 16
IS_CLASSES = 1008


def required_bytes(specs, num_reals: int, resolution: int = 256, feature_dim: int = 2048) -> int:
    """Peak host bytes of rank 0 for ``specs`` (resolved) against ``num_reals`` reals (module docstring)."""
    F = feature_dim
    fakes = max([s.num_gen for s in specs if s.kind in ("fid", "kid")], default=0)
    need = fakes * F * FLOAT32
    if any(s.kind in ("fid", "kid") for s in specs):
        need += 2 * F * F * FLOAT64 + 6 * F * F * COMPLEX128
    if any(s.kind == "kid" for s in specs):
        need += min(num_reals, KID_MAX_REALS) * F * FLOAT32
    for s in specs:
        if s.kind == "is":
            need += s.num_gen * IS_CLASSES * FLOAT32
        elif s.kind == "depth":
            need += 3 * s.num_gen * resolution * resolution * FLOAT32
    return int(need)


def available_bytes() -> int | None:
    """The kernel's estimate of memory available without swapping (None where unknown)."""
    from stages.common.sysinfo import available_memory

    return available_memory()


def check_memory(specs, num_reals: int, resolution: int = 256) -> int:
    """The bytes needed; one line when this machine has less available (module docstring)."""
    need = required_bytes(specs, num_reals, resolution)
    have = available_bytes()
    if have is not None and need > have:
        names = ",".join(s.name for s in specs)
        raise ThreeDGPError(f"--metrics {names}: needs about {need / 2**30:.1f} GiB of memory on rank 0 (KID keeps "
                            f"the features of up to {KID_MAX_REALS:,} reals), only {have / 2**30:.1f} GiB are "
                            f"available: evaluate KID separately or with fewer fakes")
    return need
