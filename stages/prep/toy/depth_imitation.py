"""Turn ground-truth depth into an imitation of an off-the-shelf monocular estimate (issue 3, source 1).

Real estimators (LeReS, MiDaS, Depth-Anything; see 3DGP ref §3.3) give *relative* depth with an unknown scale and
shift, compress the far range, round off depth edges, add smooth low-frequency warps, leak image texture into the
depth, and are often wrong on the sky and distant background. We reproduce each of these, in this order:
1. a random monotone warp (far-range saturation x / (1 + x / d_sat), then a power);
2. edge smoothing: a mild global blur plus a stronger blur concentrated on depth discontinuities;
3. sometimes a background error: the far region flattened to one value, or tilted by a linear ramp;
4. sometimes texture leakage (image high-pass added to depth);
5. multiplicative low-frequency noise (a smooth random field) and a little per-pixel noise;
6. a random positive scale and shift. The result stays float32, strictly positive, larger = farther.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

_LOW_FREQ_GRID = 5  # the smooth noise field is a cubic upsampling of a 5x5 random grid


def imitate_monocular_depth(depth_gt: np.ndarray, image: np.ndarray, object_mask: np.ndarray | None,
                            rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Degrade ``depth_gt`` [R, R] (Euclidean, > 0) into a relative "estimated" depth [R, R] float32.

    ``image`` [R, R, 3] uint8 supplies the texture that leaks into the estimate; ``object_mask`` [R, R] (object
    coverage, or None) tells where the far background starts: well behind the object. All random choices come from
    ``rng``; the scalar choices and the smooth noise are drawn before anything whose size depends on R, so the
    same item looks alike at every resolution. Returns the depth and a JSON-friendly record of the choices.
    """
    res = depth_gt.shape[0]
    px = res / 64.0                                            # blur sizes are set for 64 px and scaled
    info = {
        "saturation": float(rng.uniform(1.5, 8.0)),            # d_sat in units of the median depth
        "gamma": float(rng.uniform(0.7, 1.3)),
        "edge_sigma_px64": float(rng.uniform(0.8, 2.0)),
        "background_error": str(rng.choice(["none", "flatten", "tilt"], p=[0.55, 0.25, 0.2])),
        "texture_leak": float(rng.uniform(0.005, 0.025)) if rng.uniform() < 0.35 else 0.0,
        "low_freq_std": float(rng.uniform(0.02, 0.07)),
        "high_freq_std": float(rng.uniform(0.002, 0.012)),
        "scale": float(np.exp(rng.uniform(np.log(0.2), np.log(5.0)))),
        "shift": float(rng.uniform(0.02, 1.0)),                # in units of the scale
    }
    tilt = rng.uniform(-1.0, 1.0, size=2)
    grid = rng.normal(size=(_LOW_FREQ_GRID, _LOW_FREQ_GRID))

    x = depth_gt.astype(np.float64) / np.median(depth_gt)
    x = x / (1.0 + x / info["saturation"])                     # estimators compress the far range
    x = x ** info["gamma"]
    x = _smooth_edges(x, depth_gt, info["edge_sigma_px64"] * px)
    x = _background_error(x, _far_background(depth_gt, object_mask), info["background_error"], tilt)
    if info["texture_leak"] > 0.0:
        luma = image.astype(np.float64).mean(axis=2) / 255.0
        detail = luma - ndimage.gaussian_filter(luma, 2.0 * px)
        x = x * (1.0 + info["texture_leak"] * detail / max(detail.std(), 1e-6) * 0.5)
    field = ndimage.zoom(grid, res / _LOW_FREQ_GRID, order=3, mode="nearest")[:res, :res]
    x = x * np.exp(info["low_freq_std"] * field)
    x = x * (1.0 + info["high_freq_std"] * rng.normal(size=x.shape))
    x = np.maximum(x, 1e-3)                                    # keep it strictly positive before the affine map
    est = info["scale"] * (x + info["shift"])
    return est.astype(np.float32), info


def _smooth_edges(x: np.ndarray, depth_gt: np.ndarray, sigma: float) -> np.ndarray:
    # Estimators round off depth discontinuities over a few pixels: blur strongly where log-depth jumps,
    # lightly elsewhere (a cheap stand-in for a bilateral-ish response).
    log_d = np.log(depth_gt.astype(np.float64))
    jump = np.hypot(ndimage.sobel(log_d, axis=0), ndimage.sobel(log_d, axis=1))
    edges = ndimage.gaussian_filter((jump > 0.15).astype(np.float64), sigma)
    weight = np.clip(edges * 3.0, 0.0, 1.0)
    light = ndimage.gaussian_filter(x, 0.35 * sigma)
    strong = ndimage.gaussian_filter(x, sigma)
    return light + (strong - light) * weight


def _far_background(depth_gt: np.ndarray, object_mask: np.ndarray | None) -> np.ndarray:
    # Soft mask [R, R] of the far background: 1.5x farther than the object's farthest visible point (or than
    # 60% of the farthest pixel when there is no object), feathered over a pixel.
    on_object = object_mask > 0.5 if object_mask is not None else np.zeros(depth_gt.shape, bool)
    start = 1.5 * depth_gt[on_object].max() if on_object.any() else 0.6 * depth_gt.max()
    return ndimage.gaussian_filter((depth_gt > start).astype(np.float64), 1.0)


def _background_error(x: np.ndarray, far: np.ndarray, kind: str, tilt: np.ndarray) -> np.ndarray:
    # The far background (sky and distant ground) is where estimators are least reliable: flatten it to one
    # level (as if the estimator saturated), or tilt it by a linear ramp. ``far`` is a soft mask [R, R].
    if kind == "none" or not (far > 0.5).any():
        return x
    if kind == "flatten":
        level = float(np.percentile(x[far > 0.5], 30))
        return x + (level - x) * far
    rows, cols = np.mgrid[0:x.shape[0], 0:x.shape[1]] / max(x.shape[0] - 1, 1) - 0.5
    ramp = 1.0 + 0.4 * (tilt[0] * rows + tilt[1] * cols)       # stays in [0.6, 1.4]: positive, order mostly kept
    return x * (1.0 + (ramp - 1.0) * far)
