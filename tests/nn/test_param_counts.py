"""Parameter counts of the official configurations (3DGP ref §14) through ``param_table``."""
from __future__ import annotations

import pytest
import torch

from stages.common.errors import BadOptionError
from stages.nn.build import build_generator
from stages.nn.config import get_preset
from stages.nn.param_counts import count_parameters, generator_block_counts, param_table

# Ref §14, column by column. "official" D rows include the dead fromrgb layers; "ours" rows subtract them.
REF14 = {
    "dogs": [
        ("G total", 29_339_693),
        ("G mapping", 525_312),
        ("G tri-plane decoder", 28_455_823),
        ("  of which ToRGB layers", 1_832_640),
        ("  of which style affines", 4_596_480),
        ("G tri-plane MLP", 2_372),
        ("G camera adaptor", 149_528),
        ("G depth adaptor", 206_658),
        ("D total (official)", 37_786_752),
        ("D total (ours, no dead fromrgb)", 37_775_232),
        ("D blocks (official)", 23_563_648),
        ("D blocks (ours)", 23_552_128),
        ("  of which hyper-mod affines", 1_247_616),
        ("  of which dead fromrgb layers (official only)", 11_520),
        ("D epilogue without KD head", 6_821_888),
        ("D patch-parameter embedding table", 256_256),
        ("D hyper-mod mapping", 949_760),
        ("D head mapping", 949_760),
        ("D KD head", 5_245_440),
    ],
    "imagenet": [
        ("G total", 105_721_805),
        ("G mapping", 1_299_968),
        ("G tri-plane decoder", 104_023_055),
        ("  of which ToRGB layers", 3_664_512),
        ("  of which style affines", 9_192_960),
        ("G tri-plane MLP", 2_372),
        ("G camera adaptor", 189_752),
        ("G depth adaptor", 206_658),
        ("D total (official)", 143_055_360),
        ("D total (ours, no dead fromrgb)", 143_032_320),
        ("D blocks (official)", 91_724_544),
        ("D blocks (ours)", 91_701_504),
        ("  of which hyper-mod affines", 2_495_232),
        ("  of which dead fromrgb layers (official only)", 23_040),
        ("D epilogue without KD head", 27_275_264),
        ("D patch-parameter embedding table", 256_256),
        ("D hyper-mod mapping", 949_760),
        ("D head mapping", 3_972_096),
        ("D KD head", 18_877_440),
    ],
    "small": [
        ("G total", 3_005_193),
        ("G mapping", 525_312),
        ("G tri-plane decoder", 2_122_347),
        ("  of which ToRGB layers", 341_376),
        ("  of which style affines", 919_296),
        ("G tri-plane MLP", 1_348),
        ("G camera adaptor", 149_528),
        ("G depth adaptor", 206_658),
        ("D total (official)", 3_631_200),
        ("D total (ours, no dead fromrgb)", 3_628_960),
        ("D blocks (official)", 1_332_064),
        ("D blocks (ours)", 1_329_824),
        ("  of which hyper-mod affines", 246_240),
        ("  of which dead fromrgb layers (official only)", 2_240),
        ("D epilogue without KD head", 427_520),
        ("D patch-parameter embedding table", 256_256),
        ("D hyper-mod mapping", 949_760),
        ("D head mapping", 139_136),
        ("D KD head", 526_464),
    ],
}


@pytest.mark.parametrize("preset", ["dogs", "imagenet", "small"])
def test_param_table_matches_ref14(preset):
    assert param_table(preset) == REF14[preset]


@pytest.mark.parametrize("preset", ["elephants", "horses"])
def test_satellite_datasets_have_the_dogs_model(preset):
    assert param_table(preset) == REF14["dogs"]


def test_param_table_runs_for_the_unofficial_presets():
    for preset in ("tiny", "toy64"):
        rows = dict(param_table(preset))
        assert rows["G total"] > 0 and rows["D total (ours, no dead fromrgb)"] > 0
        assert rows["D total (official)"] == rows["D total (ours, no dead fromrgb)"] + rows[
            "  of which dead fromrgb layers (official only)"]


def test_dogs_generator_per_block_counts():
    with torch.device("meta"):
        G = build_generator(get_preset("dogs"))
    assert generator_block_counts(G) == [
        (4, 512, 2_942_561),
        (8, 512, 5_556_834), (16, 512, 5_556_834), (32, 512, 5_556_834), (64, 512, 5_556_834),
        (128, 256, 2_319_970), (256, 128, 717_666), (512, 64, 248_290),
    ]
    assert G.num_ws == 16


@pytest.mark.parametrize("preset, origin, look_at", [("dogs", 68_100, 81_428), ("imagenet", 88_212, 101_540)])
def test_camera_adaptor_split(preset, origin, look_at):
    with torch.device("meta"):
        G = build_generator(get_preset(preset))
    assert count_parameters(G.camera_adaptor.origin_adaptor) == origin
    assert count_parameters(G.camera_adaptor.look_at_adaptor) == look_at


def test_count_parameters_trainable_only_and_none():
    layer = torch.nn.Linear(3, 2)
    layer.bias.requires_grad_(False)
    assert count_parameters(layer) == 6
    assert count_parameters(layer, trainable_only=False) == 8
    assert count_parameters(None) == 0


def test_unknown_preset_names_the_option():
    with pytest.raises(BadOptionError, match="--model: unknown preset 'cats'"):
        param_table("cats")
