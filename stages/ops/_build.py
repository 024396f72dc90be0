"""Lazy, cached, atomic build of the CUDA extension and the fallback policy (3DGP ref §9; style guide 7).

* Nothing is built at import. :func:`get_extension` builds on the first CUDA call and caches the result for
  the process; a built extension is cached on disk under ``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/3dgp/ops``,
  in a folder keyed by the sources' hash, Python, torch, CUDA and the GPU architectures, so a second process
  loads it in well under a second.
* A build happens in a private temporary folder that is renamed into place (``os.replace``), so concurrent
  ranks never see a half-written cache. One process builds at a time (issue 18 row 9): the builder holds a file
  lock (``.<key>.lock`` beside the cache folder, :mod:`stages.common.lockfile`); the other ranks of a run wait for
  it and then load its build instead of compiling the same sources N times over on one machine.
* A failure makes the op fall back to the reference path with ONE warning naming the cause, unless
  ``THREEDGP_STRICT_OPS=1`` or the caller asked for ``impl="cuda"`` explicitly: then it raises
  :class:`OpsBuildError`.
"""
from __future__ import annotations

import glob
import hashlib
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from stages.common.errors import BadFileError, OpsBuildError
from stages.common.lockfile import FileLock

logger = logging.getLogger(__name__)

EXT_NAME = "threedgp_ops"
SOURCES = ("bindings.cpp", "bias_act.cu", "upfirdn2d.cu", "volume_composite.cu")
HEADERS = ("common.cuh", "dtypes.h", "bias_act.h", "upfirdn2d.h", "volume_composite.h")
KERNELS = ("bias_act.cu", "upfirdn2d.cu", "volume_composite.cu")  # compile without torch headers
STRICT_ENV = "THREEDGP_STRICT_OPS"
LOCK_POLL_S = 0.5  # how often a waiting rank retries the build lock (a build takes minutes)

_lock = threading.Lock()
_state: dict = {"tried": False, "module": None, "error": None, "warned": False}


def csrc_dir() -> Path:
    """The folder holding the CUDA/C++ sources (package data)."""
    return Path(__file__).resolve().parent / "csrc"


def cache_root() -> Path:
    """Where built extensions are cached: ``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/3dgp/ops``."""
    env = os.environ.get("TORCH_EXTENSIONS_DIR")
    return Path(env) if env else Path.home() / ".cache" / "3dgp" / "ops"


def strict() -> bool:
    """Whether a failed build is fatal (``THREEDGP_STRICT_OPS=1``)."""
    return os.environ.get(STRICT_ENV, "0").strip().lower() in ("1", "true", "yes")


def source_hash() -> str:
    """SHA-256 over the names and contents of every source and header."""
    digest = hashlib.sha256()
    for name in sorted(SOURCES + HEADERS):
        digest.update(name.encode())
        digest.update((csrc_dir() / name).read_bytes())
    return digest.hexdigest()


def find_cuda_home() -> str | None:
    """The CUDA toolkit root: $CUDA_HOME / $CUDA_PATH, /usr/local/cuda, or the folder above a real ``nvcc``.

    (A ``/usr/local/bin/nvcc`` wrapper script would make torch guess ``/usr/local``; we check for headers.)
    """
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(str(Path(nvcc).resolve().parent.parent))
    for root in candidates:
        if root and (Path(root) / "bin" / "nvcc").exists() and (Path(root) / "include" / "cuda_runtime.h").exists():
            return root
    return None


def why_cannot_build() -> str | None:
    """A one-line reason the CUDA extension cannot be built here, or None if it can be tried."""
    import torch

    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build (install the CUDA wheels: README 'Installing')"
    if not torch.cuda.is_available() and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        # Ahead-of-time builds (e.g. on a cluster's login node) work without a device once the target
        # architectures are named.
        return "torch sees no CUDA device (set TORCH_CUDA_ARCH_LIST, e.g. '8.0;9.0', to build without one)"
    if find_cuda_home() is None:
        return "no CUDA toolkit found (nvcc); set CUDA_HOME to the toolkit root"
    if find_ninja() is None:
        return "ninja not found (pip install ninja)"
    return None


def find_ninja() -> str | None:
    """``ninja`` on PATH, or next to this Python (a venv's ``pip install ninja`` when the venv is not activated)."""
    found = shutil.which("ninja")
    if found:
        return found
    beside = Path(sys.executable).parent / "ninja"
    return str(beside) if beside.exists() else None


def build_key() -> str:
    """Cache folder name: extension, Python, torch, CUDA, GPU architectures and source hash."""
    import torch

    archs = os.environ.get("TORCH_CUDA_ARCH_LIST")
    if not archs and torch.cuda.is_available():
        caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
        archs = "_".join(f"{major}{minor}" for major, minor in caps)
    parts = [EXT_NAME, f"py{sys.version_info.major}{sys.version_info.minor}", f"torch{torch.__version__}",
             f"cu{torch.version.cuda}", f"sm{archs or 'default'}", source_hash()[:16]]
    return "-".join(p.replace("+", "_").replace(" ", "").replace(";", "_").replace(".", "") for p in parts)


def cached_library(build_dir: Path) -> Path | None:
    """The built shared library inside ``build_dir``, if any."""
    found = [p for ext in (".so", ".pyd") for p in sorted(glob.glob(str(build_dir / f"{EXT_NAME}*{ext}")))]
    return Path(found[0]) if found else None


def _import_library(path: Path):
    """Import a built extension from its shared library."""
    import torch  # noqa: F401 - the extension links against torch's libraries, which must be loaded first

    spec = importlib.util.spec_from_file_location(EXT_NAME, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prepare_toolchain(cuda_home: str) -> None:
    """Point torch's cpp_extension at ``cuda_home`` (it guesses once, at its own import) and at ninja."""
    from torch.utils import cpp_extension

    ninja = find_ninja()
    if ninja and shutil.which("ninja") is None:  # torch runs plain `ninja`
        os.environ["PATH"] = str(Path(ninja).parent) + os.pathsep + os.environ.get("PATH", "")

    os.environ.setdefault("CUDA_HOME", cuda_home)
    current = getattr(cpp_extension, "CUDA_HOME", None)
    if current is None or not (Path(current) / "include" / "cuda_runtime.h").exists():
        cpp_extension.CUDA_HOME = cuda_home


def _compile(build_dir: Path, verbose: bool):
    """Build and import the extension from the sources copied into ``build_dir`` (torch's JIT loader)."""
    from torch.utils import cpp_extension

    return cpp_extension.load(
        name=EXT_NAME,
        sources=[str(build_dir / name) for name in SOURCES],
        extra_cflags=["-O3"],
        extra_cuda_cflags=["-O3"],
        extra_include_paths=[str(build_dir)],
        build_directory=str(build_dir),
        verbose=verbose,
    )


def build_lock(final_dir: Path, what: str = "the CUDA ops") -> FileLock | None:
    """Wait for, then hold, the lock on building ``final_dir`` (module docstring). None if the cache folder cannot
    hold a lock file: building unlocked is then still safe (atomic publish), only wasteful."""
    path = final_dir.parent / f".{final_dir.name}.lock"
    waiting = False
    while True:
        try:
            return FileLock.acquire(path, f"another process ({{holder}}) is building {what}", unlink_on_release=True)
        except BadFileError as busy:
            if not waiting:
                waiting = True
                logger.info("%s; waiting for its build", busy.message.split(";")[0])
            time.sleep(LOCK_POLL_S)
        except OSError as exc:
            logger.debug("building %s without a lock (%s)", what, exc)
            return None


def build_extension(verbose: bool = False):
    """Load the extension from the cache, building it first if needed; raise :class:`OpsBuildError` on failure."""
    reason = why_cannot_build()
    if reason is not None:
        raise OpsBuildError(f"cannot build the CUDA ops: {reason}")
    _prepare_toolchain(find_cuda_home())  # type: ignore[arg-type]
    final_dir = cache_root() / build_key()
    library = cached_library(final_dir)
    if library is None:
        final_dir.parent.mkdir(parents=True, exist_ok=True)
        lock = build_lock(final_dir)
        try:
            library = cached_library(final_dir)  # another rank may have built it while we waited
            if library is None:
                return _compile_and_publish(final_dir, verbose)
        finally:
            if lock is not None:
                lock.release()
    logger.debug("loading cached CUDA ops from %s", library)
    return _import_library(library)


def _compile_and_publish(final_dir: Path, verbose: bool):
    """Compile in a private temporary folder and rename it to ``final_dir`` (atomic publish)."""
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}-", dir=final_dir.parent))
    logger.info("building the CUDA ops in %s (first use; takes a minute or two)", final_dir)
    try:
        for name in SOURCES + HEADERS:  # the cache folder is self-contained
            shutil.copyfile(csrc_dir() / name, tmp_dir / name)
        module = _compile(tmp_dir, verbose)
    except Exception as exc:  # noqa: BLE001 - any compiler/linker error becomes one user-facing error
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise OpsBuildError(f"building the CUDA ops failed: {summarize_build_error(exc)}") from exc
    try:
        os.replace(tmp_dir, final_dir)  # atomic publish; the loaded library stays mapped
    except OSError:  # another process published first: keep theirs
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return module


def summarize_build_error(exc: BaseException) -> str:
    """The most telling line of a build failure: the first compiler error, else the last line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() and not line.startswith("Error building extension")]
    chosen = errors[0] if errors else (lines[-1] if lines else type(exc).__name__)
    return chosen[:300]


def get_extension(explicit: bool = False):
    """The CUDA extension module, or None to run the reference path (the fallback policy, module docstring).

    Args:
        explicit: the caller asked for ``impl="cuda"``; a failed build then raises instead of falling back.
    """
    with _lock:
        if not _state["tried"]:
            _state["tried"] = True
            try:
                _state["module"] = build_extension()
            except OpsBuildError as exc:
                _state["error"] = exc
        if _state["module"] is not None:
            return _state["module"]
        error = _state["error"]
        if explicit or strict():
            hint = "" if explicit else f" ({STRICT_ENV}=1)"
            raise OpsBuildError(f"{error}{hint}") from error
        if not _state["warned"]:
            _state["warned"] = True
            message = f"{error}; falling back to the slow reference implementation of the 3dgp ops"
            warnings.warn(message, RuntimeWarning, stacklevel=3)
            logger.warning("%s", message)  # the training log too, not only the console (issue 18 row 10)
        return None


def loaded_extension():
    """The CUDA extension if this process has built or loaded it, else None (never builds; see get_extension)."""
    return _state["module"]


def reset() -> None:
    """Forget the build attempt (tests use this)."""
    with _lock:
        _state.update(tried=False, module=None, error=None, warned=False)


def ops_status() -> dict:
    """What ``3dgp doctor`` shows about the ops: build state, reason, cache folder, strict mode, impl report."""
    from stages.ops._impl import OPS, cuda_policy, impl_report

    allowed = cuda_policy()
    status = {"extension": EXT_NAME, "sources": str(csrc_dir()), "cache_root": str(cache_root()),
              "strict": strict(), "impl_report": impl_report(),
              "cuda_policy": [op for op in OPS if op in allowed]}
    reason = why_cannot_build()
    if _state["module"] is not None:
        status["state"] = "loaded"
    elif _state["error"] is not None:
        status.update(state="failed", reason=str(_state["error"]))
    elif reason is not None:
        status.update(state="unavailable", reason=reason)
    else:
        cached = cached_library(cache_root() / build_key())
        status["state"] = "cached" if cached else "not built (builds on first CUDA use)"
        status["cache_dir"] = str(cache_root() / build_key())
    status["fallback"] = "error" if status["strict"] else "reference path, one warning"
    from stages.ops import _cpu_build

    status["cpu_kernels"] = _cpu_build.status()
    return status


# The flags torch adds for nvcc that matter to our sources (half conversions must use intrinsics).
NVCC_CHECK_FLAGS = (
    "-std=c++17",
    "-O2",
    "-D__CUDA_NO_HALF_OPERATORS__",
    "-D__CUDA_NO_HALF_CONVERSIONS__",
    "-D__CUDA_NO_BFLOAT16_CONVERSIONS__",
    "-D__CUDA_NO_HALF2_OPERATORS__",
)


def find_nvcc() -> str | None:
    """Path of ``nvcc``: on PATH, else under the CUDA toolkit root."""
    nvcc = shutil.which("nvcc")
    if nvcc:
        return nvcc
    root = find_cuda_home()
    return str(Path(root) / "bin" / "nvcc") if root else None


def compile_check(out_dir: str | os.PathLike | None = None, nvcc: str | None = None,
                  timeout_s: float = 300) -> dict[str, str]:
    """Compile each kernel file with a bare ``nvcc -c`` (no torch needed) and report ``{file: "ok" | error}``.

    This checks the CUDA sources on machines that cannot build the full extension (CPU torch, no GPU).
    Raises :class:`OpsBuildError` when no ``nvcc`` exists.
    """
    import subprocess

    nvcc = nvcc or find_nvcc()
    if nvcc is None:
        raise OpsBuildError("nvcc not found: cannot compile-check the CUDA kernels (set CUDA_HOME)")
    results: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(out_dir or scratch)
        for name in KERNELS:
            cmd = [nvcc, "-c", *NVCC_CHECK_FLAGS, "-I", str(csrc_dir()), str(csrc_dir() / name),
                   "-o", str(target / (Path(name).stem + ".o"))]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
            except (OSError, subprocess.TimeoutExpired) as exc:
                results[name] = f"{type(exc).__name__}: {exc}"
                continue
            output = (proc.stdout + proc.stderr).strip()
            results[name] = "ok" if proc.returncode == 0 else (output.splitlines() or ["failed"])[-1]
            if proc.returncode == 0 and "warning" in output.lower():
                results[name] = "ok (warnings: " + output.splitlines()[0][:200] + ")"
    return results


def build_ops(check_only: bool = False, verbose: bool = True) -> dict:
    """``3dgp doctor --build-ops``: build (or, with ``check_only``, compile-check) the CUDA ops ahead of time.

    Returns ``{"ok": bool, "action": ..., "reason": ..., "compile_check": {...}, "cache_dir": ...}``. Without
    ``check_only``, a machine that cannot build (CPU torch, no GPU, no nvcc) gives ``ok=False`` with the reason.
    ``check_only`` never runs the full build: it compile-checks the kernels with a bare ``nvcc -c`` when nvcc
    exists, and is ``ok`` unless that compilation fails.
    """
    reason = why_cannot_build()
    result: dict = {"reason": reason}
    if check_only:
        result["action"] = "compile-check"
        if find_nvcc() is None:
            result.update(ok=True, compile_check=None, note="nvcc not found: kernels not compile-checked")
            return result
        checks = compile_check()
        result.update(ok=all(v.startswith("ok") for v in checks.values()), compile_check=checks)
        return result
    result["action"] = "build"
    if reason is not None:
        result["ok"] = False
        return result
    try:
        module = build_extension(verbose=verbose)
    except OpsBuildError as exc:
        result.update(ok=False, reason=str(exc))
        return result
    result.update(ok=True, cache_dir=str(cache_root() / build_key()))
    import torch

    if torch.cuda.is_available():  # parity self-check of every kernel against the reference (issue 12 §1)
        from stages.ops import selfcheck

        with _lock:
            _state.update(tried=True, module=module)
        checks = selfcheck.verify_all(module, "cuda")
        result.update(selfcheck=checks, ok=all(c["passed"] for c in checks.values()))
    return result
