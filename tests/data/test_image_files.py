"""Listing and reading image files of a folder or zip (stages.data.image_files), shared by prep and eval."""
from __future__ import annotations

import os
import zipfile

import pytest

from stages.common.errors import BadFileError
from stages.data.decode import Unreadable
from stages.data.image_files import (DEPTH_SUFFIX, ImageFile, image_data, list_image_files, read_zip_member,
                                     walk_files)


def _touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_folder_listing_sorted_root_stripped_depth_paired(tmp_path):
    root = tmp_path / "cats"
    for name in ("cats/b/2.png", "cats/a.jpg", "cats/a_depth.png", "cats/notes.txt", "cats/b/1.PNG"):
        _touch(tmp_path / name)
    listing = list_image_files(root)
    assert listing.prefix == "" and not listing.is_zip
    assert [i.rel for i in listing.images] == ["a.jpg", "b/1.PNG", "b/2.png"]
    assert listing.images[0] == ImageFile("a.jpg", str(root / "a.jpg"), "", str(root / ("a" + DEPTH_SUFFIX)))
    assert listing.images[1].depth is None
    assert "notes.txt" in listing.names and list_image_files(root, max_images=1).images == listing.images[:1]


def test_zip_listing_strips_the_zip_named_folder(tmp_path):
    path = tmp_path / "set.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("set/x.png", b"1")
        archive.writestr("set/x_depth.png", b"2")
        archive.writestr("set/sub/", b"")
    listing = list_image_files(path)
    assert listing.is_zip and listing.prefix == "set/"
    assert listing.images == [ImageFile("x.png", str(path.resolve()), "set/x.png", "set/x_depth.png")]
    assert image_data(listing.images[0]) == b"1"


@pytest.mark.parametrize("case, needle", [("missing", "no such file"), ("txt", "expected a folder or a .zip"),
                                          ("empty", "contains no image files"), ("badzip", "not a readable zip")])
def test_listing_errors_name_the_path(tmp_path, case, needle):
    path = {"missing": tmp_path / "nope", "txt": tmp_path / "a.txt", "empty": tmp_path / "empty",
            "badzip": tmp_path / "bad.zip"}[case]
    if case == "txt":
        _touch(path)
    elif case == "empty":
        path.mkdir()
    elif case == "badzip":
        _touch(path, b"not a zip")
    with pytest.raises(BadFileError, match=needle):
        list_image_files(path)


def test_zip_member_over_the_cap_or_missing_is_unreadable(tmp_path):
    path = tmp_path / "big.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.png", b"\0" * (2 << 20))
    with pytest.raises(Unreadable, match="too large .*the limit is 1 MiB per file"):
        read_zip_member(str(path), "a.png", max_bytes=1 << 20)
    assert len(read_zip_member(str(path), "a.png", max_bytes=2 << 20)) == 2 << 20
    with pytest.raises(Unreadable, match="cannot read from the zip"):
        read_zip_member(str(path), "missing.png")


def test_walk_skips_loops_and_dangling_links(tmp_path):
    _touch(tmp_path / "d" / "a.png")
    os.symlink(tmp_path / "d", tmp_path / "d" / "loop")
    os.symlink(tmp_path / "nowhere", tmp_path / "d" / "dangling.png")
    files, skipped = walk_files(tmp_path / "d")
    assert files == ["a.png"]
    assert [(s.source, s.reason.split(" (")[0]) for s in skipped] == [
        ("dangling.png", "dangling symbolic link"), ("loop", "symbolic link loop")]
