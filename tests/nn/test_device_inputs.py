"""Generator inputs for training are drawn on the device, without host copies (issue 18 row 6).

Conditional runs (ImageNet) drew the classes on the CPU and copied them over at every micro-batch, and built the
class distribution and other constants from host data at every call. The "meta" device stands in for CUDA
(``host_transfers``). A seeded generator (metrics, export) must still give the same inputs as before, bit for bit.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from stages.nn.camera import EMD_WEIGHTS, camera_emd_loss, force_mean_loss
from stages.nn.camera_prior import CameraPrior
from stages.nn.inputs import make_generator, sample_generator_inputs
from tests.nn.host_transfers import HostToDevice

LABEL_PROBS = np.array([0.5, 0.3, 0.2])


@pytest.mark.parametrize("label_probs", [None, LABEL_PROBS, torch.tensor([0.5, 0.3, 0.2])], ids=["uniform", "numpy",
                                                                                              "tensor"])
def test_training_draws_make_no_host_copy(label_probs):
    prior = CameraPrior()
    sample_generator_inputs(8, 4, 3, prior, label_probs=label_probs, device="meta")  # first call: build constants
    with HostToDevice() as seen:
        inputs = sample_generator_inputs(8, 4, 3, prior, label_probs=label_probs, device="meta")
    assert seen.copies == []
    assert {t.device.type for t in (inputs.z, inputs.c, inputs.labels, inputs.camera_prior)} == {"meta"}
    assert inputs.c.shape == (8, 3) and inputs.labels.dtype == torch.int64


def test_a_seeded_generator_gives_the_same_inputs_as_before():
    prior = CameraPrior()
    got = sample_generator_inputs(16, 4, 3, prior, label_probs=LABEL_PROBS, generator=make_generator(5))
    g = make_generator(5)  # the draws of the original code, in its order: z, classes, cameras
    z = torch.randn((16, 4), generator=g)
    probs = torch.as_tensor(LABEL_PROBS, dtype=torch.float64).float().view(1, 3)
    labels = torch.multinomial(probs, 16, replacement=True, generator=g).view(16)
    cameras = prior.sample(16, generator=g)
    assert torch.equal(got.z, z) and torch.equal(got.labels, labels) and torch.equal(got.camera_prior, cameras)


@pytest.mark.parametrize("label_probs", [None, LABEL_PROBS])
def test_the_global_cpu_stream_is_unchanged(label_probs):
    prior = CameraPrior()
    torch.manual_seed(3)
    got = sample_generator_inputs(16, 4, 3, prior, label_probs=label_probs, device="cpu")
    torch.manual_seed(3)
    z = torch.randn((16, 4))
    probs = torch.ones(3) if label_probs is None else torch.as_tensor(label_probs, dtype=torch.float64)
    labels = torch.multinomial(probs.float().view(1, 3), 16, replacement=True).view(16)
    assert torch.equal(got.z, z) and torch.equal(got.labels, labels)
    assert torch.equal(got.camera_prior, prior.sample(16))


def test_camera_constants_are_built_once_per_device():
    prior = CameraPrior()
    assert prior.mean_angles(device="meta") is prior.mean_angles(device="meta")
    post, ref = torch.randn(8, 8, device="meta"), torch.randn(8, 8, device="meta")
    camera_emd_loss(post, ref, list(EMD_WEIGHTS))
    with HostToDevice() as seen:
        camera_emd_loss(post, ref, list(EMD_WEIGHTS))
        force_mean_loss(post, prior.mean_angles(device="meta"))
    assert seen.copies == []
    torch.testing.assert_close(prior.mean_angles(), torch.tensor(prior.mean_angles_list()))
