"""Distillation embedders: the packaged Lite0, user timm weights, and weight-file errors (3DGP ref §4.3, §7.5)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from stages.common.compat import import_timm
from stages.common.errors import BadFileError, BadOptionError
from stages.prep.embed import TimmEmbedder, load_embedder

timm = import_timm()


@pytest.fixture(scope="module")
def lite0():
    return load_embedder()  # the offline default: tf_efficientnet_lite0 + packaged ImageNet weights


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False).eval()
    path = tmp_path_factory.mktemp("embed") / "resnet18.pth"
    torch.save(model.state_dict(), path)
    return model, path


def _images(count=3, size=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(count, size, size, 3), dtype=np.uint8)


def test_lite0_classifies_the_cat(lite0):
    assert lite0.name == "tf_efficientnet_lite0" and lite0.dim == 1280
    assert len(lite0.weights_sha256) == 64
    logits = lite0.logits(data.chelsea()[None])  # 300x451 photo of a tabby cat
    assert logits.shape == (1, 1000)
    assert 281 <= int(np.argmax(logits[0])) <= 285  # ImageNet's domestic-cat classes
    assert int(np.argmax(lite0.logits(data.coffee()[None])[0])) == 967  # espresso


def test_lite0_embedding_shape_and_batching(lite0):
    images = _images(3, size=32)
    features = lite0.embed(images)
    assert features.shape == (3, 1280) and features.dtype == np.float32
    lite0_small = TimmEmbedder(lite0.model, lite0.name, lite0.weights_sha256, batch_size=2)
    np.testing.assert_allclose(lite0_small.embed(images), features, atol=1e-4)  # batching does not change results
    assert lite0.embed(images[:0]).shape == (0, 1280)


def test_preprocessing_matches_timm_eval_transform(lite0):
    from PIL import Image
    from timm.data import create_transform

    transform = create_transform(**lite0.data_config, is_training=False)
    image = data.chelsea()  # non-square: shorter side -> 256, centre crop 224
    expected = transform(Image.fromarray(image)).numpy()
    ours = lite0.preprocess(image[None])[0].cpu().numpy()
    assert ours.shape == expected.shape == (3, 224, 224)
    difference = np.abs(ours - expected)  # torch antialiased bicubic vs PIL bicubic: at most one uint8 level here
    assert difference.mean() < 0.003 and difference.max() < 2.5 / 255 / 0.5


def test_user_weights_give_the_in_memory_features(resnet18_file):
    model, path = resnet18_file
    loaded = load_embedder("resnet18", weights=str(path))
    assert loaded.dim == 512 and loaded.weights_sha256 is not None
    images = _images(4)
    reference = TimmEmbedder(model, "resnet18", None)
    np.testing.assert_array_equal(loaded.embed(images), reference.embed(images))
    with torch.no_grad():  # and those are timm's own pooled (num_classes=0) features
        pooled = model.forward_head(model.forward_features(reference.preprocess(images)), pre_logits=True)
    np.testing.assert_allclose(loaded.embed(images), pooled.numpy(), atol=1e-5)


def test_wrapped_prefixed_and_safetensors_files(resnet18_file, tmp_path):
    from safetensors.torch import save_file

    model, path = resnet18_file
    wrapped = tmp_path / "ckpt.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 3}, wrapped)
    flat = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, flat)
    images = _images(2)
    expected = load_embedder("resnet18", weights=str(path)).embed(images)
    for other in (wrapped, flat):
        np.testing.assert_array_equal(load_embedder("resnet18", weights=str(other)).embed(images), expected)


def test_a_different_classifier_head_is_dropped(tmp_path):
    model = timm.create_model("resnet18", pretrained=False, num_classes=10)
    path = tmp_path / "finetuned.pth"
    torch.save(model.state_dict(), path)
    embedder = load_embedder("resnet18", weights=str(path))
    assert embedder.dim == 512 and embedder.model.num_classes == 0
    assert embedder.embed(_images(1)).shape == (1, 512)


def test_wrong_architecture_is_a_one_line_file_error(resnet18_file):
    _, path = resnet18_file
    with pytest.raises(BadFileError) as info:
        load_embedder("resnet34", weights=str(path))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: --embedder-weights: weights do not match timm 'resnet34': ")
    assert "missing keys (e.g. layer1.2.conv1.weight)" in message


def test_names_and_missing_weights(tmp_path):
    assert load_embedder("none") is None
    with pytest.raises(BadOptionError, match="--embedder: unknown timm model 'resnet9000'"):
        load_embedder("resnet9000")
    with pytest.raises(BadOptionError, match="--embedder-weights: 'resnet50' needs a weights file"):
        load_embedder("resnet50")
    with pytest.raises(BadFileError, match="no such file"):
        load_embedder("resnet18", weights=str(tmp_path / "missing.pth"))
