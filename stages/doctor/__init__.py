"""``3dgp doctor`` as a stage: one report of the environment and the custom ops, and the optional ops build.

``run(DoctorRequest) -> dict`` returns a JSON-able report: python and platform, package versions, torch and the
visible GPUs (:mod:`stages.common.sysinfo`), the CUDA toolchain (nvcc, the C++ compiler, ninja, CUDA_HOME as set and
as resolved), the ops status and, with ``build`` or ``check_only``, the build result with each op's parity
self-check (:mod:`stages.ops`). The CLI only renders it.
"""
from __future__ import annotations

import os
import platform
import shutil
import sys
from dataclasses import dataclass

from stages.common.sysinfo import PACKAGES, package_version, tool_version, torch_info


def toolchain_info() -> dict:
    """nvcc (path + version), the C++ compiler, ninja and CUDA_HOME (as set and as resolved)."""
    from stages.ops import find_cuda_home, find_ninja, find_nvcc

    nvcc = find_nvcc()
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    ninja = find_ninja()
    return {
        "nvcc": {"path": nvcc, "version": tool_version([nvcc, "--version"], pick="release") if nvcc else None},
        "cxx": {"path": cxx, "version": tool_version([cxx, "--version"]) if cxx else None},
        "ninja": {"path": ninja, "version": tool_version([ninja, "--version"]) if ninja else None},
        "cuda_home": {"env": os.environ.get("CUDA_HOME"), "resolved": find_cuda_home()},
    }


@dataclass(frozen=True)
class DoctorRequest:
    """What ``3dgp doctor`` is asked to do."""

    build: bool = False  # --build-ops: build the CUDA ops (and self-check them)
    check_only: bool = False  # --check-only: only compile-check the kernels with nvcc
    verbose: bool = True  # show the build's output (off for --json)
    include_ops: bool = True  # the ops' status


def run(request: DoctorRequest) -> dict:
    """The doctor report (module docstring)."""
    report: dict = {
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "platform": platform.platform(),
        "packages": {name: package_version(name) for name in PACKAGES},
        "torch": torch_info(),
        "toolchain": toolchain_info(),
    }
    if request.include_ops:
        from stages.ops import ops_status

        report["ops"] = ops_status()
    if request.build or request.check_only:
        from stages.ops import build_ops

        report["build"] = build_ops(check_only=request.check_only, verbose=request.verbose)
    return report
