"""Status lines, image grids and metric evaluation during training (3DGP ref §6.1, §10.3; style guide 12)."""
from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from stages.common.images import depth_to_uint8, to_uint8  # noqa: F401 (re-exported for callers)

logger = logging.getLogger(__name__)
GRID_SIZE = 8  # samples of the fakes<kimg>.png grid
GRID_SEED_SALT = 0x6121D  # derive_seed(run.seed, salt): the grid's fixed inputs


def memory_gb(device: torch.device) -> tuple[float, float]:
    """(peak accelerator GB since the last call, process RSS GB)."""
    gpu = 0.0
    if device.type == "cuda":
        gpu = torch.cuda.max_memory_allocated(device) / 2**30
        torch.cuda.reset_peak_memory_stats(device)
    try:
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    except ImportError:  # pragma: no cover - non-POSIX
        rss = 0.0
    return gpu, rss


def format_duration(seconds: float) -> str:
    """12m05s / 3h20m / 2d04h."""
    seconds = max(int(seconds), 0)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{(seconds // 60) % 60:02d}m"
    return f"{seconds // 86400}d{(seconds // 3600) % 24:02d}h"


def status_line(tick: int, kimg: float, total_kimg: float, sec_per_kimg: float, scalars: dict,
                device: torch.device, seconds_left: float | None = None) -> str:
    """Fixed-field status line: kimg, sec/kimg, ETA, losses, camera posterior mean/std, memory (style guide 12).
    The ETA is the sooner of the kimg target and ``seconds_left`` (what a ``--minutes`` budget leaves)."""
    gpu, rss = memory_gb(device)
    eta = (total_kimg - kimg) * sec_per_kimg if math.isfinite(sec_per_kimg) else float("nan")
    if seconds_left is not None:
        eta = min(eta, max(seconds_left, 0.0)) if math.isfinite(eta) else max(seconds_left, 0.0)

    def g(name: str) -> str:
        if name not in scalars:
            return "      -"
        v = scalars[name]
        return f"{v:7.3f}" if isinstance(v, float) and math.isfinite(v) else f"{str(v):>7s}"

    parts = [
        f"tick {tick:<5d}", f"kimg {kimg:<9.3f}", f"sec/kimg {sec_per_kimg:<7.2f}",
        f"eta {format_duration(eta) if math.isfinite(eta) else '?'}",
        f"G {g('Loss/G/adv')}", f"D {g('Loss/D/real')}/{g('Loss/D/fake')}", f"R1 {g('Loss/D/r1')}",
        f"KD {g('Loss/D/kd')}",
        f"yaw {g('Camera/yaw/mean')}±{g('Camera/yaw/std').strip()}",
        f"pitch {g('Camera/pitch/mean')}±{g('Camera/pitch/std').strip()}",
        f"fov {g('Camera/fov_deg/mean')}",
        f"cpumem {rss:.2f}G",
    ]
    if device.type == "cuda":
        parts.append(f"gpumem {gpu:.2f}G")
    return " ".join(parts)


def save_grid(path: Path, rows: list[torch.Tensor]) -> None:
    """Save uint8 ``[B, 3, H, W]`` batches as grid rows into a PNG (atomic rename)."""
    from PIL import Image

    rows_np = [np.concatenate(list(r.permute(0, 2, 3, 1).cpu().numpy()), axis=1) for r in rows]
    grid = np.concatenate(rows_np, axis=0)
    scale = max(1, 128 // rows[0].shape[-1])  # nearest-neighbour upscale of tiny renders so they can be seen
    grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    tmp = path.with_name(path.name + ".tmp.png")
    Image.fromarray(grid).save(tmp)
    os.replace(tmp, path)


@torch.no_grad()
def render_fakes_grid(G_ema, grid_inputs: dict, path: Path, batch: int = 8) -> None:
    """RGB row(s) and depth row(s) of G_ema at its full resolution for fixed z/c/cameras (ref §10.3)."""
    imgs, depths = [], []
    z, c, cams = grid_inputs["z"], grid_inputs["c"], grid_inputs["cameras"]
    gen = torch.Generator(device=z.device).manual_seed(0)
    for i in range(0, z.shape[0], batch):
        out = G_ema(z[i:i + batch], None if c is None else c[i:i + batch], cams[i:i + batch], noise_mode="const",
                    generator=gen)
        imgs.append(to_uint8(out["img"]))
        depths.append(depth_to_uint8(out["depth"], G_ema.ray_start, G_ema.ray_end))
    save_grid(path, [torch.cat(imgs), torch.cat(depths)])


def save_reals_grid(reals_img: torch.Tensor, path: Path) -> None:
    """RGB row and depth row of real images ``[B, 3(+1), R, R]`` in [-1, 1]."""
    rows = [to_uint8(reals_img[:, :3])]
    if reals_img.shape[1] == 4:
        rows.append(to_uint8(-reals_img[:, 3:4]).expand(-1, 3, -1, -1))  # near = white like fakes
    save_grid(path, rows)


def append_metric(run_dir: Path, record: dict) -> None:
    """One line of ``metrics.jsonl``."""
    with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


class TickTimer:
    """sec/kimg over the last tick, excluding time spent in maintenance (saving, metrics, images)."""

    def __init__(self, cur_nimg: int):
        self.start_time = time.time()
        self.start_nimg = cur_nimg
        self.maintenance = 0.0

    def sec_per_kimg(self, cur_nimg: int) -> float:
        done = (cur_nimg - self.start_nimg) / 1000
        return (time.time() - self.start_time - self.maintenance) / done if done > 0 else float("nan")

    def reset(self, cur_nimg: int) -> None:
        self.__init__(cur_nimg)


def log_ops_report() -> None:
    """Which op implementations actually ran, and the ops self-check's verdicts (style guide principle 7)."""
    import stages.ops
    from stages.ops import selfcheck

    logger.info("ops: %s", stages.ops.impl_report())
    verdicts = selfcheck.report()
    if verdicts:
        logger.info("ops self-check: %s", {op: ("passed" if r["passed"] else f"FAILED: {r['problem']}")
                                           for op, r in verdicts.items()})


def fakes_grid_inputs(seed: int, G, prior, label_probs, c_dim: int, device: torch.device) -> dict:
    """Fixed z / classes (dataset label distribution) / prior cameras of the fakes grid, from a seeded CPU generator
    (the same grid on every device); keys ``z`` ``[8, z_dim]``, ``c`` ``[8, c_dim]`` | None, ``cameras`` ``[8, 8]``."""
    from stages.common.seeding import derive_seed
    from stages.nn.inputs import make_generator, sample_generator_inputs

    gen = make_generator(derive_seed(seed, GRID_SEED_SALT))
    inputs = sample_generator_inputs(GRID_SIZE, G.z_dim, c_dim, prior, label_probs=label_probs, generator=gen,
                                     device=device)
    return {"z": inputs.z, "c": inputs.c, "cameras": inputs.camera_prior}
