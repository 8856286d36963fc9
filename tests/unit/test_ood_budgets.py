"""Budgets that favour small clusters, picks without duplicates, COLT's rule and the control."""

import numpy as np
import pytest
import torch

from ltcl.errors import ConfigError, DataError
from ltcl.ood.budgets import (
    gap_budgets,
    pick_by_score,
    pick_nearest_to_centres,
    pick_random,
    round_to_total,
    softmax_tail_budgets,
)


def test_round_to_total_sums_exactly_and_is_proportional():
    counts = round_to_total(np.array([1.0, 1.0, 1.0]), 10)
    assert counts.sum() == 10 and sorted(counts.tolist()) == [3, 3, 4]
    counts = round_to_total(np.array([0.5, 0.25, 0.25]), 7)
    # exact shares 3.5, 1.75, 1.75: floors 3, 1, 1; the two largest remainders get the 2 left
    assert counts.tolist() == [3, 2, 2]


def test_gap_budgets_by_hand_and_favour_small_clusters():
    sizes = np.array([100, 60, 20, 100])
    budgets = gap_budgets(sizes, 120)
    # gaps 0, 40, 80, 0 -> 120 * (0, 1/3, 2/3, 0)
    assert budgets.tolist() == [0, 40, 80, 0]
    rng = np.random.default_rng(0)
    for _ in range(20):
        sizes = rng.integers(1, 500, size=8)
        budgets = gap_budgets(sizes, 1000)
        assert budgets.sum() == 1000
        order = np.argsort(sizes)
        assert all(budgets[a] >= budgets[b] for a, b in zip(order, order[1:], strict=False))


def test_equal_clusters_split_evenly():
    assert gap_budgets(np.array([5, 5, 5, 5]), 8).tolist() == [2, 2, 2, 2]


def test_softmax_budgets_match_colt_formula():
    scores = np.array([0.9, 0.5, 0.1])
    z = (scores - scores.mean()) / scores.std(ddof=1)
    weights = np.exp(-z) / np.exp(-z).sum()
    budgets = softmax_tail_budgets(scores, 1000)
    assert budgets.sum() == 1000
    assert np.abs(budgets - weights * 1000).max() <= 1
    assert budgets[2] > budgets[1] > budgets[0]  # low tail score = tail-like = more images
    with pytest.raises(ConfigError, match="temperature"):
        softmax_tail_budgets(scores, 10, temperature=0)


def test_pick_by_score_takes_the_best_without_duplicates():
    scores = torch.tensor([[0.9, 0.8], [0.1, 0.7], [0.5, 0.6], [0.2, 0.95]])
    picked, labels = pick_by_score(scores, np.array([1, 2]))
    # Cluster 1 (largest budget) first: items 3 and 0; cluster 0 then takes item 2.
    assert picked.tolist() == [3, 0, 2] and labels.tolist() == [1, 1, 0]
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(500, 6, generator=g)
    budgets = np.array([10, 50, 0, 100, 30, 60])
    picked, labels = pick_by_score(scores, budgets)
    assert len(np.unique(picked)) == len(picked) == budgets.sum()
    assert np.bincount(labels, minlength=6).tolist() == budgets.tolist()


def test_budget_larger_than_pool_is_a_clear_error():
    with pytest.raises(DataError, match="larger than the OOD pool"):
        pick_by_score(torch.rand(10, 2), np.array([6, 6]))
    with pytest.raises(DataError, match="larger than the OOD pool"):
        pick_random(5, 6, seed=0)


def test_nearest_to_centres_uses_cosine_similarity():
    centroids = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    pool = torch.tensor([[10.0, 1.0], [0.1, 2.0], [3.0, 2.9], [0.0, -1.0]])
    picked, labels = pick_nearest_to_centres(pool, centroids, np.array([1, 1]))
    assert picked.tolist() == [0, 1] and labels.tolist() == [0, 1]


def test_random_control_is_seeded_and_unlabelled():
    a, la = pick_random(100, 20, seed=1)
    b, _ = pick_random(100, 20, seed=1)
    c, _ = pick_random(100, 20, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(np.unique(a)) == 20 and (la == -1).all()
