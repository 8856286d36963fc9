"""BCL (Zhou et al., ICML 2022): contrastive learning with boosted memorisation.

Samples the network memorises slowly (a high contrastive loss, typically the tail) get a
stronger augmentation. An EMA (0.97) of each ID image's NT-Xent loss (the mean of its two
views') is kept across epochs (:class:`ltcl.per_sample.PerSampleEMA`, in the checkpoint, the
same on every process); after each epoch it becomes a weight w_i in [0, 1]
(:func:`ltcl.data.randaugment.bcl_weights`), and during the next epoch each image's views get,
after the SimCLR recipe, a RandAugment of k operations at magnitude m_i applied with
probability w_i (:func:`ltcl.data.randaugment.bcl_strength`): BCL-I k 1, m = 10 + 20 w;
BCL-D k 2, m = 5 + 25 w U(0, 1), on top of SDCLR's pruned branch. The augmentation runs
batched on the training device through the DataModule's view hook, drawn from the epoch's
seeded generator, so a resumed run augments exactly as the uninterrupted one.

[recon] Before the first epoch has ended there is no loss EMA yet and no boost (p = 0); images
not seen in an epoch (the last partial batch is dropped) get w = 0.5.
"""

from __future__ import annotations

from typing import Any

import torch

from ltcl.data.randaugment import BatchedRandAugment, bcl_strength, bcl_weights
from ltcl.errors import ConfigError
from ltcl.losses.nt_xent import nt_xent
from ltcl.methods.sdclr import SDCLRModule
from ltcl.per_sample import PerSampleEMA
from ltcl.utils.validate import check_decay

VARIANTS = ("I", "D")


class BCLModule(SDCLRModule):
    def __init__(
        self,
        *args,
        variant: str = "I",
        temperature: float = 0.2,
        loss_ema: float = 0.97,
        prune_percent: float = 0.9,
        projector_layers: int = 2,
        **kwargs,
    ):
        if variant not in VARIANTS:
            raise ConfigError(
                f"unknown method.variant '{variant}' for BCL: use I (boosted augmentation on "
                "SimCLR) or D (on SDCLR)"
            )
        check_decay(loss_ema, "method.loss_ema")
        # BCL-D is SDCLR's pruned branch; BCL-I has none (both views dense, as SimCLR).
        pruning = prune_percent if variant == "D" else None
        super().__init__(
            *args,
            temperature=temperature,
            prune_percent=pruning,
            projector_layers=projector_layers,
            **kwargs,
        )
        self.variant, self.loss_ema_decay = variant, loss_ema
        self.randaugment = BatchedRandAugment()
        self.loss_ema: PerSampleEMA | None = None
        self.boost_weights: torch.Tensor | None = None  # w_i of this epoch; None: no boost yet

    # ---- the boosted augmentation (called by the DataModule on each ID batch) ------------
    def boost_views(self, index: torch.Tensor, views: torch.Tensor, generator) -> torch.Tensor:
        if self.boost_weights is None:
            return views
        weights = self.boost_weights[index.to(self.boost_weights.device)]
        k, magnitudes, probabilities = bcl_strength(weights, self.variant, generator)
        # Both copies of an image share its magnitude; ops and coins are drawn per view.
        return self.randaugment(
            views, magnitudes.repeat(2), probabilities.repeat(2), k, generator=generator
        )

    def on_fit_start(self) -> None:
        super().on_fit_start()
        datamodule = self.trainer.datamodule
        datamodule.setup("fit")
        size = len(datamodule.train_set)
        if self.loss_ema is None or len(self.loss_ema) != size:
            self.loss_ema = PerSampleEMA(size, self.loss_ema_decay, key="method.loss_ema")
        self._refresh_weights()
        datamodule.set_view_hook(self.boost_views)

    def on_fit_end(self) -> None:
        self.trainer.datamodule.set_view_hook(None)

    def _refresh_weights(self) -> None:
        ema = self.loss_ema
        if ema is None or not bool(ema.seen.any()):
            self.boost_weights = None
            return
        weights = torch.full_like(ema.values, 0.5, dtype=torch.float32)
        weights[ema.seen] = bcl_weights(ema.values[ema.seen]).float()
        self.boost_weights, self._boost_mean = weights, weights.mean()

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        self._refresh_weights()

    # ---- training -----------------------------------------------------------------------
    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        part = batch["id"]
        view1, view2, num_id = self.views(batch)  # + sampled OOD images with a sampler
        z1, z2 = self.two_view_embeddings(view1, view2)
        self.observe_for_sampler(part["index"], z1, z2, num_id)
        losses = nt_xent(z1, z2, self.temperature, per_sample=True)
        # The EMA (and so the boost) is kept for the ID images only.
        self.loss_ema.update_from_all_processes(part["index"], losses[:num_id].detach().float())
        extras = {} if self.boost_weights is None else {"boost_mean": self._boost_mean}
        return losses.mean(), extras

    # ---- checkpoint -----------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.loss_ema is not None:
            checkpoint["bcl_loss_ema"] = self.loss_ema.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("bcl_loss_ema")
        if state is not None:
            self.loss_ema = PerSampleEMA(0, self.loss_ema_decay, key="method.loss_ema")
            self.loss_ema.load_state_dict(state)
