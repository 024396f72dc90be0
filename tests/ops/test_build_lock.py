"""One process builds the CUDA extension, the others wait and load its build (issue 18 row 9).

Every rank of a run calls ``build_extension`` at its first CUDA op. The compile step is faked; two threads stand in
for two ranks (a ``flock`` belongs to an open file description, so two threads contend for it like two processes).
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from stages.common.lockfile import FileLock
from stages.ops import _build


def _fake_toolchain(monkeypatch, cache: Path, compile_seconds: float):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(cache))
    monkeypatch.setattr(_build, "why_cannot_build", lambda: None)
    monkeypatch.setattr(_build, "find_cuda_home", lambda: "/opt/cuda")
    monkeypatch.setattr(_build, "_prepare_toolchain", lambda cuda_home: None)
    monkeypatch.setattr(_build, "build_key", lambda: "threedgp_ops-test-key")
    monkeypatch.setattr(_build, "LOCK_POLL_S", 0.01, raising=False)
    monkeypatch.setattr(_build, "_import_library", lambda path: "module-from-cache")
    compiling, compiles = threading.Event(), []

    def compile_(build_dir, verbose):
        compiles.append(build_dir)
        compiling.set()
        time.sleep(compile_seconds)  # the other rank arrives while this one compiles
        (build_dir / "threedgp_ops.so").write_bytes(b"\x7fELF")
        return "freshly-built-module"

    monkeypatch.setattr(_build, "_compile", compile_)
    return compiling, compiles


def test_concurrent_ranks_compile_once(monkeypatch, tmp_path):
    compiling, compiles = _fake_toolchain(monkeypatch, tmp_path / "cache", compile_seconds=0.5)
    results = {}

    def rank(r):
        results[r] = _build.build_extension()

    first = threading.Thread(target=rank, args=(0,))
    first.start()
    assert compiling.wait(10)
    second = threading.Thread(target=rank, args=(1,))
    second.start()
    first.join(30)
    second.join(30)
    assert len(compiles) == 1
    assert results == {0: "freshly-built-module", 1: "module-from-cache"}
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["threedgp_ops-test-key"]  # the lock file is gone


def test_an_unlockable_cache_still_builds(monkeypatch, tmp_path):
    _, compiles = _fake_toolchain(monkeypatch, tmp_path / "cache", compile_seconds=0)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(FileLock, "acquire", refuse)
    assert _build.build_extension() == "freshly-built-module" and len(compiles) == 1
