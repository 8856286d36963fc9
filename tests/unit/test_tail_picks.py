"""The pick rules aimed at the tail (the OOD-picks issue) and the measure of where picks land,
against direct references written from their definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ltcl.errors import ConfigError
from ltcl.evaluation.pick_measure import nearest_id_class, pick_shares
from ltcl.ood.budgets import gap_budgets, softmax_tail_budgets, sparsity_budgets
from ltcl.ood.density import cluster_mean, knn_radius
from ltcl.ood.rounds import SamplerConfig
from ltcl.ood.strategies import STRATEGIES


def test_an_empty_cluster_never_gets_a_budget():
    """The CIFAR-100-LT round before epoch 0 gave 72 empty clusters 3,839 of 5,000 images: an
    empty cluster's centre has no ID image near it, so its picks are close to no class."""
    sizes = np.array([1547, 0, 0, 300, 20, 0])
    for budgets in (
        gap_budgets(sizes, 5000),
        gap_budgets(sizes, 5000, "last"),
        sparsity_budgets(np.array([0.2, np.nan, np.nan, 0.3, 0.5, np.nan]), sizes, 5000),
        softmax_tail_budgets(np.array([1.0, 0.0, 0.0, 0.5, 0.2, 0.0]), 5000, cluster_sizes=sizes),
        softmax_tail_budgets(np.array([1.0, 0.0, 0.0, 0.5, 0.2, 0.0]), 5000, 1.0, "last", sizes),
    ):
        assert budgets.sum() == 5000 and (budgets[sizes == 0] == 0).all(), budgets
    # clusters with ID images get what the paper's rule gives them: n_ref - n_k, normalised
    gap = gap_budgets(sizes, 5000)
    expected = np.array([0, 0, 0, 1247, 1527, 0]) / 2774 * 5000
    assert np.abs(gap - expected).max() < 1


def test_without_empty_clusters_the_gap_budgets_are_unchanged():
    """Recorded runs whose rounds had no empty cluster reproduce: same budgets as before."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        sizes = rng.integers(1, 2000, size=10)
        gap = np.maximum(0, sizes.max() - sizes).astype(float)
        exact = gap / gap.sum() * 1000 if gap.sum() else np.full(10, 100.0)
        budgets = gap_budgets(sizes, 1000)
        assert budgets.sum() == 1000 and np.abs(budgets - exact).max() < 1


def test_small_clusters_below_the_share_get_no_budget():
    sizes = np.array([500, 400, 40, 60])  # mean 250; 25% of it is 62.5
    budgets = gap_budgets(sizes, 1000, min_share=0.25)
    assert budgets[2] == budgets[3] == 0 and budgets[1] == 1000
    with pytest.raises(ConfigError, match="min_cluster_share"):
        SamplerConfig(min_cluster_share=1.5)


def test_sparsity_budgets_follow_the_mean_radius():
    budgets = sparsity_budgets(np.array([0.1, 0.3, 0.6]), np.array([10, 10, 10]), 100)
    assert budgets.tolist() == [10, 30, 60]


def test_knn_radius_against_brute_force():
    z = torch.randn(60, 5, generator=torch.Generator().manual_seed(0))
    radius = knn_radius(z, k=4, chunk_size=16)
    x = torch.nn.functional.normalize(z, dim=1)
    for i in range(60):
        distances = sorted(1 - float(x[i] @ x[j]) for j in range(60) if j != i)
        assert abs(float(radius[i]) - distances[3]) < 1e-5
    means = cluster_mean(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0, 0, 2]), 3)
    assert means[0] == 1.5 and torch.isnan(means[1]) and means[2] == 3.0


def test_sparse_knn_picks_next_to_the_sparsest_id_images():
    g = torch.Generator().manual_seed(0)
    dense = torch.tensor([1.0, 0, 0]) + 0.01 * torch.randn(200, 3, generator=g)
    sparse = torch.tensor([[0.0, 1, 0], [0, 0, 1], [0, -1, 0]]) + 0.2 * torch.randn(
        3, 3, generator=g
    )
    id_z = torch.cat([dense, sparse])
    near_sparse = sparse.repeat_interleave(4, 0) + 0.01 * torch.randn(12, 3, generator=g)
    near_dense = torch.tensor([1.0, 0, 0]) + 0.01 * torch.randn(100, 3, generator=g)
    candidates = torch.cat([near_dense, near_sparse])
    config = SamplerConfig(strategy="sparse_knn", budget=12, anchor_share=3 / 203, density_k=5)
    selection = STRATEGIES["sparse_knn"](config).select(id_z, candidates, seed=0)
    assert sorted(selection.local.tolist()) == list(range(100, 112))
    assert (selection.labels == -1).all()


def test_nearest_id_class_is_the_majority_of_the_k_nearest():
    g = torch.Generator().manual_seed(1)
    id_z = torch.randn(80, 6, generator=g)
    id_labels = torch.randint(0, 4, (80,), generator=g)
    picks = torch.randn(30, 6, generator=g)
    got = nearest_id_class(picks, id_z, id_labels, k=5, chunk_size=7)
    x, bank = (torch.nn.functional.normalize(t, dim=1) for t in (picks, id_z))
    for i in range(30):
        order = sorted(range(80), key=lambda j: -float(x[i] @ bank[j]))[:5]
        votes = [int(id_labels[j]) for j in order]
        best = max(votes.count(c) for c in set(votes))
        expected = next(c for c in votes if votes.count(c) == best)  # nearest among the tied
        assert int(got[i]) == expected
    sizes = torch.bincount(id_labels, minlength=4).tolist()
    balanced = nearest_id_class(picks, id_z, id_labels, k=5, chunk_size=7, balanced=True)
    for i in range(30):
        order = sorted(range(80), key=lambda j: -float(x[i] @ bank[j]))[:5]
        votes = [int(id_labels[j]) for j in order]
        weight = {c: votes.count(c) / sizes[c] for c in set(votes)}
        best = max(weight.values())
        expected = next(c for c in votes if abs(weight[c] - best) < 1e-12)
        assert int(balanced[i]) == expected
    # a rare class over-represented near a pick wins the balanced vote, not the plain one
    rare = torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.98, -0.1], [0.97, 0.2], [0.96, -0.2]])
    bank_z = torch.cat([rare, torch.tensor([[0.0, 1.0]]).expand(40, 2)])
    bank_labels = torch.tensor([1, 1, 0, 0, 0] + [0] * 40)
    pick = torch.tensor([[1.0, 0.0]])
    assert int(nearest_id_class(pick, bank_z, bank_labels, k=5)) == 0
    assert int(nearest_id_class(pick, bank_z, bank_labels, k=5, balanced=True)) == 1
    shares = pick_shares(torch.tensor([0, 0, 3, 2]), 4, {"many": [0, 1], "few": [2, 3]})
    assert shares["per_class"] == [50.0, 0.0, 25.0, 25.0] and shares["groups"] == {
        "many": 50.0,
        "few": 50.0,
    }


def test_budget_rule_and_anchor_share_are_checked():
    with pytest.raises(ConfigError, match="budget_rule"):
        SamplerConfig(budget_rule="inverse")
    with pytest.raises(ConfigError, match="kl_cluster strategy only"):
        SamplerConfig(strategy="colt", budget_rule="sparsity")
    with pytest.raises(ConfigError, match="anchor_share must"):
        SamplerConfig(strategy="sparse_knn", anchor_share=0)
