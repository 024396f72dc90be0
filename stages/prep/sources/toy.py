"""The ``toy`` source adapter: scenes from our synthetic renderer (:mod:`stages.prep.toy`), with ground-truth depth
and an imitation monocular estimate (issue 3, source 1). The renderer runs in the decode workers."""
from __future__ import annotations

from stages.prep.sources.units import SourcePlan, Unit


def list_toy_units(num: int, seed: int) -> SourcePlan:
    """``num`` toy scenes for ``seed``: unit i renders ``render_toy_item(seed, i, R)``."""
    from stages.prep.toy import TOY_CLASSES

    units = [Unit("toy", str(seed), str(i), None, None, f"toy:{seed}:{i}") for i in range(num)]
    description = {"kind": "toy", "path": None, "seed": seed, "num_scenes": num}
    return SourcePlan("toy", units, list(TOY_CLASSES), False, description)
