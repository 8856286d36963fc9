"""Stage 2: the guided contrastive student g, trained on ID data only (docs/method.md, Stage 2).

Thin: L_GCL and L_DL are plain PyTorch in :mod:`ltcl.losses.guided`. This module loads the
stage-1 guide from its checkpoint, keeps a frozen copy of it, and optimises
``L_GCL + lambda_dl * L_DL``.

The frozen guide is deliberately *not* a registered submodule: it is then outside the
optimiser, outside ``state_dict`` (the student's checkpoints do not carry a second copy of
the guide; they record the guide checkpoint's path and step instead), outside DDP's
parameter set, and Lightning's ``Module.train()`` cannot switch it out of eval mode. A resumed
student reloads it from ``guide_checkpoint``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ltcl.data.splits import split_fingerprint
from ltcl.errors import ConfigError
from ltcl.losses.guided import (
    BACKBONE_DISTILLATION,
    DISTILLATION_MODES,
    check_density_k,
    check_guided_selection,
    distillation_loss,
    feature_distillation_loss,
    guided_contrastive_loss,
)
from ltcl.losses.memory_bank import GuidedPositiveBank, check_bank_size
from ltcl.methods.base import ContrastiveModule
from ltcl.models.checkpoints import check_data_matches, load_embedding_network
from ltcl.models.embedding import EmbeddingNetwork

INITS = ("guide", "scratch")
STUDENT_DISTILLATION = (*DISTILLATION_MODES, BACKBONE_DISTILLATION)


class StudentModule(ContrastiveModule):
    """L_stage2 = L_GCL + lambda_dl * L_DL, guided by a frozen stage-1 network.

    Args (besides those of :class:`ContrastiveModule`):
        guide_checkpoint: a checkpoint of ``ltcl-train method=guide`` (any ltcl checkpoint of
            the same architecture works, e.g. SimCLR's, for a guide without OOD data).
        init: ``guide`` (default, docs/method.md: "we further optimize the network") or ``scratch``.
        delta, k_pos: guided positives are views with guide similarity >= delta, at most k_pos.
        attraction_weights, repulsion_weights: the guide's force weights (off: 1).
        lambda_dl, distillation, distill_teacher_temperature, distill_student_temperature: L_DL
            (``distillation=backbone``: the feature form on backbone features phi(x)).
        density_k: > 0 turns on density-aware repulsion (negatives from crowded guide regions
            push less); positive_bank: > 0 keeps that many earlier views as candidate guided
            positives (docs/method.md, "Stage 2 variants").
    """

    def __init__(
        self,
        *args,
        guide_checkpoint: str | None = None,
        init: str = "guide",
        temperature: float = 0.2,
        delta: float = 0.8,
        k_pos: int = 5,
        attraction_weights: bool = True,
        repulsion_weights: bool = True,
        lambda_dl: float = 1.0,
        distillation: str = "relational",
        distill_teacher_temperature: float = 0.2,
        distill_student_temperature: float = 0.2,
        density_k: int = 0,
        positive_bank: int = 0,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        if not guide_checkpoint:
            raise ConfigError(
                "method=student needs a guide: set method.guide_checkpoint=<run>/checkpoints/"
                "last.ckpt of `ltcl-train method=guide`, or run both stages with ltcl-pipeline"
            )
        if init not in INITS:
            raise ConfigError(f"unknown student init '{init}': use one of {INITS}")
        check_guided_selection(delta, k_pos)  # the loss's own rule, checked before training
        if distillation not in STUDENT_DISTILLATION:
            raise ConfigError(
                f"unknown distillation '{distillation}': use one of {STUDENT_DISTILLATION}"
            )
        check_density_k(density_k)
        check_bank_size(positive_bank)
        if not (lambda_dl >= 0 and math.isfinite(lambda_dl)):
            raise ConfigError(f"lambda_dl must be a finite number >= 0, got {lambda_dl}")
        self.temperature, self.delta, self.k_pos = temperature, float(delta), k_pos
        self.attraction_weights, self.repulsion_weights = attraction_weights, repulsion_weights
        self.lambda_dl, self.distillation = lambda_dl, distillation
        self.distill_temperatures = (distill_teacher_temperature, distill_student_temperature)
        self.guide_checkpoint = str(guide_checkpoint)
        self.density_k = density_k
        # A registered submodule: its buffers are saved with the student (exact resume).
        dim = self.projector.out_dim
        self.positive_bank = GuidedPositiveBank(positive_bank, dim, dim) if positive_bank else None

        guide, meta = load_embedding_network(guide_checkpoint)
        self._check_guide_architecture(meta)
        self.guide_meta = meta
        if init == "guide":
            self.backbone.load_state_dict(guide.backbone.state_dict())
            self.projector.load_state_dict(guide.projector.state_dict())
        # A list, so that nn.Module does not register it (see the module docstring). Frozen:
        # eval mode always (BN uses the guide's running statistics), no gradients.
        self._frozen_guide = [
            EmbeddingNetwork(guide.backbone, guide.projector, self.channels_last, frozen=True)
        ]

    def _check_guide_architecture(self, meta: dict[str, Any]) -> None:
        ours, theirs = dict(self.hparams.backbone), dict(meta["backbone"])
        if ours != theirs:
            raise ConfigError(
                f"the guide checkpoint {self.guide_checkpoint} holds a {theirs} backbone but the "
                f"student is a {ours}: use the guide's model config (model=...) for the student"
            )
        ours = {
            "hidden_dim": self.projector.hidden_dim,
            "out_dim": self.projector.out_dim,
            "batch_norm": bool((self.hparams.projector or {}).get("batch_norm", True)),
        }
        if meta["projector"] != ours:
            raise ConfigError(
                f"the guide's embedding head is {meta['projector']} but the student's is {ours}: "
                "set model.projector.* to the guide's values"
            )

    @property
    def guide(self) -> EmbeddingNetwork:
        guide = self._frozen_guide[0]
        if next(guide.parameters()).device != self.device:
            guide.to(self.device)
        return guide

    # ---- checks before training -----------------------------------------------------------
    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = getattr(self._trainer, "datamodule", None)
        split = getattr(datamodule, "split", None)
        if split is None:
            return
        try:
            check_data_matches(
                self.guide_meta,
                datamodule.name,
                datamodule.num_classes,
                [int(c) for c in split.class_counts],
                split_fingerprint(split),
            )
        except ConfigError as error:
            raise ConfigError(f"guide checkpoint {self.guide_checkpoint}: {error}") from error

    @property
    def reads_guide_views(self) -> bool:
        """Whether a loss term uses the guide's embeddings of the batch: guided positives,
        force weights, density-aware repulsion, the positive bank or distillation. Without
        them (k_pos 0, no repulsion weights, lambda_dl 0) the guide only initialises."""
        return bool(
            self.k_pos > 0
            or self.repulsion_weights
            or self.density_k > 0
            or self.positive_bank is not None
            or self.lambda_dl > 0
        )

    # ---- training -----------------------------------------------------------------------
    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        view1, view2 = batch["id"]["views"]
        images = torch.cat([view1, view2])
        if not self.reads_guide_views:
            # The plain student: L_GCL is NT-Xent and no loss term reads the guide's views, so
            # the frozen guide is not run; the student's own views stand in (never read).
            u1, u2 = self.embed(images).chunk(2)
            v1, v2 = u1.detach(), u2.detach()
        elif self.distillation == BACKBONE_DISTILLATION:
            features = self.features(images)
            u1, u2 = F.normalize(self.projector(features), dim=1).chunk(2)
            with torch.no_grad():
                guide_features = self.guide.features(images)
                v1, v2 = F.normalize(self.guide.projector(guide_features), dim=1).chunk(2)
        else:
            u1, u2 = self.embed(images).chunk(2)
            v1, v2 = self.guide(images).chunk(2)
        bank = self.positive_bank
        loss_gcl, stats = guided_contrastive_loss(
            u1,
            u2,
            v1,
            v2,
            self.temperature,
            delta=self.delta,
            k_pos=self.k_pos,
            attraction_weights=self.attraction_weights,
            repulsion_weights=self.repulsion_weights,
            return_stats=True,
            labels=batch["id"]["label"],  # diagnostics only: the precision of guided positives
            density_k=self.density_k,
            bank=None if bank is None else bank.view(),
        )
        if bank is not None:
            bank.push(torch.cat([u1, u2]), torch.cat([v1, v2]), batch["id"]["label"])
        extras = {
            "loss_gcl": loss_gcl.detach(),
            **{k: v.float() for k, v in stats.items() if not torch.isnan(v)},
        }
        loss = loss_gcl
        if self.lambda_dl > 0:
            teacher_t, student_t = self.distill_temperatures
            if self.distillation == BACKBONE_DISTILLATION:
                h1, h2 = features.chunk(2)
                g1, g2 = guide_features.chunk(2)
                loss_dl = feature_distillation_loss(h1, h2, g1, g2)
            else:
                loss_dl = distillation_loss(
                    u1,
                    u2,
                    v1,
                    v2,
                    mode=self.distillation,
                    teacher_temperature=teacher_t,
                    student_temperature=student_t,
                )
            loss = loss + self.lambda_dl * loss_dl
            extras["loss_dl"] = loss_dl.detach()
        return loss, extras

    # ---- checkpoint -----------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["ltcl_guide"] = {
            "path": str(Path(self.guide_checkpoint).resolve()),
            "method": self.guide_meta["method"],
            "epoch": self.guide_meta["epoch"],
            "global_step": self.guide_meta["global_step"],
        }
