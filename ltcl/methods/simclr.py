"""SimCLR (Chen et al. 2020): instance discrimination with NT-Xent, the baseline of every table."""

from __future__ import annotations

from typing import Any

import torch

from ltcl.losses.nt_xent import nt_xent
from ltcl.methods.base import ContrastiveModule


class SimCLRModule(ContrastiveModule):
    """NT-Xent over the two views of each ID image, negatives gathered from every process."""

    def __init__(self, *args, temperature: float = 0.2, **kwargs):
        super().__init__(*args, **kwargs)
        self.temperature = temperature

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        view1, view2, num_id = self.views(batch)  # + sampled OOD images with a sampler
        # One forward over both views: BN sees 2B images, as in SimCLR.
        z = self.embed(torch.cat([view1, view2]))
        z1, z2 = z.chunk(2)
        self.observe_for_sampler(batch["id"]["index"], z1, z2, num_id)
        return nt_xent(z1, z2, self.temperature), {}
