"""SDCLR (Jiang et al., ICML 2021): SimCLR against a pruned self-competitor.

One view goes through the dense backbone, the other through its magnitude-pruned copy with
BatchNorm layers of its own (:mod:`ltcl.models.pruning`); NT-Xent between the two. The pruned
branch forgets the rare, hard samples first, so their loss stays high and they are learned
harder. The mask is recomputed from the dense weights at the start of every epoch, so a
resumed run recomputes exactly the mask the uninterrupted run used. As in SDCLR's official
preset (``--prune_dual_bn``), the projector's linear layers are shared by both branches and
its BatchNorm layers are not (``pruned_projector_norms=own``), and it has 3 layers
(``projector_layers``; BCL-D's code uses 2). ``shared`` is ltcl's earlier variant, one set of
projector BN parameters and statistics for both branches.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ltcl.errors import ConfigError
from ltcl.losses.nt_xent import nt_xent
from ltcl.methods.base import ContrastiveModule
from ltcl.models.pruning import OwnNorms, PrunedBranch

# own: the pruned branch runs the projector with BatchNorms of its own (SDCLR's and BCL-D's
# code); shared: one set of projector BatchNorms for both branches.
PROJECTOR_NORMS = ("own", "shared")


class SDCLRModule(ContrastiveModule):
    """NT-Xent between the dense view and the pruned view. BCL-D builds on it; with
    ``prune_percent=None`` (BCL-I) there is no pruned branch and both views go through the
    dense network in one forward, as in SimCLR."""

    def __init__(
        self,
        *args,
        temperature: float = 0.2,
        prune_percent: float | None = 0.9,
        projector_layers: int = 3,
        pruned_projector_norms: str = "own",
        **kwargs,
    ):
        if pruned_projector_norms not in PROJECTOR_NORMS:
            raise ConfigError(
                f"unknown method.pruned_projector_norms '{pruned_projector_norms}': use own "
                "(SDCLR's code: the pruned branch has its own projector BatchNorms) or shared"
            )
        kwargs["projector"] = {**(kwargs.get("projector") or {}), "num_layers": projector_layers}
        super().__init__(*args, **kwargs)
        self.temperature = temperature
        self.pruned = None if prune_percent is None else PrunedBranch(self.backbone, prune_percent)
        own = self.pruned is not None and pruned_projector_norms == "own"
        self.pruned_projector = OwnNorms(self.projector) if own else None
        self._pruned_share: torch.Tensor | None = None

    def extra_trainable_modules(self):
        # Their own BN parameters (the pruned backbone's and projector's).
        return [m for m in (self.pruned, self.pruned_projector) if m is not None]

    def pruned_projection(self, features: torch.Tensor) -> torch.Tensor:
        if self.pruned_projector is None:
            return self.projector(features)
        return self.pruned_projector(self.projector, features)

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        if self.pruned is not None:
            self.pruned.update_masks(self.backbone)
            masks = self.pruned.masks().values()
            self._pruned_share = 1.0 - torch.stack([m.float().mean() for m in masks]).mean()

    def two_view_embeddings(
        self, view1: torch.Tensor, view2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """z of view 1 through the dense network, z of view 2 through the pruned branch."""
        if self.pruned is None:
            return self.embed(torch.cat([view1, view2])).chunk(2)
        if self.channels_last:
            view2 = view2.contiguous(memory_format=torch.channels_last)
        z1 = self.embed(view1)
        z2 = self.pruned_projection(self.pruned(self.backbone, view2))
        return z1, F.normalize(z2, dim=1)

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        view1, view2, num_id = self.views(batch)  # + sampled OOD images with a sampler
        z1, z2 = self.two_view_embeddings(view1, view2)
        self.observe_for_sampler(batch["id"]["index"], z1, z2, num_id)
        extras = {} if self._pruned_share is None else {"pruned_share": self._pruned_share}
        return nt_xent(z1, z2, self.temperature), extras
