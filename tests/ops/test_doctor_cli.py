"""``3dgp doctor``: report, JSON keys, --build-ops refusal on a CPU torch, --check-only (3DGP ref §9)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from stages.ops import _build
from threedgp_cli.app import app

runner = CliRunner()


def test_doctor_prints_the_report():
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    for word in ("python", "torch", "numpy", "nvcc", "ninja", "CUDA_HOME", "ops"):
        assert word in result.output


def test_doctor_json_has_every_key():
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report) >= {"python", "platform", "packages", "torch", "toolchain", "ops"}
    assert set(report["packages"]) == {"torch", "torchvision", "timm", "numpy"}
    assert report["packages"]["torch"] is not None
    assert set(report["torch"]) >= {"version", "cuda", "cuda_available", "gpus"}
    assert set(report["toolchain"]) == {"nvcc", "cxx", "ninja", "cuda_home"}
    assert set(report["ops"]) >= {"extension", "state", "strict", "fallback", "impl_report", "cache_root", "cpu_kernels"}
    assert report["ops"]["cpu_kernels"]["enabled"] is True
    assert report["ops"]["cpu_kernels"]["winograd_conv3x3"] is True  # THREEDGP_WINOGRAD unset: on


def test_build_ops_refuses_clearly_without_cuda_torch(monkeypatch):
    monkeypatch.setattr(_build, "why_cannot_build", lambda: "torch 2.x+cpu is a CPU-only build")
    result = runner.invoke(app, ["doctor", "--build-ops"])
    assert result.exit_code == 1
    assert "cannot build the CUDA ops" in result.output and "CPU-only" in result.output
    result = runner.invoke(app, ["doctor", "--build-ops", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.output)["build"] == {"reason": "torch 2.x+cpu is a CPU-only build", "action": "build",
                                                  "ok": False}


@pytest.mark.parametrize("status,code", [("ok", 0), ("error: expected a ';'", 1)])
def test_check_only_compile_checks_the_kernels(monkeypatch, status, code):
    monkeypatch.setattr(_build, "why_cannot_build", lambda: "torch 2.x+cpu is a CPU-only build")
    monkeypatch.setattr(_build, "find_nvcc", lambda: "/opt/cuda/bin/nvcc")
    monkeypatch.setattr(_build, "compile_check", lambda: {name: status for name in _build.KERNELS})
    result = runner.invoke(app, ["doctor", "--build-ops", "--check-only", "--json"])
    assert result.exit_code == code, result.output
    build = json.loads(result.output)["build"]
    assert build["action"] == "compile-check" and build["compile_check"] == {n: status for n in _build.KERNELS}


def test_build_ops_builds_when_possible(monkeypatch):
    built = []
    monkeypatch.setattr(_build, "why_cannot_build", lambda: None)
    monkeypatch.setattr(_build, "build_extension", lambda verbose=False: built.append(verbose) or object())
    monkeypatch.setattr(_build, "build_key", lambda: "threedgp_ops-test")
    result = runner.invoke(app, ["doctor", "--build-ops"])
    assert result.exit_code == 0, result.output
    assert built == [True] and "CUDA ops built" in result.output


def test_doctor_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from threedgp_cli.app import main\n"
        "try:\n"
        "    main(['doctor', '--help'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "assert 'torch' not in sys.modules, 'torch imported by doctor --help'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "--build-ops" in proc.stdout and "--json" in proc.stdout


def test_doctor_subprocess_json():
    proc = subprocess.run([sys.executable, "-m", "threedgp_cli", "doctor", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ops"]["extension"] == "threedgp_ops"
