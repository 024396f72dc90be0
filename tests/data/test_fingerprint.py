"""A dataset's fingerprint and the dataset a run was trained on (issue 19 §3: paths resolve once)."""
from __future__ import annotations

import logging
import shutil

import pytest

from stages.common.errors import BadOptionError
from stages.data import fingerprint as fp
from stages.data.fingerprint import check_run_dataset, dataset_fingerprint, meta_fingerprint, resolve_run_dataset
from stages.data.lmdb_store import read_meta, release_readonly
from tests.helpers.toy_data import make_toy_dataset


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory):
    """Two different datasets that share a folder name (``a/ds32``, ``b/ds32``), as in issue 19 §3."""
    root = tmp_path_factory.mktemp("fp")
    return make_toy_dataset(root / "a" / "ds32", num=4), make_toy_dataset(root / "b" / "ds32", num=6)


@pytest.fixture(autouse=True)
def _fresh_warnings():
    fp._WARNED.clear()


def _config(path, fingerprint) -> dict:
    return {"preset": "tiny", "data": {"path": str(path), "meta_sha256": fingerprint}}


def test_fingerprint_is_the_meta_records_sha256(two_datasets):
    a, b = two_datasets
    assert dataset_fingerprint(a) == meta_fingerprint(read_meta(a)) != dataset_fingerprint(b)
    assert meta_fingerprint({"x": 1, "y": [2]}) == meta_fingerprint({"y": [2], "x": 1})  # key order does not matter


def test_metric_reference_uses_the_same_fingerprint(two_datasets):
    """The metric cache key (DatasetSource.meta_sha256) and the run's fingerprint are one computation."""
    from stages.data.dataset import LmdbDataset
    from stages.metrics.sources import DatasetSource

    a, _ = two_datasets
    assert DatasetSource(LmdbDataset(a)).meta_sha256() == dataset_fingerprint(a)


def test_recorded_dataset_is_used_from_any_folder(two_datasets, monkeypatch):
    a, b = two_datasets
    monkeypatch.chdir(b.parent)  # holds another `ds32`
    assert check_run_dataset(_config(a, dataset_fingerprint(a)), None) == str(a)


def test_missing_or_replaced_dataset_is_one_line(two_datasets, tmp_path):
    a, b = two_datasets
    config = _config(tmp_path / "ds32", dataset_fingerprint(a))
    with pytest.raises(BadOptionError, match=r"^--data: the run's dataset .*/ds32 no longer exists; pass --data PATH"):
        check_run_dataset(config, None)
    shutil.copytree(b, tmp_path / "ds32")  # re-prepped / replaced at the recorded path
    with pytest.raises(BadOptionError) as err:
        check_run_dataset(config, None)
    assert "is not the one the run was trained on" in str(err.value) and "pass --data PATH" in str(err.value)
    assert "\n" not in str(err.value)
    release_readonly(tmp_path / "ds32")


def test_override_points_at_the_moved_dataset(two_datasets, tmp_path, monkeypatch, caplog):
    a, b = two_datasets
    config = _config("/gone/ds32", dataset_fingerprint(a))
    moved = shutil.copytree(a, tmp_path / "moved")
    monkeypatch.chdir(tmp_path)
    assert check_run_dataset(config, "moved") == str(moved)  # absolute
    assert resolve_run_dataset(config, "moved", strict_override=True) == (str(moved), dataset_fingerprint(a))
    with caplog.at_level(logging.WARNING, logger="stages"):  # eval: another reference set is allowed, said once
        assert check_run_dataset(config, str(b)) == str(b)
        assert check_run_dataset(config, str(b)) == str(b)
    assert len([r for r in caplog.records if "is not the dataset the run was trained on" in r.getMessage()]) == 1
    with pytest.raises(BadOptionError, match="add --force-override"):  # resume: refused
        resolve_run_dataset(config, str(b), strict_override=True)
    with pytest.raises(BadOptionError, match="no such dataset directory"):
        check_run_dataset(config, str(tmp_path / "nowhere"))
    release_readonly(moved)


def test_old_run_without_fingerprint_warns_once(two_datasets, monkeypatch, caplog):
    a, _ = two_datasets
    monkeypatch.chdir(a.parent)
    config = _config("ds32", None)  # as typed, no fingerprint: a run from before issue 19
    with caplog.at_level(logging.WARNING, logger="stages"):
        for _ in range(2):
            assert check_run_dataset(config, None) == str(a)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 2  # once for the relative path, once for the missing fingerprint
    assert "relative path 'ds32'" in messages[0] and "records no fingerprint" in messages[1]


def test_no_recorded_dataset_is_one_line():
    with pytest.raises(BadOptionError, match="^--data: the run records no dataset; pass --data PATH$"):
        check_run_dataset({"preset": "tiny", "data": {"path": ""}}, None)
    with pytest.raises(BadOptionError, match="records no dataset"):
        check_run_dataset({}, None)
