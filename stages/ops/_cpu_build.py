"""Build and load the plain-C CPU kernels (``csrc/*_cpu.c``) with the system C compiler (issue 21 §1).

The CPU kernels need no torch headers: ``cc -O3 -march=native -shared`` builds them in about a second, and
:mod:`ctypes` loads the library. Like the CUDA extension (:mod:`stages.ops._build`) nothing is built at import;
the first call builds into ``<cache root>/<key>/`` (key = sources' hash, compiler, machine), in a private
temporary folder renamed into place under a file lock, so concurrent ranks never see half a library and only one
of them compiles.

The kernels run on torch's own OpenMP team (:func:`team`): a second thread pool would fight torch's workers, which
spin for a while after every parallel op (measured: 2.4x slower tri-plane sampling with a Python thread pool).

Policy: the kernels are an optimisation of ops whose reference is PyTorch. When they cannot be built (no C
compiler, not x86-64/arm64 Linux or macOS, a compiler error) or fail their parity self-check, the ops run the
reference path and ONE warning says why -- unless ``THREEDGP_STRICT_OPS=1`` (then it raises). ``THREEDGP_CPU_KERNELS=0``
turns them off (the reference runs, no warning); ``CC`` picks the compiler.
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path

from stages.common.errors import OpsBuildError
from stages.ops._build import build_lock, cache_root, csrc_dir, strict

logger = logging.getLogger(__name__)

SOURCES = ("cpu_kernels.c", "winograd_cpu.c")
HEADERS = ("cpu_team.h",)  # hashed into the build key with the sources
LIB_NAME = "libthreedgp_cpu.so"
ENABLE_ENV = "THREEDGP_CPU_KERNELS"
COMPILE_TIMEOUT_S = 120



class Team(ctypes.Structure):
    """``team_t`` of the C sources: the OpenMP runtime's entry points and the thread count (module docstring)."""

    _fields_ = [("parallel", ctypes.c_void_p), ("thread_num", ctypes.c_void_p), ("num_threads", ctypes.c_void_p),
                ("threads", ctypes.c_int64)]


_I64, _PTR, _F32, _INT = ctypes.c_int64, ctypes.c_void_p, ctypes.c_float, ctypes.c_int
_TEAM = ctypes.POINTER(Team)
# name -> argtypes of every exported function (checked at load: a stale or foreign library fails loudly)
SIGNATURES = {
    "threedgp_triplane_forward": [_PTR, _PTR, _PTR, _I64, _I64, _I64, _I64, _F32, _TEAM],
    "threedgp_triplane_backward": [_PTR, _PTR, _PTR, _PTR, _PTR, _I64, _I64, _I64, _I64, _F32, _INT, _INT, _TEAM],
    "threedgp_mlp_forward": [_PTR, _PTR, _PTR, _PTR, _PTR, _PTR, _I64, _I64, _I64, _I64, _TEAM],
    "threedgp_mlp_backward": [_PTR, _PTR, _PTR, _PTR, _PTR, _PTR, _PTR, _PTR, _I64, _I64, _I64, _I64, _TEAM],
    "threedgp_act_grad": [_PTR, _PTR, _PTR, _I64, _F32, _F32, _TEAM],
    "threedgp_epilogue_forward": [_PTR, _PTR, _PTR, _PTR, _I64, _PTR, _I64, _I64, _I64, _TEAM],
    "threedgp_epilogue_backward": [_PTR, _PTR, _PTR, _PTR, _PTR, _PTR, _PTR, _PTR, _I64, _I64, _I64, _TEAM],
    "threedgp_modulate_backward": [_PTR, _PTR, _PTR, _PTR, _PTR, _I64, _I64, _I64, _TEAM],
    "threedgp_wino_input": [_PTR, _PTR, _I64, _I64, _I64, _I64, _TEAM],
    "threedgp_wino_output": [_PTR, _PTR, _I64, _I64, _I64, _I64, _TEAM],
    "threedgp_wino_grad_output": [_PTR, _PTR, _I64, _I64, _I64, _I64, _TEAM],
}

_lock = threading.Lock()
_state: dict = {"tried": False, "lib": None, "error": None, "warned": False}


def enabled() -> bool:
    """False when ``THREEDGP_CPU_KERNELS=0`` turns the CPU kernels off."""
    return os.environ.get(ENABLE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def find_compiler() -> str | None:
    """``$CC`` (a path or a name on PATH), else ``cc``, ``gcc`` or ``clang`` on PATH; None if none runs."""
    if os.environ.get("CC"):
        return shutil.which(os.environ["CC"])  # None when $CC names nothing runnable
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _machine_id() -> str:
    """The CPU the library is tuned for (-march=native): architecture plus the model and feature flags."""
    parts = [platform.system(), platform.machine()]
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "flags", "Features", "CPU part")):
                    parts.append(line.split(":", 1)[-1].strip())
                if line.strip() == "":
                    break  # the first processor describes them all
    except OSError:
        parts.append(platform.processor())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def build_key(compiler: str) -> str:
    digest = hashlib.sha256()
    for name in SOURCES + HEADERS:
        digest.update(name.encode())
        digest.update((csrc_dir() / name).read_bytes())
    digest.update(Path(compiler).name.encode())
    return f"threedgp_cpu-{sys.platform}-{digest.hexdigest()[:16]}-{_machine_id()}"


def _compile(compiler: str, out: Path) -> None:
    """Compile every source into one shared library ``out``; raise OpsBuildError with the first error line."""
    sources = [str(csrc_dir() / name) for name in SOURCES]
    base = [compiler, "-O3", "-std=gnu99", "-shared", "-fPIC", "-o", str(out)]
    attempts = (["-march=native"], ["-mcpu=native"], [])  # tuned for this CPU when the compiler knows how
    last = ""
    for extra in attempts:
        try:
            done = subprocess.run(base + extra + sources + ["-lm"], capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise OpsBuildError(f"cannot run the C compiler {compiler}: {exc}") from exc
        if done.returncode == 0:
            return
        last = done.stderr
    lines = [line for line in last.splitlines() if "error" in line.lower()] or last.splitlines() or ["unknown error"]
    raise OpsBuildError(f"compiling the CPU kernels with {compiler} failed: {lines[0].strip()[:300]}")


def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    for name, argtypes in SIGNATURES.items():
        fn = getattr(lib, name)  # AttributeError: a library without our symbols
        fn.argtypes = argtypes
        fn.restype = None
    return lib


def build_library() -> ctypes.CDLL:
    """Load the CPU kernels from the cache, building them first if needed; raise :class:`OpsBuildError`."""
    compiler = find_compiler()
    if compiler is None:
        named = f" ($CC={os.environ['CC']} is not runnable)" if os.environ.get("CC") else ""
        raise OpsBuildError(f"no C compiler found{named} (install gcc or clang, or set CC)")
    final_dir = cache_root() / build_key(compiler)
    library = final_dir / LIB_NAME
    if not library.exists():
        final_dir.parent.mkdir(parents=True, exist_ok=True)
        lock = build_lock(final_dir, "the CPU kernels")
        try:
            if not library.exists():  # another rank may have built it while we waited
                tmp_dir = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}-", dir=final_dir.parent))
                try:
                    logger.info("building the CPU kernels in %s", final_dir)
                    _compile(compiler, tmp_dir / LIB_NAME)
                    os.replace(tmp_dir, final_dir)  # atomic publish
                except OSError:  # another process published first: keep theirs
                    pass
                finally:
                    shutil.rmtree(tmp_dir, ignore_errors=True)
        finally:
            if lock is not None:
                lock.release()
    try:
        return _load(library)
    except (OSError, AttributeError) as exc:
        raise OpsBuildError(f"cannot load the CPU kernels {library}: {exc}") from exc


def get_library() -> ctypes.CDLL | None:
    """The CPU kernel library, or None to run the reference path (the policy of the module docstring)."""
    if not enabled():
        return None
    with _lock:
        if not _state["tried"]:
            _state["tried"] = True
            try:
                lib = build_library()
                from stages.ops import point_mlp, triplane_sample, winograd  # the ops that use the library check it

                failure = triplane_sample.selfcheck(lib) or point_mlp.selfcheck(lib) or winograd.selfcheck(lib)
                if failure:
                    raise OpsBuildError(f"the CPU kernels failed their self-check ({failure})")
                _state["lib"] = lib
            except OpsBuildError as exc:
                _state["error"] = exc
        if _state["lib"] is not None:
            return _state["lib"]
        error = _state["error"]
        if strict():
            raise OpsBuildError(f"{error} (THREEDGP_STRICT_OPS=1)") from error
        if not _state["warned"]:
            _state["warned"] = True
            message = f"{error}; the CPU ops run their PyTorch reference (slower)"
            warnings.warn(message, RuntimeWarning, stacklevel=3)
            logger.warning("%s", message)
        return None


_team: dict = {"entry": None, "tried": False}


def team(limit: int | None = None) -> Team:
    """The kernels' threads: torch's own intra-op OpenMP team at its current size (``torch.set_num_threads``), at
    most ``limit`` wide (small jobs are not worth waking threads for), so they never compete with a second pool;
    serial when torch's OpenMP runtime is not found."""
    import torch

    if not _team["tried"]:
        _team["tried"] = True
        from stages.ops.cpu_runtime import openmp_library

        omp = openmp_library()
        try:
            if omp is not None:
                _team["entry"] = tuple(ctypes.cast(getattr(omp, name), ctypes.c_void_p).value
                                       for name in ("GOMP_parallel", "omp_get_thread_num", "omp_get_num_threads"))
        except AttributeError:
            _team["entry"] = None
        if _team["entry"] is None:
            logger.debug("torch's OpenMP runtime not found: the CPU kernels run on one thread")
    if _team["entry"] is None:
        return Team(None, None, None, 1)
    threads = torch.get_num_threads() if limit is None else max(1, min(torch.get_num_threads(), limit))
    return Team(*_team["entry"], threads)


def status() -> dict:
    """What ``3dgp doctor`` shows about the CPU kernels."""
    compiler = find_compiler()
    from stages.ops import winograd

    out = {"compiler": compiler, "enabled": enabled(), "winograd_conv3x3": winograd.enabled()}
    if _state["lib"] is not None:
        out["state"] = "loaded"
    elif _state["error"] is not None:
        out.update(state="failed", reason=str(_state["error"]))
    elif compiler is None:
        out.update(state="unavailable", reason="no C compiler found")
    else:
        built = (cache_root() / build_key(compiler) / LIB_NAME).exists()
        out["state"] = "cached" if built else "not built (builds on first CPU use, ~1 s)"
    return out


def reset() -> None:
    """Forget the build attempt (tests use this)."""
    with _lock:
        _state.update(tried=False, lib=None, error=None, warned=False)
