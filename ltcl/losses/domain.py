"""Domain discrimination L_DD (docs/method.md, Stage 1, item 4): ID (0) versus sampled OOD (1).

Two forms, both [recon]: the default is a linear head on the backbone features phi(x)
trained with binary cross-entropy; the option is COLT's domain-level supervised-contrastive
term on the projector embeddings, where every view of the same domain is a positive.
Either way the backbone is asked to keep the domain apparent, so that OOD images that
share a cluster with tail ID images help shape the tail without being mistaken for it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ltcl.errors import ConfigError
from ltcl.losses.psd import (
    check_views,
    supcon_from_positive_mask,
    two_view_layout,
)
from ltcl.utils.validate import check_temperature


class DomainHead(nn.Module):
    """One linear layer on phi(x) -> one logit (OOD if positive).

    Linear on purpose: a deeper head could separate the domains by itself, and the
    backbone would then not need to encode the difference.
    """

    def __init__(self, in_dim: int):
        super().__init__()
        if isinstance(in_dim, bool) or not isinstance(in_dim, int) or in_dim <= 0:
            raise ConfigError(
                f"DomainHead in_dim must be a positive int, got {in_dim!r}; "
                "pass the backbone's feature_dim (512 for ResNet-18)"
            )
        self.linear = nn.Linear(in_dim, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (B,) of features (B, in_dim)."""
        return self.linear(features).squeeze(-1)


def _check_domain_mask(is_ood: torch.Tensor, batch: int) -> None:
    if is_ood.shape != (batch,):
        raise ConfigError(f"is_ood must be ({batch},) like the batch, got {tuple(is_ood.shape)}")
    if is_ood.dtype != torch.bool:
        raise ConfigError(
            f"is_ood must be a bool tensor, got {is_ood.dtype}; pass True for sampled-OOD "
            "images and False for ID images (for example domain == 1)"
        )


def domain_bce_loss(
    logits: torch.Tensor, is_ood: torch.Tensor, balance: bool = False
) -> torch.Tensor:
    """Binary cross-entropy of domain logits (B,) against ID = 0, OOD = 1; mean over the batch.

    The OOD share of a batch follows the size of the sampled OOD set (K per round against
    N ID images), not a design choice, so the plain mean weighs the domains by that
    ratio. `balance=True` gives each domain present in the batch half the loss (mean within
    each domain, then mean over domains); a batch with one domain only gets the plain mean.
    The loss is local: per-sample terms need no gather, and with equal per-rank batches
    DDP's gradient average gives the global mean (balanced per rank, which is the global
    balance when every rank draws the same ID/OOD counts).
    """
    if logits.ndim != 1:
        raise ConfigError(
            f"logits must be (B,), got {tuple(logits.shape)}; DomainHead returns (B,), "
            "squeeze a trailing dimension of 1"
        )
    _check_domain_mask(is_ood, logits.shape[0])
    targets = is_ood.to(logits.dtype)
    per_sample = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    if not balance:
        return per_sample.mean()
    # Tensor arithmetic only (no .item()): no host-device sync inside the training step.
    n_ood = targets.sum()
    n_id = targets.numel() - n_ood
    domains_present = (n_ood > 0).to(logits.dtype) + (n_id > 0).to(logits.dtype)
    per_domain_count = torch.where(is_ood, n_ood, n_id)  # >= 1 wherever it is used
    weights = 1.0 / (per_domain_count * domains_present)
    return (weights * per_sample).sum()


def domain_supcon_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    is_ood: torch.Tensor,
    temperature: float = 0.2,
    gather: bool = True,
) -> torch.Tensor:
    """COLT's domain-level supervised-contrastive term on two views `z1`, `z2` (B, D).

    Positives of an anchor: every other view of the same domain (its own other view
    included, weight 1 like the rest); denominator: every other view; L_out form, mean over
    all 2N anchors of the global batch. Embeddings are L2-normalised here; with
    `gather=True` and a process group, candidates and domain labels come from every process.
    """
    check_temperature(temperature)
    check_views(z1, z2)
    _check_domain_mask(is_ood, z1.shape[0])
    layout = two_view_layout(z1, z2, gather)
    domains = is_ood.long()
    same_domain = domains.repeat(2)[:, None] == layout.gather_labels(domains)[None, :]
    return supcon_from_positive_mask(layout, same_domain, temperature)
