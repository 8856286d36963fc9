"""The sampling strategies of stage 1, one object each behind one small interface.

A strategy decides which OOD images join training at a round; :class:`ltcl.ood.rounds.OODSampler`
decides *when* and keeps the resumable record. Nothing outside this module branches on the
strategy's name:

- ``observe(index, z1, z2, num_id, temperature)``: called at every training step with the
  global ID indices of the batch and the two views' embeddings (ID first, then OOD); a
  strategy that keeps per-sample state (COLT's tail score) updates it here;
- ``select(id_z, candidate_z, seed)``: a round's decision, a :class:`Selection`;
- ``setup(num_id_images)``, ``state_dict()`` / ``load_state_dict()``: per-sample state that
  survives resume and DDP.

Three strategies (docs/method.md, Stage 1):

- ``kl_cluster`` (the paper's): k-means++ + KL refinement, budget ∝ max(0, n_ref - n_k), each
  cluster takes the untaken candidates with the highest Student-t assignment q_jk;
- ``colt`` (COLT, ICLR 2023): k-means, budget softmax(-zscore(mean tail score) / T), each
  cluster takes the untaken candidates nearest (cosine) to its centre;
- ``random`` (the control): K uniformly random candidates, no pseudo labels.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ltcl.ood.budgets import (
    gap_budgets,
    pick_by_score,
    pick_nearest_to_centres,
    pick_random,
    round_to_total,
    softmax_tail_budgets,
    sparsity_budgets,
)
from ltcl.ood.clustering import ClusteringResult, cluster_id_embeddings, student_t_assignments
from ltcl.ood.density import cluster_mean, knn_radius
from ltcl.ood.tail_score import colt_tail_score, topk_negative_mass
from ltcl.per_sample import PerSampleEMA


@dataclass
class Selection:
    """What a round decided: candidate positions, their pseudo labels, and the clustering."""

    local: np.ndarray  # positions in the candidate list
    labels: np.ndarray  # pseudo label of each pick (-1: none)
    cluster_sizes: list[int] = field(default_factory=list)
    budgets: list[int] = field(default_factory=list)
    id_pseudo_labels: np.ndarray | None = None
    centroids: torch.Tensor | None = None
    seconds: dict[str, float] = field(default_factory=dict)


class SamplingStrategy:
    """Base: no per-step observation, no per-sample state."""

    name = "base"

    def __init__(self, config):
        self.config = config

    def setup(self, num_id_images: int) -> None:
        """Called before training, when the ID set's size is known."""

    def observe(
        self,
        index: torch.Tensor,
        z1: torch.Tensor,
        z2: torch.Tensor,
        num_id: int,
        temperature: float,
    ) -> None:
        """One training step's embeddings (views 1 and 2, ID rows first)."""

    def select(self, id_z: torch.Tensor, candidate_z: torch.Tensor, seed: int) -> Selection:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def _cluster(self, id_z: torch.Tensor, seed: int, refine: bool):
        c = self.config
        return cluster_id_embeddings(
            id_z,
            c.num_clusters,
            dof=c.dof,
            gamma=c.gamma,
            kmeans_iterations=c.kmeans_iterations,
            refine_iterations=c.refine_iterations if refine else 0,
            seed=seed,
            kmeans_inits=c.kmeans_inits,
        )


class RandomStrategy(SamplingStrategy):
    name = "random"

    def select(self, id_z, candidate_z, seed):
        local, labels = pick_random(candidate_z.shape[0], self.config.budget, seed=seed)
        return Selection(local, labels, budgets=[self.config.budget])


class KLClusterStrategy(SamplingStrategy):
    name = "kl_cluster"

    def select(self, id_z, candidate_z, seed):
        started = time.perf_counter()
        clustering = self._cluster(id_z, seed, refine=True)
        clustered = time.perf_counter()
        sizes = clustering.cluster_sizes.cpu().numpy()
        c = self.config
        if c.budget_rule == "sparsity":
            radii = cluster_mean(
                knn_radius(id_z, c.density_k), clustering.pseudo_labels, c.num_clusters
            ).numpy()
            budgets = sparsity_budgets(
                radii, sizes, c.budget, c.budget_remainder, c.min_cluster_share
            )
        else:
            budgets = gap_budgets(sizes, c.budget, c.budget_remainder, c.min_cluster_share)
        with torch.no_grad():
            q = student_t_assignments(
                candidate_z.to(clustering.centroids), clustering.centroids, self.config.dof
            )
        local, labels = pick_by_score(q, budgets)
        return _clustered_selection(local, labels, sizes, budgets, clustering, started, clustered)


class ColtStrategy(SamplingStrategy):
    """COLT's rule; its per-image tail-score EMA is the strategy's state."""

    name = "colt"

    def __init__(self, config):
        super().__init__(config)
        self.tail_scores: PerSampleEMA | None = None

    def setup(self, num_id_images: int) -> None:
        if self.tail_scores is None or len(self.tail_scores) != num_id_images:
            self.tail_scores = PerSampleEMA(
                num_id_images, self.config.colt_ema, key="method.sampler.colt_ema"
            )

    def observe(self, index, z1, z2, num_id, temperature):
        if self.config.tail_score == "colt":
            scores = colt_tail_score(z1, z2, num_id, temperature, self.config.colt_topk)
        else:
            scores = topk_negative_mass(
                z1[:num_id], z2[:num_id], temperature, self.config.colt_topk
            )
        # Every process updates every image, so that all hold the same EMA.
        self.tail_scores.update_from_all_processes(index, scores)

    def select(self, id_z, candidate_z, seed):
        started = time.perf_counter()
        if self.config.kmeans == "sklearn":
            clustering = sklearn_kmeans(
                id_z,
                self.config.num_clusters,
                self.config.kmeans_inits,
                self.config.kmeans_iterations,
            )
        else:
            clustering = self._cluster(id_z, seed, refine=False)
        clustered = time.perf_counter()
        sizes = clustering.cluster_sizes.cpu().numpy()
        assignment = clustering.pseudo_labels.cpu().numpy()
        scores = self.tail_scores.values.cpu().numpy()
        cluster_scores = np.array(
            [
                scores[assignment == k].mean() if sizes[k] else scores.mean()
                for k in range(self.config.num_clusters)
            ]
        )
        budgets = softmax_tail_budgets(
            cluster_scores,
            self.config.budget,
            self.config.colt_temperature,
            self.config.budget_remainder,
            cluster_sizes=sizes,
        )
        local, labels = pick_nearest_to_centres(candidate_z, clustering.centroids, budgets)
        return _clustered_selection(local, labels, sizes, budgets, clustering, started, clustered)

    def state_dict(self):
        return {} if self.tail_scores is None else {"tail_scores": self.tail_scores.state_dict()}

    def load_state_dict(self, state):
        if state.get("tail_scores") is not None:
            self.tail_scores = PerSampleEMA(0, self.config.colt_ema, key="method.sampler.colt_ema")
            self.tail_scores.load_state_dict(state["tail_scores"])


class SparseKNNStrategy(SamplingStrategy):
    """[recon, the OOD-picks issue's variant (c)] No clusters: the ``anchor_share`` of ID
    images with the largest k-NN radius (the sparsest regions of the ID embedding) are the
    anchors, each takes an equal share of the budget, and each anchor, sparsest first, takes the
    untaken candidates nearest (cosine) to it. No pseudo labels."""

    name = "sparse_knn"

    def select(self, id_z, candidate_z, seed):
        started = time.perf_counter()
        c = self.config
        radii = knn_radius(id_z, c.density_k).cpu()
        count = min(len(radii), max(1, math.ceil(c.anchor_share * len(radii))))
        anchors = torch.argsort(radii, descending=True, stable=True)[:count]
        found = time.perf_counter()
        pool = torch.nn.functional.normalize(candidate_z.float(), dim=1)
        centres = torch.nn.functional.normalize(id_z[anchors.to(id_z.device)].float(), dim=1)
        budgets = round_to_total(np.ones(count), c.budget, c.budget_remainder)
        local, _ = pick_by_score(pool @ centres.T.to(pool.device), budgets, np.arange(count))
        seconds = {"density": found - started, "select": time.perf_counter() - found}
        return Selection(local, np.full(len(local), -1, dtype=np.int64), budgets=[c.budget],
                         seconds=seconds)  # fmt: skip


def sklearn_kmeans(z: torch.Tensor, num_clusters: int, n_init: int, max_iter: int):
    """COLT's clustering (``train_simCLR.sample_ood``): scikit-learn's KMeans with
    ``random_state=0`` on the float32 embeddings. COLT ran it with the scikit-learn of its time,
    whose default ``n_init`` was 10; it is passed explicitly (newer releases default to 1)."""
    from sklearn.cluster import KMeans

    x = z.detach().float().cpu().numpy()
    km = KMeans(n_clusters=num_clusters, random_state=0, n_init=n_init, max_iter=max_iter).fit(x)
    labels = torch.from_numpy(km.labels_.astype(np.int64))
    return ClusteringResult(
        centroids=torch.from_numpy(km.cluster_centers_).to(z.device, torch.float32),
        q=torch.nn.functional.one_hot(labels, num_clusters).float(),
        pseudo_labels=labels.to(z.device),
        cluster_sizes=torch.bincount(labels, minlength=num_clusters).to(z.device),
        kmeans_inertia=float(km.inertia_),
        kl_losses=[],
    )


def _clustered_selection(local, labels, sizes, budgets, clustering, started, clustered):
    return Selection(
        local,
        labels,
        cluster_sizes=[int(s) for s in sizes],
        budgets=[int(b) for b in budgets],
        id_pseudo_labels=clustering.pseudo_labels.cpu().numpy().astype(np.int64),
        centroids=clustering.centroids.detach().cpu(),
        seconds={"cluster": clustered - started, "select": time.perf_counter() - clustered},
    )


# per_view: top-k negative mass per view over the ID rows, then the mean of the two views;
# colt: COLT's own form (scored against the whole ID + OOD batch, views averaged before top-k).
TAIL_SCORES = ("per_view", "colt")
# ltcl: k-means++ / Lloyd in PyTorch (ltcl.ood.kmeans); sklearn: COLT's call,
# KMeans(n_clusters, random_state=0) on the normalised ID embeddings.
KMEANS_BACKENDS = ("ltcl", "sklearn")
# kl_cluster's budget: gap (the paper's, max(0, n_ref - n_k)) | sparsity (ID density).
BUDGET_RULES = ("gap", "sparsity")
# How the picks join training: add (on top of every ID batch) | mix (COLT: into the ID set).
BATCH_MODES = ("add", "mix")

STRATEGIES: dict[str, type[SamplingStrategy]] = {
    s.name: s for s in (KLClusterStrategy, ColtStrategy, RandomStrategy, SparseKNNStrategy)
}
