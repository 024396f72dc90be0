"""Checkpoints written by earlier versions still load (issue 11, acceptance 1): the parameter and buffer names and
shapes of the presets' networks are pinned. The golden digests were computed at commit 1f37454 (before the
structure pass renamed constructor arguments) and are unchanged since. If a change must alter them, it needs a
checkpoint upgrade path (``stages.common.checkpoint``) and new digests, not just new digests."""
from __future__ import annotations

import hashlib

import pytest
import torch

from stages.nn.build import build
from stages.nn.config import MODEL_PRESETS

GOLDEN = {  # preset: (G entries, G digest, D entries, D digest)
    "tiny": (107, "5b1c93c70010874e", 57, "76862610129f30fe"),
    "dogs": (183, "2c0ae976f6f199a5", 87, "af1ab4c72f49eb1c"),
    "imagenet": (189, "3a0ad4d6a1038ae8", 87, "24dfb1080240e597"),
}


def _layout(module: torch.nn.Module) -> tuple[int, str]:
    lines = [f"{k}:{tuple(v.shape)}" for k, v in sorted(module.state_dict().items())]
    return len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


@pytest.mark.parametrize("preset", sorted(GOLDEN))
def test_state_dict_layout_is_unchanged(preset):
    with torch.device("meta"):  # no memory, no init cost
        G, D = build(MODEL_PRESETS[preset])
    assert (*_layout(G), *_layout(D)) == GOLDEN[preset]
