"""Depth convention, disparity conversion, registry and the LeReS network (3DGP ref §3.3, §7.3)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stages.common.errors import BadFileError, BadOptionError
from stages.prep.depth import (
    PIPELINE_DEPTH_SOURCES,
    decode_depth_uint16,
    disparity_to_depth,
    encode_depth_uint16,
    list_depth_estimators,
    load_depth_estimator,
)
from stages.prep.depth.leres import (
    FeatureTransferBlock,
    LeReSDepthNet,
    LeReSEstimator,
    leres_from_checkpoint,
)

# ---- stored depth convention (3DGP ref §3.3) -------------------------------------------------------------------

def test_encode_is_the_leres_export():
    depth = np.array([[1.0, 2.0], [4.0, 0.5]], np.float32)
    encoded = encode_depth_uint16(depth)
    assert encoded.dtype == np.uint16
    np.testing.assert_array_equal(encoded, [[15000, 30000], [60000, 7500]])


def test_encode_guards_bad_values():
    depth = np.array([[np.nan, 2.0], [-3.0, np.inf]], np.float32)
    np.testing.assert_array_equal(encode_depth_uint16(depth), [[60000, 60000], [0, 60000]])
    np.testing.assert_array_equal(encode_depth_uint16(np.zeros((2, 3))), np.zeros((2, 3)))
    np.testing.assert_array_equal(encode_depth_uint16(np.full((2, 2), np.nan)), np.full((2, 2), 60000))


def test_decode_matches_the_trainer_normalisation():
    decoded = decode_depth_uint16(np.array([0, 32768, 60000], np.uint16))
    np.testing.assert_allclose(decoded, [-1.0, 0.0, 0.8310546875], atol=1e-7)
    assert decoded.dtype == np.float32


def test_round_trip_keeps_order_and_values():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.1, 7.0, size=(16, 16)).astype(np.float32)
    decoded = decode_depth_uint16(encode_depth_uint16(depth))
    expected = depth / depth.max() * 60000 / 65536 * 2 - 1
    np.testing.assert_allclose(decoded, expected, atol=2.0 / 65536)
    flat_order = np.argsort(depth.ravel(), kind="stable")
    assert np.all(np.diff(decoded.ravel()[flat_order]) >= 0)  # larger = farther survives encoding
    assert decoded.max() == pytest.approx(60000 / 65536 * 2 - 1)  # the farthest pixel lands at ~0.83


def test_disparity_to_depth_is_monotone_decreasing():
    disparity = np.linspace(-2.0, 5.0, 50, dtype=np.float32).reshape(1, 5, 10)
    depth = disparity_to_depth(disparity, max_depth_ratio=10.0)
    assert depth.shape == (1, 5, 10) and depth.dtype == np.float32
    assert np.all(np.diff(depth.ravel()) < 0)  # strictly decreasing in disparity
    assert depth.min() > 0
    assert depth.max() / depth.min() == pytest.approx(10.0, rel=1e-5)
    np.testing.assert_allclose(disparity_to_depth(np.full((1, 3, 3), 2.0)), 1.0)  # constant map -> constant depth


def test_disparity_nan_is_far():
    disparity = np.array([[[1.0, np.nan], [3.0, 2.0]]])
    depth = disparity_to_depth(disparity)
    assert np.isfinite(depth).all()
    assert depth[0, 0, 1] == depth.max()


# ---- registry ------------------------------------------------------------------------------------------------------

def test_registry_names():
    names = list_depth_estimators()
    assert names[:2] == ["leres", "hf"]
    assert set(PIPELINE_DEPTH_SOURCES) == {"precomputed", "toy", "none"} <= set(names)


def test_unknown_estimator_is_one_line_option_error():
    with pytest.raises(BadOptionError) as info:
        load_depth_estimator("midas9000")
    message = str(info.value)
    assert message.startswith("--depth-model: unknown estimator 'midas9000'; choose one of leres, hf")
    assert "\n" not in message


@pytest.mark.parametrize("name", PIPELINE_DEPTH_SOURCES)
def test_pipeline_names_are_refused_with_a_clear_error(name):
    with pytest.raises(BadOptionError, match="prep pipeline handles it"):
        load_depth_estimator(name)


def test_leres_needs_weights(tmp_path):
    with pytest.raises(BadOptionError, match="--depth-weights"):
        load_depth_estimator("leres")
    with pytest.raises(BadFileError, match="no such file"):
        load_depth_estimator("leres", str(tmp_path / "res50.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(BadFileError, match="not a readable weights file"):
        load_depth_estimator("leres", str(junk))


# ---- LeReS ---------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def leres_net():
    torch.manual_seed(0)
    net = LeReSDepthNet("resnet50").eval()
    with torch.no_grad():  # random BN statistics so that loading them is observable
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return net


@pytest.fixture(scope="module")
def official_checkpoint(leres_net, tmp_path_factory):
    """A random LeReS saved exactly like AdelaiDepth's res50.pth: DataParallel-prefixed RelDepthModel tensors."""
    depth_model = {f"module.depth_model.{key}": value for key, value in leres_net.state_dict().items()}
    checkpoint = {
        "depth_model": depth_model,
        "shift_model": {"module.fc.weight": torch.zeros(1, 4)},
        "focal_model": {"module.fc.weight": torch.zeros(1, 4)},
    }
    path = tmp_path_factory.mktemp("leres") / "res50.pth"
    torch.save(checkpoint, path)
    return path


def test_leres_forward_shapes(leres_net):
    features = leres_net.encoder_modules(torch.zeros(1, 3, 64, 64))
    assert [tuple(f.shape) for f in features] == [(1, 256, 16, 16), (1, 512, 8, 8), (1, 1024, 4, 4), (1, 2048, 2, 2)]
    with torch.no_grad():
        assert leres_net(torch.randn(2, 3, 96, 64)).shape == (2, 1, 96, 64)


def test_leres_official_key_layout(leres_net):
    keys = set(leres_net.state_dict())
    for key in (
        "encoder_modules.encoder.conv1.weight",
        "encoder_modules.encoder.layer4.2.bn3.running_var",
        "encoder_modules.encoder.layer1.0.downsample.1.weight",
        "decoder_modules.conv.conv_branch.2.running_mean",
        "decoder_modules.conv1.bias",
        "decoder_modules.ffm0.ftb2.conv_branch.4.weight",
        "decoder_modules.outconv.adapt_conv.3.weight",
    ):
        assert key in keys, key
    assert not any(".fc." in key for key in keys)  # the trunk has no classifier


def test_ftb_reproduces_the_in_place_relu_of_the_official_block():
    torch.manual_seed(1)
    block = FeatureTransferBlock(4, 6).eval()
    official_branch = copy.deepcopy(block.conv_branch)
    official_branch[0] = nn.ReLU(inplace=True)  # as written in AdelaiDepth: mutates its input
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        y = block.conv1(x)
        expected = F.relu(y + official_branch(y))  # ``y`` is already relu'd in place when the sum is formed
        np.testing.assert_allclose(block(x).numpy(), expected.numpy(), atol=1e-6)


def test_leres_loads_the_official_file(leres_net, official_checkpoint):
    estimator = load_depth_estimator("leres", str(official_checkpoint))
    assert estimator.name == "leres" and estimator.output_kind == "depth"
    assert estimator.net.backbone == "resnet50"
    assert len(estimator.weights_sha256) == 64
    for key, value in leres_net.state_dict().items():
        assert torch.equal(estimator.net.state_dict()[key], value), key


def test_leres_accepts_bare_and_unprefixed_state_dicts(leres_net):
    bare = {f"depth_model.{key}": value for key, value in leres_net.state_dict().items()}
    net = leres_from_checkpoint(bare)
    assert torch.equal(net.decoder_modules.conv1.weight, leres_net.decoder_modules.conv1.weight)
    old = {k: v for k, v in leres_net.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert leres_from_checkpoint({"depth_model": old}).backbone == "resnet50"  # pre-0.4.1 checkpoints


def test_leres_mismatch_is_one_line_file_error(leres_net):
    state = dict(leres_net.state_dict())
    del state["decoder_modules.conv1.bias"]
    state["decoder_modules.outconv.adapt_conv.0.weight"] = torch.zeros(64, 256, 3, 3)
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(BadFileError) as info:
        leres_from_checkpoint({"depth_model": state}, "res50.pth")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("res50.pth: --depth-weights: weights do not match LeReS resnet50")
    assert "1 missing keys (e.g. decoder_modules.conv1.bias)" in message
    assert "1 unexpected keys (e.g. extra.weight)" in message
    assert "file (64, 256, 3, 3), model (128, 256, 3, 3)" in message


def test_leres_rejects_a_file_without_depth_model():
    with pytest.raises(BadFileError, match="no 'depth_model' state dict"):
        leres_from_checkpoint({"depth_model": {"epoch": 3}}, "x.pth")


def test_leres_predict_relative_depth(leres_net):
    estimator = LeReSEstimator(leres_net, weights_sha256=None, input_size=64, batch_size=2)
    images = np.random.default_rng(0).integers(0, 256, size=(3, 40, 48, 3), dtype=np.uint8)
    depth = estimator.predict(images)
    assert depth.shape == (3, 40, 48) and depth.dtype == np.float32
    assert np.isfinite(depth).all() and depth.min() >= 0.01 - 1e-6  # d - min(d) + 0.01, as RelDepthModel.inference
    np.testing.assert_allclose(estimator.predict(images[1:2]), depth[1:2], atol=1e-5)  # batch-independent (eval BN)
    assert "64px" in estimator.version
