"""Two commits' training steps side by side, in lockstep (issue 21 §1; measurements.md §2, §9).

    python benchmarks/lockstep.py --baseline d25bb9d [--candidate WORKTREE] [--rounds 3] [--reps 10] [--json F]

Each commit is loaded once, in its own long-lived process (``benchmarks/lockstep_worker.py``), with the same thread
count and environment. The coordinator asks them in turn for ONE repetition of one timing, in the order A B B A, so
that whatever else the machine is doing hits both alike; only one process computes at a time. Per timing of the
SMALL configuration ((i) G forward, (ii) G step, (iii) D step + R1), and of 16 full training iterations of the tiny
preset, of the demo's networks and of the demo preset (sec/kimg = seconds / 0.128), it reports the median seconds
of each side per round and the ratio baseline / candidate (> 1: the candidate is faster), plus both sides'
parameter counts (they must be equal: the same model). ``--timings 1,2`` picks some (indices into the list above);
the default is the first five (the demo preset, index 5, exists only since 2026-12-03: ``--baseline 2f45cbc
--timings 5``). The baseline is exported with ``git archive`` into a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("(i) G forward", "(ii) G fwd + D fwd + G-loss backward", "(iii) D fwd + bwd on reals with R1",
         "tiny preset, 16 iterations", "demo networks (tiny, no depth adaptor), 16 iterations",
         "demo preset (24 + 24 samples per ray), 16 iterations")
PRESET_KIMG = 16 * 8 / 1000  # the preset timings: 16 iterations at batch 8 (sec/kimg = seconds / this)


class Side:
    def __init__(self, name: str, tree: Path, threads: int):
        self.name = name
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "lockstep_worker.py"), str(tree),
                                      str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)})
        self.ready = self.proc.stdout.readline().strip()
        assert self.ready.startswith("ready"), f"{name}: {self.ready!r}"

    def once(self, k: int) -> float:
        self.proc.stdin.write(f"{k}\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def export_commit(sha: str, into: Path) -> Path:
    """``git archive`` of ``sha`` unpacked under ``into``."""
    archive = into / f"{sha}.tar"
    subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), sha], cwd=ROOT, check=True)
    tree = into / sha
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


def lockstep(a: Side, b: Side, rounds: int, reps: int, warmup: int = 2, timings=range(len(NAMES))) -> dict:
    for k in timings:
        for _ in range(warmup):
            a.once(k), b.once(k)
    out = {}
    for k, name in enumerate(NAMES):
        if k not in timings:
            continue
        per_round = []
        for _ in range(rounds):
            ta, tb = [], []
            for i in range(reps):
                first, second = (a, b) if i % 2 == 0 else (b, a)  # A B, B A, ...
                t1, t2 = first.once(k), second.once(k)
                (ta if first is a else tb).append(t1)
                (tb if second is b else ta).append(t2)
            per_round.append({"baseline": statistics.median(ta), "candidate": statistics.median(tb)})
        out[name] = {"rounds": per_round,
                     "ratio_per_round": [r["baseline"] / r["candidate"] for r in per_round],
                     "ratio_median": statistics.median(r["baseline"] / r["candidate"] for r in per_round)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, help="commit to compare against, e.g. d25bb9d")
    parser.add_argument("--candidate", type=Path, default=ROOT, help="source tree (default: this working tree)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--timings", default="0,1,2,3,4",
                        help="comma-separated indices: 0 (i), 1 (ii), 2 (iii), 3 tiny, 4 demo networks, "
                             "5 demo preset (newer than d25bb9d)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    timings = [int(k) for k in args.timings.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        base = Side("baseline", export_commit(args.baseline, Path(tmp)), args.threads)
        cand = Side("candidate", args.candidate.resolve(), args.threads)
        try:
            result = {"baseline": args.baseline, "candidate": str(args.candidate), "threads": args.threads,
                      "params": {"baseline": base.ready, "candidate": cand.ready},
                      "timings": lockstep(base, cand, args.rounds, args.reps, timings=timings)}
        finally:
            base.close()
            cand.close()
    print(json.dumps({name: {"ratio_median": round(t["ratio_median"], 3),
                             "ratio_per_round": [round(r, 3) for r in t["ratio_per_round"]],
                             "baseline_s": [round(r["baseline"], 4) for r in t["rounds"]],
                             "candidate_s": [round(r["candidate"], 4) for r in t["rounds"]]}
                      for name, t in result["timings"].items()}, indent=1))
    print("params:", result["params"])
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
