"""OOD sampling rounds for any method: the guide's, COLT's, and "+COLT" on SDCLR or BCL.

A method that is given a sampler config (``method.sampler``: the guide and COLT always,
any other method with ``+method/sampler=colt ood=...``) gets, through these hooks of
:class:`ltcl.methods.base.ContrastiveModule`: a sampling round at the end of every epoch that
precedes a round epoch (W, W + R, ...; with W = 0 the first round runs at fit start), so that
the next epoch's batches carry the newly sampled OOD views as ``batch["ood"]``; the per-step
observation that strategies with per-sample state need (COLT's tail score); and the
sampler's state in the checkpoint.

DDP: rank zero embeds, clusters and picks; the picks and pseudo labels are broadcast so that
every process trains on the same subset (GPU kernels are not bit-identical across devices, so
each rank clustering on its own could disagree).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ltcl.errors import ConfigError
from ltcl.ood.rounds import OODSampler, SamplerConfig


def top_classes(labels: np.ndarray, names: list[str], top: int) -> dict[str, int]:
    """{class name: count} of the `top` most frequent labels (ties: lower label first)."""
    if len(labels) == 0:
        return {}
    counts = np.bincount(np.asarray(labels))
    order = np.argsort(-counts, kind="stable")[:top]
    return {(names[i] if i < len(names) else str(i)): int(counts[i]) for i in order if counts[i]}


def pool_class_histogram(source, picked, top: int = 20) -> dict[str, int]:
    """The `top` most picked classes of a labelled pool (e.g. Tiny ImageNet wnids), for the
    round log; {} for an unlabelled pool (a single class, as the 300K Random Images file)."""
    classes = list(getattr(source, "classes", []) or [])
    if len(classes) < 2 or len(picked) == 0:
        return {}
    return top_classes(source.labels[np.asarray(picked)], classes, top)


def cluster_composition(sampler: OODSampler, datamodule, top: int = 5) -> dict[str, Any]:
    """For the analysis of a round (never used in training): each cluster's most frequent true
    ID classes and the pool classes it picked. The ID labels are read from the data, not from
    anything the method learns."""
    names = list(getattr(datamodule.train_set.source, "classes", []) or [])
    pool = datamodule.ood_pool.pool
    pool_names = list(getattr(pool, "classes", []) or [])
    out: dict[str, Any] = {"id_classes_by_cluster": {}, "pool_classes_by_cluster": {}}
    if sampler.id_pseudo_labels is None:
        return out
    train = datamodule.train_set
    id_labels = np.asarray(train.source.labels)[np.asarray(train.indices)]

    picked_pool_labels = np.asarray(pool.labels)[sampler.picked] if len(sampler.picked) else []
    for k in np.unique(sampler.id_pseudo_labels):
        members = id_labels[sampler.id_pseudo_labels == k]
        out["id_classes_by_cluster"][str(int(k))] = top_classes(members, names, top)
        if len(pool_names) > 1:
            mine = np.asarray(picked_pool_labels)[sampler.picked_labels == k]
            out["pool_classes_by_cluster"][str(int(k))] = top_classes(mine, pool_names, top)
    return out


def picks_grid(
    source, picked: np.ndarray, labels: np.ndarray, per_cluster: int = 8, clusters: int = 16
) -> np.ndarray:
    """A uint8 image (H, W, 3): one row per cluster (its first ``per_cluster`` picks, by pool
    index), the largest ``clusters`` clusters of the round, so a person sees what each cluster
    drew from the pool. Picks without a cluster (-1: random picks) form one row."""
    from torchvision.utils import make_grid

    picked, labels = np.asarray(picked), np.asarray(labels)
    ids, sizes = np.unique(labels, return_counts=True)
    rows = []
    for cluster in ids[np.argsort(-sizes, kind="stable")][:clusters]:
        members = np.sort(picked[labels == cluster])[:per_cluster]
        images = [torch.from_numpy(source.load(int(i))).permute(2, 0, 1) for i in members]
        images += [torch.zeros_like(images[0])] * (per_cluster - len(images))
        rows.extend(images)
    grid = make_grid(torch.stack(rows), nrow=per_cluster, padding=2, pad_value=255)
    return grid.permute(1, 2, 0).numpy()


class OODSamplingHooks:
    """Mixed into ContrastiveModule; every hook is a no-op without a sampler."""

    sampler: OODSampler | None = None

    def init_sampler(self, sampler: dict | None) -> None:
        self.sampler = None if sampler is None else OODSampler(SamplerConfig(**sampler))

    def observe_for_sampler(self, index, z1, z2, num_id: int) -> None:
        """A step's embeddings (ID rows first), for strategies with per-sample state."""
        if self.sampler is not None:
            self.sampler.observe(index, z1, z2, num_id, self.temperature)

    def ood_fit_start(self) -> None:
        """After a resume the loader must see the restored subset (and the tail scores).

        With W = 0 the first round belongs before epoch 0: it runs here, on the initial
        weights, since rounds otherwise run at the end of the preceding epoch.
        """
        if self.sampler is None:
            return
        datamodule = self._datamodule()
        datamodule.setup("fit")  # the ID set and the pool (idempotent)
        datamodule.set_ood_subset(
            self.sampler.picked, self.sampler.picked_labels, self.sampler.config.batch_mode
        )
        # Sizes are known now and no step has run: a round that could not fill its budget fails
        # here, not W epochs in (only when this run will reach a round).
        if self.sampler.config.warmup_epochs < (self.trainer.max_epochs or 0):
            self.sampler.config.check_sizes(
                len(datamodule.train_set), len(datamodule.ood_pool.candidates(0))
            )
        self.sampler.setup(len(datamodule.train_set))
        if self.current_epoch == 0 and self.sampler.round == 0 and self.sampler.round_before(0):
            self.sampling_round(
                0, log_metrics=False
            )  # Lightning allows no self.log in on_fit_start

    def ood_steps_per_epoch(self, epochs: int) -> tuple[list[int], int] | None:
        """(optimiser steps of each of `epochs` epochs, steps of an ID-only epoch) when the
        picks are mixed into the ID set (``batch_mode=mix``: an epoch from the first round on
        has ``(N_id + K) // B`` steps); None when every epoch has the ID set's steps."""
        if self.sampler is None or self.sampler.config.batch_mode != "mix":
            return None
        datamodule = self._datamodule()
        datamodule.setup("fit")
        global_batch = datamodule.batch_size_per_device() * self.trainer.world_size
        num_id, budget = len(datamodule.train_set), self.sampler.config.budget
        # The first epoch that trains on picks. With W = 0 the round runs at fit start, after
        # Lightning has built epoch 0's loader (to count the schedule's steps): its picks join
        # from epoch 1 on, in both batch modes.
        first = max(1, self.sampler.config.warmup_epochs)
        steps = [(num_id + (budget if e >= first else 0)) // global_batch for e in range(epochs)]
        return steps, num_id // global_batch

    def ood_epoch_end(self) -> None:
        if self.sampler is None:
            return
        # Also after the last epoch: a run resumed with a larger max_epochs must find the
        # round that an uninterrupted run would have made here.
        next_epoch = self.current_epoch + 1
        if self.sampler.round_before(next_epoch):
            self.sampling_round(next_epoch)

    def _datamodule(self):
        datamodule = getattr(self._trainer, "datamodule", None)
        if datamodule is None or getattr(datamodule, "ood_pool", None) is None:
            raise ConfigError(
                f"method={self.hparams.name} needs an OOD pool: add ood=... (e.g. "
                "ood=tinyimagenet, ood=embedded)"
            )
        return datamodule

    def sampling_round(self, epoch: int, log_metrics: bool = True) -> None:
        datamodule = self._datamodule()
        pool = datamodule.ood_pool
        pool.setup()
        state = None
        if self.trainer.is_global_zero:
            candidates = pool.candidates(self.sampler.round)
            started = time.perf_counter()
            options = {"device": self.device, "modules": [self], "to_cpu": False, "batch_size": 512}
            id_z, _ = datamodule.embed(self.embed, "train", **options)
            ood_z, _ = datamodule.embed(self.embed, "ood", candidates, **options)
            embed_seconds = time.perf_counter() - started
            with torch.enable_grad():
                log = self.sampler.run_round(epoch, id_z, ood_z, candidates)
            log.seconds["embed"] = round(embed_seconds, 3)
            self.sampler.history[-1]["seconds"] = dict(log.seconds)
            self.sampler.history[-1]["pool_classes"] = pool_class_histogram(
                pool.pool, self.sampler.picked
            )
            self.sampler.history[-1].update(cluster_composition(self.sampler, datamodule))
            self.print(
                f"[ltcl] sampling round {log.round} before epoch {epoch}: "
                f"cluster sizes {log.cluster_sizes}, budgets {log.budgets}, "
                f"{log.picked} OOD images, {log.seconds}"
            )
            state = self.sampler.state_dict()
        state = self.trainer.strategy.broadcast(state, src=0)
        self.sampler.load_state_dict(state)
        datamodule.set_ood_subset(
            self.sampler.picked, self.sampler.picked_labels, self.sampler.config.batch_mode
        )
        if log_metrics:
            # Per-round statistics for the loggers (wandb, CSV); the full record (budgets,
            # class histogram of the picks) is in the checkpoint's sampler history.
            last = self.sampler.history[-1]
            sizes = last["cluster_sizes"]
            stats = {
                "sampler/round": float(self.sampler.round),
                "sampler/picked": float(len(self.sampler.picked)),
                "sampler/cluster_size_min": float(min(sizes)) if sizes else 0.0,
                "sampler/cluster_size_max": float(max(sizes)) if sizes else 0.0,
                **{f"sampler/seconds_{k}": float(v) for k, v in last["seconds"].items()},
            }
            for name, value in stats.items():
                self.log(name, value, rank_zero_only=True)
        self._log_picks_grid(pool)

    def _log_picks_grid(self, pool) -> None:
        """The round's picks per cluster as one image, to loggers that take images (wandb)."""
        loggers = [lg for lg in self.trainer.loggers if hasattr(lg, "log_image")]
        if not loggers or not self.trainer.is_global_zero or not len(self.sampler.picked):
            return
        grid = picks_grid(pool.pool, self.sampler.picked, self.sampler.picked_labels)
        caption = f"round {self.sampler.round}: picks per cluster (rows, largest first)"
        for logger in loggers:
            logger.log_image(key="sampler/picks", images=[grid], caption=[caption])

    def ood_save(self, checkpoint: dict[str, Any]) -> None:
        if self.sampler is not None:
            checkpoint["ood_sampler"] = self.sampler.state_dict()

    def ood_load(self, checkpoint: dict[str, Any]) -> None:
        if self.sampler is not None and "ood_sampler" in checkpoint:
            self.sampler.load_state_dict(checkpoint["ood_sampler"])
