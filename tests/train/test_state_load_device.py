"""A resumed optimizer keeps Adam's ``step`` counters on the CPU whatever the run's device (issue 18 row 5).

With ``map_location=cuda`` the counters came back on the GPU (``Optimizer.load_state_dict`` moves the moments to
their parameter's device but leaves ``step`` as loaded), and the foreach Adam then synchronised with the host once per
parameter at every step. No GPU here: ``torch.load`` is mocked so that a CUDA map location puts Adam's loaded
``step`` tensors on the "meta" device, a stand-in for GPU memory (the other tensors are placed by their owners anyway:
modules copy into their parameters, the optimizer casts the moments to their parameter's device).
"""
from __future__ import annotations

import torch

from stages.common import checkpoint as ckpt
from stages.nn import checkpoints
from stages.train.state import Counters, Networks, Optimizers, load_state


def _plain_state_contents(monkeypatch):
    """These states hold bare Linear layers, not a 3DGP generator: skip the checks of a real run's model."""
    monkeypatch.setattr(checkpoints, "check_model_contents", lambda obj, path: None)


def _tiny_run():
    torch.manual_seed(0)
    nets = Networks(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1), torch.nn.Linear(3, 2))
    opts = Optimizers(torch.optim.Adam(nets.G.parameters(), lr=1e-3, foreach=True),
                      torch.optim.Adam(nets.D.parameters(), lr=1e-3, foreach=True))
    for net, opt in ((nets.G, opts.G), (nets.D, opts.D)):
        net(torch.randn(4, net.in_features)).square().sum().backward()
        opt.step()
    return nets, opts


def _save(path, nets, opts):
    ckpt.save_training_state(path, G=nets.G, D=nets.D, G_ema=nets.G_ema, opt_G=opts.G, opt_D=opts.D,
                             counters=Counters(cur_nimg=64).to_dict(), rng={}, sampler={}, best={}, config={})


def test_adam_step_stays_on_the_cpu_after_a_load_for_cuda(monkeypatch, tmp_path):
    _plain_state_contents(monkeypatch)
    path = tmp_path / "training-state-0000000.064.pt"
    _save(path, *_tiny_run())
    real_load = torch.load
    asked = []

    def load_as_if_on_a_gpu(f, map_location=None, **kwargs):
        asked.append(map_location)
        obj = real_load(f, map_location="cpu", **kwargs)
        if map_location is not None and torch.device(map_location).type == "cuda":
            for name in ("opt_G", "opt_D"):
                for param_state in obj[name]["state"].values():
                    param_state["step"] = param_state["step"].to("meta")
        return obj

    monkeypatch.setattr(torch, "load", load_as_if_on_a_gpu)
    nets, opts = _tiny_run()
    counters = load_state(path, nets, opts, torch.device("cuda", 0))
    assert counters.cur_nimg == 64
    for opt in opts:
        for param_state in opt.state.values():
            assert param_state["step"].device.type == "cpu"
            assert param_state["exp_avg"].device.type == "cpu"  # the parameters' device
    assert [str(m) for m in asked] == ["cpu"]  # the file is read to the CPU, each part placed by its owner


def test_the_loaded_values_are_those_saved(monkeypatch, tmp_path):
    _plain_state_contents(monkeypatch)
    path = tmp_path / "training-state-0000000.064.pt"
    saved_nets, saved_opts = _tiny_run()
    _save(path, saved_nets, saved_opts)
    nets = Networks(*(torch.nn.Linear(m.in_features, m.out_features) for m in saved_nets))
    opts = Optimizers(torch.optim.Adam(nets.G.parameters(), lr=1e-3), torch.optim.Adam(nets.D.parameters(), lr=1e-3))
    load_state(path, nets, opts, torch.device("cpu"))
    torch.testing.assert_close(nets.G.state_dict(), saved_nets.G.state_dict())
    for opt, saved in zip(opts, saved_opts):
        torch.testing.assert_close(opt.state_dict()["state"], saved.state_dict()["state"])
