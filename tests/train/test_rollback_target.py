"""On a rollback rank 0 alone chooses the training state and every rank loads that one (issue 18 row 12): on a
network file system the ranks may list the run folder differently."""
from __future__ import annotations

from types import SimpleNamespace

from stages.common.distributed import DistInfo
from stages.train import loop
from stages.train.state import Counters


def test_rank_one_loads_the_state_rank_zero_chose_without_listing_the_folder(monkeypatch, tmp_path):
    chosen = tmp_path / "training-state-000000.008.pt"
    listed, loaded = [], []
    monkeypatch.setattr(loop.ckpt, "latest_training_state", lambda d: listed.append(d) or tmp_path / "other.pt")
    monkeypatch.setattr(loop, "broadcast_object", lambda obj, src=0: chosen)  # what rank 0 sent
    monkeypatch.setattr(loop, "barrier", lambda: None)
    monkeypatch.setattr(loop, "load_state", lambda path, nets, opts, device: loaded.append(path) or Counters())
    trainer = SimpleNamespace(counters=Counters(), cfg=SimpleNamespace(run=SimpleNamespace(max_rollbacks=3)),
                              dist=DistInfo(rank=1, world_size=2, local_rank=1, device="cpu"), run_dir=tmp_path,
                              writer=SimpleNamespace(write=lambda *a, **k: None), nets=None, opts=None,
                              device="cpu", stats=SimpleNamespace(reduce=lambda world: {}),
                              _open_loader=lambda: None)
    loop.Trainer._rollback(trainer, "a test divergence")
    assert loaded == [chosen] and listed == []
    assert trainer.counters.rollbacks == 1 and trainer.counters.seed_stream == 1
