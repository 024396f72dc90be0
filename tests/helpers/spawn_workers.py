"""Workers for ``stages.common.distributed.spawn`` tests: each joins the gloo group, sums a tensor over the ranks
and either finishes normally, aborts while working, or aborts at interpreter exit after finishing (the teardown
crash a CI host once showed). Spawned processes re-import this module, so everything is defined at module level."""
from __future__ import annotations

import atexit
import os


def _sum_over_ranks() -> float:
    import torch

    from stages.common.distributed import all_reduce_sum_, init_distributed

    init_distributed("cpu")
    value = torch.ones(1)
    all_reduce_sum_(value)
    return float(value)


def finish(out_dir: str) -> None:
    """Write ``<rank>.txt`` holding the sum over the ranks."""
    total = _sum_over_ranks()
    with open(os.path.join(out_dir, f"{os.environ['RANK']}.txt"), "w", encoding="utf-8") as f:
        f.write(f"{total:g}")


def finish_then_abort_at_exit(out_dir: str) -> None:
    """As :func:`finish`, then rank 1 aborts (SIGABRT) while its interpreter shuts down."""
    finish(out_dir)
    if os.environ["RANK"] == "1":
        atexit.register(os.abort)


def abort_while_working(out_dir: str) -> None:
    """Rank 1 aborts before the collective; rank 0 waits in it until it is stopped."""
    from stages.common.distributed import init_distributed

    init_distributed("cpu")
    if os.environ["RANK"] == "1":
        os.abort()
    finish(out_dir)
