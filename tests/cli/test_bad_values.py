"""Every `prep`, `train`, `eval`, `export` and `info` option fed a wrong type, a zero, a negative, an infinite, an
empty string, a count just past its cap and (where meaningful) a contradictory value: one line naming the option,
exit 1, nothing written (issue 13 acceptance 2, issue 19 acceptance 2). ``test_every_option_has_rows`` keeps the
tables complete: a new option of prep, train, export or info without a row fails it. The rows live in
``bad_value_rows.py``.

Each row is ``(arguments, text the one error line must contain)``; the error line must start with ``Error: `` and
name the option. Values that are valid (a zero seed, a zero --gamma, ...) are left out. Rows are rejected before
any network is built, so the whole table takes seconds. (More prep rows, per source:
tests/prep/test_option_table.py.)"""
from __future__ import annotations

import pytest
import torch
from bad_value_rows import COMPARE, DEMO_SUMMARY, EVAL, EXPORT, INFO, NO_CUDA, PREP, TRAIN


def _id(row):
    args = row.values[0] if hasattr(row, "values") else row[0]  # a pytest.param or a plain row
    return " ".join(args)[:40] or "''"


def _check(code, err, needle):
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), (code, err)
    assert needle in lines[0], lines[0]
    assert "Traceback" not in err


def _fill(args, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return [a.replace("{file}", str(blocker)) for a in args]


@pytest.mark.parametrize("args, needle", TRAIN, ids=[_id(r) for r in TRAIN])
def test_train_option_values(args, needle, run_cli, eval_dataset, tmp_path):
    if args == ["--device", "cuda:99"] and NO_CUDA:
        needle = "--device: cuda:99: no CUDA device is available"
    out = tmp_path / "runs"
    # Not a dry run: a rejected start must leave no run directory. Should a bad value ever be accepted, the run is
    # one short iteration without metrics (and the test fails on its exit code).
    code, _, err = run_cli("train", "--data", eval_dataset, "--preset", "tiny", "--outdir", out, "--kimg", "0.008",
                           "--metrics", "none", *_fill(args, tmp_path))
    _check(code, err, needle)
    assert not out.exists()


@pytest.mark.parametrize("outdir, needle", [("{file}", "--outdir: {file} is a file, not a folder"),
                                            ("{file}/sub", "--outdir: {file}/sub: {file} is a file")])
def test_train_outdir_that_is_a_file(outdir, needle, run_cli, eval_dataset, tmp_path):
    args = _fill(["--outdir", outdir], tmp_path)
    code, _, err = run_cli("train", "--data", eval_dataset, "--preset", "tiny", *args)
    _check(code, err, needle.replace("{file}", str(tmp_path / "a-file")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "cache"] or \
        sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_train_data_that_is_not_a_dataset(run_cli, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "f").write_text("x")
    for data, needle in ((tmp_path / "empty", f"{tmp_path / 'empty'}: not a 3dgp dataset (no data.mdb)"),
                         (tmp_path / "f", f"--data: {tmp_path / 'f'}: not a directory")):
        code, _, err = run_cli("train", "--data", data, "--preset", "tiny", "--outdir", tmp_path / "runs")
        _check(code, err, needle)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, needle", EVAL, ids=[_id(r) for r in EVAL])
def test_eval_option_values(args, needle, run_cli, eval_run, tmp_path):
    if args == ["--device", "cuda:99"] and NO_CUDA:
        needle = "--device: cuda:99: no CUDA device is available"
    before = sorted(p.name for p in eval_run.iterdir())
    code, _, err = run_cli("eval", eval_run / "snapshot-000000.000.pt", "--metrics", "camera", "--num-gen", "4",
                           "--out", tmp_path / "card.json", *_fill(args, tmp_path))
    _check(code, err, needle)
    assert sorted(p.name for p in eval_run.iterdir()) == before and not (tmp_path / "card.json").exists()


def test_eval_missing_checkpoint_and_usage(run_cli, tmp_path):
    code, _, err = run_cli("eval", tmp_path / "nope.pt")
    _check(code, err, f"{tmp_path / 'nope.pt'}: no such snapshot file or run directory")
    code, _, err = run_cli("eval")
    _check(code, err, "--fakes: nothing to evaluate: give CKPT or --fakes")


@pytest.mark.parametrize("args, needle", EXPORT, ids=[_id(r) for r in EXPORT])
def test_export_option_values(args, needle, run_cli, eval_run, tmp_path):
    if args == ["--device", "cuda:99"] and NO_CUDA:
        needle = "--device: cuda:99: no CUDA device is available"
    out = tmp_path / "export"
    code, _, err = run_cli("export", eval_run / "snapshot-000000.000.pt", "--outdir", out, "--grid", "--steps", "4",
                           *_fill(args, tmp_path))
    _check(code, err, needle)
    if args[0] == "--classes":  # checked against the snapshot before the output folder is made
        assert not out.exists()
    assert not out.exists() or not list(out.iterdir())


def test_export_missing_checkpoint_and_usage(run_cli, tmp_path):
    code, _, err = run_cli("export", tmp_path / "nope.pt", "--grid", "--outdir", tmp_path / "x")
    _check(code, err, f"{tmp_path / 'nope.pt'}: ")
    code, _, err = run_cli("export")
    _check(code, err, "CKPT: missing argument (see 3dgp export --help)")


# --- issue 19 §6: a custom TorchScript detector with the wrong output is one line, before any work ------------------

class _Pool(torch.nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))  # [N, 3] instead of [N, 2048]


class _NaNs(torch.nn.Module):
    def forward(self, x):
        return torch.full((x.shape[0], 2048), float("nan"))


class _Gray(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2048, 1)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))  # fails on RGB input


@pytest.mark.parametrize("net, needle", [(_Pool, "--inception: returns [2, 3] for a [2, 3, 299, 299] batch"),
                                         (_NaNs, "--inception: returns NaN or infinite features"),
                                         (_Gray, "--inception: fails on a [2, 3, 299, 299] batch")])
def test_eval_custom_detector_with_the_wrong_output(net, needle, run_cli, eval_run, tmp_path):
    path = tmp_path / "detector.pt"
    torch.jit.script(net()).save(str(path))
    code, _, err = run_cli("eval", eval_run / "snapshot-000000.000.pt", "--metrics", "fid8", "--num-gen", "8",
                           "--out", tmp_path / "card.json", "--inception", path)
    # eval logs which snapshot it evaluates before it loads the detector: only the error line is checked here
    _check(code, "\n".join(line for line in err.splitlines() if not line.startswith(("INFO ", " "))), needle)
    assert str(path) in err and not (tmp_path / "card.json").exists()


# --- issue 19 acceptance 2: prep and info tables, and every option has rows ----------------------------------------

def _prep_inputs(tmp_path) -> dict[str, str]:
    from PIL import Image

    (tmp_path / "src").mkdir()
    Image.new("RGB", (12, 10), (200, 30, 60)).save(tmp_path / "src" / "a.png")
    (tmp_path / "train" / "n01440764").mkdir(parents=True)
    Image.new("RGB", (12, 10), (20, 30, 60)).save(tmp_path / "train" / "n01440764" / "a.JPEG")
    (tmp_path / "weights.pth").write_text("not a network")
    return {"{out}": str(tmp_path / "out"), "{src}": str(tmp_path / "src"), "{train}": str(tmp_path / "train"),
            "{weights}": str(tmp_path / "weights.pth")}


@pytest.mark.parametrize("args, needle", PREP, ids=[_id(r) for r in PREP])
def test_prep_option_values(args, needle, run_cli, tmp_path, monkeypatch):
    names = _prep_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)  # "toy ." must not name the repository
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = [names.get(a, a) for a in args]
    code, _, err = run_cli("prep", argv[0], "--workers", "0", "--embedder", "none", *argv[1:])
    _check(code, err, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no OUT, OUT.partial or OUT.lock


@pytest.mark.parametrize("args, needle", INFO, ids=[_id(r) for r in INFO])
def test_info_option_values(args, needle, run_cli, eval_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocker = _fill(["{file}"], tmp_path)[0]
    names = {"{dataset}": eval_dataset, "{file}": blocker, "{file}x": blocker + "x"}
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = run_cli("info", *[names.get(a, a) for a in args])
    _check(code, err, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def _card_inputs(tmp_path) -> dict[str, str]:
    import json

    folder, card_dir, bad = tmp_path / "empty", tmp_path / "cards", tmp_path / "bad"
    for d in (folder, card_dir, bad / "v"):
        d.mkdir(parents=True)
    (bad / "v" / "metrics.json").write_text("{not json")
    metrics = [{"name": k, "kind": k, "value": 1.0, "unavailable": None, "details": {}}
               for k in ("fid", "nfs", "mvc", "depth", "camera")]
    (card_dir / "card.json").write_text(json.dumps({"metrics": metrics}))
    (card_dir / "partial.json").write_text(json.dumps({"metrics": metrics[:3]}))
    return {"{dir}": str(folder), "{file}": _fill(["{file}"], tmp_path)[0], "{bad}": str(bad),
            "{card}": str(card_dir / "card.json"), "{partial}": str(card_dir / "partial.json")}


def _filled(text: str, names: dict[str, str]) -> str:
    for key, value in names.items():
        text = text.replace(key, value)
    return text


@pytest.mark.parametrize("args, needle", COMPARE, ids=[_id(r) for r in COMPARE])
def test_compare_option_values(args, needle, run_cli, tmp_path):
    names = _card_inputs(tmp_path)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    code, _, err = run_cli("compare", *[_filled(a, names) for a in args])
    _check(code, err, _filled(needle, names))
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # no comparison.md


@pytest.mark.parametrize("args, needle", DEMO_SUMMARY, ids=[_id(r) for r in DEMO_SUMMARY])
def test_demo_summary_option_values(args, needle, run_cli, tmp_path):
    names = _card_inputs(tmp_path)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    code, _, err = run_cli("demo", "summary", *[_filled(a, names) for a in args])
    _check(code, err, _filled(needle, names))
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # no summary.md


def test_export_and_info_empty_positional(run_cli, tmp_path):
    code, _, err = run_cli("export", "", "--grid", "--outdir", tmp_path / "x")
    _check(code, err, "CKPT: must not be empty")
    assert not (tmp_path / "x").exists()


def _command_options(*path: str) -> set[str]:
    """The long option names of ``3dgp PATH...`` (from the Typer app itself)."""
    import click
    import typer.main

    from threedgp_cli.app import app

    command = typer.main.get_command(app)
    ctx = click.Context(command)
    for name in path:
        command = command.get_command(ctx, name)
        ctx = click.Context(command, parent=ctx)
    return {next(o for o in p.opts if o.startswith("--")) for p in command.params
            if p.param_type_name == "option" and p.name != "help"}  # not isinstance: Typer vendors its own click


def _table_options(rows) -> set[str]:
    found = set()
    for row in rows:
        args = row.values[0] if hasattr(row, "values") else row[0]
        found |= {a.split("=", 1)[0] for a in args if a.startswith("--")}
    return found


@pytest.mark.parametrize("command, rows", [(("prep", "toy"), PREP), (("prep", "folder"), PREP), (("prep", "zip"), PREP),
                                           (("prep", "imagenet"), PREP), (("prep", "lsun"), PREP),
                                           (("train",), TRAIN), (("export",), EXPORT), (("info",), INFO),
                                           (("compare",), COMPARE), (("demo", "summary"), DEMO_SUMMARY)])
def test_every_option_has_rows(command, rows):
    missing = _command_options(*command) - _table_options(rows)
    assert not missing, f"3dgp {' '.join(command)}: no bad-value rows for {sorted(missing)}"
