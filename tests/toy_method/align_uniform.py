"""A method added the way docs/architecture.md says (one module + one config file): Wang and
Isola's alignment + uniformity loss (ICML 2020). Used by tests/integration/test_add_a_method.py."""

from __future__ import annotations

import torch

from ltcl.methods.base import ContrastiveModule


def align_uniform_loss(z1: torch.Tensor, z2: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    align = (z1 - z2).norm(dim=1).pow(2).mean()
    z = torch.cat([z1, z2])
    uniform = torch.pdist(z.float()).pow(2).mul(-t).exp().mean().log()
    return align + uniform


class AlignUniformModule(ContrastiveModule):
    def __init__(self, *args, t: float = 2.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.t = t

    def training_loss(self, batch):
        view1, view2 = batch["id"]["views"]
        z1, z2 = self.embed(torch.cat([view1, view2])).chunk(2)
        return align_uniform_loss(z1, z2, self.t), {}
