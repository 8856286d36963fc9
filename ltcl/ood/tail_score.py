"""COLT's tail score: how crowded each ID image's neighbourhood is, from the contrastive logits.

For anchor i with p(j | i) = exp(s_ij / tau) / sum_{k != i} exp(s_ik / tau), the score is the
sum of its top-k negative probabilities (its own other view excluded), averaged over the two
views. A head-class image has many close negatives (high score); a tail image few (low). COLT
smooths it per image with an EMA (beta 0.97) and budgets the OOD sampler with it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ltcl.errors import ConfigError
from ltcl.losses.nt_xent import _check_temperature, _two_view_layout


@torch.no_grad()
def topk_negative_mass(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2, k: int = 10, gather: bool = True
) -> torch.Tensor:
    """(B,) tail scores of the local images, negatives gathered from every process."""
    _check_temperature(temperature)
    if k < 1:
        raise ConfigError(f"sampler.colt_topk must be >= 1, got {k}")
    layout = _two_view_layout(z1.detach(), z2.detach(), gather)
    logits = layout.anchors @ layout.candidates.T / temperature
    own = F.one_hot(layout.own_column, num_classes=logits.shape[1]).bool()
    probs = torch.softmax(logits.float().masked_fill(own, float("-inf")), dim=1)
    positive = F.one_hot(layout.positive_column, num_classes=logits.shape[1]).bool()
    negatives = probs.masked_fill(own | positive, 0.0)
    k = min(k, negatives.shape[1] - 2)
    mass = negatives.topk(k, dim=1).values.sum(dim=1)
    batch = z1.shape[0]
    return (mass[:batch] + mass[batch:]) / 2


class TailScoreEMA:
    """Per-image EMA of the tail score, shadow = (1 - beta) * score + beta * shadow.

    An image's first score is taken as it is (COLT has no EMA in its first epoch).
    """

    def __init__(self, num_images: int, beta: float = 0.97):
        if not 0.0 <= beta < 1.0:
            raise ConfigError(f"sampler.colt_ema must be in [0, 1), got {beta}")
        self.beta = beta
        self.values = torch.zeros(num_images, dtype=torch.float64)
        self.seen = torch.zeros(num_images, dtype=torch.bool)

    def update(self, indices: torch.Tensor, scores: torch.Tensor) -> None:
        indices = indices.detach().cpu().long()
        scores = scores.detach().cpu().double()
        old = self.values[indices]
        fresh = ~self.seen[indices]
        self.values[indices] = torch.where(
            fresh, scores, (1 - self.beta) * scores + self.beta * old
        )
        self.seen[indices] = True

    def state_dict(self) -> dict:
        return {"beta": self.beta, "values": self.values.clone(), "seen": self.seen.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.beta = float(state["beta"])
        self.values = state["values"].clone()
        self.seen = state["seen"].clone()
