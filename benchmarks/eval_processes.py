"""``3dgp eval --gpus N`` against ``--gpus 1`` on the same snapshot, side by side (issue 18 acceptance 2).

    python benchmarks/eval_processes.py OUT [--gpus 2] [--rounds 3] [--metrics fid2k_full,nfs64]

Makes a toy dataset and an untrained tiny snapshot in OUT (or reuses them), warms the reference-statistics cache
once, then runs the two commands alternately (A B B A ...) as whole processes and reports the median wall time of
each, their ratio, and whether the cards are equal (values, minus times). Every figure goes to OUT/result.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, env: dict) -> float:
    start = time.time()
    subprocess.run([sys.executable, "-m", "threedgp_cli", *args], check=True, env=env, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.time() - start


def _setup(out: Path, env: dict) -> Path:
    if not (out / "toy").exists():
        _cli("prep", "toy", str(out / "toy"), "--num", "512", "--resolution", "32", "--embedder", "none", env=env)
    runs = out / "runs"
    if not runs.exists():
        _cli("train", "--data", str(out / "toy"), "--preset", "tiny", "--kimg", "0.008", "--outdir", str(runs),
             "--metrics", "none", env=env)
    return sorted(runs.iterdir())[-1]


def _values(card: Path) -> dict:
    return {m["name"]: m["value"] for m in json.loads(card.read_text())["metrics"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--gpus", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--metrics", default="fid2k_full,nfs64")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "THREEDGP_CACHE_DIR": str(out / "cache"), "THREEDGP_NO_PROGRESS": "1"}
    run = _setup(out, env)
    base = ["eval", str(run), "--snapshots", "latest", "--metrics", args.metrics]
    _cli(*base, "--out", str(out / "warm.json"), env=env)  # the reference statistics, cached for both sides
    times: dict[int, list[float]] = {1: [], args.gpus: []}
    order = [1, args.gpus, args.gpus, 1] * ((args.rounds + 1) // 2)
    for gpus in order[: 2 * args.rounds]:
        times[gpus].append(_cli(*base, "--gpus", str(gpus), "--out", str(out / f"card{gpus}.json"), env=env))
    med = {g: statistics.median(t) for g, t in times.items()}
    result = {"command": " ".join(["3dgp", *base]), "metrics": args.metrics, "cpu_count": os.cpu_count(),
              "seconds": times, "median_seconds": med, "speedup": med[1] / med[args.gpus],
              "cards_equal": _values(out / "card1.json") == _values(out / f"card{args.gpus}.json"),
              "values": _values(out / "card1.json"), "date": time.strftime("%Y-%m-%d %H:%M")}
    (out / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("median_seconds", "speedup", "cards_equal")}, indent=1))


if __name__ == "__main__":
    main()
