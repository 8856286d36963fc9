"""Per-sample state that survives resume and DDP: an EMA of a statistic of each training image.

COLT keeps an EMA of each ID image's tail score (its OOD budgets come from it); BCL keeps an EMA
of each image's contrastive loss (its augmentation strength comes from it). One implementation
serves both. Under DDP every process passes the *gathered* indices and values of the global
batch, so every process holds the same table and a checkpoint from rank zero is complete.
The table lives on the device of the values it is given (no host sync on the training step);
its state_dict is on the CPU.
"""

from __future__ import annotations

import torch

from ltcl.utils.distributed import gather_no_grad
from ltcl.utils.validate import check_decay


class PerSampleEMA:
    """shadow_i = (1 - beta) * value + beta * shadow_i; an image's first value is taken as it is
    (COLT and BCL start their EMA from the first observation, not from zero)."""

    def __init__(self, num_samples: int, beta: float = 0.97, key: str = "ema"):
        self.beta = check_decay(beta, key)
        self.values = torch.zeros(num_samples, dtype=torch.float64)
        self.seen = torch.zeros(num_samples, dtype=torch.bool)

    def __len__(self) -> int:
        return len(self.values)

    def update(self, indices: torch.Tensor, values: torch.Tensor) -> None:
        device = values.device
        if self.values.device != device:
            self.values, self.seen = self.values.to(device), self.seen.to(device)
        indices = indices.detach().to(device).long()
        values = values.detach().double()
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
        return {
            "beta": self.beta,
            "values": self.values.cpu().clone(),
            "seen": self.seen.cpu().clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.beta = float(state["beta"])
        self.values = state["values"].clone()
        self.seen = state["seen"].clone()
