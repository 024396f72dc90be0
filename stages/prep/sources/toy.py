"""The ``toy`` source adapter: scenes from our synthetic renderer (:mod:`stages.prep.toy`), with ground-truth depth
and an imitation monocular estimate (issue 3, source 1). The renderer runs in the decode workers.

The unit list is computed on demand (``ToyUnits``), so ``--num`` costs no memory before the work starts; its
upper bound and the disk space it needs are checked before (:mod:`stages.prep.limits`).
"""
from __future__ import annotations

from collections.abc import Sequence

from stages.prep.sources.units import SourcePlan, Unit


class ToyUnits(Sequence):
    """``Unit``s 0 .. num-1 of the toy dataset with ``seed``, made when indexed."""

    def __init__(self, num: int, seed: int, scenes: str = "full"):
        self.num, self.seed, self.scenes = num, seed, scenes

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._unit(i) for i in range(*index.indices(self.num))]
        if not -self.num <= index < self.num:
            raise IndexError(index)
        return self._unit(index % self.num)

    def _unit(self, i: int) -> Unit:
        if self.scenes == "full":
            return Unit("toy", str(self.seed), str(i), None, None, f"toy:{self.seed}:{i}")
        return Unit("toy", f"{self.seed}:{self.scenes}", str(i), None, None, f"toy-{self.scenes}:{self.seed}:{i}")


def list_toy_units(num: int, seed: int, scenes: str = "full") -> SourcePlan:
    """``num`` toy scenes for ``seed``: unit i renders ``render_toy_item(seed, i, R, scenes)`` (the unit's container
    is ``"<seed>"`` for the full scenes, ``"<seed>:<scenes>"`` otherwise)."""
    from stages.prep.toy import TOY_CLASSES

    description = {"kind": "toy", "path": None, "seed": seed, "num_scenes": num, "scenes": scenes}
    return SourcePlan("toy", ToyUnits(num, seed, scenes), list(TOY_CLASSES), False, description)
