"""Linear probes of a pretrained backbone: the two protocols of the peers (docs/method.md, "Evaluation").

- Protocol (a), SDCLR/COLT (:func:`ltcl.evaluation.linear_probe_a.probe_with_frozen_backbone`): the backbone stays frozen in eval
  mode (``--fixbn``) and a linear head is trained on augmented images (crop + flip) with SGD, lr 30,
  30 epochs, x0.1 at epochs 10 and 20. The head of the best validation epoch is scored on test.
- Protocol (b), BCL (:func:`probe_on_features`): features are extracted once (test transform);
  a linear layer is trained on them with Adam, lr 1e-2 decayed exponentially to 1e-6 over 500
  epochs, weight decay 5e-6, batch 1000. There is no validation: the last epoch is tested.

Both return a :class:`ProbeResult` whose :meth:`ProbeResult.summary` gives All / Many / Medium /
Few / Std in the peers' definitions (:func:`ltcl.evaluation.knn.group_accuracies`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ltcl.errors import ConfigError, DataError
from ltcl.evaluation.knn import group_accuracies, per_class_accuracy
from ltcl.utils.validate import check_int, check_positive

__all__ = [
    "ProbeResult",
    "exponential_lr",
    "probe_on_features",
]

_PREDICT_CHUNK = 8192


@dataclass
class ProbeResult:
    """Test predictions of one probe and what is needed to report and audit them.

    ``best_epoch`` is the 0-based index into ``history`` of the epoch whose head was tested
    (protocol a); None for protocol (b), which tests the last epoch. ``config`` holds the
    hyperparameters actually used, so that a results record can name the protocol exactly.
    """

    predictions: torch.Tensor
    targets: torch.Tensor
    per_class: torch.Tensor
    best_epoch: int | None
    history: list[dict[str, float]]
    protocol: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    other_per_class: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        """Overall (sample-weighted) test accuracy %; equals ``all`` only on a balanced test set."""
        if self.targets.numel() == 0:
            return float("nan")
        return 100.0 * float((self.predictions == self.targets).double().mean())

    def summary(self, groups: Mapping[str, list[int]]) -> dict[str, float]:
        """All / many / medium / few / std (of the three groups) and per_class_std, all in %.

        Both stds are population stds (ddof 0): SDCLR's balancedness and, for the per-class
        accuracies, the same convention. Classes without test images (NaN) are left out.
        """
        out = group_accuracies(self.per_class, dict(groups))
        values = self.per_class.double().cpu().numpy()
        values = values[~np.isnan(values)]
        out["per_class_std"] = float(values.std(ddof=0)) if values.size else float("nan")
        return out


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def as_features(x: Any, name: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim != 2 or x.shape[0] == 0 or not x.is_floating_point():
        raise DataError(
            f"{name} must be a non-empty float tensor (N, D), got dtype {x.dtype} shape "
            f"{tuple(x.shape)}: pass the backbone features of the images, one row per image"
        )
    if not bool(torch.isfinite(x).all()):
        raise DataError(
            f"{name} contains NaN or inf: the backbone produced non-finite features; check the "
            "checkpoint (did pretraining diverge?) and the input normalisation"
        )
    return x


def as_labels(y: Any, n: int, num_classes: int, name: str) -> torch.Tensor:
    y = torch.as_tensor(y)
    if y.ndim != 1 or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise DataError(
            f"{name} must be a 1-D integer tensor, got dtype {y.dtype} shape {tuple(y.shape)}"
        )
    if y.shape[0] != n:
        raise DataError(
            f"{name} has {y.shape[0]} labels but the features have {n} rows: pass the labels "
            "of the same images, in the same order"
        )
    if n and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise DataError(
            f"{name} range {int(y.min())}..{int(y.max())} but num_classes is {num_classes}: "
            f"every label must lie in 0..{num_classes - 1} (unlabeled OOD images, label -1, "
            "cannot be probed); check num_classes and the split"
        )
    return y.long()


def new_head(dim: int, num_classes: int, generator: torch.Generator) -> nn.Linear:
    """nn.Linear with PyTorch's default init (U(-1/sqrt(dim), 1/sqrt(dim))) from our generator.

    Drawing from a private generator makes the probe deterministic for its seed without touching
    (or depending on) torch's global RNG, which the caller's data loaders use.
    """
    head = nn.utils.skip_init(nn.Linear, dim, num_classes)  # the default init would draw
    bound = 1.0 / math.sqrt(dim)
    with torch.no_grad():
        head.weight.copy_(torch.rand(num_classes, dim, generator=generator) * 2 * bound - bound)
        head.bias.copy_(torch.rand(num_classes, generator=generator) * 2 * bound - bound)
    return head


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


@torch.no_grad()
def predict_features(head: nn.Module, feats: torch.Tensor) -> torch.Tensor:
    out = [
        head(feats[i : i + _PREDICT_CHUNK]).argmax(1) for i in range(0, len(feats), _PREDICT_CHUNK)
    ]
    return torch.cat(out).cpu()


# --------------------------------------------------------------------------------------------
# Protocol (b): BCL, on fixed features
# --------------------------------------------------------------------------------------------


def exponential_lr(epoch: int, epochs: int, lr: float, final_lr: float) -> float:
    """Learning rate of 0-based ``epoch``: ``lr * gamma ** epoch``, gamma = (final/lr)^(1/(E-1)).

    The first epoch runs at ``lr`` and the last at ``final_lr`` exactly; this is ExponentialLR
    stepped once per epoch, computed in closed form so that 500 multiplications do not drift.
    With one epoch there is nothing to decay and ``lr`` is used.
    """
    if epochs <= 1 or epoch <= 0:
        return lr
    if epoch >= epochs - 1:
        return final_lr
    return lr * (final_lr / lr) ** (epoch / (epochs - 1))


@torch.no_grad()
def _softmax_regression_grad(head: nn.Linear, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Set the head's .grad to that of the mean cross-entropy on (x, y); return the summed loss.

    The gradient of softmax regression in closed form, (softmax - onehot) / B, instead of
    autograd: on a 1000 x 512 x 10 step the autograd bookkeeping is about a third of the time,
    and the 500-epoch BCL probe runs 22,500 such steps. Logits are kept (C, B), the faster
    layout for a handful of classes. ``tests/unit/test_linear_probe.py`` checks it against
    autograd.
    """
    logits = torch.addmm(head.bias[:, None], head.weight, x.T)  # (C, B)
    log_p = torch.log_softmax(logits, dim=0)
    cols = torch.arange(y.numel(), device=y.device)
    loss_sum = -log_p[y, cols].sum()
    grad = log_p.exp_()
    grad[y, cols] -= 1.0
    grad /= y.numel()
    head.weight.grad = grad @ x
    head.bias.grad = grad.sum(dim=1)
    return loss_sum


def check_probe_settings(
    epochs: Any = 500,
    lr: Any = 1e-2,
    final_lr: Any = 1e-6,
    weight_decay: Any = 5e-6,
    batch_size: Any = 1000,
    seed: Any = 0,
    prefix: str = "",
) -> tuple[int, float, float, float, int, int]:
    """The probe's settings, checked (before training too: ``prefix`` = their config path)."""
    epochs = check_int(epochs, f"{prefix}epochs", 1, "BCL uses 500")
    batch_size = check_int(batch_size, f"{prefix}batch_size", 1, "BCL uses 1000")
    if not is_int(seed):
        raise ConfigError(f"{prefix}seed must be an integer, got {seed!r}")
    lr = check_positive(lr, f"{prefix}lr", "BCL uses 1e-2")
    final_lr = check_positive(final_lr, f"{prefix}final_lr", "BCL uses 1e-6")
    if final_lr > lr:
        raise ConfigError(
            f"{prefix}final_lr ({final_lr}) must not exceed {prefix}lr ({lr}): the schedule "
            "decays from lr to final_lr; swap them or set final_lr = lr for a constant rate"
        )
    weight_decay = check_positive(
        weight_decay, f"{prefix}weight_decay", "BCL uses 5e-6", allow_zero=True
    )
    return epochs, lr, final_lr, weight_decay, batch_size, int(seed)


def probe_on_features(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    epochs: int = 500,
    lr: float = 1e-2,
    final_lr: float = 1e-6,
    weight_decay: float = 5e-6,
    batch_size: int = 1000,
    seed: int = 0,
    device: str | torch.device | None = None,
    normalize: bool = False,
    also_evaluate: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> ProbeResult:
    """BCL's probe: one nn.Linear on fixed features, Adam, exponential lr decay, last epoch tested.

    Minibatches are a fresh permutation per epoch from a ``torch.Generator`` seeded with
    ``seed`` (which also draws the head's init), and the last partial batch is kept, so every
    image is seen once per epoch. Weight decay is Adam's L2 term (added to the gradient), as in
    ``torch.optim.Adam``. ``normalize`` L2-normalises the features first (BCL does not).
    ``device`` defaults to the device of ``train_feats``. Deterministic for a seed on a given
    device and thread count. ``also_evaluate`` ({name: (feats, labels)}, e.g. the validation
    split) scores the same trained head on other sets: ``result.other_per_class[name]``.
    """
    num_classes = check_int(num_classes, "num_classes", 2, "set it to the dataset's class count")
    epochs, lr, final_lr, weight_decay, batch_size, seed = check_probe_settings(
        epochs, lr, final_lr, weight_decay, batch_size, seed
    )

    x_train = as_features(train_feats, "train_feats")
    x_test = as_features(test_feats, "test_feats")
    if x_test.shape[1] != x_train.shape[1]:
        raise DataError(
            f"test_feats have {x_test.shape[1]} dimensions but train_feats {x_train.shape[1]}: "
            "extract both with the same backbone"
        )
    y_train = as_labels(train_labels, x_train.shape[0], num_classes, "train_labels")
    y_test = as_labels(test_labels, x_test.shape[0], num_classes, "test_labels")

    dev = torch.device(device) if device is not None else x_train.device
    x_train = x_train.to(dev, torch.float32)
    x_test = x_test.to(dev, torch.float32)
    y_train = y_train.to(dev)
    if normalize:
        x_train = F.normalize(x_train, dim=1)
        x_test = F.normalize(x_test, dim=1)

    generator = torch.Generator().manual_seed(int(seed))
    head = new_head(x_train.shape[1], num_classes, generator).to(dev)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    n = x_train.shape[0]
    history: list[dict[str, float]] = []
    for epoch in range(epochs):
        epoch_lr = exponential_lr(epoch, epochs, lr, final_lr)
        set_lr(optimizer, epoch_lr)
        order = torch.randperm(n, generator=generator).to(dev)
        loss_sum = torch.zeros((), device=dev)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            loss_sum += _softmax_regression_grad(
                head, x_train.index_select(0, idx), y_train.index_select(0, idx)
            )
            optimizer.step()
        history.append({"epoch": epoch, "loss": float(loss_sum) / n, "lr": epoch_lr})

    predictions = predict_features(head, x_test)
    targets = y_test.cpu()
    other: dict[str, torch.Tensor] = {}
    for name, (feats, labels) in (also_evaluate or {}).items():
        x = as_features(feats, f"{name} features").to(dev, torch.float32)
        y = as_labels(labels, x.shape[0], num_classes, f"{name} labels").cpu()
        if normalize:
            x = F.normalize(x, dim=1)
        other[name] = per_class_accuracy(predict_features(head, x), y, num_classes)
    return ProbeResult(
        predictions=predictions,
        targets=targets,
        per_class=per_class_accuracy(predictions, targets, num_classes),
        best_epoch=None,
        history=history,
        protocol="b_bcl_fixed_features",
        config={
            "epochs": epochs,
            "lr": lr,
            "final_lr": final_lr,
            "lr_schedule": "exponential_per_epoch",
            "weight_decay": weight_decay,
            "batch_size": batch_size,
            "optimizer": "adam",
            "seed": int(seed),
            "normalize": bool(normalize),
            "selection": "last_epoch",
        },
        other_per_class=other,
    )
