"""Contrastive losses: plain PyTorch, no Lightning or Hydra."""

from ltcl.losses.nt_xent import NTXentLoss, nt_xent

__all__ = ["NTXentLoss", "nt_xent"]
