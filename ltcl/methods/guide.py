"""Stage 1: the guiding network f, trained on long-tailed ID data plus sampled OOD data.

Thin: the losses (:func:`ltcl.losses.psd_loss`, :mod:`ltcl.losses.domain`), the clustering
and the OOD selection (:class:`ltcl.ood.rounds.OODSampler`) are plain PyTorch elsewhere.
This module runs a sampling round at the end of every epoch that precedes a round epoch
(W, W + R, ...; with W = 0 the first round runs at fit start), so that the reloaded training loader of the next epoch mixes ID views with
the newly sampled OOD views; it keeps the sampler's state in the checkpoint.

Batch mix (documented choice): each step takes B ID images and round(B x K / N_id) sampled OOD
images, so that every sampled image is seen about once per epoch, as when COLT concatenates
the ID set and the sampled subset. Before the first round the batches are ID-only and L_PSD
is exactly NT-Xent.

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
from ltcl.losses.domain import DomainHead, domain_bce_loss, domain_supcon_loss
from ltcl.losses.psd import psd_loss
from ltcl.methods.base import ContrastiveModule
from ltcl.ood.rounds import OODSampler, SamplerConfig

DOMAIN_LOSSES = ("bce", "supcon")


def pool_class_histogram(source, picked, top: int = 20) -> dict[str, int]:
    """The `top` most picked classes of a labelled pool (e.g. Tiny ImageNet wnids), for the
    round log; {} for an unlabelled pool (a single class, as the 300K Random Images file)."""
    classes = list(getattr(source, "classes", []) or [])
    if len(classes) < 2 or len(picked) == 0:
        return {}
    counts = np.bincount(source.labels[np.asarray(picked)], minlength=len(classes))
    order = np.argsort(-counts, kind="stable")[:top]
    return {classes[i]: int(counts[i]) for i in order if counts[i] > 0}


class GuideModule(ContrastiveModule):
    """L_stage1 = L_PSD + lambda_dd * L_DD (docs/method.md, Stage 1)."""

    def __init__(
        self,
        *args,
        temperature: float = 0.2,
        sampler: dict | None = None,
        beta: float = 1.0,
        beta_normalization: str = "per_positive",
        lambda_dd: float = 0.1,
        domain_loss: str = "bce",
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        if domain_loss not in DOMAIN_LOSSES:
            raise ConfigError(f"unknown domain_loss '{domain_loss}': use one of {DOMAIN_LOSSES}")
        self.temperature, self.beta = temperature, beta
        self.beta_normalization = beta_normalization
        self.lambda_dd, self.domain_loss = lambda_dd, domain_loss
        self.domain_head = DomainHead(self.backbone.feature_dim)
        self.sampler = OODSampler(SamplerConfig(**(sampler or {})))

    def extra_trainable_modules(self):
        return [self.domain_head]

    # ---- training -----------------------------------------------------------------------
    def training_loss(self, batch: dict[str, Any]):
        id_batch, ood_batch = batch["id"], batch.get("ood")
        views1, views2 = [id_batch["views"][0]], [id_batch["views"][1]]
        labels = [self._id_pseudo_labels(id_batch["index"])]
        is_ood = [torch.zeros_like(id_batch["index"], dtype=torch.bool)]
        if ood_batch is not None:
            views1.append(ood_batch["views"][0])
            views2.append(ood_batch["views"][1])
            labels.append(ood_batch["label"])
            is_ood.append(torch.ones_like(ood_batch["index"], dtype=torch.bool))
        n = sum(v.shape[0] for v in views1)
        feats = self.features(torch.cat(views1 + views2))
        z = torch.nn.functional.normalize(self.projector(feats), dim=1)
        z1, z2 = z[:n], z[n:]
        pseudo = torch.cat(labels)
        domain = torch.cat(is_ood)
        loss_psd = psd_loss(
            z1,
            z2,
            pseudo,
            self.temperature,
            beta=self.beta,
            beta_normalization=self.beta_normalization,
        )
        self.sampler.observe(
            id_batch["index"], z1, z2, id_batch["index"].shape[0], self.temperature
        )
        extras = {"loss_psd": loss_psd.detach(), "ood_fraction": domain.float().mean()}
        loss = loss_psd
        if ood_batch is not None and self.lambda_dd > 0:
            if self.domain_loss == "bce":
                logits = self.domain_head(feats.float())
                loss_dd = domain_bce_loss(logits, torch.cat([domain, domain]))
            else:
                loss_dd = domain_supcon_loss(z1, z2, domain, self.temperature)
            loss = loss + self.lambda_dd * loss_dd
            extras["loss_dd"] = loss_dd.detach()
        if self.domain_loss != "bce" or ood_batch is None or self.lambda_dd <= 0:
            # The domain head takes no part in this step; a zero-weighted term keeps it in the
            # graph so that DDP runs without find_unused_parameters.
            loss = loss + 0.0 * self.domain_head(feats.float()).sum()
        return loss, extras

    def _id_pseudo_labels(self, index: torch.Tensor) -> torch.Tensor:
        labels = self.sampler.id_pseudo_labels
        if labels is None:
            return torch.full_like(index, -1)
        return torch.as_tensor(labels, device=index.device)[index]

    # ---- sampling rounds ----------------------------------------------------------------
    def on_fit_start(self) -> None:
        """After a resume the loader must see the restored subset (and the tail scores).

        With W = 0 the first round belongs before epoch 0: it runs here, on the initial
        weights, since rounds otherwise run at the end of the preceding epoch.
        """
        super().on_fit_start()
        datamodule = self._datamodule()
        datamodule.set_ood_subset(self.sampler.picked, self.sampler.picked_labels)
        # Sizes are known now (the data is set up) and no step has run: a round that could not
        # fill its budget fails here, not W epochs in.
        # (Only when this run will reach a round: a run shorter than the warm-up never samples.)
        if self.sampler.config.warmup_epochs < (self.trainer.max_epochs or 0):
            datamodule.setup("fit")
            datamodule.ood_pool.setup()
            self.sampler.config.check_sizes(
                len(datamodule.train_set), len(datamodule.ood_pool.candidates(0))
            )
        datamodule.setup("fit")
        self.sampler.setup(len(datamodule.train_set))
        if self.current_epoch == 0 and self.sampler.round == 0 and self.sampler.round_before(0):
            self.sampling_round(
                0, log_metrics=False
            )  # Lightning allows no self.log in on_fit_start

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
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
            self.print(
                f"[ltcl] sampling round {log.round} before epoch {epoch}: "
                f"cluster sizes {log.cluster_sizes}, budgets {log.budgets}, "
                f"{log.picked} OOD images, {log.seconds}"
            )
            state = self.sampler.state_dict()
        state = self.trainer.strategy.broadcast(state, src=0)
        self.sampler.load_state_dict(state)
        datamodule.set_ood_subset(self.sampler.picked, self.sampler.picked_labels)
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

    # ---- checkpoint -----------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["ood_sampler"] = self.sampler.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "ood_sampler" in checkpoint:
            self.sampler.load_state_dict(checkpoint["ood_sampler"])
