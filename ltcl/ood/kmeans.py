"""Lloyd's k-means with k-means++ seeding, chunked and seeded: the first step of the ID clustering
(:mod:`ltcl.ood.clustering`) and COLT's clustering.

Plain PyTorch on the device of its input; never builds an N x N matrix (only N x K, in chunks);
all randomness from a seeded CPU `torch.Generator`, so CPU and CUDA make the same choices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ltcl.errors import ConfigError, DataError
from ltcl.utils.validate import check_int


@dataclass
class KMeansResult:
    """Output of `kmeans`; `assignments` and `inertia` are those of the returned centroids."""

    centroids: Tensor  # (K, D)
    assignments: Tensor  # (N,) int64
    inertia: float  # sum_i min_k ||x_i - mu_k||^2
    iterations_run: int  # Lloyd updates performed (<= iterations)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def check_embeddings(x: Tensor, name: str = "embeddings") -> Tensor:
    """Fail early on shapes and NaN; return a float tensor (half precision is upcast)."""
    if not isinstance(x, Tensor):
        raise DataError(f"{name} must be a torch.Tensor of shape (N, D), got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] < 1:
        raise DataError(
            f"{name} must have shape (N, D) with D >= 1, got {tuple(x.shape)}; "
            "flatten or stack the per-sample embeddings first"
        )
    if x.dtype not in (torch.float32, torch.float64):
        # Half precision loses too much in ||x||^2 - 2 x.mu + ||mu||^2; integers are not embeddings.
        x = x.float()
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise DataError(
            "the embeddings contain NaN: the network diverged; lower the lr or resume from an "
            f"earlier checkpoint ({bad} non-finite values in the {name}, shape {tuple(x.shape)})"
        )
    return x.detach()


def check_centroids(centroids: Tensor, dim: int, dtype: torch.dtype, device) -> Tensor:
    if not isinstance(centroids, Tensor) or centroids.ndim != 2 or centroids.shape[1] != dim:
        shape = tuple(centroids.shape) if isinstance(centroids, Tensor) else type(centroids)
        raise DataError(
            f"centroids must have shape (K, {dim}) to match the embeddings, got {shape}; "
            "pass the centroids of a clustering of these same embeddings"
        )
    if centroids.shape[0] < 1:
        raise DataError("centroids must hold at least one cluster (K >= 1)")
    centroids = centroids.detach().to(device=device, dtype=dtype)
    if not bool(torch.isfinite(centroids).all()):
        raise DataError(
            "the centroids contain NaN or inf; re-run k-means on finite embeddings instead of "
            "reusing a diverged clustering"
        )
    return centroids


# --------------------------------------------------------------------------------------------
# Distances
# --------------------------------------------------------------------------------------------


def squared_distances(a: Tensor, b: Tensor, a_sq: Tensor | None = None) -> Tensor:
    """||a_i - b_k||^2 as (len(a), len(b)) via the expansion, so no (N, K, D) tensor is built.

    Clamped at 0 because the expansion can go slightly negative from rounding.
    """
    if a_sq is None:
        a_sq = (a * a).sum(1)
    b_sq = (b * b).sum(1)
    d2 = torch.addmm(a_sq.unsqueeze(1) + b_sq.unsqueeze(0), a, b.T, alpha=-2.0)
    return d2.clamp_min_(0.0) if not d2.requires_grad else d2.clamp_min(0.0)


def _row_sq_norms(x: Tensor, chunk_size: int) -> Tensor:
    return torch.cat([(c * c).sum(1) for c in x.split(chunk_size)])


def _assign(x: Tensor, x_sq: Tensor, centroids: Tensor, chunk_size: int) -> tuple[Tensor, Tensor]:
    """Nearest centroid and its squared distance for every row, chunk by chunk (N x K per chunk).

    ||x_i||^2 does not change the argmin, so it is added to the minimum only.
    """
    c_sq = (centroids * centroids).sum(1)
    labels, dists = [], []
    for xc, sq in zip(x.split(chunk_size), x_sq.split(chunk_size), strict=True):
        partial = torch.addmm(c_sq.unsqueeze(0), xc, centroids.T, alpha=-2.0)
        dist, lab = partial.min(1)
        labels.append(lab)
        dists.append((dist + sq).clamp_min_(0.0))
    return torch.cat(labels), torch.cat(dists)


def _cluster_sums(x: Tensor, labels: Tensor, k: int, chunk_size: int) -> Tensor:
    """Per-cluster sums, accumulated over chunks in float64.

    A one-hot matmul per chunk: deterministic on CPU and CUDA (CUDA `index_add_` uses atomics,
    whose rounding depends on thread order) and about 20x faster than CPU `index_add_` here.
    """
    sums = torch.zeros(k, x.shape[1], dtype=torch.float64, device=x.device)
    for xc, lc in zip(x.split(chunk_size), labels.split(chunk_size), strict=True):
        one_hot = torch.nn.functional.one_hot(lc, k).to(x.dtype)
        sums += (one_hot.T @ xc).to(torch.float64)
    return sums


# --------------------------------------------------------------------------------------------
# k-means
# --------------------------------------------------------------------------------------------


def _kmeans_plus_plus(x: Tensor, x_sq: Tensor, k: int, gen: torch.Generator, chunk_size: int):
    """k-means++ seeding (Arthur and Vassilvitskii 2007): each new centre is drawn with
    probability proportional to its squared distance to the nearest centre chosen so far.

    The draws use `gen` on CPU (inverse-CDF on a float64 copy of the distances), so the choice
    does not depend on the device. If every remaining distance is 0 (fewer distinct points than
    K), a not-yet-chosen index is drawn uniformly.
    """
    n = x.shape[0]
    chosen = torch.zeros(n, dtype=torch.bool)
    first = int(torch.randint(n, (1,), generator=gen))
    chosen[first] = True
    indices = [first]
    min_d2 = torch.cat(
        [
            squared_distances(c, x[first : first + 1], s)[:, 0]
            for c, s in zip(x.split(chunk_size), x_sq.split(chunk_size), strict=True)
        ]
    )
    for _ in range(1, k):
        weights = min_d2.to(device="cpu", dtype=torch.float64)
        weights[chosen] = 0.0
        total = float(weights.sum())
        if total > 0:
            cdf = torch.cumsum(weights, 0)
            u = torch.rand(1, generator=gen, dtype=torch.float64) * total
            idx = int(torch.searchsorted(cdf, u, right=True).clamp_max(n - 1))
            if weights[idx] <= 0:  # u landed on the very end of the CDF by rounding
                idx = int(torch.nonzero(weights > 0)[-1])
        else:
            free = torch.nonzero(~chosen)[:, 0]
            idx = int(free[torch.randint(len(free), (1,), generator=gen)])
        chosen[idx] = True
        indices.append(idx)
        new_d2 = torch.cat(
            [
                squared_distances(c, x[idx : idx + 1], s)[:, 0]
                for c, s in zip(x.split(chunk_size), x_sq.split(chunk_size), strict=True)
            ]
        )
        min_d2 = torch.minimum(min_d2, new_d2)
    return x[torch.tensor(indices, device=x.device)].clone()


def _reseed_empty(x: Tensor, labels: Tensor, min_d2: Tensor, counts: Tensor, sums: Tensor) -> None:
    """Give every empty cluster the point farthest from its own centroid (in place).

    Candidates are taken in order of decreasing distance (ties: lower index first, via a stable
    sort), skipping points that are the only member of their cluster so that no new empty
    cluster is created; the moved point is removed from its old cluster's sum. Deterministic,
    and always possible because K <= N. This is scikit-learn's rule as well.
    """
    empty = torch.nonzero(counts == 0)[:, 0].tolist()
    order = torch.sort(min_d2, descending=True, stable=True).indices.cpu()
    labels_cpu = labels.cpu()
    counts_cpu = counts.cpu().clone()
    pos = 0
    for k in empty:
        while counts_cpu[labels_cpu[order[pos]]] <= 1:
            pos += 1
        i = int(order[pos])
        old = int(labels_cpu[i])
        pos += 1
        counts_cpu[old] -= 1
        counts_cpu[k] = 1
        point = x[i].to(torch.float64)
        sums[old] -= point
        sums[k] = point
        labels[i] = k
    counts.copy_(counts_cpu.to(counts.device))


@torch.no_grad()
def kmeans(
    x: Tensor,
    num_clusters: int,
    iterations: int = 50,
    seed: int = 0,
    tol: float = 1e-4,
    chunk_size: int = 8192,
    init: Tensor | None = None,
) -> KMeansResult:
    """Lloyd's k-means with k-means++ seeding on the device of `x`.

    Stops after `iterations` updates or when the total squared centroid shift is at most
    `tol * mean_feature_variance(x)` (scikit-learn's relative tolerance, so `tol` does not depend
    on the scale of the embeddings). Distances are computed `chunk_size` rows at a time, so memory
    is O(N D + chunk_size K): 100k+ points are fine. A cluster that becomes empty during the
    iterations is re-seeded with the point farthest from its centroid (see `_reseed_empty`).
    `init` (K, D) replaces k-means++ seeding, e.g. to warm-start from the previous round.
    The returned assignments and inertia are recomputed for the returned centroids.
    """
    x = check_embeddings(x)
    n, dim = x.shape
    check_int(num_clusters, "num_clusters", 1, "set method.sampler.num_clusters to at least 1")
    if num_clusters > n:
        raise ConfigError(
            f"Nc (method.sampler.num_clusters) larger than the ID set: num_clusters={num_clusters} but "
            f"there are only {n} embeddings; set method.sampler.num_clusters to at most {n}"
        )
    check_int(iterations, "iterations", 0, "use 0 for k-means++ seeding only")
    check_int(chunk_size, "chunk_size", 1, "a few thousand rows is a good chunk")
    if not (isinstance(tol, (int, float)) and math.isfinite(tol) and tol >= 0):
        raise ConfigError(f"tol must be a finite number >= 0, got {tol!r}; 1e-4 is the default")

    x_sq = _row_sq_norms(x, chunk_size)
    if init is None:
        gen = torch.Generator().manual_seed(int(seed))
        centroids = _kmeans_plus_plus(x, x_sq, num_clusters, gen, chunk_size)
    else:
        centroids = check_centroids(init, dim, x.dtype, x.device).clone()
        if centroids.shape[0] != num_clusters:
            raise ConfigError(
                f"init has {centroids.shape[0]} centroids but num_clusters={num_clusters}; "
                "pass one initial centroid per cluster"
            )
    threshold = tol * float(x.var(0, unbiased=False).mean()) if n > 1 else 0.0

    iterations_run = 0
    for _ in range(iterations):
        labels, min_d2 = _assign(x, x_sq, centroids, chunk_size)
        counts = torch.bincount(labels, minlength=num_clusters)
        sums = _cluster_sums(x, labels, num_clusters, chunk_size)
        if bool((counts == 0).any()):
            _reseed_empty(x, labels, min_d2, counts, sums)
        new = (sums / counts.unsqueeze(1).to(torch.float64)).to(x.dtype)
        shift = float(((new - centroids) ** 2).sum())
        centroids = new
        iterations_run += 1
        if shift <= threshold:
            break

    labels, min_d2 = _assign(x, x_sq, centroids, chunk_size)
    inertia = float(min_d2.to(torch.float64).sum())
    return KMeansResult(centroids, labels, inertia, iterations_run)
