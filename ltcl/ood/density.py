"""How dense the ID embedding is around each image: the k-nearest-neighbour radius. Plain
PyTorch. A large radius marks a sparse region, where the rare classes live in a long-tailed
set once the head has been learned; the OOD picks aimed at the tail read it (docs/method.md,
"Picks that reach the tail")."""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def knn_radius(z: Tensor, k: int = 10, chunk_size: int = 4096) -> Tensor:
    """(N,) cosine distance of each row of `z` to its k-th nearest other row."""
    if z.shape[0] <= k:
        raise ValueError(f"the k-NN radius needs more than k={k} embeddings, got {z.shape[0]}")
    x = torch.nn.functional.normalize(z.float(), dim=1)
    radii = []
    for start in range(0, x.shape[0], chunk_size):
        block = x[start : start + chunk_size] @ x.T
        rows = torch.arange(block.shape[0], device=x.device)
        block[rows, start + rows] = float("-inf")  # not its own neighbour
        radii.append(1.0 - block.topk(k, dim=1).values[:, -1])
    return torch.cat(radii)


def cluster_mean(values: Tensor, labels: Tensor, num_clusters: int) -> Tensor:
    """(Nc,) mean of `values` over each cluster's members (NaN for an empty cluster)."""
    sums = torch.zeros(num_clusters, dtype=torch.float64).index_add_(
        0, labels.cpu(), values.double().cpu()
    )
    counts = torch.bincount(labels.cpu(), minlength=num_clusters).double()
    return sums / counts
