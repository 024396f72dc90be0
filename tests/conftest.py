"""Shared fixtures: the in-process CLI runner, a tiny dataset and a run directory with tiny snapshots (eval, export,
info tests). GPU tests skip themselves when no CUDA device exists."""
from __future__ import annotations

import json
import os

import pytest

from tests.helpers.toy_data import make_toy_dataset

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("THREEDGP_NO_PROGRESS", "1")


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)

@pytest.fixture(scope="session")
def eval_dataset(tmp_path_factory):
    """12 items at 32x32 with depth and 2 classes."""
    return str(make_toy_dataset(tmp_path_factory.mktemp("evaldata") / "toy", num=12, resolution=32))


@pytest.fixture(scope="session")
def eval_run(tmp_path_factory, eval_dataset):
    """A run directory with config.json and two snapshots (kimg 0 and 0.004) of an untrained tiny generator."""
    import torch

    from stages.common.seeding import seed_everything
    from stages.train.config import to_dict
    from stages.train.overrides import Override
    from stages.train.resume import resolve_new_config
    from stages.train.state import Counters, build_networks, save_snapshot

    cfg = resolve_new_config("tiny", [Override("--data", "data.path", eval_dataset)])
    run_dir = tmp_path_factory.mktemp("runs") / "00000-tiny-toy"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(to_dict(cfg)))
    seed_everything(0)
    _, _, G_ema = build_networks(cfg, torch.device("cpu"))
    save_snapshot(run_dir, cfg, G_ema, Counters(cur_nimg=0))
    with torch.no_grad():
        for p in G_ema.parameters():
            p.mul_(1.01)
    save_snapshot(run_dir, cfg, G_ema, Counters(cur_nimg=4))
    return run_dir


@pytest.fixture(autouse=True)
def _restore_stages_logger():
    """The CLI routes the "stages" logger to its own rich handler (no propagation); undo that after every test (some
    call ``main`` directly) so that later tests' caplog still sees stage log records."""
    import logging

    stages_logger = logging.getLogger("stages")
    saved = (list(stages_logger.handlers), stages_logger.propagate, stages_logger.level)
    yield
    stages_logger.handlers[:], stages_logger.propagate, stages_logger.level = saved[0], saved[1], saved[2]


@pytest.fixture
def run_cli(capsys, monkeypatch, tmp_path):
    """Run ``3dgp ARGS`` in-process with a private metrics cache; returns (exit code, stdout, stderr)."""
    from threedgp_cli.app import main

    monkeypatch.delenv("THREEDGP_DEBUG", raising=False)
    monkeypatch.setenv("THREEDGP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        out, err = capsys.readouterr()
        return code, out, err

    return run
