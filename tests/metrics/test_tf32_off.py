"""Metrics are measurements: TF32 is off while any of them runs, whatever training set (issue 18 row 4)."""
from __future__ import annotations

import torch

from stages.metrics import compute
from stages.metrics.context import MetricContext
from stages.metrics.registry import MetricSpec


def test_metrics_run_with_tf32_off_and_the_switches_come_back(monkeypatch):
    seen = []

    def record(spec, ctx):
        seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
        return compute.MetricResult(spec.name, spec.kind, 1.0)

    monkeypatch.setitem(compute.COMPUTE, "camera", record)
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # as --precision tf32 leaves them
    try:
        ctx = MetricContext(None, detector_loader=lambda: None, progress=False)
        (result,) = compute.compute_metrics([MetricSpec("camera", "camera", 4)], ctx)
        after = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    assert seen == [(False, False)] and result.value == 1.0
    assert after == (True, True)  # training's own setting is restored for its next step
