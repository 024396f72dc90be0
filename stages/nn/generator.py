"""The 3DGP generator: mapping + tri-plane synthesis + MLP + volume renderer + camera and depth adaptors (ref §1.8).

Forward pass (training, ref §1.8):

1. ws = mapping(z, c) (no style mixing);
2. camera = camera_adaptor(camera_prior, z, c), the posterior camera (ref §2.3; the prior itself without adaptor);
3. planes = backbone(ws) ``[B, 3, F, R, R]`` (ref §1.2);
4. rays for the camera and the (optional) patch, volume rendering with the tri-plane MLP (ref §1.3 - §1.7):
   img ``[B, 3, H, W]`` (raw, unbounded) and depth ``[B, 1, H, W]`` (world units, ~[ray_start, ray_end]);
5. depth_adapted = depth_adaptor(depth) (ref §3; random output selection in training, last output in eval).

Randomness: the per-pixel synthesis noise (``noise_mode="random"``), the renderer's jitter, importance samples and
density noise, and the depth adaptor's output selection all draw from ``generator`` when one is given (in that
order), else from the global RNG; a CPU generator works with CUDA modules (``stages.nn.rng``). The density noise
is applied only in training mode: in eval mode ``nerf_noise_std`` is ignored (official:
``nerf_noise_std if self.training else 0``, ref §1.6 step 2).

The DDP no-op ``img + 0 * max(depth_adapted)`` of the official code (ref §1.8) is not reproduced.

Public API (what the training loop, eval and export call):

* ``G.mapping(z [B, z_dim], c [B, c_dim] | None, truncation_psi=1, truncation_cutoff=None, update_emas=False,
  w_center=None) -> ws [B, num_ws, w_dim]`` (a ``MappingNetwork``; ``G.mapping.class_mean_w(c)`` for per-class
  truncation, ref §8.2).
* ``G.camera_posterior(camera_prior [B, 8], z, c) -> camera [B, 8]``.
* ``G.synthesis(ws, camera [B, 8], patch_params [B, 3] | None = None, resolution=None, noise_mode="random",
  nerf_noise_std=0.0, generator=None, ...) -> dict(img, depth, depth_adapted)``.
* ``G(z, c, camera_prior, patch_params=None, resolution=None, truncation_psi=1, noise_mode="random",
  update_emas=False, nerf_noise_std=0.0, generator=None) -> dict(img [B, 3, H, W], depth [B, 1, H, W] (raw,
  world units), depth_adapted [B, 1, H, W] or None, camera [B, 8] (posterior), ws [B, num_ws, w_dim])``.
* ``G.triplanes(ws, noise_mode, generator=None) -> [B, 3, F, R, R]`` and ``G.decode_points(planes, points [B, N, 3]) ->
  (rgb [B, N, 3], sigma_raw [B, N])`` for geometry extraction (ref §8.5).

``resolution=None`` renders ``img_resolution`` (the eval resolution); training passes the patch resolution.
The adaptors are built by the caller (``stages.nn.build``) and passed in, so this module only relies on their
forward contracts: ``camera_adaptor(camera_prior [B, 8], z [B, z_dim], c [B, c_dim] | None) -> [B, 8]`` and
``depth_adaptor(depth [B, 1, H, W], generator=None) -> [B, 1, H, W]`` (its train/eval behaviour follows
``module.training``).
"""
from __future__ import annotations

import torch
from torch import nn

from stages.nn.mapping import MappingNetwork
from stages.nn.precision import autocast, compute_dtype
from stages.nn.rays import make_rays
from stages.nn.render import render_rays
from stages.nn.synthesis import TriPlaneSynthesis
from stages.nn.triplane import TriPlaneMLP, query_triplane


class Generator(nn.Module):
    """The full 3DGP generator (3DGP ref §1.8). Every size is a constructor argument."""

    def __init__(
        self,
        z_dim: int = 512,             # Latent size (ref §1.1).
        c_dim: int = 0,               # One-hot class size; 0 = unconditional.
        w_dim: int = 512,             # Intermediate latent size.
        img_resolution: int = 256,    # Default render resolution (eval); training passes the patch resolution.
        map_depth: int = 2,           # FC layers of the mapping network.
        map_lr_multiplier: float = 0.01,  # Learning-rate multiplier of the mapping FC layers.
        w_avg_beta: float = 0.998,    # EMA decay of the mapping's w_avg.
        tri_plane_res: int = 512,     # Tri-plane resolution (ref §1.2).
        feat_dim: int = 32,           # Features per plane.
        cbase: int = 32768,           # Synthesis channels at resolution r: min(cbase // r, cmax).
        cmax: int = 512,              # Synthesis channel maximum.
        use_noise: bool = True,       # Per-pixel noise in the synthesis network.
        mlp_hid_dim: int = 64,        # Tri-plane MLP hidden width (ref §1.3).
        mlp_num_layers: int = 2,      # Tri-plane MLP layers.
        cube_scale: float = 0.5,      # The tri-plane covers [-cube_scale, cube_scale]^3.
        ray_start: float = 0.75,      # Near bound of every ray (ref §1.5).
        ray_end: float = 1.25,        # Far bound of every ray.
        num_coarse_steps: int = 32,   # Stratified samples per ray (ref §1.6).
        num_fine_steps: int = 32,     # Importance samples per ray.
        camera_adaptor: nn.Module | None = None,  # Prior -> posterior camera (ref §2.3); None = use the prior.
        depth_adaptor: nn.Module | None = None,   # Rendered depth -> adapted depth (ref §3); None = no adaptor.
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.cube_scale = cube_scale
        self.ray_start = ray_start
        self.ray_end = ray_end
        self.num_coarse_steps = num_coarse_steps
        self.num_fine_steps = num_fine_steps
        self.backbone = TriPlaneSynthesis(
            w_dim=w_dim, tri_plane_res=tri_plane_res, feat_dim=feat_dim, cbase=cbase,
            cmax=cmax, use_noise=use_noise,
        )
        self.num_ws = self.backbone.num_ws
        self.mapping = MappingNetwork(
            z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, num_layers=map_depth,
            lr_multiplier=map_lr_multiplier, w_avg_beta=w_avg_beta,
        )
        self.mlp = TriPlaneMLP(in_features=feat_dim, hidden_features=mlp_hid_dim, num_layers=mlp_num_layers)
        self.camera_adaptor = camera_adaptor
        self.depth_adaptor = depth_adaptor
        self.compute_dtype: torch.dtype | None = None  # set_precision(); None = fp32 throughout

    def camera_posterior(self, camera_prior: torch.Tensor, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """Posterior camera ``[B, 8]`` from a prior sample (ref §2.3); the prior itself without an adaptor."""
        assert camera_prior.ndim == 2 and camera_prior.shape[1] == 8, camera_prior.shape
        if self.camera_adaptor is None:
            return camera_prior
        if c is not None and c.shape[-1] == 0:
            c = None
        return self.camera_adaptor(camera_prior, z, c)

    def triplanes(
        self,
        ws: torch.Tensor,             # [B, num_ws, w_dim]
        noise_mode: str = "random",   # Synthesis noise: 'random', 'const' or 'none'.
        generator: torch.Generator | None = None,  # RNG of the 'random' per-pixel noise (None = global RNG).
    ) -> torch.Tensor:
        """The tri-plane ``[B, 3, feat_dim, R, R]`` (float32) for ws ``[B, num_ws, w_dim]`` (ref §1.2)."""
        with autocast(ws, self.compute_dtype):
            planes = self.backbone(ws, noise_mode=noise_mode, generator=generator)
        return planes.float()

    def decode_points(self, planes: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw rgb ``[B, N, 3]`` and raw (pre-softplus) density ``[B, N]`` at world points ``[B, N, 3]`` (ref §1.3),
        float32 whatever the compute precision."""
        with autocast(points, self.compute_dtype):
            rgb, sigma = query_triplane(planes, self.mlp, points, self.cube_scale)
        return rgb.float(), sigma.float()

    def set_precision(self, precision: str) -> None:
        """'fp32' (official), 'tf32' or 'bf16': bf16 autocast for the backbone and the MLP only
        (:mod:`stages.nn.precision`); a runtime setting, not part of the weights."""
        self.compute_dtype = compute_dtype(precision)

    def render(
        self,
        planes: torch.Tensor,         # [B, 3, F, R, R]
        camera: torch.Tensor,         # [B, 8] cameras (ref §2.1).
        patch_params: torch.Tensor | None = None,  # [B, 3] (scale, o_x, o_y) or None for the full image.
        resolution: int | None = None,  # H = W of the render (None = img_resolution).
        nerf_noise_std: float = 0.0,  # Std of the density noise (training schedule, ref §1.6 step 2); eval: 0.
        ray_end: float | None = None,  # Far-bound override (inference far_plane_offset, ref §8.1).
        num_coarse_steps: int | None = None,  # Sample-count overrides (inference ray_step_multiplier).
        num_fine_steps: int | None = None,
        cut_quantile: float = 0.0,    # Density cut for the non-flatness score (ref §6.5).
        chunk_rays: int | None = None,  # Render at most this many rays per image at once (memory only).
        generator: torch.Generator | None = None,  # RNG of the renderer (jitter, importance samples, noise).
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Volume-render a tri-plane: img ``[B, 3, H, W]`` (raw) and depth ``[B, 1, H, W]`` (world units).

        The density noise is used only in training mode; in eval mode it is 0 whatever ``nerf_noise_std`` says
        (ref §1.6 step 2, official ``nerf_noise_std if self.training else 0``).
        """
        nerf_noise_std = nerf_noise_std if self.training else 0.0
        batch_size = planes.shape[0]
        res = self.img_resolution if resolution is None else resolution
        origins, dirs = make_rays(camera.to(planes.dtype), res, patch_params)  # [B, H*W, 3] each
        out = render_rays(
            lambda points: self.decode_points(planes, points), origins, dirs,
            ray_start=self.ray_start, ray_end=self.ray_end if ray_end is None else ray_end,
            num_coarse=self.num_coarse_steps if num_coarse_steps is None else num_coarse_steps,
            num_fine=self.num_fine_steps if num_fine_steps is None else num_fine_steps,
            density_noise_std=nerf_noise_std, cut_quantile=cut_quantile, chunk_rays=chunk_rays, generator=generator,
        )
        img = out["rgb"].reshape(batch_size, res, res, -1).permute(0, 3, 1, 2)  # [B, 3, H, W]
        depth = out["depth"].reshape(batch_size, res, res, 1).permute(0, 3, 1, 2)  # [B, 1, H, W]
        return img, depth

    def synthesis(
        self,
        ws: torch.Tensor,             # [B, num_ws, w_dim]
        camera: torch.Tensor,         # [B, 8] (posterior) cameras.
        patch_params: torch.Tensor | None = None,  # [B, 3] (scale, o_x, o_y) or None.
        resolution: int | None = None,  # H = W of the render (None = img_resolution).
        noise_mode: str = "random",   # Synthesis noise: 'random' (training), 'const' (visualisation), 'none'.
        nerf_noise_std: float = 0.0,  # Density noise std (ref §1.6 step 2); ignored (0) in eval mode.
        generator: torch.Generator | None = None,  # RNG of synthesis noise, renderer and depth adaptor (None = global).
        **render_kwargs,              # ray_end, num_coarse_steps, num_fine_steps, cut_quantile, chunk_rays.
    ) -> dict[str, torch.Tensor | None]:
        """Tri-plane synthesis + rendering + depth adaptor for given ws and cameras (3DGP ref §1.8 steps 3-5).

        Returns ``dict(img [B, 3, H, W], depth [B, 1, H, W], depth_adapted [B, 1, H, W] | None)``.
        """
        planes = self.triplanes(ws, noise_mode=noise_mode, generator=generator)  # [B, 3, F, R, R]
        img, depth = self.render(planes, camera, patch_params, resolution, nerf_noise_std, generator=generator,
                                 **render_kwargs)
        depth_adapted = None
        if self.depth_adaptor is not None:
            depth_adapted = self.depth_adaptor(depth, generator=generator)  # [B, 1, H, W]
        return {"img": img, "depth": depth, "depth_adapted": depth_adapted}

    def forward(
        self,
        z: torch.Tensor,              # [B, z_dim]
        c: torch.Tensor | None,       # [B, c_dim] one-hot, or None when unconditional.
        camera_prior: torch.Tensor,   # [B, 8] prior camera samples (ref §2.2).
        patch_params: torch.Tensor | None = None,  # [B, 3] (scale, o_x, o_y) or None for the full image.
        resolution: int | None = None,  # H = W of the render (None = img_resolution).
        truncation_psi: float = 1.0,  # Truncation psi (ref §1.1).
        truncation_cutoff: int | None = None,  # Truncate only the first ws.
        noise_mode: str = "random",   # Synthesis noise mode.
        update_emas: bool = False,    # Update the mapping's w_avg (D-main fake pass only).
        nerf_noise_std: float = 0.0,  # Density noise std; ignored (0) in eval mode.
        generator: torch.Generator | None = None,  # RNG of synthesis noise, renderer and depth adaptor (None = global).
        **render_kwargs,              # Passed to ``render``.
    ) -> dict[str, torch.Tensor | None]:
        """z, c and a prior camera -> img, depth, adapted depth, posterior camera and ws (3DGP ref §1.8)."""
        if c is not None and c.shape[-1] == 0:
            c = None  # unconditional: an empty [B, 0] label means "no class"
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)  # [B, num_ws, w_dim]
        camera = self.camera_posterior(camera_prior, z, c)  # [B, 8]
        out = self.synthesis(ws, camera, patch_params, resolution, noise_mode, nerf_noise_std, generator=generator,
                             **render_kwargs)
        return {**out, "camera": camera, "ws": ws}

    def extra_repr(self) -> str:
        return (
            f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}, "
            f"img_resolution={self.img_resolution}, cube_scale={self.cube_scale}, "
            f"rays=[{self.ray_start}, {self.ray_end}], steps={self.num_coarse_steps}+{self.num_fine_steps}"
        )
