"""Checkpoint files: weights_only round trip, atomic writes, pruning, discovery (style guide principle 9)."""
from __future__ import annotations

import pytest
import torch

from stages.common import checkpoint as ckpt
from stages.common.errors import CheckpointError
from stages.common.seeding import capture_rng_state, restore_rng_state


def _nets():
    torch.manual_seed(0)
    G, D = torch.nn.Linear(3, 2), torch.nn.Linear(2, 1)
    G.register_buffer("w_avg", torch.arange(3.0))
    opt = torch.optim.Adam(G.parameters(), betas=(0.0, 0.99))
    G(torch.randn(4, 3)).sum().backward()
    opt.step()
    return G, D, opt


def test_training_state_round_trip_weights_only(tmp_path):
    G, D, opt = _nets()
    path = ckpt.state_path(tmp_path, 2500)
    assert path.name == "training-state-000002.500.pt"
    ckpt.save_training_state(path, G=G, D=D, G_ema=G, opt_G=opt, opt_D=opt, counters={"cur_nimg": 2500},
                             rng=capture_rng_state(), sampler={"position": 2500}, best={"metric": "fid2k"},
                             config={"run": {"metrics": ("fid2k", "nfs256")}})
    raw = torch.load(path, weights_only=True)  # must not need pickled code
    assert raw["format_version"] == ckpt.FORMAT_VERSION and raw["kind"] == "training-state"
    assert raw["config"]["run"]["metrics"] == ["fid2k", "nfs256"]
    G2 = torch.nn.Linear(3, 2)
    G2.register_buffer("w_avg", torch.zeros(3))
    G2.load_state_dict(raw["G"])
    assert torch.equal(G2.weight, G.weight) and torch.equal(G2.w_avg, G.w_avg)
    opt2 = torch.optim.Adam(G2.parameters(), betas=(0.0, 0.99))
    opt2.load_state_dict(raw["opt_G"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg_sq"], opt.state_dict()["state"][0]["exp_avg_sq"])


def _tiny_snapshot(tmp_path):
    from stages.nn.build import build_generator
    from stages.nn.config import MODEL_PRESETS, to_dict

    torch.manual_seed(0)
    cfg = MODEL_PRESETS["tiny"]
    return ckpt.save_snapshot(ckpt.snapshot_path(tmp_path, 1000), G_ema=build_generator(cfg),
                              model_config=to_dict(cfg), config={"preset": "tiny"}, cur_nimg=1000)


def test_snapshot_and_kind_check(tmp_path):
    path = _tiny_snapshot(tmp_path)
    snap = ckpt.load_checkpoint(path, kind="snapshot")
    assert snap["kimg"] == 1.0 and snap["model_config"]["generator"]["tri_plane_res"] == 32
    with pytest.raises(CheckpointError, match="expected a training-state"):
        ckpt.load_checkpoint(path, kind="training-state")


def test_torn_and_foreign_files_are_errors(tmp_path):
    bad = tmp_path / "training-state-000001.000.pt"
    bad.write_bytes(b"\x80\x02garbage")
    with pytest.raises(CheckpointError, match="cannot read"):
        ckpt.load_checkpoint(bad)
    torch.save({"format_version": 99}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="format_version 99"):
        ckpt.load_checkpoint(tmp_path / "x.pt")


def test_prune_latest_and_tmp_ignored(tmp_path):
    for nimg in (0, 500, 1000, 1500):
        ckpt.save_atomic({"format_version": 1}, ckpt.state_path(tmp_path, nimg))
    (tmp_path / "training-state-000002.000.pt.tmp").write_bytes(b"torn")  # a crash mid-write
    assert ckpt.latest_training_state(tmp_path).name == "training-state-000001.500.pt"
    removed = ckpt.prune_training_states(tmp_path, keep=2)
    assert [p.name for p in removed] == ["training-state-000000.000.pt", "training-state-000000.500.pt"]
    assert [k for k, _ in ckpt.list_training_states(tmp_path)] == [1.0, 1.5]
    assert not list(tmp_path.glob("*.tmp"))


def test_rng_state_round_trip(tmp_path):
    import random

    import numpy as np

    torch.manual_seed(3)
    state = capture_rng_state()
    ckpt.save_atomic({"format_version": 1, "rng": state}, tmp_path / "r.pt")
    a = (torch.rand(3), np.random.rand(2), random.random())
    restore_rng_state(torch.load(tmp_path / "r.pt", weights_only=True)["rng"])
    b = (torch.rand(3), np.random.rand(2), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_the_format_is_checked_here_the_model_in_stages_nn(tmp_path):
    """stages.common checks a checkpoint's records; its model (config caps, G_ema) is stages.nn.checkpoints'."""
    path = _tiny_snapshot(tmp_path)
    obj = torch.load(path, weights_only=True)
    obj["model_config"]["generator"]["cmax"] = 10**9
    torch.save(obj, path)
    assert ckpt.load_checkpoint(path)["kimg"] == 1.0
    obj["kimg"] = "12"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="kimg must be a number >= 0"):
        ckpt.load_checkpoint(path)
