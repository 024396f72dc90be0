"""The dataset format: writer/reader round trip, mirroring, DataLoader workers, version and field errors."""
from __future__ import annotations

import json

import lmdb
import numpy as np
import pytest
import torch

from stages.common.errors import DataFormatError
from stages.data.dataset import LmdbDataset
from stages.data.format import (
    FORMAT_VERSION,
    META_KEY,
    PROGRESS_KEY,
    REQUIRED_META_FIELDS,
    encode_depth_gt,
    encode_depth_png,
    encode_embedding,
    encode_image_png,
    item_key,
    pack_item,
    unpack_item,
)
from stages.data.lmdb_store import DatasetWriter, open_readonly, read_meta, release_readonly
from stages.nn.camera_prior import CameraPrior
from stages.nn.inputs import make_generator, sample_generator_inputs

RES, NUM, DIM = 8, 5, 6


def _arrays(i: int):
    rng = np.random.default_rng(i)
    image = rng.integers(0, 256, (RES, RES, 3), dtype=np.uint8)
    depth = rng.integers(0, 60001, (RES, RES), dtype=np.uint16)
    embedding = rng.standard_normal(DIM).astype(np.float32)
    depth_gt = rng.uniform(1, 5, (RES, RES)).astype(np.float32)
    return image, depth, embedding, depth_gt


def _meta(**overrides):
    meta = {
        "format_version": FORMAT_VERSION, "resolution": RES, "num_items": NUM, "class_names": ["a", "b", "c"],
        "label_counts": [2, 2, 1], "source": {"kind": "test", "path": None}, "prep_args": {"x": 1},
        "prep_command": "3dgp prep test", "depth": {"name": "t", "version": "1", "weights_sha256": None,
        "output_kind": "depth"}, "has_depth_gt": True, "embedder": {"name": "e", "dim": DIM, "weights_sha256": "0"},
        "num_skipped": 0, "created": "2026-01-01T00:00:00Z", "code_version": "test",
    }
    meta.update(overrides)
    return meta


@pytest.fixture
def dataset_dir(tmp_path):
    path = tmp_path / "ds"
    writer = DatasetWriter(path)
    puts = {}
    for i in range(NUM):
        image, depth, embedding, depth_gt = _arrays(i)
        blobs = {"image": encode_image_png(image), "depth": encode_depth_png(depth),
                 "embedding": encode_embedding(embedding), "depth_gt": encode_depth_gt(depth_gt)}
        puts[item_key(i)] = pack_item(blobs, [0, 0, 1, 1, 2][i], f"src/{i}.png")
    writer.commit(puts, {PROGRESS_KEY: {"next_unit": NUM}})
    writer.finish(_meta())
    writer.close()
    return path


def test_pack_unpack_round_trip():
    value = pack_item({"image": b"abc", "embedding": b"\x00\x01", "depth": None}, None, "x.jpg")
    header, blobs = unpack_item(value)
    assert header["label"] is None and header["source"] == "x.jpg"
    assert {k: bytes(v) for k, v in blobs.items()} == {"image": b"abc", "embedding": b"\x00\x01"}
    with pytest.raises(ValueError):
        unpack_item(value + b"junk")


def test_round_trip_values(dataset_dir):
    ds = LmdbDataset(dataset_dir, load_depth_gt=True)
    assert len(ds) == NUM and ds.num_classes == 3 and ds.has_depth and ds.embedding_dim == DIM
    for i in range(NUM):
        image, depth, embedding, depth_gt = _arrays(i)
        item = ds[i]
        assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, RES, RES)
        assert torch.equal(item["image"], torch.from_numpy(image).permute(2, 0, 1))
        expected_depth = depth.astype(np.float32) / 65536 * 2 - 1  # 3DGP ref §3.3
        assert item["depth"].shape == (1, RES, RES)
        np.testing.assert_array_equal(item["depth"][0].numpy(), expected_depth)
        np.testing.assert_allclose(item["embedding"].numpy(), embedding, rtol=1e-3, atol=1e-3)  # float16
        np.testing.assert_array_equal(item["depth_gt"][0].numpy(), depth_gt)
        assert item["label"] == [0, 0, 1, 1, 2][i] and item["index"] == i and item["mirrored"] is False
    assert ds.source_of(3) == "src/3.png"
    # bookkeeping keys are gone once the meta record is in
    with open_readonly(dataset_dir).begin() as txn:
        assert txn.get(PROGRESS_KEY) is None and txn.get(META_KEY) is not None


def test_depth_range_golden(dataset_dir):
    item = LmdbDataset(dataset_dir)[0]
    assert -1.0 <= float(item["depth"].min()) and float(item["depth"].max()) < 0.84  # 60000 -> 0.831


def test_mirror_flips_image_and_depth_not_embedding(dataset_dir):
    ds = LmdbDataset(dataset_dir, mirror=True, load_depth_gt=True)
    assert len(ds) == 2 * NUM
    for i in range(NUM):
        a, b = ds[i], ds[i + NUM]
        assert b["mirrored"] is True and b["index"] == i and b["label"] == a["label"]
        assert torch.equal(b["image"], a["image"].flip(-1))
        assert torch.equal(b["depth"], a["depth"].flip(-1))
        assert torch.equal(b["depth_gt"], a["depth_gt"].flip(-1))
        assert torch.equal(b["embedding"], a["embedding"])
    with pytest.raises(IndexError):
        ds[2 * NUM]


def test_multi_worker_dataloader(dataset_dir):
    ds = LmdbDataset(dataset_dir, mirror=True)
    ds[0]  # opens the env in the parent: workers must still open their own
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, shuffle=False)
    seen = []
    for batch in loader:
        assert batch["image"].shape[1:] == (3, RES, RES)
        seen += [(int(i), bool(m)) for i, m in zip(batch["index"], batch["mirrored"])]
    assert sorted(seen) == sorted([(i, m) for i in range(NUM) for m in (False, True)])


def test_label_distribution(dataset_dir):
    ds = LmdbDataset(dataset_dir)
    np.testing.assert_allclose(ds.label_probs, [0.4, 0.4, 0.2])
    labels = sample_generator_inputs(2000, 4, ds.num_classes, CameraPrior(), label_probs=ds.label_probs,
                                     generator=make_generator(0)).labels.numpy()  # fake classes (stages.nn.inputs)
    assert set(labels.tolist()) == {0, 1, 2}
    assert abs((labels == 2).mean() - 0.2) < 0.04


def _rewrite_meta(path, meta):
    release_readonly(path)
    env = lmdb.open(str(path))
    with env.begin(write=True) as txn:
        txn.put(META_KEY, json.dumps(meta).encode())
    env.close()


def test_unknown_version_is_a_clear_error(dataset_dir):
    _rewrite_meta(dataset_dir, _meta(format_version=99))
    with pytest.raises(DataFormatError, match=r"unknown dataset format version 99") as info:
        LmdbDataset(dataset_dir)
    assert str(dataset_dir) in str(info.value)


def test_missing_field_is_a_clear_error(dataset_dir):
    meta = _meta()
    del meta["embedder"]
    _rewrite_meta(dataset_dir, meta)
    with pytest.raises(DataFormatError, match="lacks field.*embedder"):
        read_meta(dataset_dir)


def test_missing_item_field_is_a_clear_error(tmp_path):
    path = tmp_path / "ds"
    writer = DatasetWriter(path)
    writer.commit({item_key(0): pack_item({"image": encode_image_png(_arrays(0)[0])}, 0, "x")})
    writer.finish(_meta(num_items=1, label_counts=[1, 0, 0]))  # says there is depth and an embedding: none here
    writer.close()
    with pytest.raises(DataFormatError, match="item 0 disagrees with the meta record: it has no depth map"):
        LmdbDataset(path)  # checked when the dataset is opened, not at the first read


@pytest.mark.parametrize("field, value, message", [
    ("num_items", "5", "num_items must be an integer >= 0, got '5'"),
    ("resolution", 16.0, "resolution must be a positive integer"),
    ("label_counts", [2, 2], "label_counts must be 3 item counts"),
    ("embedder", {"name": "e", "dim": "8"}, "embedder must be null or an object with a positive integer dim"),
    ("has_depth_gt", "yes", "has_depth_gt must be true or false"),
])
def test_meta_record_types_are_checked(tmp_path, field, value, message):
    path = tmp_path / "ds"
    writer = DatasetWriter(path)
    with pytest.raises(DataFormatError, match=message):
        writer.finish(_meta(**{field: value}))  # the writer refuses it ...
    writer.close()


@pytest.mark.parametrize("change, message", [
    ({"resolution": 2 * RES}, f"its image is {RES}x{RES} but the resolution is {2 * RES}"),
    ({"num_items": NUM - 1, "label_counts": [1, 1, 1]}, f"item {NUM - 1} disagrees with the meta record: it exists"),
    ({"num_items": NUM + 1}, f"item {NUM} disagrees with the meta record: it is missing"),
    ({"embedder": {"name": "e", "dim": DIM + 1, "weights_sha256": "0"}}, f"embedding has {DIM} values but the "
                                                                         f"embedder dim is {DIM + 1}"),
])
def test_meta_record_is_checked_against_items(dataset_dir, change, message):
    import json

    import lmdb

    from stages.data.format import META_KEY

    env = lmdb.open(str(dataset_dir))  # ... and a reader refuses a record changed afterwards
    with env.begin(write=True) as txn:
        meta = json.loads(txn.get(META_KEY))
        meta.update(change)
        txn.put(META_KEY, json.dumps(meta).encode())
    env.close()
    with pytest.raises(DataFormatError, match=message):
        LmdbDataset(dataset_dir)


def test_unfinished_dataset_is_refused(tmp_path):
    path = tmp_path / "ds"
    writer = DatasetWriter(path)
    writer.commit({item_key(0): b"x"})
    writer.close()
    with pytest.raises(DataFormatError, match="did not finish"):
        LmdbDataset(path)
    assert set(REQUIRED_META_FIELDS) == set(_meta())
