"""Random draws on the generator's device (stages.nn.rng) and the modules that use them (3DGP ref §5.4)."""
from __future__ import annotations

import pytest
import torch

from stages.nn import rng
from stages.nn.camera_prior import CameraPrior
from stages.nn.patches import sample_patch_params
from stages.nn.render import sample_pdf, stratified_samples


def _gen(seed: int = 3, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def test_same_device_draws_equal_the_plain_torch_calls():
    """When the generator and the result share a device the helpers ARE the torch calls (same seeded streams)."""
    torch.testing.assert_close(rng.rand((4, 3), _gen(), "cpu"), torch.rand(4, 3, generator=_gen()))
    torch.testing.assert_close(rng.randn((5,), _gen(), "cpu", torch.float64),
                               torch.randn(5, generator=_gen(), dtype=torch.float64))
    assert torch.equal(rng.randint(7, (6,), _gen(), "cpu"), torch.randint(7, (6,), generator=_gen()))
    probs = torch.tensor([[0.1, 0.2, 0.7], [0.5, 0.5, 0.0]])
    assert torch.equal(rng.multinomial(probs, 2, _gen()), torch.multinomial(probs, 2, generator=_gen()))


def test_without_a_generator_the_global_rng_of_the_device_is_used():
    torch.manual_seed(11)
    a = rng.randn((3,), None, "cpu")
    torch.manual_seed(11)
    torch.testing.assert_close(a, torch.randn(3))


def test_cpu_generator_with_another_device_draws_on_the_generator():
    """A CPU generator with 'meta' tensors: the draw consumes the CPU generator and the result lands on meta.

    (Plain ``torch.rand(generator=cpu_gen, device='meta')`` leaves the generator untouched, and on CUDA it raises.)
    ``multinomial`` needs real probabilities, so its cross-device case is in the GPU test.
    """
    for draw in (lambda g: rng.rand((2, 3), g, "meta"), lambda g: rng.randn((2,), g, "meta"),
                 lambda g: rng.randint(5, (4,), g, "meta"),
                 lambda g: sample_patch_params(8, 0.25, 0.8, generator=g, device="meta"),
                 lambda g: CameraPrior().sample(4, generator=g, device="meta"),
                 lambda g: stratified_samples((2, 3), 5, g, "meta")):
        gen = _gen()
        before = gen.get_state().clone()
        out = draw(gen)
        assert out.device.type == "meta"
        assert not torch.equal(before, gen.get_state()), "the generator must have been used"
    bins = torch.linspace(0, 1, 5, device="meta").expand(2, 5)
    gen = _gen()
    before = gen.get_state().clone()
    assert sample_pdf(bins, torch.ones(2, 4, device="meta"), 3, gen).device.type == "meta"
    assert not torch.equal(before, gen.get_state())


@pytest.mark.gpu
def test_cpu_generator_drives_cuda_tensors_with_the_cpu_stream():
    cuda = torch.device("cuda")
    torch.testing.assert_close(rng.rand((4, 3), _gen(), cuda).cpu(), rng.rand((4, 3), _gen(), "cpu"))
    torch.testing.assert_close(sample_patch_params(8, 0.25, 0.8, generator=_gen(), device=cuda).cpu(),
                               sample_patch_params(8, 0.25, 0.8, generator=_gen()))
    torch.testing.assert_close(CameraPrior().sample(4, generator=_gen(), device=cuda).cpu(),
                               CameraPrior().sample(4, generator=_gen()))
    probs = torch.tensor([[0.1, 0.2, 0.7]], device=cuda).expand(6, -1)
    assert torch.equal(rng.multinomial(probs, 1, _gen()).cpu(), rng.multinomial(probs.cpu(), 1, _gen()))
    # and the other way round: a CUDA generator with CPU tensors
    assert rng.randn((3,), _gen(device="cuda"), "cpu").device.type == "cpu"
