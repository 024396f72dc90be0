"""Where the SMALL training steps spend their time (issue 21 §1: profile first).

    python benchmarks/profile_step.py [--tree PATH] [--threads 2] [--reps 5] [--rows 25] [--shapes] [--sections]

Profiles (ii) the G step and (iii) the D step + R1 of ``train_step.py`` (its own closures, after 2 warm-ups) in the
source tree ``--tree`` (default: this checkout; give an exported commit to profile it the same way):

* default: ``torch.profiler`` over ``--reps`` repetitions, per-op tables sorted by self CPU time (``--shapes``
  splits the rows by input shapes). Caveat measured on this 2-core VM: under the profiler the ops that touch large
  fresh temporaries (e.g. the [131072, 64] MLP activations) run several times slower than without it, so their
  rows overstate them; use the section timings for shares.
* ``--sections``: no profiler. Forward sections are timed around the generator's backbone (``triplanes``), its
  renderer (``render``) and D's forward; backward sections by tensor hooks at their boundaries (CPU autograd runs
  backward in the calling thread, in reverse order), so "G render backward" is the time from the gradient reaching
  the rendered image to it reaching the tri-plane.
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import torch


def _closures(tree: Path) -> list:
    sys.path[:0] = [str(tree), str(tree / "benchmarks")]
    import train_step

    closures = []
    train_step.timed = lambda fn, *a, **k: closures.append(fn) or {"median": 0.0, "min": 0.0, "max": 0.0}
    train_step.small_step_timings(batch=8)
    return closures


def _first_tensor(x):
    if torch.is_tensor(x):
        return x
    values = x.values() if isinstance(x, dict) else x if isinstance(x, (tuple, list)) else ()
    for value in values:
        found = _first_tensor(value)
        if found is not None:
            return found
    return None


def _timed_section(totals: dict, cls, method: str, label: str) -> None:
    original = getattr(cls, method)

    def wrapper(self, *args, **kwargs):
        inputs = [a for a in args if torch.is_tensor(a) and a.requires_grad]
        start = time.perf_counter()
        out = original(self, *args, **kwargs)
        totals[f"{label} forward"] += time.perf_counter() - start
        first = _first_tensor(out)
        if first is not None and first.requires_grad and inputs:
            mark = {}
            first.register_hook(lambda g: mark.__setitem__("t", time.perf_counter()))
            inputs[0].register_hook(lambda g: totals.__setitem__(
                f"{label} backward", totals[f"{label} backward"] + time.perf_counter() - mark.get("t", time.perf_counter())))
        return out

    setattr(cls, method, wrapper)


def sections(closures, reps: int) -> None:
    from stages.nn.discriminator import Discriminator
    from stages.nn.generator import Generator

    totals: dict = collections.defaultdict(float)
    _timed_section(totals, Generator, "triplanes", "G backbone")
    _timed_section(totals, Generator, "render", "G render")
    _timed_section(totals, Discriminator, "forward", "D")
    for name, fn in (("(ii) G step", closures[1]), ("(iii) D step + R1", closures[2])):
        for _ in range(2):
            fn()
        totals.clear()
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        total = (time.perf_counter() - start) / reps
        print(f"## {name}: {total * 1000:.0f} ms per step ({reps} repetitions)")
        if name.startswith("(iii)"):  # R1 runs two backward passes through D: the hooks would count them twice
            forward = totals["D forward"] / reps
            print(f"| D forward | {forward * 1000:.1f} ms |")
            print(f"| R1: gradient w.r.t. the image, then the penalty's backward | {(total - forward) * 1000:.1f} ms |")
            continue
        covered = 0.0
        for key, value in sorted(totals.items()):
            covered += value / reps
            print(f"| {key} | {value / reps * 1000:.1f} ms |")
        print(f"| rest (mapping, camera, patches, losses, ...) | {(total - covered) * 1000:.1f} ms |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--shapes", action="store_true", help="group the rows by input shapes too")
    parser.add_argument("--sections", action="store_true", help="section timings without the profiler")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    closures = _closures(args.tree.resolve())
    from stages.ops.cpu_runtime import configure_cpu_training, flush_denormals_all_threads

    configure_cpu_training("cpu")  # as training and train_step.py do: flush denormals, keep big blocks in the heap
    if args.sections:
        sections(closures, args.reps)
        return
    from torch.profiler import ProfilerActivity, profile

    for name, fn in (("(ii) G step", closures[1]), ("(iii) D step + R1", closures[2])):
        for _ in range(2):
            fn()
        with profile(activities=[ProfilerActivity.CPU], record_shapes=args.shapes) as prof:
            flush_denormals_all_threads()  # the profiler's start brings up OpenMP workers without flush-to-zero
            for _ in range(args.reps):
                fn()
        print(f"## {name}: {args.reps} repetitions")
        print(prof.key_averages(group_by_input_shape=args.shapes).table(sort_by="self_cpu_time_total",
                                                                        row_limit=args.rows))


if __name__ == "__main__":
    main()
