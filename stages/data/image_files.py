"""Image files of a folder or a ``.zip``, listed and read the same way by ``3dgp prep`` (its folder, zip and
imagenet sources) and ``3dgp eval`` (``--fakes`` / ``--data`` given as images) (3DGP ref §7.1).

* :func:`walk_files`: a recursive listing of a folder that never blocks and never loops (issue 13 §5). Regular
  files (and symbolic links to them) are inputs. Symbolic links to folders are followed, except one that leads back
  to a folder already listed (a loop, or the same folder twice). Everything else is *skipped* with a reason
  (:class:`Skipped`; prep reports it in ``prep_report.json`` like any unreadable image): dangling links, link loops
  (``a -> a``), FIFOs, sockets and device files (opening a FIFO would block forever), and unreadable folders.
* :func:`list_image_files`: the images of a folder or a zip, sorted by relative path, with a leading folder equal to
  the zip's (or folder's) basename stripped (the official ``remove_root``), ``<name>_depth.png`` files paired with
  their image instead of listed as images.
* :func:`read_zip_member`: a zip member's bytes with a bound on the decompressed size (each process opens a zip
  once: :func:`open_cached`); :func:`image_data` gives what :mod:`stages.data.decode` reads for one listed image.

PIL and the standard library only (runs in prep's decode workers).
"""
from __future__ import annotations

import errno
import os
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from stages.common.errors import BadFileError
from stages.data.decode import Unreadable

DEPTH_SUFFIX = "_depth.png"  # "<name>_depth.png" beside "<name>.<ext>": a precomputed depth map (3DGP ref §3.3)
DEFAULT_MAX_BYTES = 512 << 20  # one zip member (prep's ``--max-file-mb``)

_OPEN: dict[tuple[int, str], object] = {}  # (pid, path) -> an open ZipFile / lmdb env in this process


@dataclass
class Skipped:
    """An input (or a listed entry) that could not be used, with the reason."""

    source: str
    reason: str


class ImageFile(NamedTuple):
    """One image of a folder or a zip (picklable)."""

    rel: str  # '/'-separated path relative to the root, leading root folder stripped (names the image)
    path: str  # the image file (a folder) | the zip, resolved (a zip)
    member: str  # "" (a folder) | the image's zip member
    depth: str | None  # its "<name>_depth.png": a file path (a folder) | a member of the same zip; None without one


@dataclass
class ImageListing:
    """What :func:`list_image_files` found under ``src``."""

    src: Path  # the folder or zip listed
    names: list[str]  # every file (not only images), root-stripped and sorted
    prefix: str  # the root folder stripped from every path ("<name>/"), or ""
    images: list[ImageFile]  # the images, sorted by ``rel``
    skipped: list[Skipped]  # special entries of a folder skipped while listing (links, FIFOs, ...)

    @property
    def is_zip(self) -> bool:
        return not self.src.is_dir()


_SPECIAL = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"))


def _special_reason(mode: int) -> str:
    kind = next((name for test, name in _SPECIAL if test(mode)), "a special file")
    return f"{kind}, not a regular file; skipped without opening it"


def walk_files(root: Path) -> tuple[list[str], list[Skipped]]:
    """Every regular file under ``root`` as a sorted '/'-separated relative path, plus the entries skipped."""
    files: list[str] = []
    skipped: list[Skipped] = []
    seen = _real_folders(root)  # every real folder under root: a link to one of them is a loop or a duplicate
    stack = [(str(root), "")]
    while stack:
        folder, rel = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name, reverse=True)  # popped in name order
        except OSError as exc:
            skipped.append(Skipped(rel or ".", f"cannot list this folder ({exc.strerror or exc})"))
            continue
        for entry in entries:
            child = f"{rel}{entry.name}"
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:
                skipped.append(Skipped(child, _unstattable_reason(entry, exc)))
                continue
            if stat.S_ISREG(st.st_mode):
                files.append(child)
            elif stat.S_ISDIR(st.st_mode):
                real = os.path.realpath(entry.path)
                if entry.is_symlink() and real in seen:
                    here = os.path.realpath(folder)
                    loop = here == real or here.startswith(real.rstrip(os.sep) + os.sep)
                    skipped.append(Skipped(child, "symbolic link loop (points to a folder above it)" if loop
                                           else "symbolic link to a folder that is listed already"))
                    continue
                seen.add(real)
                stack.append((entry.path, child + "/"))
            else:
                skipped.append(Skipped(child, _special_reason(st.st_mode)))
    files.sort()
    skipped.sort(key=lambda s: s.source)
    return files, skipped


def _real_folders(root: Path) -> set[str]:
    """The real paths of ``root`` and of every folder below it reached without following links."""
    found = {os.path.realpath(root)}
    for folder, dirs, _ in os.walk(root, followlinks=False):
        for name in dirs:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                found.add(os.path.realpath(path))
    return found


def _unstattable_reason(entry: os.DirEntry, exc: OSError) -> str:
    if not entry.is_symlink():
        return f"cannot read ({exc.strerror or exc})"
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    return f"dangling symbolic link (-> {_readlink(entry.path)})"


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def image_extensions() -> set[str]:
    """Lower-case file extensions PIL can open (``.jpg``, ``.png``, ``.webp``, ...)."""
    from PIL import Image

    return {ext.lower() for ext in Image.registered_extensions()}


def strip_root(relpaths: list[str], root: str) -> tuple[list[str], str]:
    """Drop a leading ``root/`` from every path when all of them carry it; returns (paths, prefix dropped)."""
    prefix = root + "/"
    if relpaths and all(p.startswith(prefix) for p in relpaths):
        return [p[len(prefix) :] for p in relpaths], prefix
    return relpaths, ""


def _list_files(src: Path) -> tuple[list[str], str, list[Skipped]]:
    """All file paths under ``src`` (a folder or a zip), '/'-separated and relative, the dropped root prefix, and
    the special entries skipped while listing a folder."""
    if src.is_dir():
        names, skipped = walk_files(src)
        names, prefix = strip_root(names, src.name)
        return names, prefix, [Skipped(s.source[len(prefix):] if s.source.startswith(prefix) else s.source, s.reason)
                               for s in skipped]
    if not src.is_file():
        raise BadFileError(src, "not a regular file (expected a folder or a .zip of images)")
    try:
        with zipfile.ZipFile(src) as archive:
            names = sorted(n for n in archive.namelist() if not n.endswith("/"))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise BadFileError(src, f"not a readable zip file ({exc})") from None
    names, prefix = strip_root(names, src.stem)
    return names, prefix, []


def list_image_files(
    src: Path,  # a folder or a .zip
    max_images: int | None = None,  # keep the first N images in path order
) -> ImageListing:
    """The images under ``src`` (sorted by relative path, ``_depth.png`` files paired, not listed); BadFileError
    naming ``src`` when it is missing, not a folder or zip, unreadable, or holds no image."""
    if not src.exists():
        raise BadFileError(src, "no such file or directory")
    if not src.is_dir() and src.suffix.lower() != ".zip":
        raise BadFileError(src, "expected a folder or a .zip of images")
    names, prefix, skipped = _list_files(src)
    exts = image_extensions()
    name_set = set(names)
    rels = [n for n in names if Path(n).suffix.lower() in exts and not n.endswith(DEPTH_SUFFIX)]
    if max_images is not None:
        rels = rels[:max_images]
    if not rels:
        raise BadFileError(src, "contains no image files")
    images = []
    for rel in rels:
        depth_rel = depth_name(rel)
        depth = depth_rel if depth_rel in name_set else None
        if src.is_dir():
            images.append(ImageFile(rel, str(src / (prefix + rel)), "", depth and str(src / (prefix + depth))))
        else:
            images.append(ImageFile(rel, str(src.resolve()), prefix + rel, depth and prefix + depth))
    return ImageListing(src, names, prefix, images, skipped)


def depth_name(rel: str) -> str:
    """``a/b.jpg`` -> ``a/b_depth.png``: where an image's precomputed depth map would be."""
    return rel[: len(rel) - len(Path(rel).suffix)] + DEPTH_SUFFIX


def open_cached(path: str, opener):
    """``opener(path)``, opened once per process and path (zip files, LMDB envs) and kept open."""
    key = (os.getpid(), path)
    if key not in _OPEN:
        _OPEN[key] = opener(path)
    return _OPEN[key]


def over_cap_reason(size: int, max_bytes: int) -> str:
    """Why a file of ``size`` bytes is skipped under a ``max_bytes`` cap (names prep's ``--max-file-mb``)."""
    return (f"too large ({size / 2**20:,.1f} MiB uncompressed; the limit is {max_bytes >> 20} MiB per file: "
            "raise it with --max-file-mb if the file is real)")


def read_archive_member(archive: zipfile.ZipFile, member: str, max_bytes: int) -> bytes:
    """A member's bytes from an open zip, never more than ``max_bytes`` decompressed (a small zip can claim a
    1.5 GiB member: its declared size is checked first, and the stream is read with a bound in case the header
    lies); Unreadable when it is larger."""
    info = archive.getinfo(member)
    if info.file_size > max_bytes:
        raise Unreadable(over_cap_reason(info.file_size, max_bytes))
    with archive.open(info) as stream:
        data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise Unreadable(over_cap_reason(len(data), max_bytes))
    return data


def read_zip_member(zip_path: str, member: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """``member`` of the zip at ``zip_path`` (opened once per process), at most ``max_bytes`` decompressed; raises
    Unreadable with a reason for a member that is too large, missing, encrypted or corrupt."""
    try:
        archive = open_cached(zip_path, zipfile.ZipFile)
        return read_archive_member(archive, member, max_bytes)
    except Unreadable:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, ValueError, NotImplementedError, RuntimeError,
            zlib.error) as exc:  # RuntimeError: an encrypted member; zlib.error: corrupt compressed data
        raise Unreadable(f"cannot read from the zip ({type(exc).__name__}: {exc})") from None


def image_data(image: ImageFile, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes | str:
    """What :func:`stages.data.decode.load_rgb` reads for ``image``: the file's path, or the zip member's bytes."""
    return read_zip_member(image.path, image.member, max_bytes) if image.member else image.path
