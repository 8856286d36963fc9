"""COLT's tail score: how crowded each ID image's neighbourhood is, from the contrastive logits.

For anchor i with p(j | i) = exp(s_ij / tau) / sum_{k != i} exp(s_ik / tau), the score is the
sum of its top-k negative probabilities (its own other view excluded), averaged over the two
views. A head-class image has many close negatives (high score); a tail image few (low). COLT
smooths it per image with an EMA (beta 0.97, :class:`ltcl.utils.per_sample.PerSampleEMA`) and budgets
the OOD sampler with it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ltcl.losses.nt_xent import two_view_layout
from ltcl.utils.validate import check_int, check_temperature


def _softmax_over_the_batch(z1, z2, temperature: float, k: int, gather: bool):
    """p(j | i) of every local anchor over every other view of the (gathered) batch, with the
    masks of each anchor's own column and of its positive."""
    check_temperature(temperature)
    check_int(k, "method.sampler.colt_topk", 1, "COLT uses 10")
    layout = two_view_layout(z1.detach(), z2.detach(), gather)
    logits = layout.anchors @ layout.candidates.T / temperature
    own = F.one_hot(layout.own_column, num_classes=logits.shape[1]).bool()
    probs = torch.softmax(logits.float().masked_fill(own, float("-inf")), dim=1)
    positive = F.one_hot(layout.positive_column, num_classes=logits.shape[1]).bool()
    return probs, own, positive


@torch.no_grad()
def topk_negative_mass(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2, k: int = 10, gather: bool = True
) -> torch.Tensor:
    """(B,) tail scores of the local images, negatives gathered from every process."""
    probs, own, positive = _softmax_over_the_batch(z1, z2, temperature, k, gather)
    negatives = probs.masked_fill(own | positive, 0.0)
    k = min(k, negatives.shape[1] - 2)
    mass = negatives.topk(k, dim=1).values.sum(dim=1)
    batch = z1.shape[0]
    return (mass[:batch] + mass[batch:]) / 2


@torch.no_grad()
def colt_tail_score(
    z1: torch.Tensor,
    z2: torch.Tensor,
    num_id: int,
    temperature: float = 0.2,
    k: int = 10,
    gather: bool = True,
) -> torch.Tensor:
    """COLT's own form, (num_id,): each ID image is scored against the *whole* batch (ID and OOD
    views), each negative's probability is averaged over the image's two views first, and then
    the top-k of those averages are summed (``topk_negative_mass`` sums per view, then
    averages, over ID rows only)."""
    probs, own, positive = _softmax_over_the_batch(z1, z2, temperature, k, gather)
    batch = z1.shape[0]
    # Columns that are negatives for both views of image i: neither of its own two views.
    both_views = own[:batch] | positive[:batch]
    averaged = ((probs[:batch] + probs[batch:]) / 2).masked_fill(both_views, 0.0)
    k = min(k, averaged.shape[1] - 2)
    return averaged.topk(k, dim=1).values.sum(dim=1)[:num_id]
