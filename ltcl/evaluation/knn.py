"""Weighted k-nearest-neighbour classification of embeddings (the InstDisc / SDCLR kNN monitor).

For a query q and a labelled bank, take the k bank items with the highest cosine
similarity s_j, weight each vote by exp(s_j / T), and predict the class with the largest
sum of weights. docs/method.md: cosine, k = 200, T = 0.1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import Metric
from torchmetrics.functional.classification import multiclass_stat_scores

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
    """Accuracy (%) of each class (its recall); NaN for a class with no test images.

    torchmetrics counts (and checks the labels' range); the ratio is taken here in float64 with
    NaN for an empty class, where torchmetrics' float32 ratio would give 0.
    """
    scores = multiclass_stat_scores(
        pred.cpu().long(), target.cpu().long(), num_classes=num_classes, average=None
    )
    correct, total = scores[:, 0].double(), scores[:, 4].double()  # tp, support
    return torch.where(total > 0, 100.0 * correct / total, torch.full_like(total, float("nan")))


class KNNMonitor(Metric):
    """The online kNN monitor as a torchmetrics Metric: bank and query features accumulate per
    process (with their dataset indices) and are gathered by torchmetrics' sync, also when the
    processes hold different numbers of rows; :meth:`compute` keeps each image once (the
    evaluation samplers pad the last batch with repeats) and returns the per-class accuracy."""

    full_state_update = False

    def __init__(self, num_classes: int, k: int = 200, temperature: float = 0.1):
        super().__init__()
        self.num_classes, self.k, self.temperature = num_classes, k, temperature
        for part in ("bank", "query"):
            for field in ("features", "labels", "index"):
                self.add_state(f"{part}_{field}", default=[], dist_reduce_fx="cat")

    def update(self, features: torch.Tensor, labels: torch.Tensor, index: torch.Tensor, part: str):
        getattr(self, f"{part}_features").append(features.float())
        getattr(self, f"{part}_labels").append(labels)
        getattr(self, f"{part}_index").append(index)

    def _unique(self, part: str) -> tuple[torch.Tensor, torch.Tensor]:
        def cat(name):
            value = getattr(self, f"{part}_{name}")
            return torch.cat(value) if isinstance(value, list) else value

        feats, labels, index = cat("features"), cat("labels"), cat("index")
        order = torch.argsort(index, stable=True)
        index, feats, labels = index[order], feats[order], labels[order]
        first = torch.ones_like(index, dtype=torch.bool)
        first[1:] = index[1:] != index[:-1]
        return feats[first], labels[first]

    def has_data(self) -> bool:
        return bool(len(self.bank_features)) and bool(len(self.query_features))

    def compute(self) -> torch.Tensor:
        bank, bank_labels = self._unique("bank")
        queries, labels = self._unique("query")
        scores = knn_predict(queries, bank, bank_labels, self.num_classes, self.k, self.temperature)
        return per_class_accuracy(scores.argmax(1), labels, self.num_classes)


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
