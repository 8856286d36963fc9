"""Small torch.distributed helpers that work the same with and without a process group.

Losses call these instead of Lightning so that they stay plain PyTorch and can be tested
with two gloo processes against one process.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient for the local slice.

    The naive backward (return only the local slice of the local gradient) loses the
    gradient that other ranks' anchors send to this rank's candidates; that is the bug of
    lightly#1528. Summing with all_reduce and then taking the own slice is exact.
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor)
        return torch.stack(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[dist.get_rank()]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` (B, ...) from every rank along dim 0, keeping gradients.

    Every rank must pass the same shape (drop_last=True on training loaders).
    """
    if world_size() == 1:
        return tensor
    gathered = _GatherWithGrad.apply(tensor)
    return gathered.reshape(-1, *tensor.shape[1:])


@torch.no_grad()
def gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` from every rank along dim 0, without gradients (ids, labels, banks).

    Ranks may hold different numbers of rows (COLT's mixed batches split each rank's batch
    between ID and OOD images differently): each is padded to the largest and cut back."""
    if world_size() == 1:
        return tensor
    tensor = tensor.contiguous()
    size = torch.tensor([tensor.shape[0]], device=tensor.device)
    sizes = [torch.empty_like(size) for _ in range(world_size())]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = tensor.new_zeros((longest, *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in range(world_size())]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes, strict=True)], dim=0)
