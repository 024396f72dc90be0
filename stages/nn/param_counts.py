"""Parameter counting and the per-module breakdown of ref §14 (3DGP ref §14, §15).

``param_table(preset)`` builds G and D of a preset on the meta device (no memory, no init cost) and returns the rows
of ref §14 as ``(label, count)`` pairs; ``3dgp info --model PRESET`` prints it.

Deliberate deviation: the official discriminator builds a ``fromrgb`` 1x1 conv (img_channels -> tmp, with bias) in
every block but uses only the first block's. We do not build the dead ones. The table therefore reports D both as
"official" (our count plus the dead layers, added analytically: img_channels * tmp + tmp per block after the first;
this is what ref §14 lists) and as "ours" (what is actually built).
"""
from __future__ import annotations

import torch
from torch import nn

from stages.nn.build import build
from stages.nn.config import get_preset


def count_parameters(module: nn.Module | None, trainable_only: bool = True) -> int:
    """Number of (trainable) parameter elements of ``module``; 0 for None (3DGP ref §14)."""
    if module is None:
        return 0
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def generator_breakdown(G: nn.Module) -> list[tuple[str, int]]:
    """The G rows of ref §14 for a built ``Generator`` ("of which" rows overlap: ToRGB affines are in both)."""
    backbone = G.backbone
    torgb = sum(count_parameters(block.torgb) for block in backbone.blocks)
    affines = sum(count_parameters(m) for name, m in backbone.named_modules() if name.endswith("affine"))
    return [
        ("G total", count_parameters(G)),
        ("G mapping", count_parameters(G.mapping)),
        ("G tri-plane decoder", count_parameters(backbone)),
        ("  of which ToRGB layers", torgb),
        ("  of which style affines", affines),
        ("G tri-plane MLP", count_parameters(G.mlp)),
        ("G camera adaptor", count_parameters(G.camera_adaptor)),
        ("G depth adaptor", count_parameters(G.depth_adaptor)),
    ]


def generator_block_counts(G: nn.Module) -> list[tuple[int, int, int]]:
    """Per tri-plane decoder block: (resolution, channels, params) (ref §14 per-block list)."""
    return [(block.resolution, block.conv1.out_channels, count_parameters(block)) for block in G.backbone.blocks]


def param_table(preset: str) -> list[tuple[str, int]]:
    """The ref §14 breakdown of a named model preset: G rows, then D rows (official and ours).

    G and D are built on the meta device, so even the ImageNet preset costs no memory and well under a second.
    Raises ``BadOptionError('--model', ...)`` for an unknown preset.
    """
    cfg = get_preset(preset)
    with torch.device("meta"):
        G, D = build(cfg)
    return generator_breakdown(G) + discriminator_breakdown(D)


def dead_fromrgb_params(D: nn.Module) -> int:
    """Parameters of the unused ``fromrgb`` layers the official D builds in every block after the first (ref §14)."""
    blocks = list(D.blocks.values())
    return sum(D.img_channels * b.tmp_channels + b.tmp_channels for b in blocks[1:])


def discriminator_breakdown(D: nn.Module) -> list[tuple[str, int]]:
    """The D rows of ref §14 for a built ``Discriminator`` (official counts include the dead fromrgb layers)."""
    dead = dead_fromrgb_params(D)
    ours_total = count_parameters(D)
    blocks = count_parameters(D.blocks)
    affines = sum(count_parameters(b.affine) for b in D.blocks.values())
    epi = D.epilogue
    epilogue = count_parameters(epi.conv) + count_parameters(epi.fc) + count_parameters(epi.out)
    kd_head = count_parameters(epi.kd_fc) + count_parameters(epi.kd_out)
    return [
        ("D total (official)", ours_total + dead),
        ("D total (ours, no dead fromrgb)", ours_total),
        ("D blocks (official)", blocks + dead),
        ("D blocks (ours)", blocks),
        ("  of which hyper-mod affines", affines),
        ("  of which dead fromrgb layers (official only)", dead),
        ("D epilogue without KD head", epilogue),
        ("D patch-parameter embedding table", count_parameters(D.patch_encoder)),
        ("D hyper-mod mapping", count_parameters(D.hyper_mod_mapping)),
        ("D head mapping", count_parameters(D.head_mapping)),
        ("D KD head", kd_head),
    ]


def discriminator_block_counts(D: nn.Module) -> list[tuple[str, int, int, int, int, int]]:
    """Per block: (name, tmp, out, down, params ours, params official) (ref §14 per-block list)."""
    rows = []
    for idx, (name, block) in enumerate(D.blocks.items()):
        ours = count_parameters(block)
        dead = 0 if idx == 0 else D.img_channels * block.tmp_channels + block.tmp_channels
        rows.append((name, block.tmp_channels, block.out_channels, block.down, ours, ours + dead))
    return rows
