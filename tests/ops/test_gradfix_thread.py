"""``no_weight_gradients`` holds in every thread (issue 18 row 7).

On CUDA the autograd engine runs backward on its per-device worker thread, not on the thread that entered the
context; a thread-local flag reads False there and R1 builds every weight gradient for nothing. On CPU, backward
runs on the calling thread, so these tests run the backward (or read the flag) from another thread themselves.
"""
from __future__ import annotations

import threading

import torch

from stages.ops import conv2d_gradfix


def _in_thread(fn):
    out = {}
    worker = threading.Thread(target=lambda: out.update(value=fn()))
    worker.start()
    worker.join()
    return out["value"]


def test_the_flag_reads_true_in_another_thread():
    assert _in_thread(conv2d_gradfix.weight_gradients_disabled) is False
    with conv2d_gradfix.no_weight_gradients():
        assert _in_thread(conv2d_gradfix.weight_gradients_disabled) is True
    assert _in_thread(conv2d_gradfix.weight_gradients_disabled) is False


def test_a_backward_on_another_thread_skips_the_weight_gradient(monkeypatch):
    calls = []
    real = conv2d_gradfix._weight_grad
    monkeypatch.setattr(conv2d_gradfix, "_weight_grad", lambda *a: calls.append(1) or real(*a))
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    y = conv2d_gradfix.conv2d(x, w, padding=1)
    with conv2d_gradfix.no_weight_gradients():  # the R1 pattern: the gradient w.r.t. the image only
        (gx,) = _in_thread(lambda: torch.autograd.grad(y.square().sum(), [x], create_graph=True))
    assert gx.shape == x.shape and calls == []
    torch.autograd.grad(y.square().sum(), [w])  # outside the context the weight gradient is computed again
    assert calls == [1]
