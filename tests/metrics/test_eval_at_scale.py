"""Evaluation at scale, the smaller items (issue 18): memory per metric and its refusal, KID's cap on reals, the
classes of a conditional model without a dataset, mvc's truncation centre, training metrics on the full set."""
from __future__ import annotations

import pytest
import torch

from stages.common.errors import ThreeDGPError
from stages.metrics import memory
from stages.metrics.registry import parse_metric_list

GIB = 2**30


def test_memory_per_metric_and_the_kid_cap():
    fid = [s.resolved() for s in parse_metric_list("fid50k_full")]
    kid = [s.resolved() for s in parse_metric_list("kid50k_full")]
    # fid50k: 50k rows of 2048 float32 + moments and sqrtm work space; independent of the number of reals
    assert memory.required_bytes(fid, 10**6) == memory.required_bytes(fid, 10**3)
    assert 0.4 * GIB < memory.required_bytes(fid, 10**6) < 1.0 * GIB
    # KID keeps the rows of at most 1,000,000 reals (the official cap): 8 GB at the cap, no more beyond it
    at_cap = memory.required_bytes(kid, 10**6)
    assert memory.required_bytes(kid, 1_281_167) == at_cap and at_cap - memory.required_bytes(kid, 0) == 10**6 * 8192


def test_an_evaluation_the_machine_cannot_hold_is_refused_in_one_line(monkeypatch):
    kid = [s.resolved() for s in parse_metric_list("kid50k_full")]
    monkeypatch.setattr(memory, "available_bytes", lambda: 2 * GIB)
    with pytest.raises(ThreeDGPError, match=r"needs about 8\.\d GiB of memory on rank 0 .* only 2\.0 GiB"):
        memory.check_memory(kid, 1_281_167)
    monkeypatch.setattr(memory, "available_bytes", lambda: 64 * GIB)
    assert memory.check_memory(kid, 1_281_167) > 8 * GIB


class _CondG(torch.nn.Module):
    z_dim, c_dim, img_resolution = 4, 3, 8


def test_a_conditional_model_without_a_dataset_says_its_classes_are_uniform():
    from stages.metrics.sources import GeneratorSource
    from stages.nn.camera_prior import CameraPrior

    card = GeneratorSource(_CondG(), CameraPrior(), None, "cpu").describe()
    assert card["classes"].startswith("uniform over the 3 classes") and card["truncation_center"] == "per-class mean w"
    with_data = GeneratorSource(_CondG(), CameraPrior(), [0.2, 0.3, 0.5], "cpu").describe()
    assert with_data["classes"] == "dataset label distribution"


def test_mvc_renders_the_ws_fid_uses(monkeypatch):
    """mvc with psi != 1 truncates towards the per-class mean w (the source's mapping), not the global w_avg."""
    from stages.metrics import compute, geometry
    from stages.metrics.context import MetricContext
    from stages.metrics.registry import MetricSpec
    from stages.metrics.sources import GeneratorSource
    from stages.nn.camera_prior import CameraPrior

    seen = []

    class _Src(GeneratorSource):
        def mapping(self, inputs):
            return torch.full((len(inputs), 2, 4), 7.0)  # what FID's fakes would use

    def spy(G, inputs, *, ws=None, generator=None, **kw):
        seen.append(ws)
        n = len(inputs)
        return geometry.MVCResult(torch.full([n], 0.1), torch.ones(n), torch.full([n], 0.2))

    monkeypatch.setattr(geometry, "multiview_consistency", spy)
    src = _Src(_CondG(), CameraPrior(), None, "cpu", truncation=0.7)
    ctx = MetricContext(src, detector_loader=lambda: None, progress=False)
    (result,) = compute.compute_metrics([MetricSpec("mvc4", "mvc", 4)], ctx)
    assert result.value == pytest.approx(0.1) and len(seen) == 1 and torch.all(seen[0] == 7.0)


def test_training_metrics_use_every_item_of_the_dataset(tmp_path):
    from stages.data.dataset import LmdbDataset
    from stages.nn.camera_prior import CameraPrior
    from stages.train.metrics import MetricRunner
    from tests.helpers.toy_data import make_toy_dataset

    path = make_toy_dataset(tmp_path / "toy", num=10)
    subset = LmdbDataset(path, max_items=4)  # what training reads with data.max_items=4
    runner = MetricRunner(("fid16",), subset, CameraPrior(), None, 0, torch.device("cpu"), tmp_path, seed=0)
    assert subset.num_items == 4 and runner.reals.count == 10
