"""One side of ``benchmarks/lockstep.py``: a long-lived process that imports ONE source tree and times single
repetitions on request, so that two trees can take turns on the same cores.

    python benchmarks/lockstep_worker.py TREE THREADS

The tree's own ``benchmarks/train_step.py`` builds the SMALL configuration (ref §15) exactly as that commit
measured it: its ``timed`` is replaced by a recorder, so ``small_step_timings`` hands over its three closures
((i) G forward, (ii) G step, (iii) D step + R1) instead of timing them. Then, per line ``k`` on stdin, closure k runs
once and its seconds are printed. Both sides apply ``configure_cpu_training("cpu")`` first, as ``3dgp train`` and
``train_step.py`` do. Works for any commit whose train_step.py has ``small_step_timings`` calling
``timed`` on those three closures in that order (every commit since the benchmark exists).
"""
from __future__ import annotations

import sys
import time


def main() -> None:
    tree, threads = sys.argv[1], int(sys.argv[2])
    sys.path[:0] = [tree, f"{tree}/benchmarks"]
    import torch

    torch.set_num_threads(threads)
    try:  # as training on CPU does (flush-to-zero on every thread, big blocks kept in the heap), on both sides
        from stages.ops.cpu_runtime import configure_cpu_training
    except ImportError:  # a commit from before it existed
        pass
    else:
        configure_cpu_training("cpu")
    import train_step

    closures = []

    def record(fn, *args, **kwargs):
        closures.append(fn)
        return {"median": 0.0, "min": 0.0, "max": 0.0}

    train_step.timed = record
    info = train_step.small_step_timings(batch=8)
    assert len(closures) == 3, f"{tree}: expected 3 timed closures, got {len(closures)}"
    print(f"ready G={info.get('G_params')} D={info.get('D_params')}", flush=True)
    for line in sys.stdin:
        k = int(line)
        start = time.perf_counter()
        closures[k]()
        print(f"{time.perf_counter() - start:.6f}", flush=True)


if __name__ == "__main__":
    main()
