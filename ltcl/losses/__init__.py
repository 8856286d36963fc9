"""Contrastive losses: plain PyTorch, no Lightning or Hydra."""

from ltcl.losses.domain import DomainHead, domain_bce_loss, domain_supcon_loss
from ltcl.losses.guided import (
    GuidedWeights,
    distillation_loss,
    feature_distillation_loss,
    guided_contrastive_loss,
    guided_contrastive_weights,
    guided_positive_selection,
    relational_distillation_loss,
)
from ltcl.losses.nt_xent import NTXentLoss, nt_xent
from ltcl.losses.psd import psd_loss

__all__ = [
    "DomainHead",
    "GuidedWeights",
    "NTXentLoss",
    "distillation_loss",
    "domain_bce_loss",
    "domain_supcon_loss",
    "feature_distillation_loss",
    "guided_contrastive_loss",
    "guided_contrastive_weights",
    "guided_positive_selection",
    "nt_xent",
    "psd_loss",
    "relational_distillation_loss",
]
