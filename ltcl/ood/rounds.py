"""The OOD sampler of stage 1: when to sample, what a round computes, and its resumable state.

Plain PyTorch/NumPy. A round (docs/method.md, Stage 1, items 2-3) takes the embeddings of the ID
set and of the OOD candidates, clusters the ID embeddings, sets per-cluster budgets and picks
OOD images with pseudo labels. It replaces the previous round's subset. Everything a resumed
run needs to continue identically (round number, picks, pseudo labels, centroids, cluster
sizes, budgets) is in :meth:`OODSampler.state_dict`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ltcl.errors import ConfigError
from ltcl.ood.budgets import REMAINDER_RULES
from ltcl.ood.strategies import (
    BATCH_MODES,
    BUDGET_RULES,
    KMEANS_BACKENDS,
    STRATEGIES,
    TAIL_SCORES,
)
from ltcl.utils.validate import check_decay, check_int, check_positive


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
    kmeans_inits: int = 1
    budget_remainder: str = "largest"
    tail_score: str = "per_view"
    kmeans: str = "ltcl"
    batch_mode: str = "add"
    min_cluster_share: float = 0.0
    budget_rule: str = "gap"
    density_k: int = 10
    anchor_share: float = 0.1

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                f"unknown method.sampler.strategy '{self.strategy}': use one of {tuple(STRATEGIES)}"
            )
        if self.warmup_epochs < 0 or self.interval < 1:
            raise ConfigError(
                f"method.sampler.warmup_epochs must be >= 0 and method.sampler.interval >= 1, got "
                f"{self.warmup_epochs} and {self.interval}"
            )
        if self.budget < 1 or self.num_clusters < 1:
            raise ConfigError(
                f"method.sampler.budget and method.sampler.num_clusters must be >= 1, got {self.budget} and "
                f"{self.num_clusters}"
            )
        check_int(self.kmeans_inits, "method.sampler.kmeans_inits", 1, "k-means++ starts")
        check_int(self.kmeans_iterations, "method.sampler.kmeans_iterations", 1, "ltcl uses 50")
        check_int(self.refine_iterations, "method.sampler.refine_iterations", 0, "ltcl uses 100")
        check_int(self.seed, "method.sampler.seed", 0)
        check_positive(self.colt_temperature, "method.sampler.colt_temperature", "COLT uses 1.0")
        check_int(self.colt_topk, "method.sampler.colt_topk", 1, "COLT uses 10")
        check_decay(self.colt_ema, "method.sampler.colt_ema")
        if self.tail_score not in TAIL_SCORES:
            raise ConfigError(
                f"unknown method.sampler.tail_score '{self.tail_score}': use one of {TAIL_SCORES}"
            )
        if self.kmeans not in KMEANS_BACKENDS:
            raise ConfigError(
                f"unknown method.sampler.kmeans '{self.kmeans}': use one of {KMEANS_BACKENDS} "
                "(sklearn: scikit-learn's KMeans with random_state 0, as COLT's code)"
            )
        if self.kmeans == "sklearn" and self.strategy != "colt":
            raise ConfigError(
                "method.sampler.kmeans=sklearn is COLT's clustering and only the colt strategy "
                f"reads it (strategy here: {self.strategy}): set method.sampler.kmeans=ltcl"
            )
        if not (0.0 <= float(self.min_cluster_share) < 1.0):
            raise ConfigError(
                "method.sampler.min_cluster_share must be in [0, 1) (a cluster below this share "
                f"of the mean cluster size gets no budget), got {self.min_cluster_share}"
            )
        if self.budget_rule not in BUDGET_RULES:
            raise ConfigError(
                f"unknown method.sampler.budget_rule '{self.budget_rule}': use one of {BUDGET_RULES}"
            )
        if self.budget_rule != "gap" and self.strategy != "kl_cluster":
            raise ConfigError(
                f"method.sampler.budget_rule={self.budget_rule} is read by the kl_cluster strategy "
                f"only (strategy here: {self.strategy}): leave it at gap"
            )
        check_int(self.density_k, "method.sampler.density_k", 1, "the k of the k-NN radius")
        if not (0.0 < float(self.anchor_share) <= 1.0):
            raise ConfigError(
                f"method.sampler.anchor_share must be in (0, 1], got {self.anchor_share}"
            )
        if self.batch_mode not in BATCH_MODES:
            raise ConfigError(
                f"unknown method.sampler.batch_mode '{self.batch_mode}': use add (the picks on top "
                "of each ID batch) or mix (COLT's code: the picks joined to the ID set and shuffled)"
            )
        if self.budget_remainder not in REMAINDER_RULES:
            raise ConfigError(
                f"unknown method.sampler.budget_remainder '{self.budget_remainder}': use one of "
                f"{REMAINDER_RULES}"
            )
        if not self.dof > 0:
            raise ConfigError(
                f"method.sampler.dof must be > 0 (the Student-t kernel's degrees of freedom; DEC uses "
                f"1), got {self.dof}"
            )
        if not self.gamma >= 0:
            raise ConfigError(
                f"method.sampler.gamma must be >= 0 (h_k = (sum_i q_ik)^gamma; 1 is DEC's frequency, 0 "
                f"turns it off), got {self.gamma}"
            )

    def check_sizes(self, id_images: int, candidates: int) -> None:
        """Before training: a round must be able to cluster the ID set and fill its budget."""
        if self.num_clusters > id_images:
            raise ConfigError(
                f"method.sampler.num_clusters={self.num_clusters} is larger than the ID training set "
                f"({id_images} images): lower method.sampler.num_clusters"
            )
        if self.budget > candidates:
            raise ConfigError(
                f"method.sampler.budget={self.budget} OOD images per round is larger than the OOD pool "
                f"or its candidate subset ({candidates} images): lower method.sampler.budget or raise "
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
        self.strategy = STRATEGIES[config.strategy](config)

    def round_before(self, epoch: int) -> bool:
        """True when a round must run before `epoch` (0-based)."""
        c = self.config
        return epoch >= c.warmup_epochs and (epoch - c.warmup_epochs) % c.interval == 0

    def setup(self, num_id_images: int) -> None:
        self.strategy.setup(num_id_images)

    def observe(self, index, z1, z2, num_id: int, temperature: float) -> None:
        """A training step's embeddings, for strategies with per-sample state (COLT)."""
        self.strategy.observe(index, z1, z2, num_id, temperature)

    def run_round(
        self,
        epoch: int,
        id_embeddings: torch.Tensor,
        candidate_embeddings: torch.Tensor,
        candidate_indices: np.ndarray,
    ) -> RoundLog:
        """Let the strategy pick among the candidates; record the round.

        The KL refinement optimises the centroids, so this must not run under no_grad.
        """
        candidate_indices = np.asarray(candidate_indices, dtype=np.int64)
        selection = self.strategy.select(
            id_embeddings.detach(),
            candidate_embeddings.detach(),
            seed=self.config.seed + self.round,
        )
        self.picked = candidate_indices[selection.local]
        self.picked_labels = selection.labels
        self.id_pseudo_labels = selection.id_pseudo_labels
        if selection.centroids is not None:
            self.centroids = selection.centroids
        log = RoundLog(
            round=self.round,
            epoch=epoch,
            cluster_sizes=list(selection.cluster_sizes),
            budgets=list(selection.budgets),
            picked=len(self.picked),
            seconds={k: round(v, 3) for k, v in selection.seconds.items()},
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
            "strategy": self.strategy.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["config"] != asdict(self.config):
            raise ConfigError(
                "the checkpoint's OOD sampler settings differ from the config's "
                f"({state['config']} vs {asdict(self.config)}): resume with the same method.sampler.* "
                "values or start a new run directory"
            )
        self.round = int(state["round"])
        self.picked = state["picked"].numpy().astype(np.int64)
        self.picked_labels = state["picked_labels"].numpy().astype(np.int64)
        ids = state["id_pseudo_labels"]
        self.id_pseudo_labels = None if ids is None else ids.numpy().astype(np.int64)
        self.centroids = state["centroids"]
        self.history = list(state["history"])
        self.strategy.load_state_dict(state.get("strategy") or {})
