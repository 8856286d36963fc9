"""OOD selection rules of a sampling round: per-cluster budgets and picks without duplicates.

Plain NumPy/PyTorch, no Lightning. A round (docs/method.md, Stage 1, item 3) clusters the ID
embeddings, gives each cluster a share of the budget K that favours small (tail) clusters,
and lets each cluster take the OOD images that fit it best. Three rules share the interface:

- ``kl_cluster`` (the paper's, [recon] rule): budget ∝ max(0, n_ref - n_k) with n_ref the
  largest cluster; cluster k takes the untaken OOD images with the highest soft assignment
  q_jk (Student-t kernel of the refined clustering);
- ``colt`` (COLT, ICLR 2023): budget = softmax(-zscore(mean tail score of the cluster) / T);
  cluster k takes the untaken OOD images nearest (cosine) to its centre;
- ``random`` (the control): K uniformly random OOD images, no pseudo labels.
"""

from __future__ import annotations

import numpy as np
import torch

from ltcl.errors import ConfigError, DataError

REMAINDER_RULES = ("largest", "last")


def round_to_total(weights: np.ndarray, total: int, remainder_to: str = "largest") -> np.ndarray:
    """Integers proportional to `weights` that sum exactly to `total`.

    ``largest`` (ltcl's default): the rounding remainder goes to the clusters that lost most by
    rounding down, so no cluster is favoured by its position. ``last``: COLT's rule, every
    budget is ``int(w_c K)`` and the whole remainder goes to the last cluster.
    """
    if remainder_to not in REMAINDER_RULES:
        raise ConfigError(
            f"unknown method.sampler.budget_remainder '{remainder_to}': use one of {REMAINDER_RULES}"
        )
    weights = np.asarray(weights, dtype=np.float64)
    if total < 0:
        raise ConfigError(f"the OOD budget must be >= 0, got {total}")
    if weights.sum() <= 0:
        raise ValueError("budget weights are all zero")
    exact = weights / weights.sum() * total
    counts = np.floor(exact).astype(np.int64)
    remainder = total - int(counts.sum())
    if remainder_to == "last":
        counts[np.flatnonzero(weights > 0)[-1]] += remainder  # the last cluster that takes any
        return counts
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:remainder]] += 1
    return counts


def eligible_clusters(cluster_sizes: np.ndarray, min_share: float = 0.0) -> np.ndarray:
    """Clusters that may receive a budget: at least one ID member, and at least ``min_share``
    of the mean cluster size N / Nc. An empty cluster's centre has no ID image near it, so what
    it picks is close to no class, rare or not; a tiny one is mostly a few outliers."""
    sizes = np.asarray(cluster_sizes, dtype=np.float64)
    eligible = (sizes >= 1) & (sizes >= min_share * sizes.sum() / max(1, len(sizes)))
    if not eligible.any():
        raise DataError(f"no cluster has enough ID images for a budget (sizes {sizes.tolist()})")
    return eligible


def gap_budgets(
    cluster_sizes: np.ndarray, total: int, remainder_to: str = "largest", min_share: float = 0.0
) -> np.ndarray:
    """b_k ∝ max(0, n_ref - n_k), n_ref = max_k n_k: the tail is filled up towards the head.

    Only :func:`eligible_clusters` take part (an empty cluster never gets a budget). When every
    eligible cluster has the same size there is no tail; the budget is then split evenly.
    """
    sizes = np.asarray(cluster_sizes, dtype=np.float64)
    eligible = eligible_clusters(sizes, min_share)
    gap = np.where(eligible, np.maximum(0.0, sizes.max() - sizes), 0.0)
    if gap.sum() == 0:
        gap = eligible.astype(np.float64)
    return round_to_total(gap, total, remainder_to)


def sparsity_budgets(
    cluster_radii: np.ndarray,
    cluster_sizes: np.ndarray,
    total: int,
    remainder_to: str = "largest",
    min_share: float = 0.0,
) -> np.ndarray:
    """b_k ∝ the mean k-NN radius of cluster k's ID members (its ID density, inverted): a
    sparse region of the ID embedding gets more OOD images than a dense one, whatever the
    cluster's size [recon, the OOD-picks issue's variant (b)]."""
    eligible = eligible_clusters(cluster_sizes, min_share)
    radii = np.nan_to_num(np.asarray(cluster_radii, dtype=np.float64), nan=0.0)
    weights = np.where(eligible, np.maximum(radii, 0.0), 0.0)
    if weights.sum() == 0:
        weights = eligible.astype(np.float64)
    return round_to_total(weights, total, remainder_to)


def softmax_tail_budgets(
    cluster_tail_scores: np.ndarray,
    total: int,
    temperature: float = 1.0,
    remainder_to: str = "largest",
    cluster_sizes: np.ndarray | None = None,
) -> np.ndarray:
    """COLT's budget: softmax(-zscore(w) / T) of each cluster's mean tail score w.

    A high tail score means many close neighbours (head-like), so it gets less. z-scores use
    the unbiased std as COLT does; equal scores give an even split. An empty cluster (given
    `cluster_sizes`) gets no budget (scikit-learn's k-means, COLT's, never leaves one empty).
    """
    if temperature <= 0:
        raise ConfigError(f"method.sampler.colt_temperature must be > 0, got {temperature}")
    scores = np.asarray(cluster_tail_scores, dtype=np.float64)
    std = scores.std(ddof=1) if len(scores) > 1 else 0.0
    z = (scores - scores.mean()) / std if std > 0 else np.zeros_like(scores)
    logits = -z / temperature
    weights = np.exp(logits - logits.max())
    if cluster_sizes is not None:
        weights = np.where(eligible_clusters(cluster_sizes), weights, 0.0)
    return round_to_total(weights, total, remainder_to)


def _check_budget(budgets: np.ndarray, pool_size: int) -> np.ndarray:
    budgets = np.asarray(budgets, dtype=np.int64)
    if (budgets < 0).any():
        raise ConfigError(f"cluster budgets must be >= 0, got {budgets.tolist()}")
    if budgets.sum() > pool_size:
        raise DataError(
            f"the OOD budget ({int(budgets.sum())} images) is larger than the OOD pool or its "
            f"candidate subset ({pool_size} images): lower method.sampler.budget or raise "
            "ood.candidates_per_round"
        )
    return budgets


def pick_by_score(
    scores: torch.Tensor, budgets: np.ndarray, order: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each cluster k takes its b_k untaken pool items with the highest scores[:, k].

    Clusters pick in `order` (default: the largest budget first, so the tail clusters that
    need the most images are not left with what others passed over); an image taken by one
    cluster is skipped by the next. Returns (pool indices, pseudo labels = cluster ids),
    every index once.
    """
    budgets = _check_budget(budgets, scores.shape[0])
    num_clusters = scores.shape[1]
    if len(budgets) != num_clusters:
        raise ValueError(f"{len(budgets)} budgets for {num_clusters} clusters")
    if order is None:
        order = np.argsort(-budgets, kind="stable")
    taken = torch.zeros(scores.shape[0], dtype=torch.bool)
    picked, labels = [], []
    scores = scores.detach().float().cpu()
    for k in order:
        need = int(budgets[k])
        if need == 0:
            continue
        column = scores[:, k].masked_fill(taken, float("-inf"))
        chosen = torch.topk(column, need).indices
        taken[chosen] = True
        picked.append(chosen.numpy())
        labels.append(np.full(need, k, dtype=np.int64))
    if not picked:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(picked).astype(np.int64), np.concatenate(labels)


def pick_nearest_to_centres(
    pool_embeddings: torch.Tensor, centroids: torch.Tensor, budgets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """COLT's pick: cosine similarity to each cluster centre, clusters in index order."""
    pool = torch.nn.functional.normalize(pool_embeddings.float(), dim=1)
    centres = torch.nn.functional.normalize(centroids.float(), dim=1)
    similarity = pool @ centres.T
    return pick_by_score(similarity, budgets, order=np.arange(len(budgets)))


def pick_random(pool_size: int, total: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The control: `total` distinct pool items drawn uniformly, pseudo label -1."""
    _check_budget(np.array([total]), pool_size)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(pool_size, size=total, replace=False)).astype(np.int64)
    return picked, np.full(total, -1, dtype=np.int64)
