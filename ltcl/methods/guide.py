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

from typing import Any

import torch

from ltcl.errors import ConfigError
from ltcl.losses.domain import DomainHead, domain_bce_loss, domain_supcon_loss
from ltcl.losses.psd import check_psd_settings, psd_loss
from ltcl.methods.base import ContrastiveModule
from ltcl.utils.validate import check_positive

DOMAIN_LOSSES = ("bce", "supcon")


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
        super().__init__(*args, sampler=sampler or {}, **kwargs)
        check_psd_settings(beta, beta_normalization)
        check_positive(
            lambda_dd, "method.lambda_dd", "0.1 (BCE) by default, 0 turns L_DD off", True
        )
        if domain_loss not in DOMAIN_LOSSES:
            raise ConfigError(f"unknown domain_loss '{domain_loss}': use one of {DOMAIN_LOSSES}")
        self.temperature, self.beta = temperature, beta
        self.beta_normalization = beta_normalization
        self.lambda_dd, self.domain_loss = lambda_dd, domain_loss
        self.domain_head = DomainHead(self.backbone.feature_dim)

    def extra_trainable_modules(self):
        return [self.domain_head]

    # ---- training -----------------------------------------------------------------------
    def training_loss(self, batch: dict[str, Any]):
        id_batch, ood_batch = batch["id"], batch.get("ood")
        view1, view2, num_id = self.views(batch)  # ID rows, then the sampled OOD rows
        labels = [self._id_pseudo_labels(id_batch["index"])]
        if ood_batch is not None:
            labels.append(ood_batch["label"])
        pseudo = torch.cat(labels)
        domain = torch.arange(view1.shape[0], device=view1.device) >= num_id  # True: OOD
        feats = self.features(torch.cat([view1, view2]))
        z = torch.nn.functional.normalize(self.projector(feats), dim=1)
        z1, z2 = z.chunk(2)
        loss_psd = psd_loss(
            z1,
            z2,
            pseudo,
            self.temperature,
            beta=self.beta,
            beta_normalization=self.beta_normalization,
        )
        self.observe_for_sampler(id_batch["index"], z1, z2, num_id)
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
        # Copied to the device once per round, not at every step.
        key = (self.sampler.round, index.device)
        if getattr(self, "_pseudo_cache", (None, None))[0] != key:
            self._pseudo_cache = (key, torch.as_tensor(labels, device=index.device))
        return self._pseudo_cache[1][index]
