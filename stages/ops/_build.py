"""Lazy build of the CUDA extension (placeholder: full version follows)."""
from __future__ import annotations


def get_extension(explicit: bool = False):
    return None
