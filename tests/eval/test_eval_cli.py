"""`3dgp eval` as a user runs it: cards, metrics.jsonl, run directories, image sets and bad inputs (issue 8)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stages.common.stats import read_jsonl

CARD_KEYS = {"format", "version", "created", "metrics", "checkpoint", "fakes", "reference", "detector",
             "code_version", "torch", "device", "wall_seconds", "command"}


def _images_sha256(dataset_path: str) -> str:
    """sha256 of the hex sha256 of each block of HASH_BLOCK stored images, in order (stages.metrics.compute)."""
    from stages.data.dataset import LmdbDataset
    from stages.metrics.shard import HASH_BLOCK

    ds = LmdbDataset(dataset_path)
    blocks = []
    for start in range(0, ds.num_items, HASH_BLOCK):
        digest = hashlib.sha256()
        for i in range(start, min(start + HASH_BLOCK, ds.num_items)):
            digest.update(ds[i]["image"].contiguous().numpy().tobytes())
        blocks.append(digest.hexdigest())
    return hashlib.sha256("".join(blocks).encode()).hexdigest()


def _write_pngs(folder: Path, count: int, seed: int, size: int = 32) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(count):
        base = np.stack([np.sin(6 * xx + rng.rand() * 6), np.cos(5 * yy + rng.rand() * 6), xx * yy], -1)
        img = ((base + 1) * 127.5 * rng.uniform(0.5, 1.0)).clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i:03d}.png")
    return folder


def test_snapshot_eval_writes_a_complete_card(eval_run, eval_dataset, run_cli):
    snap = sorted(eval_run.glob("snapshot-*.pt"))[-1]
    code, out, err = run_cli("eval", snap, "--metrics", "fid12,kid12,nfs4,mvc2,depth4,camera,is", "--batch", "4")
    assert code == 0, err
    assert "IS unavailable: needs --is-weights" in out  # a clear line, not a failure
    card_path = snap.with_suffix(".metrics.json")
    assert f"metric card: {card_path}" in out.replace("\n", "")
    card = json.loads(card_path.read_text())
    assert CARD_KEYS <= set(card) and card["format"] == "3dgp-metric-card" and card["device"] == "cpu"
    metrics = {m["name"]: m for m in card["metrics"]}
    assert list(metrics) == ["fid12", "kid12", "nfs4", "mvc2", "depth4", "camera", "is"]
    assert metrics["fid12"]["value"] > 0 and metrics["fid12"]["num_fakes"] == 12 and metrics["fid12"]["num_reals"] == 12
    assert metrics["kid12"]["details"]["num_subsets"] == 100 and metrics["kid12"]["details"]["subset_size"] == 12
    assert 1 <= metrics["nfs4"]["value"] <= 64 and metrics["nfs4"]["num_fakes"] == 4
    empty = metrics["nfs4"]["details"]["empty_ray_fraction"]
    assert 0 <= empty <= 1 and f"emptied by the density cut {empty:.0%}" in out.replace("\n", "")
    assert metrics["mvc2"]["value"] is not None and metrics["mvc2"]["num_fakes"] == 2
    assert metrics["depth4"]["value"] >= 0 and "flat_baseline" in metrics["depth4"]["details"]
    assert metrics["camera"]["details"]["yaw/prior_std"] > 0.5  # the tiny preset's prior spans +-90 deg of yaw
    assert metrics["is"]["value"] is None and metrics["is"]["unavailable"].startswith("IS unavailable")
    # Someone who reads the card can recompute the number.
    assert card["checkpoint"]["sha256"] == hashlib.sha256(snap.read_bytes()).hexdigest()
    assert card["checkpoint"]["kimg"] == pytest.approx(0.004)
    ref = card["reference"]
    assert ref["path"] == eval_dataset and ref["count"] == 12 and ref["resolution"] == 32 and ref["mirror"] is False
    assert ref["images_sha256"] == _images_sha256(eval_dataset)
    assert card["detector"]["sha256"].startswith("7ff4a85c") and card["detector"]["resize"] == "stylegan"
    fakes = card["fakes"]
    assert fakes["seed"] == 0 and fakes["truncation"] == 1.0 and "adaptor" in fakes["camera_sampling"]
    line = read_jsonl(eval_run / "metrics.jsonl")[-1]
    assert line["snapshot"] == snap.name and line["fid12"] == metrics["fid12"]["value"] and "is" not in line
    # Same seed -> same numbers; the reference statistics now come from the cache.
    code, out, _ = run_cli("eval", snap, "--metrics", "fid12,nfs4", "--batch", "4", "--out", card_path.parent / "b.json")
    again = json.loads((card_path.parent / "b.json").read_text())
    assert code == 0 and again["metrics"][0]["value"] == pytest.approx(metrics["fid12"]["value"], rel=1e-6)
    assert again["metrics"][1]["value"] == pytest.approx(metrics["nfs4"]["value"], rel=1e-6)
    assert again["reference"]["cache"].endswith(".npz") and again["reference"]["images_sha256"] == ref["images_sha256"]


def test_run_directory_all_snapshots_make_a_curve(eval_run, run_cli, tmp_path):
    jsonl = eval_run / "metrics.jsonl"
    before = jsonl.read_bytes() if jsonl.exists() else b""
    code, out, err = run_cli("eval", eval_run, "--snapshots", "all", "--metrics", "nfs4,camera",
                             "--out", tmp_path / "cards")
    assert code == 0, err
    assert (jsonl.read_bytes() if jsonl.exists() else b"") == before  # --out: written only where asked
    assert sorted(p.name for p in (tmp_path / "cards").iterdir()) == [
        "snapshot-000000.000.metrics.json", "snapshot-000000.004.metrics.json"]
    code, out, err = run_cli("eval", eval_run, "--snapshots", "all", "--metrics", "camera")
    assert code == 0, err
    lines = read_jsonl(jsonl)[len(before.splitlines()):]
    assert [line["kimg"] for line in lines] == [0.0, 0.004]  # without --out: the run's curve
    code, out, _ = run_cli("eval", eval_run, "--snapshots", "latest", "--metrics", "camera", "--out", tmp_path / "l.json")
    assert code == 0 and json.loads((tmp_path / "l.json").read_text())["checkpoint"]["kimg"] == pytest.approx(0.004)


def test_image_sets_match_clean_fid(tmp_path, run_cli):
    """`--fakes A --data B --resize clean` uses clean-fid's exact features and KID; FID uses StyleGAN's biased
    covariance with clean-fid's own Frechet function."""
    from stages.common.compat import ensure_torchvision

    ensure_torchvision()
    import torch
    from cleanfid import fid as cfid

    from stages.metrics.detector import load_inception

    a, b = _write_pngs(tmp_path / "a", 10, seed=1), _write_pngs(tmp_path / "b", 12, seed=2)
    code, out, err = run_cli("eval", "--fakes", a, "--data", b, "--resize", "clean", "--resolution", 32,
                             "--metrics", "fid,kid", "--out", tmp_path / "card.json")
    assert code == 0, err
    card = json.loads((tmp_path / "card.json").read_text())
    ours = {m["name"]: m["value"] for m in card["metrics"]}
    assert card["detector"]["resize"] == "clean" and card["metrics"][0]["num_fakes"] == 10
    assert "divide by N" in card["detector"]["statistics"] and "N - 1" in card["detector"]["statistics"]
    assert card["fakes"]["unreadable"] == 0 and card["tf32"] is False
    net = load_inception(resize="clean").net

    def extractor(batch):
        with torch.no_grad():
            return net((batch - 128) / 128)

    feats = [cfid.get_folder_features(str(d), extractor, num_workers=0, batch_size=8, device=torch.device("cpu"),
                                      mode="clean", verbose=False) for d in (a, b)]
    mu = [f.mean(axis=0) for f in feats]
    sigma = [np.cov(f, rowvar=False, bias=True) for f in feats]  # StyleGAN3 / the paper: divide by N
    assert ours["fid"] == pytest.approx(cfid.frechet_distance(mu[0], sigma[0], mu[1], sigma[1]), abs=1e-3)
    assert ours["kid"] == pytest.approx(cfid.kernel_distance(feats[0], feats[1]), abs=1e-3)  # all rows: exact
    # A set against itself.
    code, out, _ = run_cli("eval", "--fakes", b, "--data", b, "--resolution", 32, "--metrics", "fid",
                           "--out", tmp_path / "self.json")
    assert code == 0 and abs(json.loads((tmp_path / "self.json").read_text())["metrics"][0]["value"]) < 1e-3


def test_bad_inputs_are_one_line(eval_run, eval_dataset, tmp_path, run_cli):
    from tests.helpers.toy_data import make_toy_dataset

    snap = sorted(eval_run.glob("snapshot-*.pt"))[-1]
    other = make_toy_dataset(tmp_path / "res64", num=4, resolution=64)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    cases = [
        (("eval", tmp_path / "missing.pt"), "no such snapshot file or run directory"),
        (("eval", snap, "--data", other, "--metrics", "fid8"), "resolution 64 differs from the checkpoint's 32"),
        (("eval", "--fakes", empty, "--data", eval_dataset), "--fakes: contains no image files"),
        (("eval", snap, "--metrics", "fid8,sharpness"), "--metrics: unknown metric 'sharpness'"),
        (("eval",), "nothing to evaluate"),
        (("eval", snap, "--fakes", empty), "not both"),
        (("eval", snap, "--resize", "bilinear"), "--resize: expected one of stylegan, clean"),
        (("eval", snap, "--out", ""), "--out: an empty path"),
        (("eval", "--fakes", empty, "--data", ""), "--data: an empty path"),
        (("eval", snap, "--metrics", ""), "--metrics: no metric given"),
        (("eval", snap, "--metrics", " , "), "--metrics: no metric given"),
        (("eval", snap, "--metrics", "nfs99999999999999"), "exceed the limit of 200,000 (set THREEDGP_MAX_SAMPLES"),
        (("eval", snap, "--num-gen", "999999999"), "--num-gen: 999,999,999 samples exceed the limit"),
        (("eval", snap, "--num-gen", "1"), "--num-gen: must be >= 2"),
        (("eval", snap, "--batch", "0"), "--batch: must be >= 1"),
        (("eval", snap, "--seed", str(2**32)), "--seed: must be in [0, 4294967295]"),
        (("eval", snap, "--gpus", "0"), "--gpus: must be in [1, 1024]"),
        (("eval", snap, "--device", "tpu"), "--device: expected auto, cpu, cuda, cuda:N or mps"),
        (("eval", snap, "--metrics", "nfs4", "--out", "/proc/card.json"), "--out: /proc/card.json: cannot write"),
        (("eval", "--fakes", empty, "--metrics", "fid"), "--data: fid needs a reference set"),
        (("eval", snap, "--metrics", "fid8", "--inception", tmp_path / "nope.pt"), "--inception: no such file"),
        (("eval", snap, "--metrics", "is8", "--is-weights", tmp_path / "nope.pt"), "--is-weights"),
    ]
    for args, message in cases:
        code, out, err = run_cli(*args)
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, (args, err)


def _untimed(card: dict) -> dict:
    """A card without what legitimately differs between two runs: times, the command line, the process count."""
    card = {k: v for k, v in card.items() if k not in ("created", "wall_seconds", "command", "processes")}
    card["metrics"] = [{k: v for k, v in m.items() if k != "seconds"} for m in card["metrics"]]
    return card


@pytest.mark.slow
def test_cards_do_not_depend_on_the_process_count_or_the_batch(eval_run, run_cli, tmp_path):
    """Issue 18 acceptance 2 and issue 19 §4: --gpus 2 (two CPU processes, each its share) and an obsolete --batch
    give the card of one process, bit for bit; TF32 is recorded off."""
    snap = sorted(eval_run.glob("snapshot-*.pt"))[-1]
    metrics = "fid64,kid64,nfs8,mvc8,depth8,camera"
    cards = {}
    for name, extra in (("one", ()), ("two", ("--gpus", "2")), ("batch3", ("--batch", "3"))):
        code, out, err = run_cli("eval", snap, "--metrics", metrics, "--out", tmp_path / f"{name}.json", *extra)
        assert code == 0, err
        cards[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert cards["two"]["processes"] == 2 and cards["one"]["processes"] == 1
    assert cards["one"]["tf32"] is False and cards["one"]["fakes"]["render_unit"] == 4
    for name in ("two", "batch3"):
        for m, n in zip(cards["one"]["metrics"], cards[name]["metrics"]):
            assert {k: v for k, v in m.items() if k != "seconds"} == {k: v for k, v in n.items() if k != "seconds"}, name
    assert _untimed(cards["two"]) == _untimed(cards["one"]) == _untimed(cards["batch3"])


def test_images_that_do_not_decode_are_counted_and_said(tmp_path, run_cli):
    """Issue 19 §4: a folder where only 3 of 7 files decode is not scored without a word."""
    folder = _write_pngs(tmp_path / "mixed", 3, seed=4)
    for i in range(4):
        (folder / f"broken{i}.png").write_bytes(b"not an image")
    code, out, err = run_cli("eval", "--fakes", folder, "--data", folder, "--resolution", 32, "--metrics", "fid",
                             "--out", tmp_path / "card.json")
    assert code == 0, err
    card = json.loads((tmp_path / "card.json").read_text())
    assert card["fakes"]["unreadable"] == 4 and card["reference"]["unreadable"] == 4
    assert card["metrics"][0]["num_fakes"] == 3 and "4 fake image(s) did not decode" in err.replace("\n", " ")
    one = _write_pngs(tmp_path / "one", 1, seed=5)
    code, _, err = run_cli("eval", "--fakes", one, "--data", folder, "--resolution", 32, "--metrics", "fid",
                           "--out", tmp_path / "one.json")
    assert code == 1 and "FID is undefined with 1 fake" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "one.json").exists()
