"""NT-Xent (SimCLR's normalised temperature-scaled cross-entropy) with negatives from every process.

For 2N views (N images, two views each, across all processes) and cosine similarities
s_ij of L2-normalised embeddings, the loss of anchor i with positive p(i) is

    l_i = -log( exp(s_{i,p(i)} / tau) / sum_{k != i} exp(s_{i,k} / tau) )

and NT-Xent is the mean of l_i over all 2N anchors. Each process scores only its own
anchors against the gathered candidates; gradients flow back through the gather, and the
mean over processes (what DDP does to gradients) equals the loss of the global batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ltcl.errors import ConfigError
from ltcl.utils import distributed
from ltcl.utils.validate import check_temperature


@dataclass(frozen=True)
class TwoViewLayout:
    """Local anchors, gathered candidates and the columns a local anchor needs among them.

    Rows: the 2B local views, ``cat([z1, z2])``. Columns: the 2G gathered views,
    ``cat([all_z1, all_z2])`` with G = B * world. A label tensor (B,) follows the same
    order after ``labels.repeat(2)`` (rows) and ``gather(labels).repeat(2)`` (columns).
    """

    anchors: torch.Tensor  # (2B, D)
    candidates: torch.Tensor  # (2G, D)
    own_column: torch.Tensor  # (2B,) column of the anchor itself, excluded everywhere
    positive_column: torch.Tensor  # (2B,) column of the anchor's other view
    gather: bool

    def gather_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Per-view labels of the candidates (2G,): gathered without gradient, like ids."""
        all_labels = distributed.gather_no_grad(labels) if self.gather else labels
        return all_labels.repeat(2)


def check_views(z1: torch.Tensor, z2: torch.Tensor) -> None:
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ConfigError(
            f"views must both be (B, D), got {tuple(z1.shape)} and {tuple(z2.shape)}; "
            "pass the two projector outputs of the same B images"
        )


def two_view_layout(z1: torch.Tensor, z2: torch.Tensor, gather: bool) -> TwoViewLayout:
    """Normalise, gather with gradients and locate each local anchor's own and positive columns.

    Rank offsets as in MoCo v3's labels: the local image b is global image
    ``g = rank * B + b``, its views are columns ``g`` and ``g + G``.
    """
    check_views(z1, z2)
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
    local = torch.arange(batch, device=z1.device) + rank * batch
    return TwoViewLayout(
        anchors=torch.cat([z1, z2], dim=0),
        candidates=torch.cat([all_z1, all_z2], dim=0),
        own_column=torch.cat([local, local + global_batch]),
        positive_column=torch.cat([local + global_batch, local]),
        gather=gather,
    )


def nt_xent(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float = 0.2,
    gather: bool = True,
    per_sample: bool = False,
) -> torch.Tensor:
    """NT-Xent of two views `z1`, `z2` (B, D), row i of each being the same image.

    The embeddings are L2-normalised here. With `gather=True` and a process group, the
    negatives come from every process (global batch B x world_size). `per_sample=True` returns
    each local image's loss, the mean of its two views' terms, (B,) (BCL's memorisation signal).
    """
    check_temperature(temperature)
    layout = two_view_layout(z1, z2, gather)
    logits = layout.anchors @ layout.candidates.T / temperature
    self_mask = F.one_hot(layout.own_column, num_classes=logits.shape[1]).bool()
    logits = logits.masked_fill(self_mask, float("-inf"))
    if not per_sample:
        return F.cross_entropy(logits, layout.positive_column)
    losses = F.cross_entropy(logits, layout.positive_column, reduction="none")
    batch = z1.shape[0]
    return (losses[:batch] + losses[batch:]) / 2


class NTXentLoss(nn.Module):
    """Module wrapper of :func:`nt_xent` so that Hydra configs can build it."""

    def __init__(self, temperature: float = 0.2, gather: bool = True):
        super().__init__()
        check_temperature(temperature)
        self.temperature = temperature
        self.gather = gather

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return nt_xent(z1, z2, self.temperature, self.gather)
