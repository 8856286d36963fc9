"""ID clustering (docs/method.md Stage 1, item 2): k-means++ / Lloyd and the DEC-style KL refinement."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from ltcl.errors import ConfigError, DataError
from ltcl.ood.clustering import (
    cluster_id_embeddings,
    cluster_kl_loss,
    kmeans,
    refine_centroids,
    student_t_assignments,
    target_distribution,
)
from ltcl.ood.kmeans import _reseed_empty

# ---------------------------------------------------------------------------------------------
# Slow references written directly from the equations in docs/method.md (double precision)
# ---------------------------------------------------------------------------------------------


def ref_q(z, mu, d):
    n, k = len(z), len(mu)
    q = [[0.0] * k for _ in range(n)]
    for i in range(n):
        for j in range(k):
            dist2 = sum((float(z[i, t]) - float(mu[j, t])) ** 2 for t in range(z.shape[1]))
            q[i][j] = (1.0 + dist2 / d) ** (-(d + 1.0) / 2.0)
        total = sum(q[i])
        q[i] = [v / total for v in q[i]]
    return torch.tensor(q, dtype=torch.float64)


def ref_p(q, gamma):
    n, k = q.shape
    h = [sum(float(q[i, j]) for i in range(n)) ** gamma for j in range(k)]
    p = [[float(q[i, j]) ** 2 / h[j] for j in range(k)] for i in range(n)]
    return torch.tensor([[v / sum(row) for v in row] for row in p], dtype=torch.float64)


def ref_kl(p, q):
    n, k = p.shape
    total = 0.0
    for i in range(n):
        for j in range(k):
            total += float(p[i, j]) * math.log(float(p[i, j]) / float(q[i, j]))
    return total / n


def blobs(sizes=(200, 70, 30), dim=5, spread=0.5, seed=0):
    """Well-separated Gaussian blobs, long-tailed sizes; returns (x, true labels)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.zeros(len(sizes), dim)
    for c in range(len(sizes)):
        centres[c, c % dim] = 10.0 * (c + 1)
    x = torch.cat(
        [centres[c] + spread * torch.randn(n, dim, generator=g) for c, n in enumerate(sizes)]
    )
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(sizes)])
    return x, y


def is_perfect(pred, true):
    """Purity 1.0 in both directions: the predicted partition equals the true one up to renaming."""
    pairs = set(zip(pred.tolist(), true.tolist(), strict=True))
    return len(pairs) == len(set(pred.tolist())) == len(set(true.tolist()))


# ---------------------------------------------------------------------------------------------
# Equations against the references
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dof", [0.5, 1.0, 3.0, 10.0])
def test_student_t_matches_reference(dof):
    g = torch.Generator().manual_seed(1)
    z = torch.randn(7, 3, generator=g, dtype=torch.float64)
    mu = torch.randn(4, 3, generator=g, dtype=torch.float64)
    q = student_t_assignments(z, mu, dof=dof)
    torch.testing.assert_close(q, ref_q(z, mu, dof), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(q.sum(1), torch.ones(7, dtype=torch.float64))


@pytest.mark.parametrize(("dof", "gamma"), itertools.product([1.0, 2.5], [0.0, 0.5, 1.0, 2.0]))
def test_target_and_kl_match_reference(dof, gamma):
    g = torch.Generator().manual_seed(2)
    z = torch.randn(9, 4, generator=g, dtype=torch.float64)
    mu = torch.randn(3, 4, generator=g, dtype=torch.float64)
    q = ref_q(z, mu, dof)
    p = target_distribution(q, cluster_frequency_exponent=gamma)
    torch.testing.assert_close(p, ref_p(q, gamma), rtol=1e-10, atol=1e-12)
    loss = cluster_kl_loss(p, q)
    assert loss.ndim == 0
    assert float(loss) == pytest.approx(ref_kl(ref_p(q, gamma), q), rel=1e-10, abs=1e-12)


def test_target_with_full_set_frequency_matches_full_p():
    g = torch.Generator().manual_seed(3)
    q = torch.softmax(torch.randn(20, 4, generator=g, dtype=torch.float64), 1)
    full = target_distribution(q, 1.5)
    part = target_distribution(q[5:12], 1.5, frequency=q.sum(0))
    torch.testing.assert_close(part, full[5:12])


def test_kl_gradient_reaches_centroids():
    g = torch.Generator().manual_seed(4)
    z = torch.randn(6, 3, generator=g, dtype=torch.float64)
    mu = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    p = target_distribution(student_t_assignments(z, mu))
    assert not p.requires_grad

    def loss(m):
        return cluster_kl_loss(p, student_t_assignments(z, m))

    assert torch.autograd.gradcheck(loss, (mu,))


def test_kl_of_equal_distributions_is_zero_and_handles_zeros():
    q = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    assert float(cluster_kl_loss(q, q)) == 0.0


def test_equation_input_errors():
    z, mu = torch.randn(5, 3), torch.randn(2, 3)
    with pytest.raises(ConfigError, match="dof"):
        student_t_assignments(z, mu, dof=0.0)
    with pytest.raises(DataError, match="centroids"):
        student_t_assignments(z, torch.randn(2, 4))
    q = student_t_assignments(z, mu)
    with pytest.raises(ConfigError, match="gamma"):
        target_distribution(q, -1.0)
    with pytest.raises(DataError, match="frequency"):
        target_distribution(q, 1.0, frequency=torch.ones(3))
    with pytest.raises(DataError, match="same shape"):
        cluster_kl_loss(q, q[:3])


# ---------------------------------------------------------------------------------------------
# KL refinement
# ---------------------------------------------------------------------------------------------


def overlapping_blobs(seed=0):
    x, _ = blobs(sizes=(120, 60, 20), dim=4, spread=4.0, seed=seed)
    return x / 10.0


def test_refinement_lowers_the_loss():
    x = overlapping_blobs()
    init = kmeans(x, 3, iterations=2, seed=0).centroids
    q0 = student_t_assignments(x, init)
    p0 = target_distribution(q0)
    res = refine_centroids(
        x, init, iterations=40, batch_size=len(x), lr=1e-2, target_update_interval=1000
    )
    assert len(res.losses) == 40
    assert res.losses[-1] < res.losses[0]
    assert res.losses[0] == pytest.approx(float(cluster_kl_loss(p0, q0)), rel=1e-5)
    # Full set, same (initial) target: the centroids moved to fit it.
    assert float(cluster_kl_loss(p0, res.q)) < float(cluster_kl_loss(p0, q0))
    torch.testing.assert_close(res.q, student_t_assignments(x, res.centroids))


def test_refinement_with_minibatches_lowers_full_set_loss():
    x = overlapping_blobs(seed=1)
    init = kmeans(x, 3, iterations=2, seed=0).centroids
    q0 = student_t_assignments(x, init)
    p0 = target_distribution(q0)
    res = refine_centroids(
        x, init, iterations=60, batch_size=64, lr=1e-2, target_update_interval=1000, seed=3
    )
    assert float(cluster_kl_loss(p0, res.q)) < float(cluster_kl_loss(p0, q0))


def test_target_is_recomputed_every_interval():
    # Self-consistent KL(P(Q) || Q) is not monotone (it is 0 for uniform and for one-hot q), so
    # only the loss against a fixed target is tested above; here: updates change the path.
    x = overlapping_blobs(seed=1)
    init = kmeans(x, 3, iterations=2, seed=0).centroids
    fixed = refine_centroids(
        x, init, iterations=20, batch_size=64, lr=1e-2, target_update_interval=1000, seed=3
    )
    updated = refine_centroids(
        x, init, iterations=20, batch_size=64, lr=1e-2, target_update_interval=4, seed=3
    )
    assert fixed.losses[:4] == updated.losses[:4]
    assert fixed.losses[4] != updated.losses[4]


def test_refinement_is_deterministic_for_a_seed():
    x = overlapping_blobs()
    init = kmeans(x, 3, iterations=2).centroids
    a = refine_centroids(x, init, iterations=15, batch_size=32, seed=5)
    b = refine_centroids(x, init, iterations=15, batch_size=32, seed=5)
    assert torch.equal(a.centroids, b.centroids)
    assert a.losses == b.losses
    assert not torch.equal(init, a.centroids)


def test_refinement_errors():
    x = torch.randn(10, 3)
    with pytest.raises(DataError, match="shape"):
        refine_centroids(x, torch.randn(2, 4))
    with pytest.raises(ConfigError, match="target_update_interval"):
        refine_centroids(x, torch.randn(2, 3), target_update_interval=0)
    with pytest.raises(ConfigError, match="lr"):
        refine_centroids(x, torch.randn(2, 3), lr=-1.0)


# ---------------------------------------------------------------------------------------------
# k-means
# ---------------------------------------------------------------------------------------------


def test_kmeans_recovers_three_blobs():
    x, y = blobs()
    res = kmeans(x, 3, seed=0)
    assert is_perfect(res.assignments, y)
    assert res.centroids.shape == (3, 5)
    assert res.assignments.dtype == torch.int64
    assert 1 <= res.iterations_run <= 50


def test_kmeans_is_deterministic_for_a_seed():
    x = torch.randn(300, 6, generator=torch.Generator().manual_seed(0))
    a, b = kmeans(x, 7, seed=11), kmeans(x, 7, seed=11)
    assert torch.equal(a.centroids, b.centroids)
    assert torch.equal(a.assignments, b.assignments)
    assert a.inertia == b.inertia
    c = kmeans(x, 7, seed=12)
    assert not torch.equal(a.centroids, c.centroids)


def test_kmeans_inertia_beats_random_assignment():
    x = torch.randn(400, 4, generator=torch.Generator().manual_seed(1))
    res = kmeans(x, 5, seed=0)
    labels = torch.randint(5, (400,), generator=torch.Generator().manual_seed(2))
    random_inertia = sum(
        float(((x[labels == k] - x[labels == k].mean(0)) ** 2).sum()) for k in range(5)
    )
    assert res.inertia <= random_inertia
    exact = float(((x - res.centroids[res.assignments]) ** 2).sum())
    assert res.inertia == pytest.approx(exact, rel=1e-4)


def test_kmeans_chunked_equals_unchunked():
    x = torch.randn(53, 4, generator=torch.Generator().manual_seed(3))
    small, big = kmeans(x, 5, seed=1, chunk_size=7), kmeans(x, 5, seed=1, chunk_size=100_000)
    assert torch.equal(small.assignments, big.assignments)
    torch.testing.assert_close(small.centroids, big.centroids)
    assert small.inertia == pytest.approx(big.inertia, rel=1e-5)


def test_empty_cluster_is_reseeded_with_the_farthest_point():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([0.1 * torch.randn(20, 2, generator=g), torch.tensor([[3.0, 3.0]])])
    # The second initial centroid is far from every point: it owns nobody after the first
    # assignment, so it must be re-seeded with the point farthest from its centroid (index 20).
    init = torch.tensor([[0.0, 0.0], [100.0, -100.0]])
    res = kmeans(x, 2, init=init)
    assert res.assignments[20] == 1
    assert (res.assignments[:20] == 0).all()
    torch.testing.assert_close(res.centroids[1], x[20])


def test_reseed_skips_points_that_are_alone_in_their_cluster():
    x = torch.tensor([[0.0], [1.0], [2.0], [50.0]])
    labels = torch.tensor([0, 0, 0, 1])
    min_d2 = torch.tensor([1.0, 0.0, 1.0, 0.0])
    min_d2[3] = 99.0  # farthest, but the only member of cluster 1: moving it would empty cluster 1
    counts = torch.tensor([3, 1, 0])
    sums = torch.tensor([[3.0], [50.0], [0.0]], dtype=torch.float64)
    _reseed_empty(x, labels, min_d2, counts, sums)
    # Next candidate in order of distance (tie 1.0: lower index first) is point 0.
    assert labels.tolist() == [2, 0, 0, 1]
    assert counts.tolist() == [2, 1, 1]
    assert sums[:, 0].tolist() == [3.0, 50.0, 0.0]


def test_kmeans_with_fewer_distinct_points_than_clusters_does_not_crash():
    x = torch.tensor([[0.0, 0.0]] * 4 + [[1.0, 1.0]] * 2)
    res = kmeans(x, 3, seed=0)
    assert res.centroids.shape == (3, 2)
    assert torch.isfinite(res.centroids).all()
    assert res.inertia == pytest.approx(0.0)


def test_kmeans_errors():
    x = torch.randn(5, 2)
    with pytest.raises(ConfigError, match=r"larger than the ID set"):
        kmeans(x, 6)
    with pytest.raises(ConfigError, match="num_clusters"):
        kmeans(x, 0)
    bad = x.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(DataError, match="the embeddings contain NaN: the network diverged"):
        kmeans(bad, 2)
    bad[2, 1] = float("inf")
    with pytest.raises(DataError, match="contain NaN"):
        kmeans(bad, 2)
    with pytest.raises(DataError, match=r"\(N, D\)"):
        kmeans(torch.randn(5), 2)


def test_kmeans_on_120k_points_runs_chunked():
    x = torch.randn(120_000, 16, generator=torch.Generator().manual_seed(0))
    res = kmeans(x, 10, iterations=5, seed=0)
    assert res.assignments.shape == (120_000,)
    assert res.iterations_run <= 5
    assert torch.bincount(res.assignments, minlength=10).min() > 0


# ---------------------------------------------------------------------------------------------
# The whole ID clustering step
# ---------------------------------------------------------------------------------------------


def test_cluster_id_embeddings_on_blobs():
    x, y = blobs()
    x = torch.nn.functional.normalize(x, dim=1)
    res = cluster_id_embeddings(x, 3, refine_iterations=20, batch_size=128, seed=0)
    assert is_perfect(res.pseudo_labels, y)
    assert sorted(res.cluster_sizes.tolist()) == [30, 70, 200]
    assert res.q.shape == (300, 3)
    assert torch.equal(res.pseudo_labels, res.q.argmax(1))
    assert len(res.kl_losses) == 20
    assert res.degenerate_clusters == []
    assert res.kmeans_inertia > 0


def test_degenerate_cluster_is_reported_not_raised():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([0.1 * torch.randn(40, 3, generator=g), torch.tensor([[5.0, 5.0, 5.0]])])
    res = cluster_id_embeddings(x, 2, refine_iterations=10, seed=0)
    lone = int(res.pseudo_labels[40])
    assert res.degenerate_clusters == [lone]
    assert int(res.cluster_sizes[lone]) == 1


# ---------------------------------------------------------------------------------------------
# CUDA
# ---------------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_cpu_and_cuda_agree():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    x, _ = blobs(sizes=(60, 30, 10), dim=8)
    cpu = kmeans(x, 4, seed=3)
    gpu = kmeans(x.cuda(), 4, seed=3)
    assert gpu.assignments.is_cuda
    assert torch.equal(cpu.assignments, gpu.assignments.cpu())
    torch.testing.assert_close(cpu.centroids, gpu.centroids.cpu(), rtol=1e-4, atol=1e-4)
    a = cluster_id_embeddings(x, 3, refine_iterations=10, batch_size=32, seed=1)
    b = cluster_id_embeddings(x.cuda(), 3, refine_iterations=10, batch_size=32, seed=1)
    assert torch.equal(a.pseudo_labels, b.pseudo_labels.cpu())
    torch.testing.assert_close(a.centroids, b.centroids.cpu(), rtol=1e-3, atol=1e-4)
