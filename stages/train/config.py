"""``TrainConfig``: one frozen dataclass tree per run, named presets, JSON round trip (3DGP ref §5, §12, §15).

``TRAIN_PRESETS`` maps a name to a complete config: ``tiny`` (CPU, minutes), ``demo`` (``make demo``), ``toy64``, ``dogs``, ``elephants``,
``horses``, ``imagenet`` (paper values, ref §12). Options the user sets override the preset
(:func:`stages.train.overrides.apply_overrides`); ``config.json`` in the run dir is :func:`to_dict` of the resolved
config and :func:`from_dict` rebuilds it on resume.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stages.common.configs import from_plain, plain, replace_nested
from stages.common.devices import device_syntax_error
from stages.common.errors import BadOptionError, ConfigValueError
from stages.common.validate import Checked, Range, one_of
from stages.nn import config as model_config
from stages.nn.config import PRECISIONS, ModelConfig

MAX_KIMG = 1e6  # 1 billion images: 40x the paper's longest run; beyond it a typo, not a plan
_KIMG = Range(0, MAX_KIMG)  # schedule lengths and intervals: 0 = off / immediately


@dataclass(frozen=True)
class DataConfig(Checked):
    """Which dataset and how to read it (3DGP ref §5.4, §7.1)."""

    path: str = ""                      # Dataset directory written by `3dgp prep` (absolute once resolved).
    meta_sha256: str | None = None      # The dataset's fingerprint (stages.data.fingerprint), set from the dataset;
    #                                     resume and eval refuse a dataset with another one (issue 19 §3).
    mirror: bool = True                 # x-flip augmentation by dataset duplication (ref §5.4).
    cond: bool = False                  # Condition G and D on the dataset labels (ImageNet only in the paper).
    workers: int = 2                    # DataLoader worker processes (0 = load in the training process).
    max_items: int | None = None        # Use only the first N stored items (None = all).

    _RANGES = {"workers": Range(0, 256), "max_items": Range(1)}


@dataclass(frozen=True)
class LossConfig(Checked):
    """Losses, regularizers and every annealing schedule, all counted in kimg (3DGP ref §2.4, §4.3, §5)."""

    gamma: float | None = None          # R1 weight; None = 'auto' = 0.0002 * res^2 / batch (ref §5.1).
    r1_interval: int = 16               # Lazy R1 every N iterations, loss gain N (ref §5.1).
    blur_init_sigma: float = 10.0       # D-input blur warm-up start sigma (ref §5.2).
    blur_fade_kimg: float = 200.0       # ... fades to 0 over this many kimg.
    nerf_noise_std_init: float = 1.0    # Density noise std at kimg 0 (ref §1.6).
    nerf_noise_kimg: float = 5000.0     # ... fades to 0 over this many kimg.
    patch_beta_start: float = 0.001     # Patch-scale Beta(1, beta) at kimg 0 (ref §1.7).
    patch_beta_end: float = 0.8         # ... at patch_beta_kimg.
    patch_beta_kimg: float = 10000.0    # Patch beta annealing period.
    depth_anneal_kimg: float = 10000.0  # Depth-adaptor selection annealing period (ref §3.2).
    depth_adaptor_p: float | None = None  # Ablation: fixed P(D sees the adapted depth) in [0, 1]; None = annealed
    #                                       (P = 0.75 -> 0.9, ref §3.2); 0 = raw depth only, 1 = adapted only.
    emd_anneal_kimg: float = 10000.0    # Camera EMD multiplier 0 -> 1 over this many kimg (ref §2.4a).
    emd_num_samples: int = 64           # Prior/posterior samples per EMD evaluation.
    emd_weight_angles: float = 2.0      # EMD weight of yaw and pitch.
    emd_weight_radius: float = 0.0      # EMD weight of the radius.
    emd_weight_fov: float = 1e-4        # EMD weight of the field of view (degrees).
    emd_weight_look_at: float = 1e-4    # EMD weight of each look-at coordinate.
    force_mean_weight: float = 10.0     # Force-mean regularizer weight (ref §2.4b).
    force_mean_num_samples: int = 256   # Samples per force-mean evaluation.
    kd_weight: float = 1.0              # Knowledge-distillation weight at kimg 0; 0 = off, no head (ref §4.3).
    kd_anneal_kimg: float = 100000.0    # ... decays to 0 over this many kimg.

    _RANGES = {
        "gamma": Range(0), "r1_interval": Range(1), "blur_init_sigma": Range(0), "blur_fade_kimg": _KIMG,
        "nerf_noise_std_init": Range(0), "nerf_noise_kimg": _KIMG, "patch_beta_start": Range(0, low_open=True),
        "patch_beta_end": Range(0, low_open=True), "patch_beta_kimg": _KIMG, "depth_anneal_kimg": _KIMG,
        "depth_adaptor_p": Range(0, 1), "emd_anneal_kimg": _KIMG, "emd_num_samples": Range(1),
        "emd_weight_angles": Range(0), "emd_weight_radius": Range(0), "emd_weight_fov": Range(0),
        "emd_weight_look_at": Range(0), "force_mean_weight": Range(0), "force_mean_num_samples": Range(1),
        "kd_weight": Range(0, 1e4), "kd_anneal_kimg": _KIMG,
    }


@dataclass(frozen=True)
class OptimConfig(Checked):
    """Adam for G and D (3DGP ref §5.3); D's lr/betas get the lazy-regularization correction at build time."""

    g_lr: float = 0.0025                # G learning rate.
    g_beta1: float = 0.0                # G Adam beta1.
    g_beta2: float = 0.99               # G Adam beta2.
    d_lr: float = 0.002                 # D learning rate before the r1_interval/(r1_interval+1) correction.
    d_beta1: float = 0.0                # D Adam beta1.
    d_beta2: float = 0.99               # D Adam beta2 before the correction.
    eps: float = 1e-8                   # Adam epsilon.

    _RANGES = {"g_lr": Range(0, low_open=True), "d_lr": Range(0, low_open=True), "g_beta1": Range(0, 1, high_open=True),
               "g_beta2": Range(0, 1, high_open=True), "d_beta1": Range(0, 1, high_open=True),
               "d_beta2": Range(0, 1, high_open=True), "eps": Range(0, low_open=True)}


@dataclass(frozen=True)
class EmaConfig(Checked):
    """G EMA (3DGP ref §5.4)."""

    ema_kimg: float | None = None       # Half-life in kimg; None = the official batch * 10/32 (20 at batch 64).
    rampup: float | None = 0.05         # Half-life <= rampup * cur_kimg early on; None = no rampup.

    _RANGES = {"ema_kimg": Range(0), "rampup": Range(0, low_open=True)}


@dataclass(frozen=True)
class RunConfig(Checked):
    """Length, batch, intervals, metrics and divergence handling (3DGP ref §5.4, §6.1, §10)."""

    batch: int = 64                     # Global batch (all processes together).
    batch_gpu: int | None = None        # Per-process micro-batch (gradient accumulation); None = batch / gpus.
    kimg: float = 25000.0               # Training length in thousands of real images.
    minutes: float | None = None        # Also stop (cleanly, with a final snapshot) after this many wall-clock minutes.
    min_kimg: float | None = None       # ... but never before this many kimg (a busy machine trains longer, not less).
    seed: int = 0                       # Global random seed.
    gpus: int = 1                       # Processes to spawn on this node (torchrun sets it by itself).
    tick_kimg: float = 4.0              # Status line / stats.jsonl every tick.
    state_kimg: float = 40.0            # Training-state interval (rounded up to ticks).
    snapshot_kimg: float = 400.0        # Snapshot interval.
    keep_states: int = 3                # Keep the newest K training states.
    image_kimg: float = 400.0           # fakes<kimg>.png interval.
    metrics: tuple[str, ...] = ("fid2k_full", "nfs256")  # Periodic metrics; the first selects the best snapshot.
    metrics_kimg: float = 400.0         # Metric interval.
    max_rollbacks: int = 3              # Give up after this many divergence rollbacks.
    nonfinite_loss_steps: int = 8       # Divergence: a loss non-finite in this many consecutive iterations (0 = off).
    diverge_loss_max: float = 100.0     # Divergence: a tick-mean loss above this (besides non-finite values; 0 = off).
    diverge_metric_factor: float = 0.0  # Divergence: first metric worse than best by this factor > 1 (0 = off).
    device: str | None = None           # auto, cpu, cuda (process k on GPU k), cuda:N, mps; None = auto.
    precision: str = "fp32"             # fp32 (official), tf32, bf16 (backbone + tri-plane MLP; stages.nn.precision).
    threads: str | None = None          # CPU threads: None = torch's default (one per core), N, or auto (the cores
    #                                     other processes leave free, re-checked every tick; stages.common.cpu_share).

    _RANGES = {"batch": Range(1, 65536), "batch_gpu": Range(1, 65536), "kimg": Range(0, MAX_KIMG, low_open=True),
               "seed": Range(0, 2**32 - 1), "minutes": Range(0, 1e6, low_open=True),
               "min_kimg": Range(0, MAX_KIMG),
               "gpus": Range(1, 1024), "tick_kimg": Range(0, low_open=True), "state_kimg": _KIMG,
               "snapshot_kimg": _KIMG, "keep_states": Range(1), "image_kimg": _KIMG, "metrics_kimg": _KIMG,
               "max_rollbacks": Range(0), "nonfinite_loss_steps": Range(0),
               "diverge_loss_max": Range(0),
               "diverge_metric_factor": Range(0)}

    def _check_values(self) -> None:
        one_of("precision", self.precision, PRECISIONS)
        if self.threads is not None:
            from stages.common.cpu_share import parse_threads

            try:
                parse_threads(self.threads)
            except ValueError as exc:
                raise ConfigValueError("threads", str(exc)) from None
        if 0 < self.diverge_metric_factor <= 1:
            raise ConfigValueError("diverge_metric_factor",
                                   f"must be 0 (off) or > 1, got {self.diverge_metric_factor:g}")
        if device_syntax_error(self.device):
            raise ConfigValueError("device", device_syntax_error(self.device))
        from stages.metrics.registry import parse_metric

        for name in self.metrics:
            try:
                spec = parse_metric(name)
            except BadOptionError as exc:
                raise ConfigValueError("metrics", exc.message) from None
            if spec.kind == "is":
                raise ConfigValueError("metrics", f"{name}: the Inception score needs --is-weights; compute it with "
                                                  f"`3dgp eval` instead")

    def _check_combinations(self) -> None:
        if self.min_kimg is not None and self.min_kimg > self.kimg:
            raise ConfigValueError(("min_kimg", "kimg"), f"{self.min_kimg:g} exceeds the run's length {{kimg}} "
                                                         f"{self.kimg:g}")
        if self.batch % self.gpus:
            raise ConfigValueError(("gpus", "batch"), f"the global batch {{batch}} {self.batch} does not split "
                                                      f"evenly over {self.gpus} processes")
        per_rank = self.batch // self.gpus
        if self.batch_gpu is not None and self.batch_gpu > per_rank:
            where = f"the global batch {{batch}} {self.batch}" if self.gpus == 1 else \
                f"the per-process batch {per_rank} ({{batch}} {self.batch} / {{gpus}} {self.gpus})"
            raise ConfigValueError(("batch_gpu", "batch", "gpus"), f"{self.batch_gpu} exceeds {where}")
        if self.batch_gpu is not None and per_rank % self.batch_gpu:
            raise ConfigValueError(("batch_gpu", "batch", "gpus"), f"{self.batch_gpu} does not divide the "
                                                                   f"per-process batch {per_rank}")


@dataclass(frozen=True)
class TrainConfig(Checked):
    """Everything one training run needs; written to ``config.json``."""

    preset: str = "dogs"                # Name of the preset this config was resolved from.
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def _check_combinations(self) -> None:
        if self.loss.depth_adaptor_p is not None and not self.model.depth_adaptor.enabled:
            raise ConfigValueError(("loss.depth_adaptor_p", "model.depth_adaptor.enabled"),
                                   "{loss.depth_adaptor_p} fixes the depth adaptor's selection, but "
                                   "{model.depth_adaptor.enabled} turns the adaptor off; give one of them")
        r, group = self.run, self.model.discriminator.mbstd_group_size
        per_rank = r.batch // r.gpus
        batch_gpu = per_rank if r.batch_gpu is None else min(r.batch_gpu, per_rank)
        if batch_gpu > group and batch_gpu % group:
            key = "run.batch" if r.batch_gpu is None else "run.batch_gpu"
            raise ConfigValueError((key, "run.batch", "run.batch_gpu", "run.gpus",
                                    "model.discriminator.mbstd_group_size"),
                                   f"the per-process micro-batch {batch_gpu} must be a multiple of the minibatch-std "
                                   f"group {{model.discriminator.mbstd_group_size}} = {group} (or at most {group})")


SECTIONS = ("model", "data", "loss", "optim", "ema", "run")


def _tiny() -> TrainConfig:
    # CPU-friendly: tiny nets, 32x32 data, batch 8; schedules shortened ~100x so a few kimg show every phase.
    return TrainConfig(
        preset="tiny",
        model=model_config.MODEL_PRESETS["tiny"],
        data=DataConfig(workers=0),
        loss=LossConfig(blur_fade_kimg=2.0, nerf_noise_kimg=50.0, patch_beta_kimg=100.0, emd_anneal_kimg=100.0,
                        depth_anneal_kimg=100.0, kd_anneal_kimg=1000.0),
        run=RunConfig(batch=8, kimg=20.0, tick_kimg=0.5, state_kimg=0.5, snapshot_kimg=1.0, image_kimg=1.0,
                      metrics=("fid256", "nfs32"), metrics_kimg=2.0),
    )


def _demo() -> TrainConfig:
    # `make demo`: the tiny networks on `prep toy --scenes simple` at 32^2 for 40 kimg (15-25 minutes on 2 quiet CPU
    # cores, RESULTS.md "make demo" §27, §33): the verdict's criteria hold from ~40 kimg on, and past ~50 the fading
    # density noise lets the geometry flatten (RESULTS.md "make demo" §14, §16). Against the camera collapse of short
    # runs (measurements §1) the adaptor starts at the identity (residual) and the prior matches the simple scenes (seen
    # from above, centred, FoV 25-35); D sees the raw rendered depth (no depth adaptor: the toy depth is close to the
    # truth, and raw depth teaches geometry fastest, RESULTS.md "make demo"); every schedule is compressed to the run's
    # length, except the density noise, which keeps soft, fog-like densities useless so that G makes opaque surfaces
    # that survive NFS's density cut (RESULTS.md "make demo" §5). 24 + 24 samples per ray (not tiny's 12 + 12: the
    # marcher's grain was a quarter of the FID gap, 8 % more per kimg), G's learning rate 0.001 (batch 8, not the
    # paper's 64: the paper's rates halve the samples' diversity by 50 kimg) and noise std 4.5 (more samples per ray
    # average the noise out, so it needs to be stronger; 4.0 since §23): FID 151-159 at 40 kimg with seed 0, 175-179
    # with seeds 1 and 2, against 206 at 50 before, the geometry kept (RESULTS.md "make demo" §16, §19). D's minibatch
    # std over the whole batch in 4 channel slices (not groups of 4 in 1; a per-device batch above 8 must be a multiple
    # of 8) and D at twice G's learning rate: 166 / 157 / 159 for seeds 0 / 1 / 2, less dependent on the seed, the
    # samples' colours less alike, the geometry thicker (§21, §22). With that thicker geometry the noise std can come
    # down to 4.0: seeds 0 / 1 at 157.0 / 151.5 against 165.7 / 157.0, every geometry criterion still passing (§23). R1
    # gamma 0.1 (auto would give 0.0002 * 32^2 / 8 = 0.026): seed 0 at 152.4 against 157.0, parallax 0.755 (§26). D at
    # three times G's rate (0.003): seeds 0 / 1 / 2 at 151.5 / 152.6 / 170.3 against 161.8 / 154.6 / 166.7 on one host
    # (§31, §32): a small gain on average, within the seeds' spread, the geometry as thick or thicker.
    model = model_config.with_overrides(
        model_config.MODEL_PRESETS["tiny"],
        camera={"adaptor_residual": True, "pitch_min": 0.785398163, "pitch_max": 1.570796327, "fov_min_deg": 20.0,
                "fov_max_deg": 40.0, "la_radius_max": 0.05},
        depth_adaptor={"enabled": False},
        discriminator={"mbstd_group_size": 8, "mbstd_num_channels": 4},
        render={"num_coarse_steps": 24, "num_fine_steps": 24})
    return TrainConfig(
        preset="demo",
        model=model,
        data=DataConfig(workers=0),
        loss=LossConfig(gamma=0.1, blur_fade_kimg=2.0, nerf_noise_std_init=4.0, nerf_noise_kimg=100.0,
                        patch_beta_kimg=40.0, emd_anneal_kimg=10.0, depth_anneal_kimg=40.0, kd_anneal_kimg=400.0),
        optim=OptimConfig(g_lr=0.001, d_lr=0.003),
        run=RunConfig(batch=8, kimg=40.0, tick_kimg=1.0, state_kimg=4.0, snapshot_kimg=10.0,
                      image_kimg=5.0, metrics=(), threads="auto"),
    )


def _toy64() -> TrainConfig:
    return TrainConfig(
        preset="toy64",
        model=model_config.MODEL_PRESETS["toy64"],
        loss=LossConfig(blur_fade_kimg=20.0, nerf_noise_kimg=500.0, patch_beta_kimg=1000.0, emd_anneal_kimg=1000.0,
                        depth_anneal_kimg=1000.0, kd_anneal_kimg=10000.0),
        run=RunConfig(batch=16, kimg=1000.0, tick_kimg=1.0, state_kimg=10.0, snapshot_kimg=50.0, image_kimg=10.0,
                      metrics=("fid1k", "nfs64"), metrics_kimg=50.0),
    )


def _paper(name: str, model_name: str, **run: Any) -> TrainConfig:
    # Ref §12: batch 64, 25000 kimg, gamma auto (0.05 for ImageNet), FID2k + NFS256 every ~400 kimg.
    loss = LossConfig(gamma=0.05) if name == "imagenet" else LossConfig()
    return TrainConfig(preset=name, model=model_config.MODEL_PRESETS[model_name], loss=loss,
                       data=DataConfig(cond=name == "imagenet", workers=3), run=RunConfig(**run))


TRAIN_PRESETS: dict[str, TrainConfig] = {
    "tiny": _tiny(),
    "demo": _demo(),
    "toy64": _toy64(),
    "dogs": _paper("dogs", "dogs"),
    "elephants": _paper("elephants", "elephants"),
    "horses": _paper("horses", "horses"),
    "imagenet": _paper("imagenet", "imagenet"),
}


def get_train_preset(name: str) -> TrainConfig:
    """The named preset; unknown names raise ``BadOptionError('--preset', ...)``."""
    if name not in TRAIN_PRESETS:
        raise BadOptionError("--preset", f"unknown preset {name!r}; choose one of {', '.join(TRAIN_PRESETS)}")
    return TRAIN_PRESETS[name]


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """JSON-safe nested dict (tuples become lists; :func:`stages.common.configs.plain`)."""
    return plain(cfg)


def from_dict(data: dict[str, Any]) -> TrainConfig:
    """Rebuild a ``TrainConfig`` from :func:`to_dict` output (``config.json`` or a checkpoint).

    Raises ``ConfigValueError`` naming the key (callers say which file it came from)."""
    if not isinstance(data, dict):
        raise ConfigValueError("config", f"expected a JSON object, got {type(data).__name__}")
    data = {"preset": "dogs", **data}
    data["preset"] = str(data["preset"])
    if isinstance(data.get("run"), dict) and "metric_batch" in data["run"]:
        # obsolete since metrics render in fixed units (stages.metrics.sources.RENDER_UNIT): the numbers must not
        # depend on a batch size; configs written before still load
        data["run"] = {k: v for k, v in data["run"].items() if k != "metric_batch"}
    return from_plain(TrainConfig, data)


def replace_section(cfg: TrainConfig, section: str, **values: Any) -> TrainConfig:
    """``cfg`` with fields of one section replaced (``stages.common.configs.replace_nested``)."""
    return replace_nested(cfg, {section: values})
