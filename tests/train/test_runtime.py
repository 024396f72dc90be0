"""The training process's runtime settings: cuDNN autotuning and its switch (stages.train.runtime)."""
import pytest
import torch

from stages.common.errors import ThreeDGPError
from stages.train.runtime import CUDNN_BENCHMARK_ENV, configure_runtime, cudnn_benchmark_wanted


@pytest.fixture(autouse=True)
def _restore_backends():
    saved = (torch.backends.cudnn.benchmark, torch.get_num_threads())
    yield
    torch.backends.cudnn.benchmark = saved[0]
    torch.set_num_threads(saved[1])


def test_cudnn_autotuning_is_on_by_default(monkeypatch):
    monkeypatch.delenv(CUDNN_BENCHMARK_ENV, raising=False)
    torch.backends.cudnn.benchmark = False
    settings = configure_runtime(torch.device("cpu"), "fp32", threads="1")
    assert settings["cudnn_benchmark"] is True and torch.backends.cudnn.benchmark is True


@pytest.mark.parametrize("value", ["0", "false", "OFF", " no "])
def test_cudnn_autotuning_can_be_switched_off(monkeypatch, value):
    monkeypatch.setenv(CUDNN_BENCHMARK_ENV, value)
    torch.backends.cudnn.benchmark = True
    settings = configure_runtime(torch.device("cpu"), "fp32", threads="1")
    assert settings["cudnn_benchmark"] is False and torch.backends.cudnn.benchmark is False


def test_a_bad_switch_value_is_one_clear_error(monkeypatch):
    monkeypatch.setenv(CUDNN_BENCHMARK_ENV, "maybe")
    with pytest.raises(ThreeDGPError, match="THREEDGP_CUDNN_BENCHMARK=maybe: expected 1 or 0"):
        cudnn_benchmark_wanted()
