"""Weighted k-nearest-neighbour classification of embeddings (the InstDisc / SDCLR kNN monitor).

For a query q and a labelled bank, take the k bank items with the highest cosine
similarity s_j, weight each vote by exp(s_j / T), and predict the class with the largest
sum of weights. docs/method.md: cosine, k = 200, T = 0.1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ltcl.errors import ConfigError


@torch.no_grad()
def knn_predict(
    queries: torch.Tensor,
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Class scores (Q, num_classes) of each query; argmax gives the prediction.

    Queries are processed in chunks so that a 10k x 50k similarity matrix is never built.
    """
    if k < 1:
        raise ConfigError(f"kNN k must be >= 1, got {k}")
    if temperature <= 0:
        raise ConfigError(f"kNN temperature must be > 0, got {temperature}")
    if bank.shape[0] == 0:
        raise ValueError("kNN bank is empty: the balanced train set has no images")
    k = min(k, bank.shape[0])
    bank = F.normalize(bank.float(), dim=1)
    queries = F.normalize(queries.float(), dim=1)
    bank_labels = bank_labels.long()
    scores = []
    for start in range(0, queries.shape[0], chunk_size):
        sim = queries[start : start + chunk_size] @ bank.T
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = (top_sim / temperature).exp()
        votes = torch.zeros(sim.shape[0], num_classes, device=sim.device)
        votes.scatter_add_(1, bank_labels[top_idx], weights)
        scores.append(votes)
    return torch.cat(scores)


def per_class_accuracy(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Accuracy (%) of each class; NaN for a class with no test images."""
    correct = torch.zeros(num_classes, dtype=torch.float64)
    total = torch.zeros(num_classes, dtype=torch.float64)
    correct.index_add_(0, target.cpu(), (pred.cpu() == target.cpu()).double())
    total.index_add_(0, target.cpu(), torch.ones_like(target.cpu(), dtype=torch.float64))
    return torch.where(total > 0, 100.0 * correct / total, torch.full_like(total, float("nan")))


def group_accuracies(per_class: torch.Tensor, groups: dict[str, list[int]]) -> dict[str, float]:
    """Mean per-class accuracy of each group, "all", and Std = population std of the groups.

    "all" is the mean per-class accuracy (the peers' "All"); "std" is SDCLR's balancedness:
    np.std([many, medium, few]) with ddof 0.
    """
    out = {"all": float(per_class.nanmean())}
    group_values = []
    for name in ("many", "medium", "few"):
        members = groups.get(name, [])
        value = float(per_class[members].nanmean()) if members else float("nan")
        out[name] = value
        group_values.append(value)
    values = torch.tensor(group_values, dtype=torch.float64)
    out["std"] = float(values.std(unbiased=False)) if not values.isnan().any() else float("nan")
    return out
