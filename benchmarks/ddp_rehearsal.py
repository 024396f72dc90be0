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

Exit code 0 when every check passed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

METRICS = "nfs16,depth16"
EVAL_METRICS = "nfs16,depth16,mvc8,camera"


def _run(name: str, args: list[str], out: Path, env: dict, log: dict) -> int:
    start = time.time()
    with open(out / f"{name}.log", "w") as f:
        rc = subprocess.run(args, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    log["steps"][name] = {"exit": rc, "seconds": round(time.time() - start, 1)}
    print(f"ddp_rehearsal: {name} exit {rc} in {time.time() - start:.0f} s", flush=True)
    return rc


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
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "THREEDGP_DIST_BACKEND": "gloo", "THREEDGP_NO_PROGRESS": "1",
           "THREEDGP_CACHE_DIR": str(out / "cache")}
    log: dict = {"device": args.device, "preset": args.preset, "resolution": args.resolution, "steps": {}}
    k = args.kimg
    tick = ["--set", f"run.tick_kimg={k / 4:g}", "--set", f"run.metrics_kimg={k / 2:g}", "--set",
            f"run.state_kimg={k / 2:g}", "--set", f"run.snapshot_kimg={k / 2:g}", "--set", "run.image_kimg=0"]
    batch = ["--batch", str(args.batch)] if args.batch else []
    cli = [sys.executable, "-m", "threedgp_cli"]
    _run("prep", cli + ["prep", "toy", str(out / "toy"), "--num", "256", "--resolution", str(args.resolution),
                        "--embedder", "none"], out, env, log)
    (out / "collectives-train").mkdir(exist_ok=True)
    _run("train-2proc", _torchrun(2) + ["train", "--data", str(out / "toy"), "--preset", args.preset, "--kimg", f"{k:g}",
                                        "--outdir", str(out / "runs"), "--device", args.device, "--metrics", METRICS,
                                        *batch, *tick],
         out, {**env, "THREEDGP_RECORD_COLLECTIVES": str(out / "collectives-train")}, log)
    _run("resume-1proc", cli + ["train", "--resume", "--outdir", str(out / "runs"), "--kimg", f"{1.5 * k:g}",
                                "--force-override", "--gpus", "1", "--device", args.device], out, env, log)
    run = sorted((out / "runs").iterdir())[-1] if (out / "runs").is_dir() else out / "runs"
    (out / "collectives-eval").mkdir(exist_ok=True)
    _run("eval-2proc", _torchrun(2) + ["eval", str(run), "--snapshots", "latest", "--metrics", EVAL_METRICS,
                                       "--device", args.device, "--out", str(out / "card2.json")],
         out, {**env, "THREEDGP_RECORD_COLLECTIVES": str(out / "collectives-eval")}, log)
    _run("eval-1proc", cli + ["eval", str(run), "--snapshots", "latest", "--metrics", EVAL_METRICS, "--device",
                              args.device, "--out", str(out / "card1.json")], out, env, log)
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
