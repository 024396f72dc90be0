"""Issue 11: ``PrepConfig`` = the shared options + one small dataclass per source; fingerprints written before the
split (one flat record holding every source's options) still match, so older datasets stay "already complete"."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from stages.common.errors import BadOptionError
from stages.prep.config import (
    SOURCE_OPTIONS,
    FolderOptions,
    ImagenetOptions,
    LsunOptions,
    PrepConfig,
    ToyOptions,
    args_match,
    describe_differences,
)


def test_make_routes_each_option_to_its_source_and_refuses_another_sources_option(tmp_path):
    cfg = PrepConfig.make("imagenet", tmp_path / "out", tmp_path / "src", keep_ratio=0.5, classes=("n1",),
                          resolution=64)
    assert isinstance(cfg.options, ImagenetOptions) and cfg.options.keep_ratio == 0.5 and cfg.resolution == 64
    assert isinstance(PrepConfig.make("toy", tmp_path / "o").options, ToyOptions)
    assert isinstance(PrepConfig.make("zip", tmp_path / "o", tmp_path / "s.zip").options, FolderOptions)
    assert isinstance(PrepConfig.make("lsun", tmp_path / "o", tmp_path / "s").options, LsunOptions)
    with pytest.raises(BadOptionError, match="applies only to the imagenet source") as err:
        PrepConfig.make("toy", tmp_path / "o", keep_ratio=0.5)
    assert err.value.option == "--keep-ratio"
    with pytest.raises(BadOptionError, match="applies only to the folder and zip sources"):
        PrepConfig.make("lsun", tmp_path / "o", tmp_path / "s", max_classes=3)
    with pytest.raises(BadOptionError, match="unknown option"):
        PrepConfig.make("toy", tmp_path / "o", no_such=1)
    with pytest.raises(BadOptionError, match="--num"):  # the source's own checks run on construction
        PrepConfig.make("toy", tmp_path / "o", num=0)
    with pytest.raises(BadOptionError, match="expected ToyOptions"):
        PrepConfig(source="toy", out=tmp_path / "o", options=LsunOptions())


def _flat_fingerprint_before_the_split(cfg: PrepConfig) -> dict:
    """What ``prep_args`` wrote before the split: the shared options plus every source's options, flat."""
    flat = {k: v for k, v in cfg.prep_args().items()}
    for cls in SOURCE_OPTIONS.values():
        for f in dataclasses.fields(cls):
            if f.name != "max_classes":  # never in the fingerprint
                flat.setdefault(f.name, list(f.default) if isinstance(f.default, tuple) else f.default)
    return flat


@pytest.mark.parametrize("source,options", [("toy", {"num": 9, "scenes": "simple"}),
                                            ("imagenet", {"keep_ratio": 0.5, "max_per_class": 3}),
                                            ("folder", {"max_images": 7})])
def test_fingerprints_written_before_the_split_still_match(tmp_path, source, options):
    src = None if source == "toy" else tmp_path / "src"
    cfg = PrepConfig.make(source, tmp_path / "out", src, **options)
    old = _flat_fingerprint_before_the_split(cfg)
    assert set(old) > set(cfg.prep_args())  # the new record is smaller: only this source's options
    assert args_match(old, cfg.prep_args()) and args_match(cfg.prep_args(), old)
    changed = PrepConfig.make(source, tmp_path / "out", src, **{**options, "resolution": 128})
    assert not args_match(old, changed.prep_args())
    assert describe_differences(old, changed.prep_args()) == "--resolution 256 -> 128"


def test_prep_args_are_flat_absolute_and_leave_out_how_the_work_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = PrepConfig.make("imagenet", Path("out"), Path("src"), synset_map=Path("map.txt"), workers=3, device="cpu")
    args = cfg.prep_args()
    assert args["synset_map"] == str(tmp_path / "map.txt") and args["src"] == str(tmp_path / "src")
    assert "workers" not in args and "device" not in args and "out" not in args and "options" not in args
    assert args["keep_ratio"] == 1.0 and "num" not in args  # its own options only
    assert "--synset-map" in cfg.command_line() and "--num" not in cfg.command_line()
