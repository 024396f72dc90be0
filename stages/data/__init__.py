"""The dataset format (3DGP ref §3.3, §7.1): schema (``format``), LMDB writer/readers (``lmdb_store``), the torch
reader (``dataset.LmdbDataset``), a summary for ``3dgp info`` (``summary``) and contact sheets (``preview``); and the
image files both prep and eval read (ref §7.4): listing a folder or zip and reading its members (``image_files``),
decoding, center-crop and resize (``decode``).

Importing this package does not import torch; ``LmdbDataset`` is loaded on first access.
"""
from stages.data.format import FORMAT_VERSION
from stages.data.lmdb_store import DatasetWriter, read_meta

__all__ = ["FORMAT_VERSION", "DatasetWriter", "LmdbDataset", "read_meta"]


def __getattr__(name):
    if name == "LmdbDataset":
        from stages.data.dataset import LmdbDataset

        return LmdbDataset
    raise AttributeError(name)
