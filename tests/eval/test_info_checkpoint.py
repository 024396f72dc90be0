"""`3dgp info CKPT` describes a snapshot or a training state (issue 9)."""
from __future__ import annotations

import json


def test_info_describes_a_snapshot(eval_run, eval_dataset, run_cli):
    from stages.nn.build import build_generator
    from stages.train.config import from_dict

    snap = sorted(eval_run.glob("snapshot-*.pt"))[-1]
    code, out, err = run_cli("info", snap, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["kind"] == "snapshot" and summary["kimg"] == 0.004 and summary["preset"] == "tiny"
    assert summary["dataset"] == eval_dataset and summary["resolution"] == 32
    cfg = from_dict(json.loads((eval_run / "config.json").read_text()))
    G = build_generator(cfg.model)
    assert summary["params"]["G_ema"]["total"] == sum(p.numel() for p in G.parameters())
    assert summary["params"]["G_ema"]["mapping"] == sum(p.numel() for p in G.mapping.parameters())
    code, out, err = run_cli("info", snap)
    assert code == 0 and "G_ema parameters" in out and "kimg" in out


def test_info_rejects_other_files(tmp_path, run_cli):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    code, out, err = run_cli("info", junk)
    assert code == 1 and "cannot read checkpoint" in err and len(err.strip().splitlines()) == 1
    other = tmp_path / "notes.txt"
    other.write_text("x")
    code, out, err = run_cli("info", other)
    assert code == 1 and "not something 3dgp info understands" in err
