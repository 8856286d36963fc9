"""The OOD sampler of stage 1: when to sample, what a round computes, and its resumable state.

Plain PyTorch/NumPy. A round (docs/method.md, Stage 1, items 2-3) takes the embeddings of the ID
set and of the OOD candidates, clusters the ID embeddings, sets per-cluster budgets and picks
OOD images with pseudo labels. It replaces the previous round's subset. Everything a resumed
run needs to continue identically (round number, picks, pseudo labels, centroids, cluster
sizes, budgets) is in :meth:`OODSampler.state_dict`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ltcl.errors import ConfigError
from ltcl.ood.budgets import (
    gap_budgets,
    pick_by_score,
    pick_nearest_to_centres,
    pick_random,
    softmax_tail_budgets,
)
from ltcl.ood.clustering import cluster_id_embeddings, student_t_assignments

STRATEGIES = ("kl_cluster", "colt", "random")


@dataclass
class SamplerConfig:
    """Sampler settings; every [recon] choice of docs/method.md is one of them.

    warmup_epochs W: epochs of plain NT-Xent before the first round; interval R: a round
    before epoch W, W + R, W + 2R, ...; budget K: OOD images per round; num_clusters Nc;
    dof d and gamma (h_k exponent) of the KL refinement; colt_temperature T of COLT's budget,
    colt_topk and colt_ema of its tail score.
    """

    strategy: str = "kl_cluster"
    warmup_epochs: int = 10
    interval: int = 25
    budget: int = 10_000
    num_clusters: int = 10
    dof: float = 1.0
    gamma: float = 1.0
    kmeans_iterations: int = 50
    refine_iterations: int = 100
    colt_temperature: float = 1.0
    colt_topk: int = 10
    colt_ema: float = 0.97
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                f"unknown sampler.strategy '{self.strategy}': use one of {STRATEGIES}"
            )
        if self.warmup_epochs < 0 or self.interval < 1:
            raise ConfigError(
                f"sampler.warmup_epochs must be >= 0 and sampler.interval >= 1, got "
                f"{self.warmup_epochs} and {self.interval}"
            )
        if self.budget < 1 or self.num_clusters < 1:
            raise ConfigError(
                f"sampler.budget and sampler.num_clusters must be >= 1, got {self.budget} and "
                f"{self.num_clusters}"
            )
        if not self.dof > 0:
            raise ConfigError(
                f"sampler.dof must be > 0 (the Student-t kernel's degrees of freedom; DEC uses "
                f"1), got {self.dof}"
            )
        if not self.gamma >= 0:
            raise ConfigError(
                f"sampler.gamma must be >= 0 (h_k = (sum_i q_ik)^gamma; 1 is DEC's frequency, 0 "
                f"turns it off), got {self.gamma}"
            )

    def check_sizes(self, id_images: int, candidates: int) -> None:
        """Before training: a round must be able to cluster the ID set and fill its budget."""
        if self.num_clusters > id_images:
            raise ConfigError(
                f"sampler.num_clusters={self.num_clusters} is larger than the ID training set "
                f"({id_images} images): lower sampler.num_clusters"
            )
        if self.budget > candidates:
            raise ConfigError(
                f"sampler.budget={self.budget} OOD images per round is larger than the OOD pool "
                f"or its candidate subset ({candidates} images): lower sampler.budget or raise "
                "ood.candidates_per_round"
            )


@dataclass
class RoundLog:
    """What a round decided and what it cost (logged, and kept in the state)."""

    round: int
    epoch: int
    cluster_sizes: list[int] = field(default_factory=list)
    budgets: list[int] = field(default_factory=list)
    picked: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


class OODSampler:
    """Decides the sampled OOD subset; holds the state that a resumed run needs."""

    def __init__(self, config: SamplerConfig):
        self.config = config
        self.round = 0
        self.picked = np.zeros(0, dtype=np.int64)  # pool indices of the sampled subset
        self.picked_labels = np.zeros(0, dtype=np.int64)  # their pseudo labels (-1: none)
        self.id_pseudo_labels: np.ndarray | None = None  # cluster of each ID image
        self.centroids: torch.Tensor | None = None
        self.history: list[dict[str, Any]] = []

    def round_before(self, epoch: int) -> bool:
        """True when a round must run before `epoch` (0-based)."""
        c = self.config
        return epoch >= c.warmup_epochs and (epoch - c.warmup_epochs) % c.interval == 0

    def run_round(
        self,
        epoch: int,
        id_embeddings: torch.Tensor,
        candidate_embeddings: torch.Tensor,
        candidate_indices: np.ndarray,
        id_tail_scores: np.ndarray | None = None,
    ) -> RoundLog:
        """Cluster the ID embeddings, budget the clusters, pick OOD candidates.

        The KL refinement optimises the centroids, so this must not run under no_grad.
        """
        id_embeddings = id_embeddings.detach()
        candidate_embeddings = candidate_embeddings.detach()
        c = self.config
        seconds: dict[str, float] = {}
        started = time.perf_counter()
        candidate_indices = np.asarray(candidate_indices, dtype=np.int64)
        seed = c.seed + self.round
        if c.strategy == "random":
            local, labels = pick_random(len(candidate_indices), c.budget, seed=seed)
            sizes, budgets = [], [c.budget]
            self.id_pseudo_labels = None
        else:
            clustering = cluster_id_embeddings(
                id_embeddings,
                c.num_clusters,
                dof=c.dof,
                gamma=c.gamma,
                kmeans_iterations=c.kmeans_iterations,
                refine_iterations=c.refine_iterations if c.strategy == "kl_cluster" else 0,
                seed=seed,
            )
            seconds["cluster"] = time.perf_counter() - started
            sizes = clustering.cluster_sizes.cpu().numpy()
            self.centroids = clustering.centroids.detach().cpu()
            self.id_pseudo_labels = clustering.pseudo_labels.cpu().numpy().astype(np.int64)
            select_started = time.perf_counter()
            if c.strategy == "kl_cluster":
                budgets = gap_budgets(sizes, c.budget)
                with torch.no_grad():
                    q = student_t_assignments(
                        candidate_embeddings.to(clustering.centroids), clustering.centroids, c.dof
                    )
                local, labels = pick_by_score(q, budgets)
            else:  # colt
                if id_tail_scores is None:
                    raise ConfigError("sampler.strategy=colt needs the ID tail scores")
                scores = np.asarray(id_tail_scores, dtype=np.float64)
                cluster_scores = np.array(
                    [
                        scores[self.id_pseudo_labels == k].mean() if sizes[k] else scores.mean()
                        for k in range(c.num_clusters)
                    ]
                )
                budgets = softmax_tail_budgets(cluster_scores, c.budget, c.colt_temperature)
                local, labels = pick_nearest_to_centres(
                    candidate_embeddings, clustering.centroids, budgets
                )
            seconds["select"] = time.perf_counter() - select_started
        self.picked = candidate_indices[local]
        self.picked_labels = labels
        log = RoundLog(
            round=self.round,
            epoch=epoch,
            cluster_sizes=[int(s) for s in sizes],
            budgets=[int(b) for b in budgets],
            picked=len(self.picked),
            seconds={k: round(v, 3) for k, v in seconds.items()},
        )
        self.history.append(asdict(log))
        self.round += 1
        return log

    # ---- resumable state --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "round": self.round,
            "picked": torch.as_tensor(self.picked),
            "picked_labels": torch.as_tensor(self.picked_labels),
            "id_pseudo_labels": None
            if self.id_pseudo_labels is None
            else torch.as_tensor(self.id_pseudo_labels),
            "centroids": self.centroids,
            "history": list(self.history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["config"] != asdict(self.config):
            raise ConfigError(
                "the checkpoint's OOD sampler settings differ from the config's "
                f"({state['config']} vs {asdict(self.config)}): resume with the same sampler.* "
                "values or start a new run directory"
            )
        self.round = int(state["round"])
        self.picked = state["picked"].numpy().astype(np.int64)
        self.picked_labels = state["picked_labels"].numpy().astype(np.int64)
        ids = state["id_pseudo_labels"]
        self.id_pseudo_labels = None if ids is None else ids.numpy().astype(np.int64)
        self.centroids = state["centroids"]
        self.history = list(state["history"])
