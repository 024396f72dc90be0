"""The CUDA sources: bare ``nvcc -c`` compile check, binding syntax check, and Python/C++ consistency (ref §9)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stages.ops import _build
from stages.ops.bias_act import ACTIVATIONS

REPO = Path(__file__).resolve().parents[2]


def test_every_source_exists_and_is_package_data():
    for name in _build.SOURCES + _build.HEADERS:
        assert (_build.csrc_dir() / name).is_file(), name
    pyproject = (REPO / "pyproject.toml").read_text()
    for suffix in ("cu", "cpp", "h", "cuh"):
        assert f'"ops/csrc/*.{suffix}"' in pyproject


def test_activation_ids_match_the_kernel_enum():
    header = (_build.csrc_dir() / "bias_act.h").read_text()
    enum = {name.lower(): int(value) for name, value in re.findall(r"k(\w+) = (\d+),", header)}
    assert {name: spec.cuda_id for name, spec in ACTIVATIONS.items()} == enum


def test_source_hash_is_stable_and_content_based(tmp_path, monkeypatch):
    first = _build.source_hash()
    assert first == _build.source_hash() and len(first) == 64
    for name in _build.SOURCES + _build.HEADERS:
        shutil.copyfile(_build.csrc_dir() / name, tmp_path / name)
    (tmp_path / "upfirdn2d.cu").write_text((tmp_path / "upfirdn2d.cu").read_text() + "\n// changed\n")
    monkeypatch.setattr(_build, "csrc_dir", lambda: tmp_path)
    assert _build.source_hash() != first


@pytest.mark.slow
@pytest.mark.skipif(_build.find_nvcc() is None, reason="nvcc not installed")
def test_kernels_compile_with_bare_nvcc(tmp_path):
    results = _build.compile_check(out_dir=tmp_path)
    assert set(results) == set(_build.KERNELS)
    assert all(status.startswith("ok") for status in results.values()), results
    for name in _build.KERNELS:
        assert (tmp_path / (Path(name).stem + ".o")).stat().st_size > 0


@pytest.mark.slow
@pytest.mark.skipif(_build.find_cuda_home() is None or shutil.which("c++") is None, reason="no CUDA headers / c++")
def test_binding_parses_against_torch_headers(tmp_path):
    """Syntax-check bindings.cpp with torch's headers (a CPU torch lacks one generated CUDA header: stub it)."""
    import sysconfig

    from torch.utils import cpp_extension

    stub = tmp_path / "c10" / "cuda" / "impl"
    stub.mkdir(parents=True)
    (stub / "cuda_cmake_macros.h").write_text("#pragma once\n")
    includes = [*cpp_extension.include_paths(), str(tmp_path), sysconfig.get_paths()["include"],
                str(Path(_build.find_cuda_home()) / "include"), str(_build.csrc_dir())]
    cmd = ["c++", "-fsyntax-only", "-std=c++20", "-DTORCH_EXTENSION_NAME=threedgp_ops",
           *[f"-I{p}" for p in includes], str(_build.csrc_dir() / "bindings.cpp")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert proc.returncode == 0, "\n".join(errors[:20]) or proc.stderr[-2000:]


def test_compile_check_without_nvcc_is_a_clear_error(monkeypatch):
    from stages.common.errors import OpsBuildError

    monkeypatch.setattr(_build, "find_nvcc", lambda: None)
    with pytest.raises(OpsBuildError, match="nvcc not found"):
        _build.compile_check()


def test_importing_ops_builds_nothing():
    code = (
        "import sys\n"
        "import stages.ops\n"
        "assert 'torch.utils.cpp_extension' not in sys.modules\n"
        "assert 'threedgp_ops' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
