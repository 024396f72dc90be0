"""Every `prep`, `train`, `eval`, `export` and `info` option fed a wrong type, a zero, a negative, an infinite, an
empty string, a count just past its cap and (where meaningful) a contradictory value: one line naming the option,
exit 1, nothing written (issue 13 acceptance 2, issue 19 acceptance 2). ``test_every_option_has_rows`` keeps the
tables complete: a new option of prep, train, export or info without a row fails it.

Each row is ``(arguments, text the one error line must contain)``; the error line must start with ``Error: `` and
name the option. Values that are valid (a zero seed, a zero --gamma, ...) are left out. Rows are rejected before
any network is built, so the whole table takes seconds. (More prep rows, per source:
tests/prep/test_option_table.py.)"""
from __future__ import annotations

import pytest
import torch

NO_CUDA = not torch.cuda.is_available()
BAD_INT = "valid integer"  # Typer's own message for a non-integer
BAD_FLOAT = "valid number"

TRAIN = [
    # --kimg
    (["--kimg", "abc"], f"--kimg: Input should be a {BAD_FLOAT}"), (["--kimg", "0"], "--kimg: must be in (0, 1e+06], got 0"),
    (["--kimg", "-1"], "--kimg: must be in (0, 1e+06]"), (["--kimg", "inf"], "--kimg: must be finite"),
    (["--kimg", "nan"], "--kimg: must be finite"),
    # --batch
    (["--batch", "abc"], f"--batch: Input should be a {BAD_INT}"), (["--batch", "0"], "--batch: must be in [1, 65536], got 0"),
    (["--batch", "-8"], "--batch: must be in [1, 65536]"), (["--batch", "inf"], f"--batch: Input should be a {BAD_INT}"),
    (["--batch", "6"], "--batch: the per-process micro-batch 6 must be a multiple of the minibatch-std group"),
    (["--batch", "7", "--gpus", "2"], "--gpus: the global batch --batch 7 does not split evenly over 2 processes"),
    # --batch-gpu
    (["--batch-gpu", "abc"], f"--batch-gpu: Input should be a {BAD_INT}"),
    (["--batch-gpu", "0"], "--batch-gpu: must be in [1, 65536]"),
    (["--batch-gpu", "-1"], "--batch-gpu: must be in [1, 65536]"),
    (["--batch-gpu", "inf"], f"--batch-gpu: Input should be a {BAD_INT}"),
    (["--batch-gpu", "16"], "--batch-gpu: 16 exceeds the global batch --batch 8"),
    (["--batch", "4", "--batch-gpu", "8"], "--batch-gpu: 8 exceeds the global batch --batch 4"),
    (["--batch-gpu", "3"], "--batch-gpu: 3 does not divide the per-process batch 8"),
    # --gamma (0 = no R1 is valid)
    (["--gamma", "abc"], f"--gamma: Input should be a {BAD_FLOAT}"), (["--gamma", "-1"], "--gamma: must be >= 0"),
    (["--gamma", "inf"], "--gamma: must be finite"), (["--gamma", "nan"], "--gamma: must be finite"),
    # --seed (0 is valid)
    (["--seed", "abc"], f"--seed: Input should be a {BAD_INT}"), (["--seed", "-1"], "--seed: must be in [0, "),
    (["--seed", "inf"], f"--seed: Input should be a {BAD_INT}"), (["--seed", str(2**64)], "--seed: must be in [0, "),
    # --gpus
    (["--gpus", "abc"], f"--gpus: Input should be a {BAD_INT}"), (["--gpus", "0"], "--gpus: must be in [1, 1024]"),
    (["--gpus", "-1"], "--gpus: must be in [1, 1024]"), (["--gpus", "inf"], f"--gpus: Input should be a {BAD_INT}"),
    (["--gpus", "3"], "--gpus: the global batch --batch 8 does not split evenly over 3 processes"),
    # --device
    (["--device", "gpu"], "--device: expected auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    (["--device", "0"], "--device: expected"),
    (["--device", "-1"], "--device: expected"), (["--device", "inf"], "--device: expected"),
    (["--device", "cuda:99"], "--device: cuda:99: "),
    # --metrics
    (["--metrics", "fidd"], "--metrics: unknown metric 'fidd'"), (["--metrics", "0"], "--metrics: unknown metric '0'"),
    (["--metrics", "-1"], "--metrics: unknown metric '-1'"), (["--metrics", "inf"], "--metrics: unknown metric 'inf'"),
    (["--metrics", "fid1"], "--metrics: fid1: needs at least 2 samples"),
    (["--metrics", "is50k"], "--metrics: is50k: the Inception score needs --is-weights"),
    # --max-rollbacks (0 = give up at the first divergence is valid)
    (["--max-rollbacks", "abc"], f"--max-rollbacks: Input should be a {BAD_INT}"),
    (["--max-rollbacks", "-1"], "--max-rollbacks: must be >= 0"),
    (["--max-rollbacks", "inf"], f"--max-rollbacks: Input should be a {BAD_INT}"),
    # --precision
    (["--precision", "fp16"], "--precision: expected one of fp32, tf32, bf16, got 'fp16'"),
    (["--precision", "0"], "--precision: expected one of"), (["--precision", "-1"], "--precision: expected one of"),
    (["--precision", "inf"], "--precision: expected one of"),
    # --minutes
    (["--minutes", "abc"], f"--minutes: Input should be a {BAD_FLOAT}"), (["--minutes", "0"], "--minutes: must be in (0, 1e+06]"),
    (["--minutes", "-1"], "--minutes: must be in (0, 1e+06]"), (["--minutes", "inf"], "--minutes: must be finite"),
    (["--min-kimg", "abc"], f"--min-kimg: Input should be a {BAD_FLOAT}"),
    (["--min-kimg", "-1"], "--min-kimg: must be in [0, 1e+06]"), (["--min-kimg", "inf"], "--min-kimg: must be finite"),
    (["--min-kimg", "5"], "--min-kimg: 5 exceeds the run's length --kimg"),
    # --threads
    (["--threads", "abc"], "--threads: must be 'auto' or a positive number of threads, got 'abc'"),
    (["--threads", "0"], "--threads: must be 'auto' or a positive number"),
    (["--threads", "-1"], "--threads: must be 'auto' or a positive number"),
    (["--threads", "inf"], "--threads: must be 'auto' or a positive number"),
    (["--set", "run.nonfinite_loss_steps=-1"], "--set run.nonfinite_loss_steps: must be >= 0"),
    # --kd-weight (0 = off is valid)
    (["--kd-weight", "abc"], f"--kd-weight: Input should be a {BAD_FLOAT}"),
    (["--kd-weight", "-1"], "--kd-weight: must be in [0, 10000]"),
    (["--kd-weight", "inf"], "--kd-weight: must be finite"), (["--kd-weight", "nan"], "--kd-weight: must be finite"),
    # --depth-adaptor-p and the flags it contradicts
    (["--depth-adaptor-p", "abc"], f"--depth-adaptor-p: Input should be a {BAD_FLOAT}"),
    (["--depth-adaptor-p", "-0.1"], "--depth-adaptor-p: must be in [0, 1], got -0.1"),
    (["--depth-adaptor-p", "-1"], "--depth-adaptor-p: must be in [0, 1]"),
    (["--depth-adaptor-p", "inf"], "--depth-adaptor-p: must be finite"),
    (["--depth-adaptor-p", "1.5"], "--depth-adaptor-p: must be in [0, 1], got 1.5"),
    (["--depth-adaptor-p", "0.2", "--no-depth-adaptor"], "--no-depth-adaptor: --depth-adaptor-p fixes the depth "
                                                          "adaptor's selection, but --no-depth-adaptor turns"),
    (["--no-depth", "--depth-adaptor-p", "0.2"], "--no-depth: --depth-adaptor-p fixes the depth adaptor's "
                                                  "selection, but --no-depth turns the adaptor off"),
    # flags take no value
    (["--no-depth-adaptor=1"], "--no-depth-adaptor: does not take a value"),
    (["--no-camera-adaptor=0"], "--no-camera-adaptor: does not take a value"),
    (["--no-depth=inf"], "--no-depth: does not take a value"), (["--dry-run=-1"], "--dry-run: does not take a value"),
    (["--resume=0"], "--resume: does not take a value"), (["--force-override=1"], "--force-override: does not take"),
    # --force-override and RESUME_FROM belong to --resume
    (["--force-override"], "--force-override: only applies with --resume"),
    (["0"], "--resume: 0 names a run to continue: add --resume"),
    (["--resume", "0"], "--resume: 0: no such run directory or checkpoint"),
    (["--resume", "inf"], "--resume: inf: no such run directory or checkpoint"),
    # --preset
    (["--preset", "0"], "--preset: unknown preset '0'"), (["--preset", "-1"], "--preset: unknown preset '-1'"),
    (["--preset", "inf"], "--preset: unknown preset 'inf'"),
    # --set: type, zero, negative, infinite, contradictory, unknown
    (["--set", "run.batch=abc"], "--set run.batch: expected int, got 'abc'"),
    (["--set", "run.tick_kimg=0"], "--set run.tick_kimg: must be > 0, got 0"),
    (["--set", "run.state_kimg=-1"], "--set run.state_kimg: must be in [0, 1e+06], got -1"),
    (["--set", "run.keep_states=0"], "--set run.keep_states: must be >= 1, got 0"),
    (["--set", "loss.r1_interval=0"], "--set loss.r1_interval: must be >= 1, got 0"),
    (["--set", "loss.gamma=-0.5"], "--set loss.gamma: must be >= 0"),
    (["--set", "loss.kd_weight=inf"], "--set loss.kd_weight: must be finite, got inf"),
    (["--set", "ema.ema_kimg=-1"], "--set ema.ema_kimg: must be >= 0, got -1"),
    (["--set", "optim.g_lr=0"], "--set optim.g_lr: must be > 0, got 0"),
    (["--set", "optim.d_beta2=1"], "--set optim.d_beta2: must be in [0, 1), got 1"),
    (["--set", "data.workers=-1"], "--set data.workers: must be in [0, 256]"),
    (["--set", "run.diverge_metric_factor=0.5"], "--set run.diverge_metric_factor: must be 0 (off) or > 1"),
    (["--set", "model.render.num_coarse_steps=0"], "--set model.render.num_coarse_steps: must be in [3, 512], got 0"),
    (["--set", "model.camera.yaw_min=3"], "--set model.camera.yaw_min: 3 exceeds model.camera.yaw_max = 1.57"),
    (["--set", "model.render.ray_end=inf"], "--set model.render.ray_end: must be finite"),
    (["--set", "run.batch_gpu=16"], "--set run.batch_gpu: 16 exceeds the global batch --batch 8"),
    (["--set", "run.nope=1"], "--set run.nope: unknown config key 'run.nope'"),
    (["--set", "nope"], "--set: expected section.key=value, got 'nope'"),
    # --data and --outdir
    (["--data", "0"], "--data: 0: no such dataset directory"), (["--data", "inf"], "--data: inf: no such dataset"),
    # usage errors are one line too
    (["--bacth", "8"], "--bacth: no such option; did you mean --batch"), (["--kimg"], "--kimg: requires an argument"),
    (["a", "b"], "Got unexpected extra argument(s) (b)"),
    # empty strings (issue 19)
    (["--preset", ""], "--preset: unknown preset ''"),
    (["--device", ""], "--device: an empty device"),
    (["--precision", ""], "--precision: expected one of fp32, tf32, bf16, got ''"),
    (["--set", ""], "--set: expected section.key=value, got ''"), (["--resume", ""], "RESUME_FROM: must not be empty"),
    (["--kimg", ""], f"--kimg: Input should be a {BAD_FLOAT}"),
    (["--batch", ""], f"--batch: Input should be a {BAD_INT}"),
    (["--batch-gpu", ""], f"--batch-gpu: Input should be a {BAD_INT}"),
    (["--gamma", ""], f"--gamma: Input should be a {BAD_FLOAT}"),
    (["--seed", ""], f"--seed: Input should be a {BAD_INT}"),
    (["--gpus", ""], f"--gpus: Input should be a {BAD_INT}"),
    (["--max-rollbacks", ""], f"--max-rollbacks: Input should be a {BAD_INT}"),
    (["--minutes", ""], f"--minutes: Input should be a {BAD_FLOAT}"),
    (["--kd-weight", ""], f"--kd-weight: Input should be a {BAD_FLOAT}"),
    (["--depth-adaptor-p", ""], f"--depth-adaptor-p: Input should be a {BAD_FLOAT}"),
    # counts just past their caps
    (["--gpus", "1025"], "--gpus: must be in [1, 1024], got 1025"),
    (["--set", "model.render.num_coarse_steps=513"],
     "--set model.render.num_coarse_steps: must be in [3, 512], got 513"),
    (["--set", "model.generator.cmax=4097"], "--set model.generator.cmax: must be in [1, 4096], got 4097"),
    (["--set", "model.generator.tri_plane_res=4096"], "--set model.generator.tri_plane_res: must be a power of two in "
                                                       "[4, 2048], got 4096"),
    (["--set", "model.c_dim=100001"], "--set model.c_dim: must be in [0, 100000], got 100001"),
    (["--seed", str(2**32)], "--seed: must be in [0, 4294967295]"),
    (["--data", ""], "--data: must not be empty"),
    (["--outdir", ""], "--outdir: must not be empty"),
    (["--metrics", ""], "--metrics: no metric given (use 'none' for no metrics)"),
    (["--batch", "100000000"], "--batch: must be in [1, 65536]"),
    (["--kimg", "1e30"], "--kimg: must be in (0, 1e+06]"),
    (["--minutes", "1e30"], "--minutes: must be in (0, 1e+06]"),
    (["--kd-weight", "1e30"], "--kd-weight: must be in [0, 10000]"),
]

EVAL = [
    (["--num-gen", "abc"], f"--num-gen: Input should be a {BAD_INT}"), (["--num-gen", "0"], "--num-gen: must be >= 2"),
    (["--num-gen", "-1"], "--num-gen: must be >= 2"), (["--num-gen", "inf"], f"--num-gen: Input should be a {BAD_INT}"),
    (["--batch", "abc"], f"--batch: Input should be a {BAD_INT}"), (["--batch", "0"], "--batch: must be >= 1"),
    (["--batch", "-1"], "--batch: must be >= 1"), (["--batch", "inf"], f"--batch: Input should be a {BAD_INT}"),
    (["--seed", "abc"], f"--seed: Input should be a {BAD_INT}"), (["--seed", "-1"], "--seed: must be in [0, 4294967295]"),
    (["--seed", "inf"], f"--seed: Input should be a {BAD_INT}"),
    (["--truncation", "abc"], f"--truncation: Input should be a {BAD_FLOAT}"),
    (["--truncation", "-1"], "--truncation: must be in [0, 2]"), (["--truncation", "inf"], "--truncation: must be finite"),
    (["--truncation", "nan"], "--truncation: must be"),
    (["--workers", "abc"], f"--workers: Input should be a {BAD_INT}"), (["--workers", "-1"], "--workers: must be in [0, 256]"),
    (["--workers", "inf"], f"--workers: Input should be a {BAD_INT}"),
    (["--resolution", "abc"], f"--resolution: Input should be a {BAD_INT}"),
    (["--resolution", "0"], "--resolution: must be in [8, 4096]"), (["--resolution", "-1"], "--resolution: must be in"),
    (["--resolution", "inf"], f"--resolution: Input should be a {BAD_INT}"),
    (["--device", "gpu"], "--device: expected auto, cpu, cuda, cuda:N or mps, got 'gpu'"), (["--device", "0"], "--device: "),
    (["--device", "-1"], "--device: "), (["--device", "inf"], "--device: "), (["--device", "cuda:99"], "--device: "),
    (["--metrics", "fidd"], "--metrics: unknown metric 'fidd'"), (["--metrics", "0"], "--metrics: unknown metric '0'"),
    (["--metrics", "-1"], "--metrics: unknown metric"), (["--metrics", "inf"], "--metrics: unknown metric 'inf'"),
    (["--snapshots", "0"], "--snapshots: expected one of best, latest, all, got '0'"),
    (["--snapshots", "-1"], "--snapshots: expected one of"), (["--snapshots", "inf"], "--snapshots: expected one of"),
    (["--resize", "0"], "--resize: expected one of stylegan, clean, got '0'"), (["--resize", "inf"], "--resize: expected"),
    (["--data", "0"], "--data: 0: no such file or folder"), (["--data", "inf"], "--data: inf: no such file or folder"),
    (["--inception", "0"], "0: --inception: no such file"), (["--is-weights", "inf"], "inf: --is-weights: no such"),
    (["--fakes", "0"], "--fakes: give either a checkpoint (CKPT) or --fakes DIR_OR_DATASET, not both"),
    (["--out", "{file}/card.json"], "--out: "),
    (["--snapshot", "best"], "--snapshot: no such option; did you mean --snapshots?"),
    # empty strings and counts past their caps (issue 19)
    (["--snapshots", ""], "--snapshots: expected one of best, latest, all, got ''"),
    (["--resize", ""], "--resize: expected"), (["--fakes", ""], "--fakes: "), (["--data", ""], "--data: "),
    (["--inception", ""], "--inception: "), (["--is-weights", ""], "--is-weights: "),
    (["--num-gen", ""], f"--num-gen: Input should be a {BAD_INT}"),
    (["--batch", ""], f"--batch: Input should be a {BAD_INT}"),
    (["--seed", ""], f"--seed: Input should be a {BAD_INT}"), (["--seed", str(2**32)], "--seed: must be in [0, "),
    (["--truncation", ""], f"--truncation: Input should be a {BAD_FLOAT}"),
    (["--truncation", "2.01"], "--truncation: must be in [0, 2]"),
    (["--workers", "257"], "--workers: must be in [0, 256], got 257"),
    (["--resolution", "8192"], "--resolution: must be in [8, 4096], got 8192"),
    (["--gpus", "1025"], "--gpus: must be in [1, 1024], got 1025"),
    (["--gpus", ""], f"--gpus: Input should be a {BAD_INT}"),
    (["--device", ""], "--device: an empty device"),
]

EXPORT = [
    (["--seeds", "abc"], "--seeds: bad seed range 'abc'"), (["--seeds", "-1"], "--seeds: bad seed range '-1'"),
    (["--seeds", "inf"], "--seeds: bad seed range 'inf'"), (["--seeds", "5-2"], "--seeds: bad seed range '5-2'"),
    (["--classes", "0"], "--classes: this model is unconditional"), (["--classes", "-1"], "--classes: "),
    (["--truncation", "abc"], f"--truncation: Input should be a {BAD_FLOAT}"),
    (["--truncation", "-1"], "--truncation: must be in [0, 2]"), (["--truncation", "inf"], "--truncation: must be"),
    (["--truncation", "nan"], "--truncation: must be"),
    (["--noise-mode", "0"], "--noise-mode: expected const, random or none, got '0'"),
    (["--noise-mode", "inf"], "--noise-mode: expected"),
    (["--trajectory", "0"], "--trajectory: unknown trajectory '0'"), (["--trajectory", "-1"], "--trajectory: unknown"),
    (["--frames", "abc"], f"--frames: Input should be a {BAD_INT}"),
    (["--frames", "0"], "--frames: must be in [1, 10000]"),
    (["--frames", "-1"], "--frames: must be in"), (["--frames", "inf"], f"--frames: Input should be a {BAD_INT}"),
    (["--fps", "abc"], f"--fps: Input should be a {BAD_INT}"), (["--fps", "0"], "--fps: must be in [1, 120]"),
    (["--fps", "-1"], "--fps: must be in"), (["--fps", "inf"], f"--fps: Input should be a {BAD_INT}"),
    (["--format", "0"], "--format: expected mp4 or gif, got '0'"),
    (["--format", "avi"], "--format: expected mp4 or gif"),
    (["--video-kind", "0"], "--video-kind: expected one of rgb, depth, both"),
    (["--grid-views", "abc"], f"--grid-views: Input should be a {BAD_INT}"),
    (["--grid-views", "0"], "--grid-views: must be in [1, 16]"), (["--grid-views", "-1"], "--grid-views: must be in"),
    (["--grid-views", "inf"], f"--grid-views: Input should be a {BAD_INT}"),
    (["--mesh", "0"], "--mesh: expected one of obj, ply, glb, got '0'"), (["--mesh", "stl"], "--mesh: expected one of"),
    (["--mesh-res", "abc"], f"--mesh-res: Input should be a {BAD_INT}"),
    (["--mesh-res", "0"], "--mesh-res: must be in"),
    (["--mesh-res", "-1"], "--mesh-res: must be in"),
    (["--mesh-res", "inf"], f"--mesh-res: Input should be a {BAD_INT}"),
    (["--level", "abc"], f"--level: Input should be a {BAD_FLOAT}"),
    (["--level", "0"], "--level: must be a finite density > 0"),
    (["--level", "-1"], "--level: must be a finite"), (["--level", "inf"], "--level: must be finite, got inf"),
    (["--level", "nan"], "--level: must be finite, got nan"),
    (["--volume", "0"], "--volume: expected npy or mrc, got '0'"),
    (["--volume", "npy"], "--volume: the density volume is written with a mesh: add --mesh"),
    (["--device", "gpu"], "--device: expected auto, cpu, cuda, cuda:N or mps, got 'gpu'"), (["--device", "0"], "--device: "),
    (["--device", "-1"], "--device: "), (["--device", "inf"], "--device: "), (["--device", "cuda:99"], "--device: "),
    (["--resolution", "abc"], f"--resolution: Input should be a {BAD_INT}"),
    (["--resolution", "0"], "--resolution: must be in [8, 2048]"), (["--resolution", "-1"], "--resolution: must be"),
    (["--resolution", "inf"], f"--resolution: Input should be a {BAD_INT}"),
    (["--steps", "abc"], f"--steps: Input should be a {BAD_INT}"), (["--steps", "0"], "--steps: must be in [3, 1024]"),
    (["--steps", "-1"], "--steps: must be in"), (["--steps", "2"], "--steps: must be in [3, 1024], got 2"),
    (["--steps", "inf"], f"--steps: Input should be a {BAD_INT}"),
    (["--ray-end", "abc"], f"--ray-end: Input should be a {BAD_FLOAT}"),
    (["--ray-end", "0"], "--ray-end: must be a finite distance > 0"), (["--ray-end", "-1"], "--ray-end: must be"),
    (["--ray-end", "inf"], "--ray-end: must be finite, got inf"), (["--ray-end", "0.5"], "--ray-end: 0.5 must be beyond the "
                                                                                   "model's near plane 0.75"),
    (["--batch", "abc"], f"--batch: Input should be a {BAD_INT}"), (["--batch", "0"], "--batch: must be in [1, 1024]"),
    (["--batch", "-1"], "--batch: must be in"), (["--batch", "inf"], f"--batch: Input should be a {BAD_INT}"),
    (["--video=1"], "--video: does not take a value"), (["--report=0"], "--report: does not take a value"),
    (["--outdir", "{file}"], "--outdir: "), (["--outdir", "{file}/sub"], "--outdir: "),
    # empty strings (issue 19)
    (["--outdir", ""], "--outdir: must not be empty"), (["--seeds", ""], "--seeds: bad seed range ''"),
    (["--classes", ""], "--classes: this model is unconditional"),
    (["--noise-mode", ""], "--noise-mode: expected const, random or none, got ''"),
    (["--trajectory", ""], "--trajectory: unknown trajectory ''"), (["--format", ""], "--format: expected mp4 or gif"),
    (["--video-kind", ""], "--video-kind: expected one of rgb, depth, both, got ''"),
    (["--mesh", ""], "--mesh: expected one of obj, ply, glb, got ''"),
    (["--volume", ""], "--volume: expected npy or mrc"),
    (["--device", ""], "--device: an empty device"),
    (["--truncation", ""], f"--truncation: Input should be a {BAD_FLOAT}"),
    (["--frames", ""], f"--frames: Input should be a {BAD_INT}"),
    (["--fps", ""], f"--fps: Input should be a {BAD_INT}"),
    (["--grid-views", ""], f"--grid-views: Input should be a {BAD_INT}"),
    (["--mesh-res", ""], f"--mesh-res: Input should be a {BAD_INT}"),
    (["--level", ""], f"--level: Input should be a {BAD_FLOAT}"),
    (["--resolution", ""], f"--resolution: Input should be a {BAD_INT}"),
    (["--steps", ""], f"--steps: Input should be a {BAD_INT}"),
    (["--ray-end", ""], f"--ray-end: Input should be a {BAD_FLOAT}"),
    (["--batch", ""], f"--batch: Input should be a {BAD_INT}"), (["--grid=1"], "--grid: does not take a value"),
    # counts just past their caps (issue 19)
    (["--seeds", "4294967296"], "--seeds: seed 4294967296 is beyond 4,294,967,295"),
    (["--seeds", "0-4096"], "--seeds: more than 4096 seeds"),
    (["--frames", "10001"], "--frames: must be in [1, 10000]"),
    (["--fps", "121"], "--fps: must be in [1, 120], got 121"),
    (["--grid-views", "17"], "--grid-views: must be in [1, 16]"),
    (["--mesh-res", "1025"], "--mesh-res: must be in [16, 1024], got 1025"),
    (["--mesh-res", "15"], "--mesh-res: must be in [16, 1024], got 15"),
    (["--resolution", "2049"], "--resolution: must be in [8, 2048], got 2049"),
    (["--steps", "1025"], "--steps: must be in [3, 1024], got 1025"),
    (["--batch", "1025"], "--batch: must be in [1, 1024]"),
    (["--truncation", "2.01"], "--truncation: must be in [0, 2], got 2.01"),
]

# `3dgp prep SOURCE ...` after "prep": {out}, {src} (a folder with one image), {train} (an ImageNet layout) and
# {weights} (not a network) are filled in; every row also gets --workers 0 --embedder none (before its own values).
PREP = [
    (["toy", ""], "OUT: must not be empty"), (["toy", "."], ".: OUT must name the dataset folder itself"),
    (["toy", "{out}", "--num", ""], f"--num: Input should be a {BAD_INT}"),
    (["toy", "{out}", "--num", "1000000000"], "--num: must be between 1 and 999,999,999, got 1,000,000,000"),
    (["toy", "{out}", "--seed", ""], f"--seed: Input should be a {BAD_INT}"),
    (["toy", "{out}", "--seed", str(2**32)], "--seed: must be between 0 and 4,294,967,295"),
    (["toy", "{out}", "--scenes", ""], "--scenes: expected one of full, simple, got ''"),
    (["toy", "{out}", "--resolution", ""], f"--resolution: Input should be a {BAD_INT}"),
    (["toy", "{out}", "--resolution", "8192"], "--resolution: must be a power of two between 4 and 4096, got 8192"),
    (["toy", "{out}", "--workers", ""], f"--workers: Input should be a {BAD_INT}"),
    (["toy", "{out}", "--workers", "257"], "--workers: must be between 0 and 256, got 257"),
    (["toy", "{out}", "--depth-model", ""], "--depth-model: expected a name, got ''"),
    (["toy", "{out}", "--depth-model", "leres", "--depth-weights", ""], "--depth-weights: must not be empty"),
    (["toy", "{out}", "--embedder", ""], "--embedder: expected a name, got ''"),
    (["toy", "{out}", "--embedder", "resnet18", "--embedder-weights", ""], "--embedder-weights: must not be empty"),
    (["toy", "{out}", "--device", ""], "--device: an empty device"),
    (["toy", "{out}", "--batch-size", ""], f"--batch-size: Input should be a {BAD_INT}"),
    (["toy", "{out}", "--batch-size", "4097"], "--batch-size: must be between 1 and 4,096, got 4,097"),
    (["toy", "{out}", "--preview", ""], "--preview: must not be empty"),
    (["toy", "{out}", "--preview", "{out}"], "--preview: must be a .png path"),
    (["toy", "{out}", "--overwrite=1"], "--overwrite: does not take a value"),
    (["toy", "{out}", "--dry-run=1"], "--dry-run: does not take a value"),
    (["toy", "{out}", "--resource-check=0"], "--resource-check: does not take a value"),
    (["folder", "", "{out}"], "SRC: must not be empty"), (["folder", "{src}", ""], "OUT: must not be empty"),
    (["folder", "{src}", "{out}", "--max-images", ""], f"--max-images: Input should be a {BAD_INT}"),
    (["folder", "{src}", "{out}", "--max-images", "1000000000"], "--max-images: must be between 1 and 999,999,999"),
    (["folder", "{src}", "{out}", "--max-pixels", ""], f"--max-pixels: Input should be a {BAD_INT}"),
    (["folder", "{src}", "{out}", "--max-pixels", str(2**32 + 1)], "--max-pixels: must be between 1 and 4,294,967,296"),
    (["folder", "{src}", "{out}", "--max-file-mb", ""], f"--max-file-mb: Input should be a {BAD_INT}"),
    (["folder", "{src}", "{out}", "--max-file-mb", "16385"], "--max-file-mb: must be between 1 and 16,384, got 16,385"),
    (["folder", "{src}", "{out}", "--max-classes", ""], f"--max-classes: Input should be a {BAD_INT}"),
    (["folder", "{src}", "{out}", "--max-classes", "999999999"], "--max-classes: must be between 1 and 100,000"),
    (["folder", "{src}", "{out}", "--max-classes", "100001"],
     "--max-classes: must be between 1 and 100,000, got 100,001"),
    (["zip", "", "{out}"], "SRC: must not be empty"),
    (["zip", "{src}", "{out}", "--max-classes", "100001"], "--max-classes: must be between 1 and 100,000"),
    (["imagenet", "", "{out}"], "ROOT: must not be empty"), (["imagenet", "{train}", ""], "OUT: must not be empty"),
    (["imagenet", "{train}", "{out}", "--classes", ""], "--classes: names no synset, got ''"),
    (["imagenet", "{train}", "{out}", "--classes", " , "], "--classes: names no synset"),
    (["imagenet", "{train}", "{out}", "--classes-file", ""], "--classes-file: must not be empty"),
    (["imagenet", "{train}", "{out}", "--synset-map", ""], "--synset-map: must not be empty"),
    (["imagenet", "{train}", "{out}", "--keep-ratio", ""], f"--keep-ratio: Input should be a {BAD_FLOAT}"),
    (["imagenet", "{train}", "{out}", "--keep-ratio", "1.01"], "--keep-ratio: must be in (0, 1]"),
    (["imagenet", "{train}", "{out}", "--max-per-class", ""], f"--max-per-class: Input should be a {BAD_INT}"),
    (["imagenet", "{train}", "{out}", "--max-per-class", "1000000000"], "--max-per-class: must be between 1 and 999"),
    (["imagenet", "{train}", "{out}", "--reg-covar", ""], f"--reg-covar: Input should be a {BAD_FLOAT}"),
    (["imagenet", "{train}", "{out}", "--selection-weights", ""], "--selection-weights: must not be empty"),
    (["imagenet", "{train}", "{out}", "--keep-ratio", "0.5", "--selection-weights", "{weights}"],
     "--selection-weights: not a TorchScript Inception network"),
    (["imagenet", "{train}", "{out}", "--max-pixels", str(2**32 + 1)], "--max-pixels: must be between 1"),
    (["lsun", "", "{out}"], "SRC: must not be empty"),
    (["lsun", "{src}", "{out}", "--max-images", "1000000000"], "--max-images: must be between 1 and 999,999,999"),
    (["lsun", "{src}", "{out}", "--max-file-mb", "16385"], "--max-file-mb: must be between 1 and 16,384"),
]

# `3dgp info ...`: {dataset} is a prepped dataset, {file} a plain file.
INFO = [
    ([], "PATH: give a dataset folder or a checkpoint, or --model PRESET"), ([""], "PATH: must not be empty"),
    (["{file}"], "not something 3dgp info understands"), (["{file}x"], "no such file or directory"),
    (["--model", ""], "--model: unknown preset ''"),
    (["--model", "small"], "--model: unknown preset 'small'; choose one of tiny, demo, toy64, dogs"),
    (["{dataset}", "--preview", ""], "--preview: must not be empty"),
    (["{dataset}", "--preview", "sheet.jpg"], "--preview: must be a .png file path"),
    (["--model", "tiny", "--preview", "sheet.png"], "--preview: previews a dataset: give its folder as PATH"),
    (["--json=1"], "--json: does not take a value"), (["a", "b"], "Got unexpected extra argument(s) (b)"),
]


# `3dgp compare ...` and `3dgp demo summary ...` (issue 20 §5): {dir} is an empty folder, {file} a plain file, {bad}
# a folder whose one variant has a card that is not JSON, {card} a good card, {partial} a card without depth/camera.
COMPARE = [
    ([], "OUT: missing argument"), ([""], "OUT: must not be empty"), (["{dir}/nope"], "{dir}/nope: no such folder"),
    (["{file}"], "{file}: not a folder"), (["{dir}"], "{dir}: no <variant>/metrics.json here"),
    (["{bad}"], "{bad}/v/metrics.json: not a JSON metric card"),
    (["{dir}", "--target-fid", "abc"], f"--target-fid: Input should be a {BAD_FLOAT}"),
    (["{dir}", "--target-fid", ""], f"--target-fid: Input should be a {BAD_FLOAT}"),
    (["{dir}", "--target-fid", "0"], "--target-fid: must be a finite FID > 0, got 0"),
    (["{dir}", "--target-fid", "-1"], "--target-fid: must be a finite FID > 0, got -1"),
    (["{dir}", "--target-fid", "inf"], "--target-fid: must be a finite FID > 0, got inf"),
    (["{dir}", "--target-fid", "nan"], "--target-fid: must be a finite FID > 0, got nan"),
]
DEMO_SUMMARY = [
    (["{dir}", "--final", "{card}"], "--init: missing option"), (["--init", "{card}", "--final", "{card}"], "OUT: "),
    (["", "--init", "{card}", "--final", "{card}"], "OUT: must not be empty"),
    (["{dir}", "--init", "", "--final", "{card}"], "--init: must not be empty"),
    (["{dir}", "--init", "{card}", "--final", ""], "--final: must not be empty"),
    (["{dir}/nope", "--init", "{card}", "--final", "{card}"], "{dir}/nope: no such folder"),
    (["{file}", "--init", "{card}", "--final", "{card}"], "{file}: not a folder"),
    (["{dir}", "--init", "{dir}/nope.json", "--final", "{card}"], "{dir}/nope.json: cannot read"),
    (["{dir}", "--init", "{file}", "--final", "{card}"], "{file}: not a JSON metric card"),
    (["{dir}", "--init", "{card}", "--final", "{partial}"], "{partial}: no available 'depth' metric"),
]


def _id(row):
    args = row.values[0] if hasattr(row, "values") else row[0]  # a pytest.param or a plain row
    return " ".join(args)[:40] or "''"


def _check(code, err, needle):
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), (code, err)
    assert needle in lines[0], lines[0]
    assert "Traceback" not in err


def _fill(args, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return [a.replace("{file}", str(blocker)) for a in args]


@pytest.mark.parametrize("args, needle", TRAIN, ids=[_id(r) for r in TRAIN])
def test_train_option_values(args, needle, run_cli, eval_dataset, tmp_path):
    if args == ["--device", "cuda:99"] and NO_CUDA:
        needle = "--device: cuda:99: no CUDA device is available"
    out = tmp_path / "runs"
    # Not a dry run: a rejected start must leave no run directory. Should a bad value ever be accepted, the run is
    # one short iteration without metrics (and the test fails on its exit code).
    code, _, err = run_cli("train", "--data", eval_dataset, "--preset", "tiny", "--outdir", out, "--kimg", "0.008",
                           "--metrics", "none", *_fill(args, tmp_path))
    _check(code, err, needle)
    assert not out.exists()


@pytest.mark.parametrize("outdir, needle", [("{file}", "--outdir: {file} is a file, not a folder"),
                                            ("{file}/sub", "--outdir: {file}/sub: {file} is a file")])
def test_train_outdir_that_is_a_file(outdir, needle, run_cli, eval_dataset, tmp_path):
    args = _fill(["--outdir", outdir], tmp_path)
    code, _, err = run_cli("train", "--data", eval_dataset, "--preset", "tiny", *args)
    _check(code, err, needle.replace("{file}", str(tmp_path / "a-file")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "cache"] or \
        sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_train_data_that_is_not_a_dataset(run_cli, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "f").write_text("x")
    for data, needle in ((tmp_path / "empty", f"{tmp_path / 'empty'}: not a 3dgp dataset (no data.mdb)"),
                         (tmp_path / "f", f"--data: {tmp_path / 'f'}: not a directory")):
        code, _, err = run_cli("train", "--data", data, "--preset", "tiny", "--outdir", tmp_path / "runs")
        _check(code, err, needle)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, needle", EVAL, ids=[_id(r) for r in EVAL])
def test_eval_option_values(args, needle, run_cli, eval_run, tmp_path):
    if args == ["--device", "cuda:99"] and NO_CUDA:
        needle = "--device: cuda:99: no CUDA device is available"
    before = sorted(p.name for p in eval_run.iterdir())
    code, _, err = run_cli("eval", eval_run / "snapshot-000000.000.pt", "--metrics", "camera", "--num-gen", "4",
                           "--out", tmp_path / "card.json", *_fill(args, tmp_path))
    _check(code, err, needle)
    assert sorted(p.name for p in eval_run.iterdir()) == before and not (tmp_path / "card.json").exists()


def test_eval_missing_checkpoint_and_usage(run_cli, tmp_path):
    code, _, err = run_cli("eval", tmp_path / "nope.pt")
    _check(code, err, f"{tmp_path / 'nope.pt'}: no such snapshot file or run directory")
    code, _, err = run_cli("eval")
    _check(code, err, "--fakes: nothing to evaluate: give CKPT or --fakes")


@pytest.mark.parametrize("args, needle", EXPORT, ids=[_id(r) for r in EXPORT])
def test_export_option_values(args, needle, run_cli, eval_run, tmp_path):
    if args == ["--device", "cuda:99"] and NO_CUDA:
        needle = "--device: cuda:99: no CUDA device is available"
    out = tmp_path / "export"
    code, _, err = run_cli("export", eval_run / "snapshot-000000.000.pt", "--outdir", out, "--grid", "--steps", "4",
                           *_fill(args, tmp_path))
    _check(code, err, needle)
    if args[0] == "--classes":  # checked against the snapshot before the output folder is made
        assert not out.exists()
    assert not out.exists() or not list(out.iterdir())


def test_export_missing_checkpoint_and_usage(run_cli, tmp_path):
    code, _, err = run_cli("export", tmp_path / "nope.pt", "--grid", "--outdir", tmp_path / "x")
    _check(code, err, f"{tmp_path / 'nope.pt'}: ")
    code, _, err = run_cli("export")
    _check(code, err, "CKPT: missing argument (see 3dgp export --help)")


# --- issue 19 §6: a custom TorchScript detector with the wrong output is one line, before any work ------------------

class _Pool(torch.nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))  # [N, 3] instead of [N, 2048]


class _NaNs(torch.nn.Module):
    def forward(self, x):
        return torch.full((x.shape[0], 2048), float("nan"))


class _Gray(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2048, 1)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))  # fails on RGB input


@pytest.mark.parametrize("net, needle", [(_Pool, "--inception: returns [2, 3] for a [2, 3, 299, 299] batch"),
                                         (_NaNs, "--inception: returns NaN or infinite features"),
                                         (_Gray, "--inception: fails on a [2, 3, 299, 299] batch")])
def test_eval_custom_detector_with_the_wrong_output(net, needle, run_cli, eval_run, tmp_path):
    path = tmp_path / "detector.pt"
    torch.jit.script(net()).save(str(path))
    code, _, err = run_cli("eval", eval_run / "snapshot-000000.000.pt", "--metrics", "fid8", "--num-gen", "8",
                           "--out", tmp_path / "card.json", "--inception", path)
    # eval logs which snapshot it evaluates before it loads the detector: only the error line is checked here
    _check(code, "\n".join(line for line in err.splitlines() if not line.startswith(("INFO ", " "))), needle)
    assert str(path) in err and not (tmp_path / "card.json").exists()


# --- issue 19 acceptance 2: prep and info tables, and every option has rows ----------------------------------------

def _prep_inputs(tmp_path) -> dict[str, str]:
    from PIL import Image

    (tmp_path / "src").mkdir()
    Image.new("RGB", (12, 10), (200, 30, 60)).save(tmp_path / "src" / "a.png")
    (tmp_path / "train" / "n01440764").mkdir(parents=True)
    Image.new("RGB", (12, 10), (20, 30, 60)).save(tmp_path / "train" / "n01440764" / "a.JPEG")
    (tmp_path / "weights.pth").write_text("not a network")
    return {"{out}": str(tmp_path / "out"), "{src}": str(tmp_path / "src"), "{train}": str(tmp_path / "train"),
            "{weights}": str(tmp_path / "weights.pth")}


@pytest.mark.parametrize("args, needle", PREP, ids=[_id(r) for r in PREP])
def test_prep_option_values(args, needle, run_cli, tmp_path, monkeypatch):
    names = _prep_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)  # "toy ." must not name the repository
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = [names.get(a, a) for a in args]
    code, _, err = run_cli("prep", argv[0], "--workers", "0", "--embedder", "none", *argv[1:])
    _check(code, err, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no OUT, OUT.partial or OUT.lock


@pytest.mark.parametrize("args, needle", INFO, ids=[_id(r) for r in INFO])
def test_info_option_values(args, needle, run_cli, eval_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocker = _fill(["{file}"], tmp_path)[0]
    names = {"{dataset}": eval_dataset, "{file}": blocker, "{file}x": blocker + "x"}
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = run_cli("info", *[names.get(a, a) for a in args])
    _check(code, err, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def _card_inputs(tmp_path) -> dict[str, str]:
    import json

    folder, card_dir, bad = tmp_path / "empty", tmp_path / "cards", tmp_path / "bad"
    for d in (folder, card_dir, bad / "v"):
        d.mkdir(parents=True)
    (bad / "v" / "metrics.json").write_text("{not json")
    metrics = [{"name": k, "kind": k, "value": 1.0, "unavailable": None, "details": {}}
               for k in ("fid", "nfs", "mvc", "depth", "camera")]
    (card_dir / "card.json").write_text(json.dumps({"metrics": metrics}))
    (card_dir / "partial.json").write_text(json.dumps({"metrics": metrics[:3]}))
    return {"{dir}": str(folder), "{file}": _fill(["{file}"], tmp_path)[0], "{bad}": str(bad),
            "{card}": str(card_dir / "card.json"), "{partial}": str(card_dir / "partial.json")}


def _filled(text: str, names: dict[str, str]) -> str:
    for key, value in names.items():
        text = text.replace(key, value)
    return text


@pytest.mark.parametrize("args, needle", COMPARE, ids=[_id(r) for r in COMPARE])
def test_compare_option_values(args, needle, run_cli, tmp_path):
    names = _card_inputs(tmp_path)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    code, _, err = run_cli("compare", *[_filled(a, names) for a in args])
    _check(code, err, _filled(needle, names))
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # no comparison.md


@pytest.mark.parametrize("args, needle", DEMO_SUMMARY, ids=[_id(r) for r in DEMO_SUMMARY])
def test_demo_summary_option_values(args, needle, run_cli, tmp_path):
    names = _card_inputs(tmp_path)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    code, _, err = run_cli("demo", "summary", *[_filled(a, names) for a in args])
    _check(code, err, _filled(needle, names))
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # no summary.md


def test_export_and_info_empty_positional(run_cli, tmp_path):
    code, _, err = run_cli("export", "", "--grid", "--outdir", tmp_path / "x")
    _check(code, err, "CKPT: must not be empty")
    assert not (tmp_path / "x").exists()


def _command_options(*path: str) -> set[str]:
    """The long option names of ``3dgp PATH...`` (from the Typer app itself)."""
    import click
    import typer.main

    from threedgp_cli.app import app

    command = typer.main.get_command(app)
    ctx = click.Context(command)
    for name in path:
        command = command.get_command(ctx, name)
        ctx = click.Context(command, parent=ctx)
    return {next(o for o in p.opts if o.startswith("--")) for p in command.params
            if p.param_type_name == "option" and p.name != "help"}  # not isinstance: Typer vendors its own click


def _table_options(rows) -> set[str]:
    found = set()
    for row in rows:
        args = row.values[0] if hasattr(row, "values") else row[0]
        found |= {a.split("=", 1)[0] for a in args if a.startswith("--")}
    return found


@pytest.mark.parametrize("command, rows", [(("prep", "toy"), PREP), (("prep", "folder"), PREP), (("prep", "zip"), PREP),
                                           (("prep", "imagenet"), PREP), (("prep", "lsun"), PREP),
                                           (("train",), TRAIN), (("export",), EXPORT), (("info",), INFO),
                                           (("compare",), COMPARE), (("demo", "summary"), DEMO_SUMMARY)])
def test_every_option_has_rows(command, rows):
    missing = _command_options(*command) - _table_options(rows)
    assert not missing, f"3dgp {' '.join(command)}: no bad-value rows for {sorted(missing)}"
