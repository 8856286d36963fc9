"""SDCLR (Jiang et al., ICML 2021): SimCLR against a pruned self-competitor.

One view goes through the dense backbone, the other through its magnitude-pruned copy with
BatchNorm layers of its own (:mod:`ltcl.models.pruning`); NT-Xent between the two. The pruned
branch forgets the rare, hard samples first, so their loss stays high and they are learned
harder. The mask is recomputed from the dense weights at the start of every epoch, so a
resumed run recomputes exactly the mask the uninterrupted run used. The projector is shared
by both branches [recon].
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ltcl.losses.nt_xent import nt_xent
from ltcl.methods.base import ContrastiveModule
from ltcl.models.pruning import PrunedBranch


class SDCLRModule(ContrastiveModule):
    def __init__(self, *args, temperature: float = 0.2, prune_percent: float = 0.9, **kwargs):
        super().__init__(*args, **kwargs)
        self.temperature = temperature
        self.pruned = PrunedBranch(self.backbone, prune_percent)

    def extra_trainable_modules(self):
        return [self.pruned]  # its own BN parameters

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self.pruned.update_masks(self.backbone)

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        view1, view2, num_id = self.views(batch)  # + sampled OOD images with a sampler
        if self.channels_last:
            view2 = view2.contiguous(memory_format=torch.channels_last)
        z1 = self.embed(view1)
        z2 = F.normalize(self.projector(self.pruned(self.backbone, view2)), dim=1)
        self.observe_for_sampler(batch["id"]["index"], z1, z2, num_id)
        sparsity = (
            1.0 - torch.stack([m.float().mean() for m in self.pruned.masks().values()]).mean()
        )
        return nt_xent(z1, z2, self.temperature), {"pruned_share": sparsity.detach()}
