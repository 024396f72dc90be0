"""Non-Flatness Score from raw rendered depth maps (3DGP ref §6.5 steps 3-6)."""
from __future__ import annotations


def non_flatness_scores(depth, near: float = 0.75, far: float = 1.25, num_bins: int = 64):
    """Per-image exp(entropy) of the depth histogram: ``depth [N, 1, H, W]`` (world units) -> ``[N]`` in [1, bins].

    Depth is clamped to [near, far] (empty rays, depth 0, become the near plane), histogrammed into ``num_bins``
    equal bins on [near, far] (torch.histc semantics), p = count / total, H = -sum p ln(p + 1e-12), score = exp(H).
    NFS is the mean of these scores over the generated samples.
    """
    import torch

    d = depth.detach().float().clamp(near, far).flatten(1)  # [N, H*W]
    scores = []
    for row in d:
        counts = torch.histc(row, bins=num_bins, min=near, max=far)  # [bins]
        assert int(counts.sum()) == row.numel()
        p = counts / counts.sum()
        entropy = -(p * torch.log(p + 1e-12)).sum()
        scores.append(torch.exp(entropy))
    return torch.stack(scores)  # [N]
