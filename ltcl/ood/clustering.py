"""ID clustering for the OOD sampler: k-means++ / Lloyd (:mod:`ltcl.ood.kmeans`), then DEC-style
KL refinement.

docs/method.md, Stage 1, item 2. At the start of each sampling round the ID embeddings `Z_id` are
clustered: k-means gives initial centroids, which are then refined with the network frozen by
minimising the KL clustering loss

    q_ik = (1 + ||z_i - mu_k||^2 / d)^(-(d+1)/2) / sum_k' (...)      (Student-t kernel, d dof)
    p_ik = (q_ik^2 / h_k) / sum_k' (q_ik'^2 / h_k'),  h_k = (sum_i q_ik)^gamma
    L    = (1/B) sum_i sum_k p_ik log(p_ik / q_ik)

The pseudo labels `argmax_k q_ik` and the cluster sizes `n_k` then drive the per-cluster OOD
budget (item 3, implemented elsewhere).

Everything here is plain PyTorch, runs on the device of its input, never builds an N x N matrix
(only N x K, in chunks where N is large) and draws all randomness from a seeded CPU
`torch.Generator`, so that CPU and CUDA runs with the same seed make the same random choices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ltcl.errors import ConfigError, DataError
from ltcl.ood.kmeans import (
    KMeansResult,
    check_centroids,
    check_embeddings,
    kmeans,
    squared_distances,
)
from ltcl.utils.validate import check_int, check_positive

__all__ = [
    "ClusteringResult",
    "KMeansResult",
    "RefineResult",
    "cluster_id_embeddings",
    "cluster_kl_loss",
    "kmeans",
    "refine_centroids",
    "student_t_assignments",
    "target_distribution",
]


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass
class RefineResult:
    """Output of `refine_centroids`."""

    centroids: Tensor  # (K, D), refined
    losses: list[float]  # minibatch KL loss of every optimiser step
    q: Tensor  # (N, K) soft assignments under the refined centroids


@dataclass
class ClusteringResult:
    """Output of `cluster_id_embeddings`: what the OOD sampler and the logs need."""

    centroids: Tensor  # (K, D)
    q: Tensor  # (N, K) soft assignments
    pseudo_labels: Tensor  # (N,) int64, argmax_k q_ik
    cluster_sizes: Tensor  # (K,) int64, n_k = bincount(pseudo_labels)
    kmeans_inertia: float
    kl_losses: list[float]
    degenerate_clusters: list[int] = field(default_factory=list)  # clusters with n_k <= 1


# --------------------------------------------------------------------------------------------
# DEC-style KL clustering loss
# --------------------------------------------------------------------------------------------


def _log_student_t(z: Tensor, centroids: Tensor, dof: float) -> Tensor:
    """log q (B, K): the unnormalised log kernel, then log-softmax, so tiny q do not underflow."""
    d2 = squared_distances(z, centroids)
    logits = -(dof + 1.0) / 2.0 * torch.log1p(d2 / dof)
    return torch.log_softmax(logits, dim=1)


def student_t_assignments(z: Tensor, centroids: Tensor, dof: float = 1.0) -> Tensor:
    """Soft assignments q (N, K), Student-t kernel with `dof` degrees of freedom (DEC).

    Differentiable with respect to both inputs; computed in log space for stability.
    """
    check_positive(dof, "dof", "the Student-t degrees of freedom; docs/method.md uses 1")
    if not isinstance(z, Tensor) or z.ndim != 2:
        raise DataError(f"z must have shape (N, D), got {getattr(z, 'shape', type(z))}")
    if not isinstance(centroids, Tensor) or centroids.ndim != 2 or centroids.shape[1] != z.shape[1]:
        raise DataError(
            f"centroids must have shape (K, {z.shape[1]}) to match z, got "
            f"{getattr(centroids, 'shape', type(centroids))}"
        )
    return _log_student_t(z, centroids, float(dof)).exp()


def _check_q(q: Tensor, name: str = "q") -> None:
    if not isinstance(q, Tensor) or q.ndim != 2 or q.shape[1] < 1:
        raise DataError(f"{name} must have shape (N, K), got {getattr(q, 'shape', type(q))}")


def _log_target(log_q: Tensor, gamma: float, frequency: Tensor | None) -> Tensor:
    """log p from log q: log_softmax_k(2 log q_ik - gamma log f_k)."""
    if frequency is None:
        frequency = log_q.exp().sum(0)
    tiny = torch.finfo(log_q.dtype).tiny
    log_h = gamma * frequency.to(log_q.dtype).clamp_min(tiny).log()
    return torch.log_softmax(2.0 * log_q - log_h, dim=1)


def target_distribution(
    q: Tensor, cluster_frequency_exponent: float = 1.0, frequency: Tensor | None = None
) -> Tensor:
    """DEC's sharpened target p (N, K) from soft assignments q.

    `p_ik = (q_ik^2 / h_k) / sum_k' (q_ik'^2 / h_k')` with `h_k = f_k^gamma`, where `f_k` is the
    soft cluster frequency `sum_i q_ik`. Squaring sharpens confident assignments; dividing by
    `h_k` stops large clusters from absorbing everything (gamma = 1 is DEC, gamma = 0 turns the
    correction off). `frequency` is `f_k` (K,) *before* the exponent: pass the frequency over the
    whole set when `q` is only a minibatch. Returned without gradient (p is a fixed target).
    """
    _check_q(q)
    gamma = cluster_frequency_exponent
    if not (isinstance(gamma, (int, float)) and math.isfinite(gamma) and gamma >= 0):
        raise ConfigError(
            f"cluster_frequency_exponent (gamma) must be a finite number >= 0, got {gamma!r}; "
            "1 is DEC's soft cluster frequency"
        )
    if frequency is not None:
        if not isinstance(frequency, Tensor) or frequency.shape != (q.shape[1],):
            raise DataError(
                f"frequency must have shape ({q.shape[1]},), one soft count per cluster, got "
                f"{getattr(frequency, 'shape', type(frequency))}"
            )
        if bool((frequency < 0).any()) or not bool(torch.isfinite(frequency).all()):
            raise DataError("frequency must be finite and >= 0: it is sum_i q_ik over the set")
        frequency = frequency.detach().to(q.device)
    q = q.detach()
    if frequency is None:
        frequency = q.sum(0)
    tiny = torch.finfo(q.dtype).tiny
    return _log_target(q.clamp_min(tiny).log(), float(gamma), frequency).exp()


def cluster_kl_loss(p: Tensor, q: Tensor) -> Tensor:
    """KL clustering loss `(1/B) sum_i sum_k p_ik log(p_ik / q_ik)` (scalar).

    Uses `xlogy` so that p_ik = 0 terms contribute 0 even where q_ik underflowed to 0.
    """
    _check_q(p, "p")
    _check_q(q, "q")
    if p.shape != q.shape:
        raise DataError(
            f"p and q must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}"
        )
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(1).mean()


@torch.no_grad()
def _full_log_q(z: Tensor, centroids: Tensor, dof: float, chunk_size: int) -> Tensor:
    return torch.cat([_log_student_t(c, centroids, dof) for c in z.split(chunk_size)])


def refine_centroids(
    z: Tensor,
    centroids: Tensor,
    dof: float = 1.0,
    gamma: float = 1.0,
    iterations: int = 100,
    batch_size: int = 1024,
    lr: float = 1e-3,
    target_update_interval: int | None = None,
    seed: int = 0,
    chunk_size: int = 8192,
) -> RefineResult:
    """Refine `centroids` by minimising the KL clustering loss with the embeddings fixed.

    - Only the centroids move (`z` is detached): the guiding network is frozen here.
    - Optimiser: Adam. Its step is about `lr` per coordinate whatever the loss scale (which
      changes with Nc, dof and gamma), so `lr` reads as a distance in embedding units; with
      L2-normalised embeddings 1e-3 x 100 steps moves a centroid by at most ~0.1 per coordinate.
    - Target: p is recomputed from the current q over the *full* set (chunked) every
      `target_update_interval` steps (None: once per pass over the data), and held fixed in
      between, as in DEC; the first update is at step 0.
    - Minibatches: a fresh seeded permutation per pass (last batch may be smaller), drawn from a
      CPU generator, so a seed gives the same result on every run and device.
    `losses` holds the minibatch loss of each step; `q` is the full-set q of the final centroids.
    """
    z = check_embeddings(z)
    n, dim = z.shape
    mu0 = check_centroids(centroids, dim, z.dtype, z.device)
    check_positive(dof, "dof", "the Student-t degrees of freedom; docs/method.md uses 1")
    if not (isinstance(gamma, (int, float)) and math.isfinite(gamma) and gamma >= 0):
        raise ConfigError(f"gamma must be a finite number >= 0, got {gamma!r}; 1 is DEC's choice")
    check_int(iterations, "iterations", 0, "use 0 to skip the KL refinement")
    check_int(batch_size, "batch_size", 1, "1024 is the default")
    check_positive(lr, "lr", "1e-3 (Adam) is the default")
    check_int(chunk_size, "chunk_size", 1, "a few thousand rows is a good chunk")
    batch = min(batch_size, n)
    if target_update_interval is None:
        target_update_interval = math.ceil(n / batch)
    check_int(target_update_interval, "target_update_interval", 1, "None means once per pass")

    dof, gamma = float(dof), float(gamma)
    mu = mu0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([mu], lr=lr)
    gen = torch.Generator().manual_seed(int(seed))
    losses: list[Tensor] = []
    p = perm = None
    pos = n
    for step in range(iterations):
        if step % target_update_interval == 0:
            p = _log_target(_full_log_q(z, mu.detach(), dof, chunk_size), gamma, None).exp()
        if pos >= n:
            perm = torch.randperm(n, generator=gen).to(z.device)
            pos = 0
        idx = perm[pos : pos + batch]
        pos += batch
        log_q = _log_student_t(z[idx], mu, dof)
        p_b = p[idx]
        loss = (torch.xlogy(p_b, p_b) - p_b * log_q).sum(1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())

    mu = mu.detach()
    q = _full_log_q(z, mu, dof, chunk_size).exp()
    loss_list = torch.stack(losses).cpu().tolist() if losses else []
    return RefineResult(mu, loss_list, q)


def cluster_id_embeddings(
    z: Tensor,
    num_clusters: int,
    dof: float = 1.0,
    gamma: float = 1.0,
    kmeans_iterations: int = 50,
    refine_iterations: int = 100,
    batch_size: int = 1024,
    lr: float = 1e-3,
    target_update_interval: int | None = None,
    seed: int = 0,
    tol: float = 1e-4,
    chunk_size: int = 8192,
    kmeans_inits: int = 1,
) -> ClusteringResult:
    """Cluster the ID embeddings as docs/method.md says: k-means++ / Lloyd, then KL refinement.

    Pseudo labels are `argmax_k q_ik` and `cluster_sizes` their bincount. A cluster with 0 or 1
    member after refinement is *reported* in `degenerate_clusters` rather than raised: a bad
    round should be visible in the logs, not kill a long run. The OOD sampler gives such
    clusters no special treatment beyond their budget (a small n_k simply earns a large one).
    """
    check_int(kmeans_inits, "kmeans_inits", 1, "set method.sampler.kmeans_inits to at least 1")
    # Several k-means++ starts, the lowest inertia kept (scikit-learn's n_init, which COLT uses).
    runs = [
        kmeans(
            z, num_clusters, kmeans_iterations, seed=seed * 1000 + i, tol=tol, chunk_size=chunk_size
        )
        if kmeans_inits > 1
        else kmeans(z, num_clusters, kmeans_iterations, seed=seed, tol=tol, chunk_size=chunk_size)
        for i in range(kmeans_inits)
    ]
    km = min(runs, key=lambda run: run.inertia)
    refined = refine_centroids(
        z,
        km.centroids,
        dof=dof,
        gamma=gamma,
        iterations=refine_iterations,
        batch_size=batch_size,
        lr=lr,
        target_update_interval=target_update_interval,
        seed=seed,
        chunk_size=chunk_size,
    )
    pseudo = refined.q.argmax(1)
    sizes = torch.bincount(pseudo, minlength=num_clusters)
    degenerate = torch.nonzero(sizes <= 1)[:, 0].tolist()
    return ClusteringResult(
        centroids=refined.centroids,
        q=refined.q,
        pseudo_labels=pseudo,
        cluster_sizes=sizes,
        kmeans_inertia=km.inertia,
        kl_losses=refined.losses,
        degenerate_clusters=degenerate,
    )
