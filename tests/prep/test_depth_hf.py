"""The ``hf`` estimator on tiny randomly initialised transformers models saved with save_pretrained (3DGP ref §7.3)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from stages.common.compat import ensure_torchvision
from stages.common.errors import BadFileError, BadOptionError
from stages.prep.depth import load_depth_estimator
from stages.prep.depth.base import sha256_file
from stages.prep.depth.hf import output_kind_of

ensure_torchvision()
import transformers  # noqa: E402 - optional for users, a pinned dev/test dependency here (pyproject [dev])


def _tiny_depth_anything(depth_estimation_type: str = "relative"):
    backbone = transformers.Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=14,
        image_size=56,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )
    config = transformers.DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=32,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
        depth_estimation_type=depth_estimation_type,
    )
    return transformers.AutoModelForDepthEstimation.from_config(config).eval()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A Depth-Anything folder laid out as on the hub: config.json, model.safetensors, preprocessor_config.json."""
    import torch

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("hf") / "depth-anything-tiny"
    _tiny_depth_anything().save_pretrained(folder)
    processor = transformers.DPTImageProcessor(
        size={"height": 56, "width": 56}, keep_aspect_ratio=False, ensure_multiple_of=14, do_pad=False
    )
    processor.save_pretrained(folder)
    return folder


def test_hf_round_trip_matches_the_in_memory_model(model_dir):
    import torch

    estimator = load_depth_estimator("hf", str(model_dir))
    assert estimator.name == "hf"
    assert estimator.output_kind == "disparity->depth"
    assert estimator.version.startswith("hf:depth_anything (DepthAnythingForDepthEstimation, depth-anything-tiny)")
    assert estimator.weights_sha256 == sha256_file(model_dir / "model.safetensors")

    images = np.random.default_rng(0).integers(0, 256, size=(3, 40, 50, 3), dtype=np.uint8)
    depth = estimator.predict(images)
    assert depth.shape == (3, 40, 50) and depth.dtype == np.float32
    assert np.isfinite(depth).all() and depth.min() > 0

    reference = transformers.AutoModelForDepthEstimation.from_pretrained(model_dir, local_files_only=True).eval()
    processor = transformers.AutoImageProcessor.from_pretrained(model_dir, local_files_only=True)
    with torch.no_grad():
        raw = reference(**processor(images=list(images[:1]), return_tensors="pt")).predicted_depth  # [1, 56, 56]
    raw = processor.post_process_depth_estimation(
        type("Out", (), {"predicted_depth": raw})(), target_sizes=[(40, 50)]
    )[0]["predicted_depth"].numpy()
    # larger disparity = nearer: the estimator's depth must order pixels exactly opposite to the raw output
    order = np.argsort(raw.ravel(), kind="stable")
    assert np.all(np.diff(depth[0].ravel()[order]) <= 1e-6)


def test_output_kind_follows_the_config():
    assert output_kind_of(transformers.DPTConfig()) == "disparity->depth"
    assert output_kind_of(transformers.ZoeDepthConfig()) == "depth"
    assert output_kind_of(transformers.DepthAnythingConfig(depth_estimation_type="metric")) == "depth"
    assert output_kind_of(transformers.DepthAnythingConfig(depth_estimation_type="relative")) == "disparity->depth"


def test_hf_missing_folder_and_config(tmp_path):
    with pytest.raises(BadOptionError, match="--depth-weights"):
        load_depth_estimator("hf")
    with pytest.raises(BadFileError, match="no such folder"):
        load_depth_estimator("hf", str(tmp_path / "nothing"))
    with pytest.raises(BadFileError, match="no config.json"):
        load_depth_estimator("hf", str(tmp_path))


def test_hf_weights_that_do_not_fit_the_config(model_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(model_dir, bad)
    config = json.loads((bad / "config.json").read_text())
    config["fusion_hidden_size"] = 24
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(BadFileError) as info:
        load_depth_estimator("hf", str(bad))
    assert "weights do not match config.json" in str(info.value) and "\n" not in str(info.value)


def test_hf_missing_tensor_is_refused(model_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    bad = tmp_path / "missing"
    shutil.copytree(model_dir, bad)
    tensors = load_file(bad / "model.safetensors")
    dropped = sorted(tensors)[0]
    del tensors[dropped]
    save_file(tensors, bad / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(BadFileError, match=r"1 missing tensors"):
        load_depth_estimator("hf", str(bad))
