"""A training micro-batch copies nothing from the host but its reals, and those without blocking (issue 18 row 6).

The "meta" device stands in for CUDA (``tests/nn/host_transfers.py``): the camera regularizers of the G phase built
their constants from host data at every call, and the reals' labels and embeddings were copied with a blocking copy.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from stages.nn.camera_prior import CameraPrior
from stages.train import data as train_data
from stages.train.data import make_loader, reals_to_device
from stages.train.phases import PhaseContext, camera_regularizers, sample_fake_inputs
from tests.nn.host_transfers import HostToDevice


class _Stats:
    def report(self, name, value, weight=1.0):
        pass


def _meta_context(c_dim: int = 3) -> PhaseContext:
    G = SimpleNamespace(z_dim=4, camera_adaptor=SimpleNamespace(enabled=True),
                        camera_posterior=lambda cameras, z, c: cameras * 1.0)
    loss_cfg = SimpleNamespace(emd_num_samples=8, emd_weight_angles=2.0, emd_weight_fov=1e-4, emd_weight_radius=0.0,
                               emd_weight_look_at=1e-4, force_mean_weight=10.0, force_mean_num_samples=8)
    sched = SimpleNamespace(emd_multiplier=0.5, patch_beta=2.0)
    return PhaseContext(G=G, D=None, sched=sched, device=torch.device("meta"), prior=CameraPrior(), c_dim=c_dim,
                        label_probs=np.array([0.5, 0.3, 0.2]), patch_res=8, min_scale=0.5, group_size=2,
                        has_depth=True, gamma=1.0, r1_interval=16, loss_cfg=loss_cfg, stats=_Stats())


def test_camera_regularizers_copy_nothing_after_the_first_call():
    ctx = _meta_context()
    camera_regularizers(ctx)  # builds the per-device constants
    with HostToDevice() as seen:
        total = camera_regularizers(ctx)
    assert total.device.type == "meta" and seen.copies == []


def test_fake_classes_are_drawn_on_the_device():
    ctx = _meta_context()
    sample_fake_inputs(ctx, 4)
    with HostToDevice() as seen:
        z, c, cameras, patch = sample_fake_inputs(ctx, 4)
    assert {t.device.type for t in (z, c, cameras, patch)} == {"meta"} and seen.copies == []


def test_reals_are_copied_without_blocking():
    batch = {"image": torch.zeros(2, 3, 4, 4, dtype=torch.uint8), "depth": torch.zeros(2, 1, 4, 4),
             "label": torch.tensor([0, 2]), "embedding": torch.zeros(2, 5)}
    with HostToDevice() as seen:
        reals = reals_to_device(batch, torch.device("meta"), has_depth=True, c_dim=3)
    assert reals["img"].shape == (2, 4, 4, 4) and reals["c"].shape == (2, 3)
    assert len(seen.copies) == 4 and all(non_blocking for _, non_blocking in seen.copies), seen.copies


def test_the_loader_pins_memory_for_a_cuda_device(monkeypatch):
    made = []
    monkeypatch.setattr(train_data.torch.utils.data, "DataLoader", lambda dataset, **kw: made.append(kw) or [])
    for device in ("cuda", "cuda:1", "cpu"):
        make_loader(list(range(8)), seed=0, batch=2, rank=0, world_size=1, start_nimg=0, workers=0, device=device)
    assert [kw["pin_memory"] for kw in made] == [True, True, False]
