"""The extension cache: build in a private folder, publish atomically, reuse; clean up on failure (ref §9)."""
from __future__ import annotations

from pathlib import Path

import pytest

from stages.common.errors import OpsBuildError
from stages.ops import _build


@pytest.fixture
def fake_toolchain(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(_build, "why_cannot_build", lambda: None)
    monkeypatch.setattr(_build, "find_cuda_home", lambda: "/opt/cuda")
    monkeypatch.setattr(_build, "_prepare_toolchain", lambda cuda_home: None)
    monkeypatch.setattr(_build, "build_key", lambda: "threedgp_ops-test-key")
    imported: list[Path] = []
    monkeypatch.setattr(_build, "_import_library", lambda path: imported.append(Path(path)) or "module-from-cache")
    return tmp_path / "cache", imported


def test_cache_root_follows_torch_extensions_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    assert _build.cache_root() == tmp_path
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR")
    assert _build.cache_root() == Path.home() / ".cache" / "3dgp" / "ops"


def test_build_publishes_atomically_then_reuses(monkeypatch, fake_toolchain):
    cache, imported = fake_toolchain
    seen_dirs = []

    def compile_(build_dir, verbose):
        seen_dirs.append(build_dir)
        assert build_dir.parent == cache and build_dir.name.startswith(".threedgp_ops-test-key-")
        assert (build_dir / "bias_act.cu").exists()  # sources are copied next to the build
        (build_dir / "threedgp_ops.so").write_bytes(b"\x7fELF")
        return "freshly-built-module"

    monkeypatch.setattr(_build, "_compile", compile_)
    assert _build.build_extension() == "freshly-built-module"
    final = cache / "threedgp_ops-test-key"
    assert (final / "threedgp_ops.so").exists() and not seen_dirs[0].exists()
    assert [p.name for p in cache.iterdir()] == ["threedgp_ops-test-key"]  # no temp folder left behind
    assert _build.build_extension() == "module-from-cache"  # second process: load, no compile
    assert imported == [final / "threedgp_ops.so"] and len(seen_dirs) == 1


def test_failed_compile_cleans_up_and_names_the_cause(monkeypatch, fake_toolchain):
    cache, _ = fake_toolchain

    def compile_(build_dir, verbose):
        raise RuntimeError("Error building extension 'threedgp_ops': [1/4] nvcc ...\n"
                           "upfirdn2d.cu(12): error: identifier \"foo\" is undefined\n"
                           "ninja: build stopped: subcommand failed.")

    monkeypatch.setattr(_build, "_compile", compile_)
    with pytest.raises(OpsBuildError, match='upfirdn2d.cu\\(12\\): error: identifier "foo" is undefined$'):
        _build.build_extension()
    assert list(cache.iterdir()) == []


def test_losing_the_publish_race_keeps_the_winner(monkeypatch, fake_toolchain):
    cache, _ = fake_toolchain
    final = cache / "threedgp_ops-test-key"

    def compile_(build_dir, verbose):
        final.mkdir(parents=True)  # another rank published while we compiled
        (final / "threedgp_ops.so").write_bytes(b"winner")
        (build_dir / "threedgp_ops.so").write_bytes(b"loser")
        return "our-module"

    monkeypatch.setattr(_build, "_compile", compile_)
    assert _build.build_extension() == "our-module"
    assert (final / "threedgp_ops.so").read_bytes() == b"winner"
    assert [p.name for p in cache.iterdir()] == ["threedgp_ops-test-key"]
