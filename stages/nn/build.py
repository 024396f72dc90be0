"""Config -> modules: the only code that reads a ``ModelConfig`` (3DGP ref §12; style guide principle 4).

Every module takes explicit constructor arguments; this file maps config fields onto them:

* ``build_camera_prior(cfg) -> CameraPrior`` (also what the training loop samples prior cameras from);
* ``build_camera_adaptor(cfg) -> CameraAdaptor``, ``build_depth_adaptor(cfg) -> DepthAdaptor``;
* ``build_generator(cfg) -> Generator`` (with both adaptors inside);
* ``build_discriminator(cfg) -> Discriminator``;
* ``build(cfg) -> (G, D)``.

Build under ``with torch.device("meta"):`` for parameter counting without memory.
"""
from __future__ import annotations

from stages.nn.camera_adaptor import CameraAdaptor
from stages.nn.camera_prior import CameraPrior
from stages.nn.config import ModelConfig
from stages.nn.depth_adaptor import DepthAdaptor
from stages.nn.discriminator import Discriminator
from stages.nn.generator import Generator


def build_camera_prior(cfg: ModelConfig) -> CameraPrior:
    """The camera prior of ``cfg.camera`` (3DGP ref §2.2)."""
    cam = cfg.camera
    return CameraPrior(
        yaw_min=cam.yaw_min,
        yaw_max=cam.yaw_max,
        pitch_min=cam.pitch_min,
        pitch_max=cam.pitch_max,
        fov_min_deg=cam.fov_min_deg,
        fov_max_deg=cam.fov_max_deg,
        radius=cam.radius,
        la_radius_min=cam.la_radius_min,
        la_radius_max=cam.la_radius_max,
        angle_dist=cam.angle_dist,
        yaw_std=cam.yaw_std,
        pitch_std=cam.pitch_std,
        fov_dist=cam.fov_dist,
        fov_mean_deg=cam.fov_mean_deg,
        fov_std_deg=cam.fov_std_deg,
    )


def build_camera_adaptor(cfg: ModelConfig) -> CameraAdaptor:
    """The camera adaptor (prior -> posterior camera) of ``cfg`` (3DGP ref §2.3)."""
    cam = cfg.camera
    return CameraAdaptor(
        c_dim=cfg.c_dim,
        z_dim=cfg.generator.z_dim,
        hid_dim=cam.adaptor_hid_dim,
        embed_dim=cam.adaptor_embed_dim,
        lr_multiplier=cam.adaptor_lr_multiplier,
        prior=build_camera_prior(cfg),
        enabled=cam.adaptor_enabled,
        la_radius_quirk=cam.la_radius_quirk,
        residual=cam.adaptor_residual,
    )


def build_depth_adaptor(cfg: ModelConfig) -> DepthAdaptor:
    """The depth adaptor of ``cfg`` (3DGP ref §3.1, §3.2)."""
    dep = cfg.depth_adaptor
    return DepthAdaptor(
        ray_start=cfg.render.ray_start,
        ray_end=cfg.render.ray_end,
        num_hid_layers=dep.num_hid_layers,
        hid_dim=dep.hid_dim,
        kernel_size=dep.kernel_size,
        near_plane_offset_bias=dep.near_plane_offset_bias,
        near_plane_offset_max_fraction=dep.near_plane_offset_max_fraction,
        selection_start_p=dep.selection_start_p,
        enabled=dep.enabled,
        fixed_p=dep.fixed_p,
    )


def build_generator(cfg: ModelConfig) -> Generator:
    """The generator of ``cfg``, camera and depth adaptors included (3DGP ref §1, §2.3, §3)."""
    gen, ren = cfg.generator, cfg.render
    return Generator(
        z_dim=gen.z_dim,
        c_dim=cfg.c_dim,
        w_dim=gen.w_dim,
        img_resolution=cfg.img_resolution,
        map_depth=gen.map_depth,
        map_lr_multiplier=gen.map_lr_multiplier,
        w_avg_beta=gen.w_avg_beta,
        tri_plane_res=gen.tri_plane_res,
        feat_dim=gen.feat_dim,
        cbase=gen.cbase,
        cmax=gen.cmax,
        use_noise=gen.use_noise,
        mlp_hid_dim=gen.mlp_hid_dim,
        mlp_num_layers=gen.mlp_num_layers,
        cube_scale=ren.cube_scale,
        ray_start=ren.ray_start,
        ray_end=ren.ray_end,
        num_coarse_steps=ren.num_coarse_steps,
        num_fine_steps=ren.num_fine_steps,
        camera_adaptor=build_camera_adaptor(cfg),
        depth_adaptor=build_depth_adaptor(cfg),
    )


def build_discriminator(cfg: ModelConfig) -> Discriminator:
    """The discriminator of ``cfg`` (3DGP ref §4)."""
    dis = cfg.discriminator
    return Discriminator(
        c_dim=cfg.c_dim,
        img_resolution=cfg.img_resolution,
        patch_resolution=cfg.patch_resolution,
        img_channels=cfg.img_channels,
        cbase=dis.cbase,
        cmax=dis.cmax,
        num_fp16_res=dis.num_fp16_res,
        conv_clamp=dis.conv_clamp,
        mbstd_group_size=dis.mbstd_group_size,
        mbstd_num_channels=dis.mbstd_num_channels,
        hyper_mod=dis.hyper_mod,
        hyper_mod_dim=dis.hyper_mod_dim,
        mapping_num_layers=dis.mapping_num_layers,
        mapping_lr_multiplier=dis.mapping_lr_multiplier,
        patch_x_multiplier=dis.patch_x_multiplier,
        patch_const_emb_dim=dis.patch_const_emb_dim,
        kd_dim=dis.kd_dim,
    )


def build(cfg: ModelConfig) -> tuple[Generator, Discriminator]:
    """``(G, D)`` for ``cfg`` (3DGP ref §12). G_ema is a deep copy of G made by the caller."""
    return build_generator(cfg), build_discriminator(cfg)
