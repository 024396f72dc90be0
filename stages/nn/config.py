"""The model configuration: frozen dataclasses and named presets (3DGP ref §12, §14, §15).

``ModelConfig`` groups one small dataclass per component. Its defaults are the SDIP Dogs configuration of the
official code (ref §12 (a)). ``MODEL_PRESETS`` holds the named variants, each a complete ``ModelConfig``:

* ``dogs``, ``elephants``, ``horses``: ref §12 (a) (the three satellite datasets share every model setting).
* ``imagenet``: ref §12 (b): c_dim 1000 and cbase 65536 / cmax 1024 for G and D.
* ``small``: the CPU benchmark configuration of ref §15.
* ``tiny``: a CPU-friendly configuration for tests and demos (G+D forward+backward at batch 4 in about a second).
* ``toy64``: a moderate configuration for 64x64 toy data.

Only ``stages.nn.build`` reads a ``ModelConfig``; every module gets explicit constructor arguments. Checkpoints store
``to_dict(config)`` (JSON-safe) and rebuild the model with ``from_dict``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stages.common.configs import from_plain, plain, replace_nested
from stages.common.errors import BadOptionError, ConfigValueError
from stages.common.validate import Checked, Range, one_of

_POS = Range(1)  # counts and widths
_GT0 = Range(0, low_open=True)
# Upper bounds (issue 19 §6): a config may come from a checkpoint made elsewhere, and a width or a sample count far
# beyond any real model means an allocation of terabytes (or a division by zero), not a model. Every preset, the
# ImageNet one included (cbase 65536, cmax 1024), sits well inside them.
_WIDTH = Range(1, 8192)  # latent sizes, hidden widths, embedding widths
_LAYERS = Range(1, 64)  # layers of an MLP / mapping network
_CBASE = Range(1, 1 << 20)
_CMAX = Range(1, 4096)
MAX_RESOLUTION = 2048  # img_resolution, patch_resolution, generator.tri_plane_res
MAX_RAY_STEPS = 512  # num_coarse_steps, num_fine_steps (export renders with up to 2x, ref §8.1)
DISTRIBUTIONS = ("uniform", "truncnorm")
PRECISIONS = ("fp32", "tf32", "bf16")  # compute precision of G's backbone and MLP (stages.nn.precision)


@dataclass(frozen=True)
class GeneratorConfig(Checked):
    """Mapping network, tri-plane synthesis backbone and tri-plane MLP (3DGP ref §1.1-§1.3)."""

    z_dim: int = 512                    # Latent size (ref §1.1).
    w_dim: int = 512                    # Intermediate latent size.
    map_depth: int = 2                  # FC layers of the mapping network.
    map_lr_multiplier: float = 0.01     # Learning-rate multiplier of the mapping FC layers.
    w_avg_beta: float = 0.998           # Decay of the tracked w average (truncation).
    cbase: int = 32768                  # Channel base: channels at resolution r are min(cbase / r, cmax) (ref §1.2).
    cmax: int = 512                     # Channel maximum.
    tri_plane_res: int = 512            # Resolution of each plane.
    feat_dim: int = 32                  # Feature channels per plane (the synthesis "image" has 3 * feat_dim).
    use_noise: bool = True              # Per-pixel noise inputs in the synthesis network.
    mlp_hid_dim: int = 64               # Hidden width of the tri-plane decoding MLP (ref §1.3).
    mlp_num_layers: int = 2             # Layers of the decoding MLP (feat -> hid -> ... -> 4).

    _RANGES = {"z_dim": _WIDTH, "w_dim": _WIDTH, "map_depth": _LAYERS, "map_lr_multiplier": _GT0,
               "w_avg_beta": Range(0, 1), "cbase": _CBASE, "cmax": _CMAX, "feat_dim": Range(1, 1024),
               "mlp_hid_dim": _WIDTH, "mlp_num_layers": _LAYERS}

    def _check_values(self) -> None:
        _check_power_of_two("tri_plane_res", self.tri_plane_res, minimum=4)

    def _check_combinations(self) -> None:
        if self.cbase < self.tri_plane_res:  # min(cbase // r, cmax) channels: none at all at the last block
            raise ConfigValueError(("cbase", "tri_plane_res"), f"{self.cbase} leaves the {self.tri_plane_res}px "
                                   f"block no channels (cbase // {{tri_plane_res}} = 0); it must be >= "
                                   f"{self.tri_plane_res}")


@dataclass(frozen=True)
class DiscriminatorConfig(Checked):
    """The ResNet discriminator with hyper-modulation, projection head and KD head (3DGP ref §4)."""

    cbase: int = 32768                  # Channel base over the virtual resolutions (ref §4.1).
    cmax: int = 512                     # Channel maximum.
    num_fp16_res: int = 4               # Blocks at the highest num_fp16_res virtual resolutions run in fp16 on CUDA.
    conv_clamp: float | None = 256.0    # Clamp conv outputs to +-conv_clamp * gain (whole D; None = off).
    mbstd_group_size: int = 4           # Minibatch-stddev group size.
    mbstd_num_channels: int = 1         # Minibatch-stddev feature channels.
    hyper_mod: bool = True              # Hyper-modulate every block's conv1 by the patch parameters (ref §4.2).
    hyper_mod_dim: int = 512            # Width of the hyper-modulation mapping (code h).
    mapping_num_layers: int = 2         # FC layers of the hyper-mod and head mappings (after the embed FC).
    mapping_lr_multiplier: float = 0.01  # Learning-rate multiplier of those FC layers.
    patch_x_multiplier: float = 1000.0  # Scalar encoder: X = x_multiplier * x (ref §4.2).
    patch_const_emb_dim: int = 256      # Scalar encoder: learned embedding width per scalar.
    kd_dim: int = 2048                  # Knowledge-distillation head output (ref §4.3); 0 builds no head.

    _RANGES = {"cbase": _CBASE, "cmax": _CMAX, "num_fp16_res": Range(0, 32), "conv_clamp": _GT0,
               "mbstd_group_size": Range(1, 1024), "mbstd_num_channels": Range(0, 64), "hyper_mod_dim": _WIDTH,
               "mapping_num_layers": _LAYERS, "mapping_lr_multiplier": _GT0, "patch_x_multiplier": _GT0,
               "patch_const_emb_dim": _WIDTH, "kd_dim": Range(0, 65536)}


@dataclass(frozen=True)
class CameraConfig(Checked):
    """Camera prior and camera adaptor (3DGP ref §2.2, §2.3). Field names follow ``CameraPrior``."""

    yaw_min: float = -1.57              # Prior yaw range, radians (+-90 deg).
    yaw_max: float = 1.57
    pitch_min: float = 0.785398163      # Prior pitch range, radians from +y (pi/4 .. 3pi/4).
    pitch_max: float = 2.35619449
    fov_min_deg: float = 10.0           # Prior field-of-view range, degrees (README stability variant: max 21).
    fov_max_deg: float = 45.0
    radius: float = 1.0                 # Camera distance from the origin (constant, never learned).
    la_radius_min: float = 0.0          # Look-at ball radius range.
    la_radius_max: float = 0.2
    angle_dist: str = "uniform"         # 'uniform' or 'truncnorm' for yaw and pitch.
    yaw_std: float = 0.4                # truncnorm std of yaw.
    pitch_std: float = 0.2              # truncnorm std of pitch.
    fov_dist: str = "uniform"           # 'uniform' or 'truncnorm' for the FoV.
    fov_mean_deg: float = 27.5          # truncnorm mean of the FoV.
    fov_std_deg: float = 5.0            # truncnorm std of the FoV.
    adaptor_enabled: bool = True        # Learn the posterior camera (False = fixed-prior ablation).
    adaptor_hid_dim: int = 256          # Camera adaptor hidden width.
    adaptor_embed_dim: int = 16         # Camera adaptor z / c embedding width.
    adaptor_lr_multiplier: float = 0.1  # Learning-rate multiplier of every camera-adaptor FC layer.
    la_radius_quirk: bool = True        # Reproduce the official la_radius denormalisation bug (ref §2.3 step 4).
    adaptor_residual: bool = False      # Start the adaptor at the identity (ours; stages.nn.camera_adaptor).

    _RANGES = {"fov_min_deg": Range(0, 180, low_open=True, high_open=True),
               "fov_max_deg": Range(0, 180, low_open=True, high_open=True), "radius": _GT0,
               "la_radius_min": Range(0), "la_radius_max": Range(0), "yaw_std": Range(0), "pitch_std": Range(0),
               "fov_mean_deg": Range(0, 180, low_open=True, high_open=True), "fov_std_deg": Range(0),
               "adaptor_hid_dim": _WIDTH, "adaptor_embed_dim": _WIDTH, "adaptor_lr_multiplier": _GT0}

    def _check_values(self) -> None:
        one_of("angle_dist", self.angle_dist, DISTRIBUTIONS)
        one_of("fov_dist", self.fov_dist, DISTRIBUTIONS)

    def _check_combinations(self) -> None:
        for low, high in (("yaw_min", "yaw_max"), ("pitch_min", "pitch_max"), ("fov_min_deg", "fov_max_deg"),
                          ("la_radius_min", "la_radius_max")):
            if getattr(self, low) > getattr(self, high):
                raise ConfigValueError((low, high), f"{getattr(self, low):g} exceeds {{{high}}} = "
                                                    f"{getattr(self, high):g}")


@dataclass(frozen=True)
class RenderConfig(Checked):
    """Ray interval, tri-plane cube and sample counts (3DGP ref §1.3, §1.5, §1.6)."""

    ray_start: float = 0.75             # Near bound of every ray.
    ray_end: float = 1.25               # Far bound of every ray.
    cube_scale: float = 0.5             # The tri-plane covers [-cube_scale, cube_scale]^3.
    num_coarse_steps: int = 32          # Stratified samples per ray.
    num_fine_steps: int = 32            # Importance samples per ray.

    _RANGES = {"ray_start": _GT0, "ray_end": _GT0, "cube_scale": _GT0, "num_coarse_steps": Range(3, MAX_RAY_STEPS),
               "num_fine_steps": Range(0, MAX_RAY_STEPS)}

    def _check_combinations(self) -> None:
        if not self.ray_start < self.ray_end:
            raise ConfigValueError(("ray_start", "ray_end"), f"{self.ray_start:g} must be below {{ray_end}} = "
                                                             f"{self.ray_end:g}")


@dataclass(frozen=True)
class DepthAdaptorConfig(Checked):
    """The depth adaptor (3DGP ref §3.1, §3.2). Its annealing schedule belongs to training."""

    enabled: bool = True                # Conv stack on (False = D sees the normalised rendered depth only).
    num_hid_layers: int = 3             # Conv layers (candidates = num_hid_layers + 1).
    hid_dim: int = 64                   # Conv width.
    kernel_size: int = 5                # Conv kernel size.
    near_plane_offset_bias: float = -3.0  # Initial value of the learned near-plane shift rho.
    near_plane_offset_max_fraction: float = 0.25  # offset = sigmoid(rho) * fraction * (far - near).
    selection_start_p: float = 0.1      # Probability of the raw depth output at the end of annealing.
    fixed_p: tuple[float, ...] | None = None  # Fixed selection probabilities (ablation; None = annealed).

    _RANGES = {"num_hid_layers": Range(0, 64), "hid_dim": _WIDTH, "kernel_size": Range(1, 63),
               "near_plane_offset_max_fraction": Range(0, 1), "selection_start_p": Range(0, 1), "fixed_p": Range(0, 1)}

    def _check_combinations(self) -> None:
        if self.fixed_p is not None:
            num = self.num_hid_layers + 1 if self.enabled else 1
            if len(self.fixed_p) != num or abs(sum(self.fixed_p) - 1.0) > 1e-6:
                raise ConfigValueError(("fixed_p", "num_hid_layers"), f"needs {num} probabilities summing to 1 "
                                                                      f"(one per candidate), got {list(self.fixed_p)}")


@dataclass(frozen=True)
class ModelConfig(Checked):
    """Everything needed to build G and D (3DGP ref §12). Defaults = SDIP Dogs."""

    c_dim: int = 0                      # Number of classes (one-hot conditioning); 0 = unconditional.
    img_resolution: int = 256           # Dataset (and eval render) resolution.
    patch_resolution: int = 64          # Training render / D input resolution.
    img_channels: int = 4               # D input channels: RGB + depth (ref §3.4).
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    depth_adaptor: DepthAdaptorConfig = field(default_factory=DepthAdaptorConfig)

    _RANGES = {"c_dim": Range(0, 100_000)}

    def _check_values(self) -> None:
        _check_power_of_two("img_resolution", self.img_resolution, minimum=8)
        _check_power_of_two("patch_resolution", self.patch_resolution, minimum=8)
        if self.img_channels not in (3, 4):
            raise ConfigValueError("img_channels", f"must be 3 (RGB) or 4 (RGB + depth), got {self.img_channels}")

    def _check_combinations(self) -> None:
        if self.patch_resolution > self.img_resolution:
            raise ConfigValueError(("patch_resolution", "img_resolution"), f"{self.patch_resolution} exceeds "
                                   f"{{img_resolution}} = {self.img_resolution}")
        if self.discriminator.cbase < self.img_resolution:  # D's first block (virtual img_resolution) needs >= 1
            raise ConfigValueError(("discriminator.cbase", "img_resolution"), f"{self.discriminator.cbase} leaves "
                                   f"D's {self.img_resolution}px block no channels; it must be >= {{img_resolution}} "
                                   f"= {self.img_resolution}")

    @property
    def min_patch_scale(self) -> float:
        """Smallest patch scale: patch_resolution / img_resolution (ref §1.7)."""
        return self.patch_resolution / self.img_resolution


def _check_power_of_two(name: str, value: int, minimum: int, maximum: int = MAX_RESOLUTION) -> None:
    if not isinstance(value, int) or not minimum <= value <= maximum or value & (value - 1):
        raise ConfigValueError(name, f"must be a power of two in [{minimum}, {maximum}], got {value!r}")


# ---------------------------------------------------------------------------------------------------------------
# Presets (ref §12, §15).

def _imagenet() -> ModelConfig:
    return ModelConfig(
        c_dim=1000,
        generator=GeneratorConfig(cbase=65536, cmax=1024),
        discriminator=DiscriminatorConfig(cbase=65536, cmax=1024),
    )


def _small() -> ModelConfig:
    # Ref §15: dogs with G/D cbase 4096, cmax 128, tri-plane 128 x 16, patch 32, dataset 128, 16 + 16 samples.
    return ModelConfig(
        img_resolution=128,
        patch_resolution=32,
        generator=GeneratorConfig(cbase=4096, cmax=128, tri_plane_res=128, feat_dim=16),
        discriminator=DiscriminatorConfig(cbase=4096, cmax=128),
        render=RenderConfig(num_coarse_steps=16, num_fine_steps=16),
    )


def _tiny() -> ModelConfig:
    # Not an official configuration: small enough for a CPU G+D step at batch 4 in about a second.
    return ModelConfig(
        img_resolution=32,
        patch_resolution=16,
        generator=GeneratorConfig(z_dim=64, w_dim=64, cbase=2048, cmax=64, tri_plane_res=32, feat_dim=8,
                                  mlp_hid_dim=32),
        discriminator=DiscriminatorConfig(cbase=2048, cmax=64, hyper_mod_dim=64, patch_const_emb_dim=32,
                                          kd_dim=32),
        camera=CameraConfig(adaptor_hid_dim=64),
        render=RenderConfig(num_coarse_steps=12, num_fine_steps=12),
        depth_adaptor=DepthAdaptorConfig(hid_dim=16),
    )


def _toy64() -> ModelConfig:
    # Not an official configuration: 64x64 data, 32x32 patches, roughly SMALL-sized networks.
    return ModelConfig(
        img_resolution=64,
        patch_resolution=32,
        generator=GeneratorConfig(z_dim=256, w_dim=256, cbase=8192, cmax=128, tri_plane_res=64, feat_dim=16),
        discriminator=DiscriminatorConfig(cbase=8192, cmax=128, hyper_mod_dim=256),
        render=RenderConfig(num_coarse_steps=16, num_fine_steps=16),
        depth_adaptor=DepthAdaptorConfig(hid_dim=32),
    )


MODEL_PRESETS: dict[str, ModelConfig] = {
    "dogs": ModelConfig(),
    "elephants": ModelConfig(),
    "horses": ModelConfig(),
    "imagenet": _imagenet(),
    "small": _small(),
    "tiny": _tiny(),
    "toy64": _toy64(),
}


def get_preset(name: str) -> ModelConfig:
    """The ``ModelConfig`` of a named preset (ref §12, §15); raises ``BadOptionError('--model', ...)`` if unknown."""
    if name not in MODEL_PRESETS:
        raise BadOptionError("--model", f"unknown preset {name!r}; choose one of {', '.join(MODEL_PRESETS)}")
    return MODEL_PRESETS[name]


# ---------------------------------------------------------------------------------------------------------------
# JSON-safe round trip (checkpoints store to_dict(config)).

def to_dict(config: ModelConfig) -> dict[str, Any]:
    """``config`` as nested plain dicts of JSON-safe scalars (:func:`stages.common.configs.plain`)."""
    return plain(config)


def from_dict(data: dict[str, Any]) -> ModelConfig:
    """Rebuild a ``ModelConfig`` from ``to_dict`` output; unknown keys raise ``ConfigValueError``.

    Missing keys take their defaults, so a dict written by an older version with fewer fields still loads.
    """
    return from_plain(ModelConfig, data, what="model-config key")


def with_overrides(config: ModelConfig, **sections: Any) -> ModelConfig:
    """A copy of ``config`` with fields replaced, e.g. ``with_overrides(cfg, discriminator={'kd_dim': 0})``.

    Top-level scalars are given directly: ``with_overrides(cfg, c_dim=10)`` (``stages.common.configs.replace_nested``).
    """
    return replace_nested(config, sections)
