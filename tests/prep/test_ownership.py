"""Issue 19 §2: prep deletes or replaces only what it can prove is its own. Another program's LMDB that happens to
hold a ``__meta__`` (or ``__args__`` / ``__progress__``) key, with or without a user's file beside it, at ``OUT`` or
at ``OUT.partial``, with or without ``--overwrite``: one line, exit 1, everything byte-identical, nothing left."""
from __future__ import annotations

import json

import lmdb
import pytest

from test_output_safety import _one_line, _snapshot

TOY = ("--num", 3, "--resolution", 8, "--embedder", "none", "--workers", 0)

# Meta records another program might store; the last one has every field our reader requires, but no marker.
_LOOKALIKE = {"format_version": 1, "resolution": 8, "num_items": 0, "class_names": [], "label_counts": [],
              "source": {"kind": "toy"}, "prep_args": {"source": "toy"}, "prep_command": "3dgp prep toy x",
              "depth": None, "has_depth_gt": False, "embedder": None, "num_skipped": 0, "created": "",
              "code_version": "0"}
FOREIGN = {
    "meta_other_program": {b"__meta__": {"tool": "someone else", "version": 3}},
    "meta_not_an_object": {b"__meta__": [1, 2, 3]},
    "meta_lookalike": {b"__meta__": _LOOKALIKE},
    "args_and_progress": {b"__args__": {"user": "x"}, b"__progress__": {"step": 7}},
}


def _foreign(path, records: dict, user_file: bool, marker: bool = False) -> None:
    env = lmdb.open(str(path), map_size=1 << 20)
    with env.begin(write=True) as txn:
        txn.put(b"mine", b"precious")
        for key, value in records.items():
            txn.put(key, json.dumps(value).encode())
    env.close()
    if user_file:
        (path / "notes.txt").write_text("precious")
    if marker:  # a copied marker proves nothing without our records
        (path / ".3dgp-dataset").write_text('{"format": "3dgp-dataset", "written_by": "3dgp prep"}\n')


@pytest.mark.parametrize("kind", sorted(FOREIGN))
@pytest.mark.parametrize("where", ["out", "partial"])
@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("user_file", [False, True])
def test_foreign_lmdb_with_our_keys_is_refused_and_untouched(tmp_path, run_cli, kind, where, overwrite, user_file):
    out = tmp_path / "toy"
    target = out if where == "out" else tmp_path / "toy.partial"
    _foreign(target, FOREIGN[kind], user_file)
    before = _snapshot(tmp_path)
    code, _, err = run_cli("prep", "toy", out, *TOY, *(("--overwrite",) if overwrite else ()))
    _one_line(code, err, str(target), "not made by 3dgp prep", "left alone")
    assert _snapshot(tmp_path) == before  # byte-identical; no OUT, no OUT.partial, no OUT.lock left


@pytest.mark.parametrize("where", ["out", "partial"])
def test_a_copied_marker_beside_foreign_records_is_not_ownership(tmp_path, run_cli, where):
    out = tmp_path / "toy"
    target = out if where == "out" else tmp_path / "toy.partial"
    _foreign(target, FOREIGN["meta_other_program"], user_file=False, marker=True)
    before = _snapshot(tmp_path)
    code, _, err = run_cli("prep", "toy", out, *TOY, "--overwrite")
    _one_line(code, err, str(target), "__meta__ record is not in 3dgp's dataset format")
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("where", ["out", "partial"])
def test_our_folder_with_a_user_file_in_it_is_not_replaced(tmp_path, run_cli, where):
    out = tmp_path / "toy"
    assert run_cli("prep", "toy", out, *TOY)[0] == 0
    if where == "partial":
        out.rename(tmp_path / "toy.partial")
    target = out if where == "out" else tmp_path / "toy.partial"
    (target / "notes.txt").write_text("precious")
    before = _snapshot(tmp_path)
    code, _, err = run_cli("prep", "toy", out, "--num", 4, *TOY[2:], "--overwrite")
    _one_line(code, err, str(target), "holds files prep does not write: notes.txt")
    assert _snapshot(tmp_path) == before


def test_our_own_dataset_and_partial_are_still_replaced_under_overwrite(tmp_path, run_cli):
    out = tmp_path / "toy"
    assert run_cli("prep", "toy", out, *TOY)[0] == 0
    assert run_cli("prep", "toy", tmp_path / "other", "--num", 4, *TOY[2:])[0] == 0
    (tmp_path / "other").rename(tmp_path / "toy.partial")  # a finished-but-unpublished partial of other arguments
    code, _, err = run_cli("prep", "toy", out, "--num", 5, *TOY[2:], "--overwrite")
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["toy"]
