"""A multi-process rehearsal on ONE device: the collectives of training and evaluation as a GPU job runs them.

    python benchmarks/ddp_rehearsal.py OUT --device cuda:0            # on one GPU (benchmarks/gpu_check.sh)
    python benchmarks/ddp_rehearsal.py OUT --device cpu --preset tiny  # the same chain on a CPU (its test)

NCCL refuses two ranks on one GPU, so the two processes form a gloo group (``THREEDGP_DIST_BACKEND=gloo``), which
carries CUDA tensors too; every collective the code makes still goes through ``stages.common.distributed`` and its
served-device check, and each rank records them (``THREEDGP_RECORD_COLLECTIVES``). The chain, as a user runs it:

1. ``3dgp prep toy``: a small conditional dataset at ``--resolution``;
2. ``torchrun --nproc_per_node 2 -m threedgp_cli train --preset P``: a few ticks with a metric in the middle and at
   the end (NFS and depth realism: sharded renders gathered as device tensors; no Inception is needed);
3. ``3dgp train --resume`` with ONE process and a longer ``--kimg``: a resume on another world size;
4. ``torchrun ... eval`` with 2 processes and ``3dgp eval`` with 1 on the last snapshot: the cards must agree;
5. checks, written to ``OUT/rehearsal.json``: every step's exit code, finite losses, metrics on 2 then 1
   process(es), equal cards, and per rank the collectives seen with the device types of their tensors.

Exit code 0 when every check passed. ``--budget SECONDS`` shares a time limit among the steps (the GPU check's
single call): a step that runs out of its share is stopped, its processes' stacks written to ``OUT/<step>.stacks``
(py-spy, when on PATH) and to its log (faulthandler), and the chain goes on, so a slow or stuck step still says
where it was. cuDNN autotuning is off here unless ``THREEDGP_CUDNN_BENCHMARK=1`` is set (see ``main``).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

METRICS = "nfs16,depth16"
EVAL_METRICS = "nfs16,depth16,mvc8,camera"


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc; empty elsewhere), parents before children."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [pid]
    while todo:
        for child in sorted(children.get(todo.pop(0), [])):
            found.append(child)
            todo.append(child)
    return found


def _dump_and_stop(proc: subprocess.Popen, stacks: Path) -> None:
    """A step ran out of time: write every process's stacks (py-spy when it is on PATH: native frames too), then
    SIGABRT them (PYTHONFAULTHANDLER=1 prints each one's Python threads into the step's log) and kill what is left."""
    pids = [proc.pid, *_descendants(proc.pid)]
    spy = shutil.which("py-spy")
    with open(stacks, "w") as f:
        for pid in pids:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:160]
            except OSError:
                continue
            f.write(f"--- pid {pid}: {cmdline}\n")
            f.flush()
            if spy:
                try:
                    subprocess.run([spy, "dump", "--native", "--pid", str(pid)], stdout=f, stderr=subprocess.STDOUT,
                                   timeout=30)
                except subprocess.TimeoutExpired:
                    f.write("(py-spy timed out)\n")
        if not spy:
            f.write("(no py-spy on PATH: the Python stacks are in the step's log, from faulthandler)\n")
    for pid in reversed(pids[1:]):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGABRT)
    time.sleep(3)
    for pid in [*reversed(pids[1:]), proc.pid]:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()


def _run(name: str, args: list[str], out: Path, env: dict, log: dict, limit: float | None = None) -> int:
    """Run one step with its output in ``OUT/<name>.log``; past ``limit`` seconds its stacks go to
    ``OUT/<name>.stacks`` and it is stopped (exit code 124, as timeout(1))."""
    start = time.time()
    with open(out / f"{name}.log", "w") as f:
        proc = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env={**env, "PYTHONFAULTHANDLER": "1"})
        try:
            rc = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            _dump_and_stop(proc, out / f"{name}.stacks")
            rc = 124
    log["steps"][name] = {"exit": rc, "seconds": round(time.time() - start, 1)}
    if rc == 124:
        log["steps"][name].update(timed_out=True, limit=round(limit or 0, 1), stacks=f"{name}.stacks")
    (out / "rehearsal.json").write_text(json.dumps(log, indent=1))  # so far, if the whole chain is cut short
    print(f"ddp_rehearsal: {name} exit {rc} in {time.time() - start:.0f} s"
          + (f" (out of its {limit:.0f} s: stacks in {name}.stacks)" if rc == 124 else ""), flush=True)
    return rc


class _Budget:
    """Seconds for each step from what is left of ``--budget``, in proportion to the steps' weights (time a
    step leaves unused goes to the later ones); no limits without a budget."""

    WEIGHTS = {"prep": 1.0, "train-2proc": 5.0, "resume-1proc": 2.0, "eval-2proc": 2.0, "eval-1proc": 1.5}

    def __init__(self, seconds: float | None):
        self.deadline = time.time() + seconds if seconds else None
        self.left = dict(self.WEIGHTS)

    def limit(self, step: str) -> float | None:
        weight, total = self.left.pop(step), sum(self.left.values()) + self.WEIGHTS[step]
        if self.deadline is None:
            return None
        return max(5.0, (self.deadline - time.time()) * weight / total)


def _torchrun(nproc: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "threedgp_cli"]


def _collectives(folder: Path) -> dict:
    """Per rank: {op: {device type: count}} from the recorded lines."""
    table = {}
    for path in sorted(folder.glob("rank*.txt")):
        ops: dict[str, Counter] = {}
        for line in path.read_text().splitlines():
            _, op, kinds = line.split(" ")
            ops.setdefault(op, Counter()).update(kinds.split(",") if kinds != "-" else ["-"])
        table[path.stem] = {op: dict(c) for op, c in sorted(ops.items())}
    return table


def _checks(out: Path, log: dict, device: str) -> dict:
    run = sorted((out / "runs").iterdir())[-1]
    stats = [json.loads(line) for line in open(run / "stats.jsonl")]
    metrics = [json.loads(line) for line in open(run / "metrics.jsonl")]
    cards = {n: json.loads((out / f"card{n}.json").read_text()) for n in (1, 2) if (out / f"card{n}.json").exists()}
    values = {n: {m["name"]: m["value"] for m in card["metrics"]} for n, card in cards.items()}
    train, evals = _collectives(out / "collectives-train"), _collectives(out / "collectives-eval")
    kinds = {k for rank in train.values() for c in rank.values() for k in c}
    return {
        "all steps exited 0": all(s["exit"] == 0 for s in log["steps"].values()),
        "losses finite": all(math.isfinite(v) for r in stats for k, v in r.items()
                             if k.startswith("Loss/") and isinstance(v, float)),
        "metrics on 2 then 1 process(es)": [m.get("processes") for m in metrics][:1] == [2] and
                                            metrics[-1].get("processes") == 1,
        "eval cards equal (1 vs 2 processes)": len(values) == 2 and all(
            values[1][k] == values[2][k] or abs(values[1][k] - values[2][k]) <= 1e-6 * abs(values[1][k])
            for k in values[1]),
        "both ranks met in the same training collectives": len(train) == 2 and train["rank0"] == train["rank1"],
        "both ranks met in the same eval collectives": len(evals) == 2 and evals["rank0"] == evals["rank1"],
        f"training collectives carried {device.split(':')[0]} tensors": device.split(":")[0] in kinds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--preset", default="imagenet")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--kimg", type=float, default=0.256, help="length of the 2-process part (the resume adds half)")
    parser.add_argument("--batch", type=int, default=None, help="global batch (default: the preset's)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for the whole chain, shared among the steps; a step out of its share is stopped "
                             "with its stacks in OUT/<step>.stacks and the chain goes on (default: no limit)")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("collectives-train", "collectives-eval"):  # ranks append to these: never mix two rehearsals
        shutil.rmtree(out / stale, ignore_errors=True)
    # cuDNN autotuning off unless asked for: it times every new convolution shape in each process, and two processes
    # sharing one GPU spent over 70 s of the first tick on it (RESULTS.md "GPU check", second run); this chain checks
    # the collectives, not the speed
    env = {**os.environ, "THREEDGP_DIST_BACKEND": "gloo", "THREEDGP_NO_PROGRESS": "1",
           "THREEDGP_CACHE_DIR": str(out / "cache"),
           "THREEDGP_CUDNN_BENCHMARK": os.environ.get("THREEDGP_CUDNN_BENCHMARK", "0")}
    budget = _Budget(args.budget)
    log: dict = {"device": args.device, "preset": args.preset, "resolution": args.resolution, "steps": {}}
    k = args.kimg
    tick = ["--set", f"run.tick_kimg={k / 4:g}", "--set", f"run.metrics_kimg={k / 2:g}", "--set",
            f"run.state_kimg={k / 2:g}", "--set", f"run.snapshot_kimg={k / 2:g}", "--set", "run.image_kimg=0"]
    batch = ["--batch", str(args.batch)] if args.batch else []
    cli = [sys.executable, "-m", "threedgp_cli"]
    _run("prep", cli + ["prep", "toy", str(out / "toy"), "--num", "256", "--resolution", str(args.resolution),
                        "--embedder", "none"], out, env, log, budget.limit("prep"))
    (out / "collectives-train").mkdir(exist_ok=True)
    _run("train-2proc", _torchrun(2) + ["train", "--data", str(out / "toy"), "--preset", args.preset, "--kimg", f"{k:g}",
                                        "--outdir", str(out / "runs"), "--device", args.device, "--metrics", METRICS,
                                        *batch, *tick],
         out, {**env, "THREEDGP_RECORD_COLLECTIVES": str(out / "collectives-train")}, log, budget.limit("train-2proc"))
    _run("resume-1proc", cli + ["train", "--resume", "--outdir", str(out / "runs"), "--kimg", f"{1.5 * k:g}",
                                "--force-override", "--gpus", "1", "--device", args.device], out, env, log,
         budget.limit("resume-1proc"))
    run = sorted((out / "runs").iterdir())[-1] if (out / "runs").is_dir() else out / "runs"
    (out / "collectives-eval").mkdir(exist_ok=True)
    _run("eval-2proc", _torchrun(2) + ["eval", str(run), "--snapshots", "latest", "--metrics", EVAL_METRICS,
                                       "--device", args.device, "--out", str(out / "card2.json")],
         out, {**env, "THREEDGP_RECORD_COLLECTIVES": str(out / "collectives-eval")}, log, budget.limit("eval-2proc"))
    _run("eval-1proc", cli + ["eval", str(run), "--snapshots", "latest", "--metrics", EVAL_METRICS, "--device",
                              args.device, "--out", str(out / "card1.json")], out, env, log, budget.limit("eval-1proc"))
    try:
        log["checks"] = _checks(out, log, args.device)
    except (OSError, ValueError, KeyError, IndexError) as exc:
        log["checks"] = {f"outputs readable ({type(exc).__name__}: {exc})": False}
    log["collectives"] = {"train": _collectives(out / "collectives-train"),
                          "eval": _collectives(out / "collectives-eval")}
    (out / "rehearsal.json").write_text(json.dumps(log, indent=1))
    for name, ok in log["checks"].items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    print(json.dumps(log["collectives"], indent=1))
    return 0 if all(log["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
