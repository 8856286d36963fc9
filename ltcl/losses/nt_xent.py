"""NT-Xent (SimCLR's normalised temperature-scaled cross-entropy) with negatives from every process.

For 2N views (N images, two views each, across all processes) and cosine similarities
s_ij of L2-normalised embeddings, the loss of anchor i with positive p(i) is

    l_i = -log( exp(s_{i,p(i)} / tau) / sum_{k != i} exp(s_{i,k} / tau) )

and NT-Xent is the mean of l_i over all 2N anchors. Each process scores only its own
anchors against the gathered candidates; gradients flow back through the gather, and the
mean over processes (what DDP does to gradients) equals the loss of the global batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ltcl.errors import ConfigError
from ltcl.utils import distributed


def nt_xent(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float = 0.2,
    gather: bool = True,
) -> torch.Tensor:
    """NT-Xent of two views `z1`, `z2` (B, D), row i of each being the same image.

    The embeddings are L2-normalised here. With `gather=True` and a process group, the
    negatives come from every process (global batch B x world_size).
    """
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}; METHOD.md uses 0.2")
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"views must both be (B, D), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    z1 = F.normalize(z1, dim=1)
    z2 = F.normalize(z2, dim=1)
    batch = z1.shape[0]
    if gather:
        world, rank = distributed.world_size(), distributed.rank()
        all_z1, all_z2 = distributed.gather_with_grad(z1), distributed.gather_with_grad(z2)
    else:
        world, rank = 1, 0
        all_z1, all_z2 = z1, z2
    global_batch = batch * world
    candidates = torch.cat([all_z1, all_z2], dim=0)  # (2 * global_batch, D)
    anchors = torch.cat([z1, z2], dim=0)  # (2 * batch, D), local

    # Column of each local anchor among the candidates (its own column is masked) and of
    # its positive (the other view of the same image): rank offsets as in MoCo v3's labels.
    local = torch.arange(batch, device=z1.device) + rank * batch
    own_column = torch.cat([local, local + global_batch])
    positive_column = torch.cat([local + global_batch, local])

    logits = anchors @ candidates.T / temperature
    self_mask = F.one_hot(own_column, num_classes=2 * global_batch).bool()
    logits = logits.masked_fill(self_mask, float("-inf"))
    return F.cross_entropy(logits, positive_column)


class NTXentLoss(nn.Module):
    """Module wrapper of :func:`nt_xent` so that Hydra configs can build it."""

    def __init__(self, temperature: float = 0.2, gather: bool = True):
        super().__init__()
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}; METHOD.md uses 0.2")
        self.temperature = temperature
        self.gather = gather

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return nt_xent(z1, z2, self.temperature, self.gather)
