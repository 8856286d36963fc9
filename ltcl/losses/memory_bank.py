"""A first-in first-out bank of earlier training views for stage 2's guided positives.

The batch holds few views of a rare class; the bank holds the last `size` views seen (guide and
student embeddings, both detached), so that a tail view can find guide neighbours of its class
beyond its own batch (docs/method.md, "Stage 2 variants"). As in MoCo and NNCLR, the bank's
student embeddings are stale: they were computed some steps ago and carry no gradient.

Plain PyTorch: the entries are buffers, so that they are saved in checkpoints (a resumed run
continues with the same bank) and identical on every process (each pushes the gathered views).
"""

from __future__ import annotations

import torch
from torch import nn

from ltcl.errors import ConfigError
from ltcl.losses.guided import BankView
from ltcl.utils import distributed


def check_bank_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ConfigError(
            f"the guided-positive bank size must be an int >= 0, got {size!r}; 0 turns the bank "
            "off, e.g. 4096 keeps the last 4096 training views"
        )


class GuidedPositiveBank(nn.Module):
    """The last `size` views: guide (size, D'), student (size, D) embeddings and labels.

    Labels are kept for the analysis statistics only (the precision of guided positives); the
    loss never reads them.
    """

    def __init__(self, size: int, guide_dim: int, student_dim: int):
        super().__init__()
        check_bank_size(size)
        self.size = size
        self.register_buffer("guide", torch.zeros(size, guide_dim))
        self.register_buffer("student", torch.zeros(size, student_dim))
        self.register_buffer("labels", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("pushed", torch.zeros((), dtype=torch.long))
        # A host copy of `pushed`: reading the buffer on a GPU would wait for the device twice
        # a step; the buffer is what checkpoints keep, and a load refreshes the copy.
        self._pushed_on_host = 0
        self.register_load_state_dict_post_hook(_refresh_host_count)

    def view(self) -> BankView:
        """A copy of the filled entries (fewer than `size` during the first steps): the loss's
        backward needs them after this step's push has overwritten the oldest slots."""
        filled = min(self._pushed_on_host, self.size)
        return BankView(
            self.guide[:filled].clone(), self.student[:filled].clone(), self.labels[:filled].clone()
        )

    @torch.no_grad()
    def push(
        self, student: torch.Tensor, guide: torch.Tensor, labels: torch.Tensor, gather: bool = True
    ) -> None:
        """Add this step's views (2B local rows: view 1 then view 2 of B images, embeddings
        already normalised); with `gather`, every process's views in rank order."""
        if self.size == 0:
            return
        b = labels.shape[0]
        u1, u2 = student.detach().float().split(b)
        v1, v2 = guide.detach().float().split(b)
        if gather:
            u1, u2, v1, v2, labels = (
                distributed.gather_no_grad(t) for t in (u1, u2, v1, v2, labels)
            )
        rows_u, rows_v = torch.cat([u1, u2]), torch.cat([v1, v2])
        rows_labels = labels.repeat(2)
        if rows_u.shape[0] > self.size:
            rows_u, rows_v = rows_u[-self.size :], rows_v[-self.size :]
            rows_labels = rows_labels[-self.size :]
        n = rows_u.shape[0]
        slots = (self._pushed_on_host + torch.arange(n, device=self.guide.device)) % self.size
        self.student[slots] = rows_u.to(self.student.device)
        self.guide[slots] = rows_v.to(self.guide.device)
        self.labels[slots] = rows_labels.to(self.labels.device)
        self.pushed += n
        self._pushed_on_host += n


def _refresh_host_count(bank: GuidedPositiveBank, incompatible_keys) -> None:
    bank._pushed_on_host = int(bank.pushed)
