"""Per-op profile of the SMALL training steps (issue 21 §1: profile first).

    python benchmarks/profile_step.py [--threads 2] [--reps 5] [--rows 25]

``torch.profiler`` over ``--reps`` repetitions of (ii) the G step and (iii) the D step + R1 (after 2 warm-ups),
tables sorted by self CPU time: where the time goes, op by op (the closures are train_step.py's own).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_step  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--shapes", action="store_true", help="group the rows by input shapes too")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from stages.ops.cpu_runtime import configure_cpu_training, flush_denormals_all_threads

    configure_cpu_training("cpu")  # as training and train_step.py do: flush denormals, keep big blocks in the heap
    closures = []
    train_step.timed = lambda fn, *a, **k: closures.append(fn) or {"median": 0.0, "min": 0.0, "max": 0.0}
    train_step.small_step_timings(batch=8)
    from torch.profiler import ProfilerActivity, profile

    for name, fn in (("(ii) G step", closures[1]), ("(iii) D step + R1", closures[2])):
        for _ in range(2):
            fn()
        with profile(activities=[ProfilerActivity.CPU], record_shapes=args.shapes) as prof:
            flush_denormals_all_threads()  # the profiler's start brings up OpenMP workers without flush-to-zero
            fn()  # (denormal gradients then make the MLP backward ~30x slower); one more warm-up, profiled
            for _ in range(args.reps):
                fn()
        print(f"## {name}: {args.reps} repetitions")
        print(prof.key_averages(group_by_input_shape=args.shapes).table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
