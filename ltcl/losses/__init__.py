"""Contrastive losses: plain PyTorch, no Lightning or Hydra."""

from ltcl.losses.domain import DomainHead, domain_bce_loss, domain_supcon_loss
from ltcl.losses.nt_xent import NTXentLoss, nt_xent
from ltcl.losses.psd import psd_loss

__all__ = [
    "DomainHead",
    "NTXentLoss",
    "domain_bce_loss",
    "domain_supcon_loss",
    "nt_xent",
    "psd_loss",
]
