"""Pseudo semantic discrimination L_PSD (docs/method.md, Stage 1, item 4) with cross-process negatives.

L_PSD is supervised-contrastive (Khosla et al. 2020, the L_out form) over all 2N views of
the global batch, with cluster ids as labels. For anchor i with positive set P(i) and
positive weights w_ip,

    l_i = -(1 / sum_p w_ip) sum_{p in P(i)} w_ip log( exp(s_ip / tau) / sum_{k != i} exp(s_ik / tau) )

P(i) is i's other view (w = 1) and every other view with i's pseudo label (w = beta). The
loss is the mean of l_i over all 2N anchors. Without pseudo labels P(i) is the other view
alone, so L_PSD is NT-Xent term by term (before the first sampling round).

The two-view layout and the weighted L_out reduction are shared with the domain-level
supervised-contrastive term in :mod:`ltcl.losses.domain`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ltcl.errors import ConfigError
from ltcl.losses.nt_xent import (
    TwoViewLayout,
    check_views,
    two_view_layout,
)
from ltcl.utils.validate import check_temperature

BETA_NORMALIZATIONS = ("per_positive", "total")


def supcon_from_positive_mask(
    layout: TwoViewLayout, positive_weights: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Weighted L_out supervised-contrastive loss, mean over the local anchors.

    `positive_weights` (2B, 2G) holds w_ip (0 = not a positive); the own column is
    zeroed here, and every row must keep a positive weight elsewhere (the other view
    always does). The denominator is every candidate but the anchor itself. The local
    mean times DDP's gradient average is the mean over the global batch, because every
    rank holds the same number of anchors (drop_last=True).
    """
    logits = layout.anchors @ layout.candidates.T / temperature
    self_mask = F.one_hot(layout.own_column, num_classes=logits.shape[1]).bool()
    log_prob = torch.log_softmax(logits.masked_fill(self_mask, float("-inf")), dim=1)
    # 0 * -inf would be NaN: the own column carries no weight, so drop it before the product.
    log_prob = log_prob.masked_fill(self_mask, 0.0)
    weights = positive_weights.to(log_prob.dtype).masked_fill(self_mask, 0.0)
    per_anchor = -(weights * log_prob).sum(dim=1) / weights.sum(dim=1)
    return per_anchor.mean()


def _check_labels(labels: torch.Tensor, batch: int, name: str, fix: str) -> None:
    if labels.shape != (batch,):
        raise ConfigError(f"{name} must be ({batch},) like the views, got {tuple(labels.shape)}")
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise ConfigError(f"{name} must be an integer tensor, got {labels.dtype}; {fix}")


def check_psd_settings(beta: Any, beta_normalization: str) -> None:
    """L_PSD's weights (the guide checks them before training, the loss at every call)."""
    if (
        isinstance(beta, bool)
        or not isinstance(beta, int | float)
        or not (math.isfinite(beta) and beta >= 0)
    ):
        raise ConfigError(
            f"method.beta must be a finite number >= 0, got {beta!r}; 1.0 weighs same-cluster "
            "views like the other view, 0.0 turns L_PSD into NT-Xent"
        )
    if beta_normalization not in BETA_NORMALIZATIONS:
        raise ConfigError(
            f"unknown method.beta_normalization '{beta_normalization}': use one of "
            f"{BETA_NORMALIZATIONS}"
        )


def psd_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    pseudo_labels: torch.Tensor,
    temperature: float = 0.2,
    beta: float = 1.0,
    gather: bool = True,
    beta_normalization: str = "per_positive",
) -> torch.Tensor:
    """L_PSD of two views `z1`, `z2` (B, D) whose images carry `pseudo_labels` (B,).

    Pseudo labels are cluster ids, shared by the ID and OOD images of a cluster, so ID
    and OOD views of one cluster attract each other; a negative label (the convention is
    -1) means "no pseudo label" (before the first sampling round, or an image outside
    every cluster), and such an image has only its other view as positive. `beta` weighs
    each same-cluster view relative to the instance positive: beta = 1 is SupCon with the
    clusters as classes, beta = 0 is NT-Xent. The other view of the same image is the
    instance positive (weight 1) even when it shares the label: it is one positive, not two.

    `beta_normalization="total"` divides beta by the anchor's number of same-cluster views,
    so that all pseudo positives together weigh beta (with about 2B / Nc of them, the
    per-positive form lets the clusters outweigh the instance positive at any useful beta).
    The embeddings are L2-normalised here. With `gather=True` and a process group, the
    candidates and labels come from every process (global batch B x world_size).
    """
    check_temperature(temperature)
    check_psd_settings(beta, beta_normalization)
    # Every check runs before the first collective, so that a bad call fails on every rank
    # instead of leaving the others waiting in all_gather.
    check_views(z1, z2)
    _check_labels(
        pseudo_labels,
        z1.shape[0],
        "pseudo_labels",
        "pass cluster ids as a LongTensor with -1 for images without a pseudo label",
    )
    layout = two_view_layout(z1, z2, gather)
    anchor_labels = pseudo_labels.repeat(2)[:, None]
    candidate_labels = layout.gather_labels(pseudo_labels)[None, :]
    same_cluster = (anchor_labels == candidate_labels) & (anchor_labels >= 0)
    weights = same_cluster.to(layout.anchors.dtype) * beta
    if beta_normalization == "total":
        # same-cluster views other than the anchor itself and its instance positive
        count = same_cluster.sum(dim=1, keepdim=True) - 2
        weights = weights / count.clamp(min=1).to(weights.dtype)
    weights = weights.scatter(1, layout.positive_column[:, None], 1.0)
    return supcon_from_positive_mask(layout, weights, temperature)
