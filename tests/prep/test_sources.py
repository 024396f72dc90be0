"""Each prep source on small inputs written by the test: toy, folder, zip (official 3DGP layout), imagenet, lsun."""
from __future__ import annotations

import io
import json
import zipfile

import lmdb
import numpy as np
import pytest
import torch
from PIL import Image

from stages.data.dataset import LmdbDataset
from stages.data.lmdb_store import read_meta
from stages.prep.depth import encode_depth_uint16
from prep_testutils import write_image

NO_EMBED = ("--embedder", "none", "--workers", "0")


def test_toy_with_default_embedder(tmp_path, run_cli):
    out = tmp_path / "toy"
    code, stdout, err = run_cli("prep", "toy", out, "--num", 6, "--resolution", 32, "--seed", 3, "--workers", 2,
                                "--preview", tmp_path / "sheet.png")
    assert code == 0, err
    assert "Wrote 6 items" in stdout
    ds = LmdbDataset(out, load_depth_gt=True)
    from stages.prep.toy import TOY_CLASSES, render_toy_item

    assert len(ds) == 6 and ds.class_names == list(TOY_CLASSES) and ds.embedding_dim == 1280
    assert ds.meta["depth"]["name"] == "toy" and ds.meta["has_depth_gt"]
    for i in (0, 5):
        item, ref = ds[i], render_toy_item(3, i, 32)
        assert torch.equal(item["image"], torch.from_numpy(ref.image).permute(2, 0, 1))  # lossless
        assert item["label"] == ref.label
        expected = encode_depth_uint16(ref.depth_est).astype(np.float32) / 65536 * 2 - 1
        np.testing.assert_array_equal(item["depth"][0].numpy(), expected)
        np.testing.assert_array_equal(item["depth_gt"][0].numpy(), ref.depth_gt)
        assert torch.isfinite(item["embedding"]).all() and item["embedding"].abs().sum() > 0
    sheet = Image.open(tmp_path / "sheet.png")
    assert sheet.size[0] > 6 * 32 and sheet.size[1] >= 3 * 32  # images + estimated + GT depth rows


def test_folder_recursive_sorted_unlabelled(tmp_path, run_cli):
    src = tmp_path / "imgs"
    write_image(src / "b" / "z.jpg", (48, 32), (10, 200, 10))
    write_image(src / "a.png", (32, 48), (200, 10, 10))
    write_image(src / "b" / "c" / "y.webp", (40, 40), (10, 10, 200))
    (src / "notes.txt").write_text("not an image, ignored")
    code, _, err = run_cli("prep", "folder", src, tmp_path / "out", "--resolution", 16, *NO_EMBED)
    assert code == 0, err
    ds = LmdbDataset(tmp_path / "out")
    assert [ds.source_of(i) for i in range(len(ds))] == ["a.png", "b/c/y.webp", "b/z.jpg"]
    assert not ds.has_depth and ds.num_classes == 0 and ds.embedding_dim == 0  # auto depth -> none here
    item = ds[0]
    assert item["label"] == -1 and "depth" not in item and "embedding" not in item
    assert item["image"][:, 8, 8].tolist() == [200, 10, 10]


def _official_zip(tmp_path):
    """An official-style 3DGP zip: <root>/<class>/<name>.png + <name>_depth.png, and dataset.json with labels."""
    root = "dogs_256_with_depth"
    path = tmp_path / f"{root}.zip"
    depths = {}
    with zipfile.ZipFile(path, "w") as archive:
        for i, (cls, label) in enumerate([("n02085620", 0), ("n02085620", 0), ("n02099601", 1)]):
            name = f"{cls}/img_{i}"
            buf = io.BytesIO()
            Image.new("RGB", (24, 16), (40 * i, 100, 200)).save(buf, format="PNG")
            archive.writestr(f"{root}/{name}.png", buf.getvalue())
            depth = np.tile(np.linspace(1000 * (i + 1), 30000, 24).astype(np.uint16).astype(np.float32), (16, 1))
            depths[name + ".png"] = depth
            buf = io.BytesIO()
            Image.fromarray(depth.astype(np.uint16)).save(buf, format="PNG")
            archive.writestr(f"{root}/{name}_depth.png", buf.getvalue())
        labels = [[f"{root}/n02085620/img_0.png", 0], [f"{root}/n02085620/img_1.png", 0],
                  [f"{root}/n02099601/img_2.png", 1]]
        archive.writestr(f"{root}/dataset.json", json.dumps({"labels": labels}))
    return path, depths


@pytest.mark.parametrize("command", ["zip", "folder"])
def test_official_zip_layout(tmp_path, run_cli, command):
    src, depths = _official_zip(tmp_path)
    out = tmp_path / "out"
    code, _, err = run_cli("prep", command, src, out, "--resolution", 8, *NO_EMBED)
    assert code == 0, err
    ds = LmdbDataset(out)
    assert ds.meta["depth"]["name"] == "precomputed"  # auto: _depth.png files exist
    assert ds.meta["source"]["root_stripped"] == "dogs_256_with_depth"
    assert [ds.source_of(i) for i in range(3)] == ["n02085620/img_0.png", "n02085620/img_1.png", "n02099601/img_2.png"]
    assert [ds[i]["label"] for i in range(3)] == [0, 0, 1] and ds.class_names == ["0", "1"]
    assert ds.label_counts.tolist() == [2, 1]
    for i, name in enumerate(["n02085620/img_0.png", "n02085620/img_1.png", "n02099601/img_2.png"]):
        full = Image.fromarray(depths[name], "F")  # 24 x 16: the centre crop is the box (4, 0, 20, 16)
        resized = np.asarray(full.resize((8, 8), Image.Resampling.LANCZOS, box=(4, 0, 20, 16)))
        expected = encode_depth_uint16(np.maximum(resized, 0)).astype(np.float32) / 65536 * 2 - 1
        np.testing.assert_array_equal(ds[i]["depth"][0].numpy(), expected)
        assert ds[i]["depth"][0, 0, -1] > ds[i]["depth"][0, 0, 0]  # right is farther in the source map


def test_folder_depth_none_overrides_precomputed(tmp_path, run_cli):
    src, _ = _official_zip(tmp_path)
    code, _, err = run_cli("prep", "zip", src, tmp_path / "out", "--resolution", 8, "--depth-model", "none", *NO_EMBED)
    assert code == 0, err
    assert read_meta(tmp_path / "out")["depth"] is None


def _imagenet_root(tmp_path):
    root = tmp_path / "train"
    for c, synset in enumerate(["n01440764", "n01443537", "n01484850"]):
        for i in range(5):
            write_image(root / synset / f"{synset}_{i}.JPEG", (40, 36), fmt="JPEG", seed=100 * c + i)
    # one obvious outlier per class: a flat grey image among noise
    for synset in ["n01440764", "n01443537"]:
        write_image(root / synset / f"{synset}_9.JPEG", (40, 36), (128, 128, 128), fmt="JPEG")
    mapping = tmp_path / "LOC_synset_mapping.txt"
    mapping.write_text("n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\nn01484850 great white shark\n")
    return root, mapping


def test_imagenet_labels_classes_and_map(tmp_path, run_cli):
    root, mapping = _imagenet_root(tmp_path)
    out = tmp_path / "out"
    code, _, err = run_cli("prep", "imagenet", root, out, "--resolution", 16, "--classes", "n01484850,n01440764",
                           "--synset-map", mapping, "--max-per-class", 3, *NO_EMBED)
    assert code == 0, err
    ds = LmdbDataset(out)
    assert ds.class_names == ["n01440764", "n01484850"] and len(ds) == 6
    assert [ds[i]["label"] for i in range(6)] == [0, 0, 0, 1, 1, 1]
    assert ds.meta["source"]["class_descriptions"] == ["tench, Tinca tinca", "great white shark"]


def test_imagenet_keep_ratio_selection(tmp_path, run_cli):
    root, _ = _imagenet_root(tmp_path)
    out = tmp_path / "out"
    classes_file = tmp_path / "classes.txt"
    classes_file.write_text("# two fish\nn01440764\nn01443537\n")
    code, _, err = run_cli("prep", "imagenet", root, out, "--resolution", 16, "--classes-file", classes_file,
                           "--keep-ratio", 0.5, *NO_EMBED)
    assert code == 0, err
    ds = LmdbDataset(out)
    assert len(ds) == 6 and ds.label_counts.tolist() == [3, 3]  # floor(6 * 0.5) per class
    sources = [ds.source_of(i) for i in range(len(ds))]
    assert sources == sorted(sources)  # kept in input order


def test_lsun_export(tmp_path, run_cli):
    src = tmp_path / "horse_train_lmdb"
    env = lmdb.open(str(src), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i in range(5):
            buf = io.BytesIO()
            Image.new("RGB", (30, 20), (50 * i, 0, 0)).save(buf, format="WEBP", lossless=True)
            txn.put(f"{i:04x}aa".encode(), buf.getvalue())
        txn.put(b"0002bb", b"garbage, not an image")
    env.close()
    code, _, err = run_cli("prep", "lsun", src, tmp_path / "out", "--resolution", 8, "--max-images", 4, *NO_EMBED)
    assert code == 0, err
    assert "skipped 1" in err
    ds = LmdbDataset(tmp_path / "out")
    assert [ds.source_of(i) for i in range(len(ds))] == ["0000aa", "0001aa", "0002aa"]  # key order, first 4 keys
    assert [ds[i]["image"][0, 4, 4].item() for i in range(3)] == [0, 50, 100]
    report = json.loads((tmp_path / "out" / "prep_report.json").read_text())
    assert report["skipped"][0]["source"] == "0002bb" and "not an image" in report["skipped"][0]["reason"]
