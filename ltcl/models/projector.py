"""Projection head used by the contrastive loss (the backbone features are what gets evaluated)."""

from __future__ import annotations

from torch import nn

from ltcl.errors import ConfigError


class Projector(nn.Sequential):
    """The SDCLR/COLT/BCL head: Linear(d, h) - BN - ReLU - Linear(h, out, no bias) - BN, or
    with ``num_layers=3`` (SDCLR's ``proj_head`` in its official ``--prune_dual_bn`` preset)
    Linear(d, h) - BN - ReLU - Linear(h, h, no bias) - BN - ReLU - Linear(h, out, no bias) - BN.

    A BatchNorm after a Linear makes its bias redundant, hence ``bias=False``. Returns the
    unnormalised (B, out_dim) projection; the loss L2-normalises it.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int | None = None,
        out_dim: int = 128,
        batch_norm: bool = True,
        num_layers: int = 2,
    ) -> None:
        hidden_dim = in_dim if hidden_dim is None else hidden_dim
        for name, value in (("in_dim", in_dim), ("hidden_dim", hidden_dim), ("out_dim", out_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"model.projector.{name} must be a positive integer, got {value!r}"
                )
        if num_layers not in (2, 3):
            raise ConfigError(
                f"the projector has 2 or 3 linear layers (SDCLR's preset: 3), got {num_layers!r}"
            )
        # batch_norm=False (Linear-ReLU-Linear) serves the DDP equivalence tests: BN statistics
        # of a batch split over processes differ from one process's (SyncBN is GPU-only).
        norm = nn.BatchNorm1d if batch_norm else (lambda _dim: nn.Identity())
        layers = [nn.Linear(in_dim, hidden_dim), norm(hidden_dim), nn.ReLU(inplace=True)]
        if num_layers == 3:
            layers += [
                nn.Linear(hidden_dim, hidden_dim, bias=not batch_norm),
                norm(hidden_dim),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.Linear(hidden_dim, out_dim, bias=not batch_norm), norm(out_dim)]
        super().__init__(*layers)
        self.in_dim = in_dim
        self.hidden_dim = hidden_dim
        self.out_dim = out_dim
        self.num_layers = num_layers
