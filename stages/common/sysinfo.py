"""What ``3dgp doctor`` reports: package versions, GPUs, the CUDA toolchain and the custom ops (3DGP ref §9).

Everything here is read-only and quick: versions come from package metadata (no heavy imports besides torch),
tools are asked for ``--version`` with a timeout. The result is a plain JSON-able dict.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys

PACKAGES = ("torch", "torchvision", "timm", "numpy")
TOOL_TIMEOUT_S = 30


def package_version(name: str) -> str | None:
    """Installed version of distribution ``name``, or None when absent."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def tool_version(cmd: list[str], pick: str | None = None) -> str | None:
    """First output line of ``cmd`` (or the first line containing ``pick``), None if it cannot run."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    if pick is not None:
        lines = [line for line in lines if pick in line] or lines
    return lines[0] if lines and proc.returncode == 0 else None


def torch_info() -> dict:
    """torch version, its CUDA/cuDNN versions and the visible GPUs (name, capability, memory)."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a hard dependency
        return {"error": f"cannot import torch: {exc}"}
    info: dict = {"version": torch.__version__, "cuda": torch.version.cuda, "cuda_available": False, "gpus": []}
    info["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    try:
        info["cuda_available"] = bool(torch.cuda.is_available())
        for index in range(torch.cuda.device_count() if info["cuda_available"] else 0):
            props = torch.cuda.get_device_properties(index)
            info["gpus"].append({
                "index": index,
                "name": props.name,
                "capability": f"{props.major}.{props.minor}",
                "memory_gib": round(props.total_memory / 2**30, 1),
            })
    except RuntimeError as exc:  # a broken driver must not break the report
        info["cuda_error"] = str(exc)
    return info


def toolchain_info() -> dict:
    """nvcc (path + version), the C++ compiler, ninja and CUDA_HOME (as set and as resolved)."""
    from stages.ops._build import find_cuda_home, find_ninja, find_nvcc

    nvcc = find_nvcc()
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    ninja = find_ninja()
    return {
        "nvcc": {"path": nvcc, "version": tool_version([nvcc, "--version"], pick="release") if nvcc else None},
        "cxx": {"path": cxx, "version": tool_version([cxx, "--version"]) if cxx else None},
        "ninja": {"path": ninja, "version": tool_version([ninja, "--version"]) if ninja else None},
        "cuda_home": {"env": os.environ.get("CUDA_HOME"), "resolved": find_cuda_home()},
    }


def collect(include_ops: bool = True) -> dict:
    """The full doctor report (python, packages, torch + GPUs, toolchain, ops status) as a JSON-able dict."""
    report: dict = {
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "platform": platform.platform(),
        "packages": {name: package_version(name) for name in PACKAGES},
        "torch": torch_info(),
        "toolchain": toolchain_info(),
    }
    if include_ops:
        from stages.ops._build import ops_status

        report["ops"] = ops_status()
    return report
