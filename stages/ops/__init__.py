"""Custom ops with a pure-PyTorch reference path and lazily built CUDA kernels (3DGP ref §9; style guide 7).

Each op is one public function with ``impl in ("auto", "ref", "cuda")``. CPU tensors always run the reference
path; the CUDA extension (``csrc/``) is built on the first CUDA call, never at import, and a failed build falls
back to the reference with one warning (fatal under ``THREEDGP_STRICT_OPS=1``). :func:`impl_report` says which
implementation each op actually used; the training log records it.
"""
from stages.ops._build import build_ops, find_cuda_home, find_ninja, find_nvcc, ops_status
from stages.ops._impl import impl_report
from stages.ops.bias_act import bias_act
from stages.ops.conv2d_resample import conv2d_resample
from stages.ops.upfirdn2d import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d
from stages.ops.volume_composite import composite

__all__ = [
    "bias_act",
    "build_ops",
    "find_cuda_home",
    "find_ninja",
    "find_nvcc",
    "ops_status",
    "composite",
    "conv2d_resample",
    "downsample2d",
    "filter2d",
    "impl_report",
    "setup_filter",
    "upfirdn2d",
    "upsample2d",
]
