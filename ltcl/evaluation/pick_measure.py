"""Where a sampling round's OOD picks land, head to tail: for every picked image, the true class
of its nearest ID training images (labels read for this analysis only; no sampler sees them).
Plain PyTorch.

The share of picks near each class, and near the many / medium / few groups, is compared between
pick rules on the same candidates. Measured in any embedding: the guide's own, and a fixed
reference (e.g. a SimCLR network of the same split), so that a rule cannot score by distorting
the space it is scored in.
"""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def nearest_id_class(
    picks: Tensor,
    id_z: Tensor,
    id_labels: Tensor,
    k: int = 10,
    chunk_size: int = 4096,
    balanced: bool = False,
) -> Tensor:
    """(P,) the majority class of each pick's k nearest ID images (cosine); a tie goes to the
    class of the nearest among the tied.

    ``balanced`` weighs each vote by 1 / (the class's ID count): on a ratio-100 set a pick
    inside a rare class's region still has mostly head-class neighbours, so the plain vote
    almost never names a rare class; the balanced vote asks which class is over-represented
    near the pick relative to its size."""
    x = torch.nn.functional.normalize(picks.float(), dim=1)
    bank = torch.nn.functional.normalize(id_z.float(), dim=1)
    labels = id_labels.long().to(bank.device)
    num_classes = int(labels.max()) + 1
    out = []
    for start in range(0, x.shape[0], chunk_size):
        neighbours = (x[start : start + chunk_size] @ bank.T).topk(min(k, len(bank)), dim=1)
        votes = labels[neighbours.indices]  # (p, k), nearest first
        counts = torch.nn.functional.one_hot(votes, num_classes).sum(1).float()  # (p, C)
        if balanced:
            counts = counts / torch.bincount(labels, minlength=num_classes).clamp(min=1)
        # among the classes with the top total, the one whose first vote is nearest
        rank = torch.arange(votes.shape[1], 0, -1, device=votes.device).float()
        first = torch.zeros_like(counts).scatter_reduce(1, votes, rank.expand_as(votes), "amax")
        top = counts.max(1, keepdim=True).values
        out.append((first * (counts >= top * (1 - 1e-6))).argmax(1))
    return torch.cat(out).cpu()


def pick_shares(
    pick_classes: Tensor, num_classes: int, groups: dict[str, list[int]]
) -> dict[str, object]:
    """{"per_class": [share of picks per class, %], "groups": {group: share %}}."""
    counts = torch.bincount(pick_classes.long(), minlength=num_classes).double()
    per_class = (100.0 * counts / max(1.0, float(counts.sum()))).tolist()
    return {
        "per_class": [round(v, 3) for v in per_class],
        "groups": {
            g: round(sum(per_class[c] for c in members), 3) for g, members in groups.items()
        },
    }
