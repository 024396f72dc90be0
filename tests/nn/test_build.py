"""Model config presets, the JSON round trip, config -> modules, and a tiny G+D training step on CPU."""
from __future__ import annotations

import dataclasses
import json
import time

import pytest
import torch

from stages.common.errors import BadOptionError, ConfigValueError
from stages.nn.build import build, build_camera_prior, build_discriminator, build_generator
from stages.nn.camera_prior import CameraPrior
from stages.nn.config import (
    MODEL_PRESETS,
    DepthAdaptorConfig,
    DiscriminatorConfig,
    GeneratorConfig,
    ModelConfig,
    from_dict,
    get_preset,
    to_dict,
    with_overrides,
)
from stages.nn.discriminator import Discriminator
from stages.nn.generator import Generator


@pytest.fixture(autouse=True)
def _one_thread():
    # The CPU is shared; one thread is faster than two contended ones for these tiny tensors.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_presets_follow_ref12_and_ref15():
    assert set(MODEL_PRESETS) == {"dogs", "elephants", "horses", "imagenet", "small", "tiny", "toy64"}
    dogs = get_preset("dogs")
    assert dogs == ModelConfig() == get_preset("elephants") == get_preset("horses")
    assert (dogs.c_dim, dogs.img_resolution, dogs.patch_resolution, dogs.min_patch_scale) == (0, 256, 64, 0.25)
    assert (dogs.generator.tri_plane_res, dogs.generator.feat_dim, dogs.discriminator.kd_dim) == (512, 32, 2048)
    imagenet = get_preset("imagenet")
    assert imagenet.c_dim == 1000
    assert (imagenet.generator.cbase, imagenet.generator.cmax) == (65536, 1024)
    assert (imagenet.discriminator.cbase, imagenet.discriminator.cmax) == (65536, 1024)
    small = get_preset("small")
    assert (small.img_resolution, small.patch_resolution, small.min_patch_scale) == (128, 32, 0.25)
    assert (small.generator.tri_plane_res, small.generator.feat_dim) == (128, 16)
    assert (small.render.num_coarse_steps, small.render.num_fine_steps) == (16, 16)


@pytest.mark.parametrize("preset", sorted(MODEL_PRESETS))
def test_config_json_round_trip(preset):
    cfg = get_preset(preset)
    text = json.dumps(to_dict(cfg))
    back = from_dict(json.loads(text))
    assert back == cfg
    assert to_dict(back) == to_dict(cfg)


def test_round_trip_of_none_tuple_and_int_valued_floats():
    cfg = with_overrides(get_preset("tiny"), discriminator={"conv_clamp": None},
                         depth_adaptor={"fixed_p": (0.1, 0.2, 0.3, 0.4)})
    back = from_dict(json.loads(json.dumps(to_dict(cfg))))
    assert back == cfg and back.depth_adaptor.fixed_p == (0.1, 0.2, 0.3, 0.4)
    data = to_dict(ModelConfig())
    data["discriminator"]["conv_clamp"] = 256  # JSON writers may drop the ".0"
    loaded = from_dict(data)
    assert isinstance(loaded.discriminator.conv_clamp, float) and loaded == ModelConfig()


def test_from_dict_fills_missing_keys_and_rejects_unknown_ones():
    assert from_dict({"c_dim": 10, "generator": {"cbase": 4096}}) == ModelConfig(
        c_dim=10, generator=GeneratorConfig(cbase=4096))
    with pytest.raises(ConfigValueError, match=r"^discriminator\.kd_dimm: unknown model-config key"):
        from_dict({"discriminator": {"kd_dimm": 3}})
    with pytest.raises(ConfigValueError, match="depth_adaptor.enabled: expected true/false"):
        from_dict({"depth_adaptor": {"enabled": "yes"}})


def test_config_validation_and_unknown_preset():
    with pytest.raises(BadOptionError, match="--model: unknown preset 'cats'"):
        get_preset("cats")
    with pytest.raises(ConfigValueError, match="^patch_resolution: 128 exceeds img_resolution = 64"):
        ModelConfig(img_resolution=64, patch_resolution=128)
    with pytest.raises(ConfigValueError, match="^img_resolution: must be a power of two"):
        ModelConfig(img_resolution=96)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelConfig().c_dim = 3  # type: ignore[misc]


def test_build_maps_config_fields_to_modules():
    cfg = with_overrides(
        get_preset("small"), c_dim=7,
        discriminator={"kd_dim": 0}, depth_adaptor={"hid_dim": 8, "num_hid_layers": 2},
    )
    with torch.device("meta"):
        G, D = build(cfg)
    assert isinstance(G, Generator) and isinstance(D, Discriminator)
    assert (G.c_dim, G.num_ws, G.img_resolution, G.num_coarse_steps, G.num_fine_steps) == (7, 12, 128, 16, 16)
    assert G.backbone.tri_plane_res == 128 and G.backbone.feat_dim == 16
    assert G.camera_adaptor.c_dim == 7 and G.depth_adaptor.num_outputs == 3
    assert G.depth_adaptor.convs[0].out_channels == 8
    assert (D.c_dim, D.patch_resolution, D.img_resolution, D.kd_dim) == (7, 32, 128, 0)
    assert list(D.blocks) == ["b128", "b64", "b32", "b16", "b8"]
    assert [b.down for b in D.blocks.values()] == [1, 1, 2, 2, 2]


def test_build_camera_prior_uses_the_camera_section():
    cfg = with_overrides(ModelConfig(), camera={"fov_max_deg": 21.0})
    prior = build_camera_prior(cfg)
    assert isinstance(prior, CameraPrior) and prior == CameraPrior(fov_max_deg=21.0)
    with pytest.raises(ConfigValueError, match=r"camera\.fov_min_deg: 50 exceeds camera\.fov_max_deg"):
        build_camera_prior(with_overrides(ModelConfig(), camera={"fov_min_deg": 50.0}))


def test_tiny_generator_and_discriminator_train_step_on_cpu():
    torch.manual_seed(0)
    cfg = get_preset("tiny")
    G, D = build(cfg)
    assert isinstance(build_generator(cfg), Generator) and isinstance(build_discriminator(cfg), Discriminator)
    batch = 4
    patch_params = torch.cat([torch.full((batch, 1), 0.75), torch.rand(batch, 2) * 0.25], dim=1)  # [B, 3]
    start = time.perf_counter()
    out = G(torch.randn(batch, cfg.generator.z_dim), None, build_camera_prior(cfg).sample(batch),
            patch_params=patch_params, resolution=cfg.patch_resolution)
    fake = torch.cat([out["img"], out["depth_adapted"]], dim=1)  # [B, 4, 16, 16]
    d_out = D(fake, None, patch_params)
    loss = torch.nn.functional.softplus(-d_out["logits"]).mean() + d_out["kd_features"].square().mean()
    loss.backward()
    elapsed = time.perf_counter() - start
    assert fake.shape == (batch, 4, 16, 16)
    assert d_out["logits"].shape == (batch,) and d_out["kd_features"].shape == (batch, cfg.discriminator.kd_dim)
    assert torch.isfinite(loss)
    for name, module in [("mapping", G.mapping), ("backbone", G.backbone), ("mlp", G.mlp)]:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters()), name
    missing = [n for n, p in D.named_parameters() if p.grad is None]
    assert not missing, missing
    assert elapsed < 15.0, f"tiny G+D step took {elapsed:.1f} s"


def test_kd_and_depth_switches():
    cfg = with_overrides(get_preset("tiny"), discriminator={"kd_dim": 0}, depth_adaptor={"enabled": False})
    G, D = build(cfg)
    assert D.epilogue.kd_fc is None
    assert G.depth_adaptor.num_outputs == 1
    assert DiscriminatorConfig().kd_dim == 2048 and DepthAdaptorConfig().enabled
