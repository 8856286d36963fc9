"""The LightningModule every method shares: backbone + projector, optimiser, online kNN monitor.

Thin on purpose: the loss, the kNN, the LR schedule and the parameter groups are plain
PyTorch functions elsewhere; this class only wires them to Lightning's loop. A method
subclasses it and implements :meth:`training_loss`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import nn

from ltcl.data.splits import split_fingerprint
from ltcl.errors import ConfigError, TrainingError
from ltcl.evaluation.knn import KNNMonitor, group_accuracies
from ltcl.methods.ood_sampling import OODSamplingHooks
from ltcl.models.backbones import build_backbone
from ltcl.models.embedding import backbone_features, embed
from ltcl.models.projector import Projector
from ltcl.optim import parameter_groups, scaled_learning_rate, warmup_cosine_factor

BANK, QUERY = 0, 1  # validation dataloader indices: kNN bank (balanced train) and queries (val)


class ContrastiveModule(OODSamplingHooks, L.LightningModule):
    """Backbone `phi`, projector `h`, embedding `z = normalize(h(phi(x)))` (docs/method.md notation).

    Args:
        backbone: kwargs of :func:`ltcl.models.backbones.build_backbone` (kept as a dict so
            that a checkpoint rebuilds its own architecture).
        projector: kwargs of :class:`ltcl.models.projector.Projector` besides `in_dim`.
        optimizer: a partial optimiser (Hydra `_partial_: true`) that takes params and lr.
        schedule: base_lr, reference_batch_size, scaling, weight_decay,
            exclude_bias_and_norm, warmup_epochs, final_lr_ratio.
        global_batch_size: images per optimiser step over all processes (for the LR rule).
        knn: k, temperature, every_n_epochs for the online kNN monitor.
        channels_last: use the channels_last memory format (about 1.3x faster on CPU and GPU).
        name: the method's name, recorded in results.
        sampler: a sampler config (method.sampler) gives the method OOD sampling rounds.
        weight_decay: a method's own weight decay where its official code fixes one (BCL-I:
            5e-4); None: ``schedule["weight_decay"]`` (optim.schedule.weight_decay).
    """

    def __init__(
        self,
        backbone: dict,
        projector: dict | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        schedule: dict | None = None,
        global_batch_size: int = 512,
        num_classes: int = 10,
        knn: dict | None = None,
        channels_last: bool = True,
        name: str = "contrastive",
        sampler: dict | None = None,
        weight_decay: float | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer"])
        self.init_sampler(sampler)  # OOD sampling rounds (ltcl.methods.ood_sampling)
        self.backbone = build_backbone(**backbone)
        self.projector = Projector(in_dim=self.backbone.feature_dim, **(projector or {}))
        self.optimizer_factory = optimizer
        self.schedule = {
            "base_lr": 0.5, "reference_batch_size": 512, "scaling": "none", "weight_decay": 1e-4,
            "exclude_bias_and_norm": True, "warmup_epochs": 10, "final_lr_ratio": 0.0,
            **(schedule or {}),
        }  # fmt: skip
        if weight_decay is not None:
            self.schedule["weight_decay"] = float(weight_decay)
        self.knn = {"k": 200, "temperature": 0.1, "every_n_epochs": 1, **(knn or {})}
        self.num_classes = num_classes
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)
        self.knn_monitor = KNNMonitor(num_classes, self.knn["k"], self.knn["temperature"])
        self._epoch_start = 0.0
        self.class_groups: dict[str, list[int]] | None = None
        self.last_knn: dict[str, dict] = {}
        self.epoch_times: list[float] = []  # every epoch's wall time, across resumes
        # Training seconds of earlier invocations (from the checkpoint a run resumes), so that
        # a resumed run reports its whole training time, not only the part after the restart.
        self.earlier_fit_seconds = 0.0
        self.earlier_epochs = 0  # epochs trained before this invocation (resumed from)
        self._fit_started = time.perf_counter()

    # ---- forward ------------------------------------------------------------------------
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone output phi(x), the representation that evaluation uses."""
        return backbone_features(self.backbone, images, self.channels_last)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """z = normalize(h(phi(x))) (:func:`ltcl.models.embedding.embed`)."""
        return embed(self.backbone, self.projector, images, self.channels_last)

    # ---- training -----------------------------------------------------------------------
    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the loss and extra scalars to log; implemented by each method.

        `batch` is ``{"id": {index, label, views}, "ood": {...}}`` for every method; "ood" is
        present only while a sampled OOD subset exists (stage 1 after its first round).
        """
        raise NotImplementedError

    @staticmethod
    def views(batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(view 1, view 2, number of ID rows): the ID images' views, then the sampled OOD
        images' when the batch has them (a method with a sampler trains on both, as COLT)."""
        parts = [batch["id"]] + ([batch["ood"]] if "ood" in batch else [])
        view1 = torch.cat([p["views"][0] for p in parts])
        view2 = torch.cat([p["views"][1] for p in parts])
        return view1, view2, batch["id"]["index"].shape[0]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, extras = self.training_loss(batch)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the training loss became {loss.item()} at epoch {self.current_epoch}, step "
                f"{self.global_step}: lower optim.schedule.base_lr, check the data for constant "
                "images, or use trainer.precision=32 if bf16/fp16 overflowed. Such a change "
                "trains another model: it starts in a new run directory (resuming this one with "
                "other settings is refused)"
            )
        batch_size = batch["id"]["index"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size, sync_dist=True)
        for name, value in extras.items():
            self.log(f"train/{name}", value, batch_size=batch_size, sync_dist=True)
        return loss

    DIVERGENCE_FACTOR = 1000.0  # weight norm growth that no healthy run reaches

    def weight_norm(self) -> float:
        with torch.no_grad():
            return float(
                torch.sqrt(sum(p.detach().float().pow(2).sum() for p in self.parameters()))
            )

    def on_fit_start(self) -> None:
        self._fit_started = time.perf_counter()
        self._start_weight_norm = self.weight_norm()
        self.ood_fit_start()

    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self) -> None:
        elapsed = time.perf_counter() - self._epoch_start
        self.epoch_times.append(elapsed)
        self.log("time/epoch_s", elapsed, sync_dist=True)
        # A loss can stay finite while the weights explode (a learning rate far too high):
        # stop rather than evaluate and record a broken model as a result.
        start, now = getattr(self, "_start_weight_norm", None), self.weight_norm()
        if start and (now != now or now > self.DIVERGENCE_FACTOR * start):
            raise TrainingError(
                f"training diverged: the weight norm grew from {start:.3g} to {now:.3g} by epoch "
                f"{self.current_epoch}; lower optim.schedule.base_lr (a new run directory) or "
                "check the data"
            )
        self.ood_epoch_end()

    # ---- optimisation -------------------------------------------------------------------
    def learning_rate(self) -> float:
        s = self.schedule
        return scaled_learning_rate(
            s["base_lr"], self.hparams.global_batch_size, s["reference_batch_size"], s["scaling"]
        )

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise ConfigError("no optimizer given: compose an optim= config (e.g. optim=sgd)")
        groups = parameter_groups(
            [self.backbone, self.projector, *self.extra_trainable_modules()],
            self.schedule["weight_decay"],
            self.schedule["exclude_bias_and_norm"],
        )
        optimizer = self.optimizer_factory(groups, lr=self.learning_rate())
        total = max(1, int(self.trainer.estimated_stepping_batches))
        epochs = max(1, self.trainer.max_epochs or 1)
        offset = 0
        horizon = self.schedule.get("horizon_epochs")
        mixed = self.ood_steps_per_epoch(horizon or epochs)
        if mixed is not None:
            # COLT's batches: epochs with OOD picks are longer. As COLT's code, the schedule
            # counts every step and the warm-up is warmup_epochs epochs of the ID set alone.
            steps, id_steps = mixed
            offset = sum(steps[: self.schedule.get("start_epoch", 0)]) if horizon else 0
            total = max(1, sum(steps))
            warmup = min(total, int(self.schedule["warmup_epochs"] * id_steps))
        elif horizon:
            # One schedule over several runs (ltcl-pipeline stages.one_schedule): this run is
            # epochs [start_epoch, start_epoch + max_epochs) of a horizon_epochs-long schedule.
            per_epoch = total / epochs
            offset = round(per_epoch * self.schedule.get("start_epoch", 0))
            total, epochs = max(1, round(per_epoch * horizon)), horizon
        if mixed is None:
            warmup = int(total * min(1.0, self.schedule["warmup_epochs"] / epochs))
        final = self.schedule["final_lr_ratio"]
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine_factor(step + offset, total, warmup, final)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def extra_trainable_modules(self) -> list[nn.Module]:
        """Heads a method adds (for example a domain classifier); in the optimiser too."""
        return []

    # ---- checkpoints ------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record which data the model was trained on, so that ltcl-eval can refuse a mismatch."""
        datamodule = getattr(self._trainer, "datamodule", None)
        if datamodule is not None and getattr(datamodule, "split", None) is not None:
            checkpoint["ltcl_data"] = {
                "dataset": datamodule.name,
                "num_classes": datamodule.num_classes,
                "class_counts": [int(c) for c in datamodule.split.class_counts],
                "split_sha256": split_fingerprint(datamodule.split),
                "seed": os.environ.get("PL_GLOBAL_SEED"),
            }
        checkpoint["ltcl_time"] = {
            "epoch_times": list(self.epoch_times),
            "fit_seconds": self.earlier_fit_seconds + time.perf_counter() - self._fit_started,
        }
        self.ood_save(checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        timing = checkpoint.get("ltcl_time") or {}
        self.epoch_times = list(timing.get("epoch_times", []))
        self.earlier_epochs = int(checkpoint.get("epoch", -1)) + 1
        self.earlier_fit_seconds = float(timing.get("fit_seconds", 0.0))
        self.ood_load(checkpoint)

    # ---- online kNN monitor -------------------------------------------------------------
    def setup(self, stage: str) -> None:
        datamodule = getattr(self._trainer, "datamodule", None)
        if datamodule is not None and getattr(datamodule, "class_groups", None) is not None:
            self.class_groups = datamodule.class_groups

    def on_validation_epoch_start(self) -> None:
        self.knn_monitor.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0):
        feats = self.features(batch["image"]).float()
        part = "bank" if dataloader_idx == BANK else "query"
        self.knn_monitor.update(feats, batch["label"], batch["index"], part)

    def on_validation_epoch_end(self) -> None:
        self._log_knn("val")

    on_test_epoch_start = on_validation_epoch_start
    test_step = validation_step

    def on_test_epoch_end(self) -> None:
        self._log_knn("test")

    def _log_knn(self, prefix: str) -> None:
        """kNN accuracy of the queries (val or test) against the balanced bank, by group."""
        if not self.knn_monitor.has_data():
            return
        per_class = self.knn_monitor.compute()  # gathered from every process, each image once
        groups = self.class_groups or {"many": [], "medium": [], "few": []}
        metrics = group_accuracies(per_class, groups)
        self.last_knn[prefix] = {**metrics, "per_class": per_class.tolist()}
        # Every process holds the same gathered numbers, so no further reduction is needed.
        self.log(f"{prefix}/knn_acc", metrics["all"], prog_bar=True, sync_dist=False)
        for name in ("many", "medium", "few", "std"):
            if metrics[name] == metrics[name]:  # not NaN
                self.log(f"{prefix}/knn_{name}", metrics[name], sync_dist=False)
        self.knn_monitor.reset()
