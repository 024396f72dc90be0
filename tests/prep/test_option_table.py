"""Issue 13 §4-§5, table-driven: every `3dgp prep` option fed a wrong type, a zero, a negative, an infinite and a
contradictory value (where such a value exists) gives one line naming the option, exit code 1, and leaves
nothing behind. Values Typer itself cannot parse (``--num abc``) are usage errors, which the app's error boundary
also turns into one line with exit code 1 (issue 13 §5)."""
from __future__ import annotations

import pytest

from prep_testutils import write_image

NO = "nonexistent.pth"  # resolved under tmp_path
USAGE = "usage"  # Typer rejects the value before our code runs

# (source, extra args, text the one line must contain[, USAGE])
CASES = [
    # toy-only options
    ("toy", ["--num", "abc"], "--num", USAGE),
    ("toy", ["--num", "0"], "--num: must be between 1"),
    ("toy", ["--num", "-5"], "--num: must be between 1"),
    ("toy", ["--num", "inf"], "--num", USAGE),
    ("toy", ["--num", "100000000000"], "--num: must be between 1 and 999,999,999"),
    ("toy", ["--seed", "abc"], "--seed", USAGE),
    ("toy", ["--seed", "-1"], "--seed: must be between 0"),
    ("toy", ["--scenes", "hard"], "--scenes: expected one of full, simple, got 'hard'"),
    ("toy", ["--scenes", "0"], "--scenes: expected one of full, simple"),
    ("toy", ["--seed", "inf"], "--seed", USAGE),
    ("toy", ["--seed", str(2**32)], "--seed: must be between 0 and 4,294,967,295"),
    # options every source shares
    ("toy", ["--resolution", "abc"], "--resolution", USAGE),
    ("toy", ["--resolution", "0"], "--resolution: must be a power of two"),
    ("toy", ["--resolution", "-8"], "--resolution: must be a power of two"),
    ("toy", ["--resolution", "inf"], "--resolution", USAGE),
    ("toy", ["--resolution", "100"], "--resolution: must be a power of two"),
    ("toy", ["--workers", "abc"], "--workers", USAGE),
    ("toy", ["--workers", "-1"], "--workers: must be between 0 and 256"),
    ("toy", ["--workers", "inf"], "--workers", USAGE),
    ("toy", ["--workers", "100000"], "--workers: must be between 0 and 256"),
    ("toy", ["--batch-size", "abc"], "--batch-size", USAGE),
    ("toy", ["--batch-size", "0"], "--batch-size: must be between 1 and 4,096"),
    ("toy", ["--batch-size", "-1"], "--batch-size: must be between 1"),
    ("toy", ["--batch-size", "inf"], "--batch-size", USAGE),
    ("toy", ["--batch-size", "1000000"], "--batch-size: must be between 1 and 4,096"),
    ("toy", ["--depth-model", "0"], "--depth-model: unknown estimator '0'"),
    ("toy", ["--depth-model", "precomputed"], "--depth-model: 'precomputed' reads <name>_depth.png files"),
    ("folder", ["--depth-model", "toy"], "--depth-model: 'toy' works only with the toy source"),
    ("toy", ["--depth-model", "leres", "--depth-weights", NO], "--depth-weights:"),
    ("toy", ["--depth-model", "none", "--depth-weights", "weights.pth"], "--depth-weights: not used by --depth-model none"),
    ("toy", ["--embedder", "0"], "--embedder: unknown timm model '0'"),
    ("toy", ["--embedder", "resnet18", "--embedder-weights", NO], "--embedder-weights:"),
    ("toy", ["--embedder", "none", "--embedder-weights", "weights.pth"], "--embedder-weights: not used with --embedder none"),
    ("toy", ["--device", "0"], "--device: expected auto, cpu, cuda, cuda:N or mps"),
    ("toy", ["--device", "cuda:-1"], "--device: expected auto, cpu"),
    ("toy", ["--device", "cuda:99", "--embedder", "tf_efficientnet_lite0"], "--device: cuda:99"),
    ("toy", ["--preview", "sheet.jpg"], "--preview: must be a .png path"),
    ("toy", ["--preview", "OUT"], "--preview: must not be the output dataset folder"),
    ("toy", ["--overwrite=maybe"], "--overwrite", USAGE),
    ("toy", ["--dry-run=1"], "--dry-run", USAGE),
    ("toy", ["--resource-check=0"], "--resource-check", USAGE),
    # caps on input files (folder, zip, imagenet, lsun)
    ("folder", ["--max-images", "abc"], "--max-images", USAGE),
    ("folder", ["--max-images", "0"], "--max-images: must be between 1"),
    ("folder", ["--max-images", "-1"], "--max-images: must be between 1"),
    ("folder", ["--max-images", "inf"], "--max-images", USAGE),
    ("folder", ["--max-pixels", "abc"], "--max-pixels", USAGE),
    ("folder", ["--max-pixels", "0"], "--max-pixels: must be between 1 and 4,294,967,296, got 0"),
    ("folder", ["--max-pixels", "-1"], "--max-pixels: must be between 1"),
    ("folder", ["--max-pixels", str(2**32 + 1)], "--max-pixels: must be between 1 and 4,294,967,296"),
    ("folder", ["--max-pixels", "inf"], "--max-pixels", USAGE),
    ("folder", ["--max-file-mb", "abc"], "--max-file-mb", USAGE),
    ("folder", ["--max-file-mb", "0"], "--max-file-mb: must be between 1 and 16,384, got 0"),
    ("folder", ["--max-file-mb", "-1"], "--max-file-mb: must be between 1"),
    ("folder", ["--max-file-mb", "16385"], "--max-file-mb: must be between 1 and 16,384, got 16,385"),
    ("folder", ["--max-file-mb", "inf"], "--max-file-mb", USAGE),
    ("folder", ["--max-classes", "abc"], "--max-classes", USAGE),
    ("folder", ["--max-classes", "0"], "--max-classes: must be between 1"),
    ("folder", ["--max-classes", "-1"], "--max-classes: must be between 1"),
    ("folder", ["--max-classes", "inf"], "--max-classes", USAGE),
    ("folder", ["--max-classes", "999999999"], "--max-classes: must be between 1 and 100,000, got 999,999,999"),
    ("folder", ["--max-classes", "100001"], "--max-classes: must be between 1 and 100,000"),
    ("folder_self", [], "is inside the source"),  # OUT inside SRC
    # imagenet
    ("imagenet", ["--keep-ratio", "abc"], "--keep-ratio", USAGE),
    ("imagenet", ["--keep-ratio", "0"], "--keep-ratio: must be in (0, 1]"),
    ("imagenet", ["--keep-ratio", "-0.5"], "--keep-ratio: must be in (0, 1]"),
    ("imagenet", ["--keep-ratio", "inf"], "--keep-ratio: must be in (0, 1]"),
    ("imagenet", ["--keep-ratio", "nan"], "--keep-ratio: must be in (0, 1]"),
    ("imagenet", ["--keep-ratio", "1.5"], "--keep-ratio: must be in (0, 1]"),
    ("imagenet", ["--reg-covar", "abc"], "--reg-covar", USAGE),
    ("imagenet", ["--reg-covar", "0"], "--reg-covar: must be a finite number > 0"),
    ("imagenet", ["--reg-covar", "-1"], "--reg-covar: must be a finite number > 0"),
    ("imagenet", ["--reg-covar", "inf"], "--reg-covar: must be a finite number > 0"),
    ("imagenet", ["--reg-covar", "nan"], "--reg-covar: must be a finite number > 0"),
    ("imagenet", ["--max-per-class", "abc"], "--max-per-class", USAGE),
    ("imagenet", ["--max-per-class", "0"], "--max-per-class: must be between 1"),
    ("imagenet", ["--max-per-class", "-1"], "--max-per-class: must be between 1"),
    ("imagenet", ["--max-per-class", "inf"], "--max-per-class", USAGE),
    ("imagenet", ["--classes", "n99999999"], "--classes: no folder for n99999999"),
    ("imagenet", ["--classes-file", NO], "--classes-file:"),
    ("imagenet", ["--classes-file", "empty.txt"], "--classes-file: lists no classes"),
    ("imagenet", ["--synset-map", NO], "--synset-map:"),
    ("imagenet", ["--synset-map", "weights.pth"], "--synset-map: line 1"),
    ("imagenet", ["--selection-weights", "weights.pth"], "--selection-weights: used only for instance selection"),
    ("imagenet", ["--keep-ratio", "0.5", "--selection-weights", NO], "--selection-weights:"),
    # a refused detector leaves no OUT.partial that would block the corrected command (issue 19 §5)
    ("imagenet", ["--keep-ratio", "0.5", "--selection-weights", "weights.pth"],
     "--selection-weights: not a TorchScript"),
]


def _inputs(tmp_path):
    write_image(tmp_path / "src" / "a.png")
    write_image(tmp_path / "train" / "n01440764" / "a.JPEG", fmt="JPEG")
    (tmp_path / "weights.pth").write_text("not a synset map")
    (tmp_path / "empty.txt").write_text("# nothing\n")


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}:{' '.join(c[1])}")
def test_bad_option_values_are_one_line(tmp_path, run_cli, case):
    source, extra, needle, *usage = case
    _inputs(tmp_path)
    out = tmp_path / ("ds.png" if "OUT" in extra else "out")
    names = {NO: tmp_path / NO, "weights.pth": tmp_path / "weights.pth", "empty.txt": tmp_path / "empty.txt",
             "OUT": out, "sheet.jpg": tmp_path / "sheet.jpg"}
    extra = [str(names.get(a, a)) for a in extra]
    positional = {"toy": [], "folder": [tmp_path / "src"], "imagenet": [tmp_path / "train"],
                  "folder_self": [tmp_path / "src"]}[source]
    if source == "folder_self":
        out = tmp_path / "src" / "out"
    before = sorted(p.name for p in tmp_path.iterdir())
    args = ["prep", source.split("_")[0], *positional, out, "--workers", 0, "--embedder", "none", *extra]
    code, _, err = run_cli(*args)
    lines = err.strip().splitlines()
    assert needle in err, err
    assert "Traceback" not in err
    assert code == 1, err
    assert len(lines) == 1, err
    if usage:
        assert "Usage:" not in err  # Typer's own parse errors come out as one line too
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing created next to OUT
    assert not out.exists()
