"""Facts about the environment: package versions, torch and the visible GPUs, tool versions.

Read-only and quick: versions come from package metadata (no heavy imports besides torch), tools are asked for
``--version`` with a timeout. Used by metric cards, reports and ``3dgp doctor`` (:mod:`stages.doctor`, which adds
the CUDA toolchain and the custom ops).
"""
from __future__ import annotations

import importlib.metadata
import subprocess

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


def available_memory() -> int | None:
    """Memory available without swapping: MemAvailable of /proc/meminfo in bytes (None where there is none)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
