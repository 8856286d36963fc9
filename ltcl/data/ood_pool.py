"""The OOD pool that stage 1 samples from.

The pool is only read: a sampling round embeds it (or a seeded candidate subset, to bound
the cost of a round on the 300K file), and the chosen images join the training batches
with pseudo labels. Pool ids are offset by the ID set's length wherever they meet ID ids,
so that an OOD image never becomes the positive of an ID image with the same number.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import Dataset

from ltcl.data.datasets import TwoViewDataset
from ltcl.data.sources import ImageSource, naming_the_source
from ltcl.data.transforms import PerSampleAugment, augment_config
from ltcl.errors import ConfigError, DataError


class OODPoolDataModule(L.LightningDataModule):
    """An unlabeled image pool (Tiny ImageNet folder, 300K Random Images array, list file).

    Args:
        name: pool name recorded in results.
        source: callable returning the pool's :class:`ImageSource` (Hydra `_partial_`).
        candidates_per_round: embed at most this many seeded random pool images per round
            (None: the whole pool).
        seed: seed of the candidate draw (combined with the round number).
        augment: kwargs of :meth:`AugmentConfig.from_recipe` for the sampled images' views.
    """

    def __init__(
        self,
        name: str,
        source: Callable[[], ImageSource],
        candidates_per_round: int | None = None,
        seed: int = 0,
        augment: dict | None = None,
        eval_batch_size: int = 1024,
        num_workers: int = 0,
        batch_ratio: float | None = None,
    ):
        super().__init__()
        if batch_ratio is not None and not (0 < float(batch_ratio) <= 8):
            raise ConfigError(
                f"ood.batch_ratio must be in (0, 8] (OOD images per ID image in a step; 1.0 is "
                f"COLT's 1:1 batches) or null (the sampled set's share), got {batch_ratio}"
            )
        self.batch_ratio = None if batch_ratio is None else float(batch_ratio)
        if candidates_per_round is not None and candidates_per_round < 1:
            raise ConfigError(
                f"ood.candidates_per_round must be >= 1 or null, got {candidates_per_round}"
            )
        self.name, self.source_fn = name, source
        self.candidates_per_round, self.seed = candidates_per_round, seed
        self.augment_cfg = augment_config(augment)
        self.eval_batch_size, self.num_workers = eval_batch_size, num_workers
        self.pool: ImageSource | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.pool is not None:
            return
        with naming_the_source("ood.source"):
            pool = self.source_fn()
        if len(pool) == 0:
            raise DataError(f"the OOD pool '{self.name}' has no images: check ood.source paths")
        self.pool = pool

    def __len__(self) -> int:
        if self.pool is None:
            raise RuntimeError("call setup() before using the OOD pool")
        return len(self.pool)

    def candidates(self, round_index: int) -> np.ndarray:
        """Pool indices to embed in sampling round `round_index` (identical on every process)."""
        if self.candidates_per_round is None or self.candidates_per_round >= len(self):
            return np.arange(len(self))
        rng = np.random.default_rng([self.seed, round_index])
        return np.sort(rng.choice(len(self), self.candidates_per_round, replace=False))

    def training_dataset(self, indices: np.ndarray, augment_on: str = "device") -> Dataset:
        """Two-view dataset of the sampled images (index = position in `indices`)."""
        augment = PerSampleAugment(self.augment_cfg) if augment_on == "workers" else None
        return TwoViewDataset(self.pool, indices, augment)

    def summary(self) -> dict[str, Any]:
        return {"ood_pool": self.name, "ood_pool_size": len(self) if self.pool else None}
