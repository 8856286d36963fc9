"""Per-sample state that survives resume and DDP: an EMA of a statistic of each training image.

COLT keeps an EMA of each ID image's tail score (its OOD budgets come from it); BCL keeps an EMA
of each image's contrastive loss (its augmentation strength comes from it). One implementation
serves both. Under DDP every process passes the *gathered* indices and values of the global
batch, so every process holds the same table and a checkpoint from rank zero is complete.
"""

from __future__ import annotations

import torch

from ltcl.errors import ConfigError
from ltcl.utils.distributed import gather_no_grad


class PerSampleEMA:
    """shadow_i = (1 - beta) * value + beta * shadow_i; an image's first value is taken as it is
    (COLT and BCL start their EMA from the first observation, not from zero)."""

    def __init__(self, num_samples: int, beta: float = 0.97, key: str = "ema"):
        if not 0.0 <= beta < 1.0:
            raise ConfigError(f"{key} must be in [0, 1) (an EMA decay), got {beta}")
        self.beta = beta
        self.values = torch.zeros(num_samples, dtype=torch.float64)
        self.seen = torch.zeros(num_samples, dtype=torch.bool)

    def __len__(self) -> int:
        return len(self.values)

    def update(self, indices: torch.Tensor, values: torch.Tensor) -> None:
        indices = indices.detach().cpu().long()
        values = values.detach().cpu().double()
        old = self.values[indices]
        fresh = ~self.seen[indices]
        self.values[indices] = torch.where(
            fresh, values, (1 - self.beta) * values + self.beta * old
        )
        self.seen[indices] = True

    def update_from_all_processes(self, indices: torch.Tensor, values: torch.Tensor) -> None:
        """Gather this step's (index, value) pairs from every process, then update: the table
        stays identical on every process."""
        self.update(gather_no_grad(indices), gather_no_grad(values))

    def state_dict(self) -> dict:
        return {"beta": self.beta, "values": self.values.clone(), "seen": self.seen.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.beta = float(state["beta"])
        self.values = state["values"].clone()
        self.seen = state["seen"].clone()
