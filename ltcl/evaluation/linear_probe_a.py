"""Linear probe protocol (a), SDCLR/COLT's: the backbone frozen in eval mode (``--fixbn``), a
linear head trained on augmented images (crop + flip), SGD lr 30, 30 epochs, x0.1 at 10 and 20;
the head of the best validation epoch is scored on test. Protocol (b) and the shared pieces are
in :mod:`ltcl.evaluation.linear_probe`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ltcl.errors import ConfigError, DataError
from ltcl.evaluation.knn import per_class_accuracy
from ltcl.evaluation.linear_probe import ProbeResult, is_int, new_head, set_lr
from ltcl.utils.validate import check_int, check_positive

__all__ = ["ProbeTrainTransform", "probe_train_transform", "probe_with_frozen_backbone"]


# --------------------------------------------------------------------------------------------
# Protocol (a): SDCLR/COLT, frozen backbone on augmented images
# --------------------------------------------------------------------------------------------


class ProbeTrainTransform:
    """Per-sample probe augmentation: uint8 HxWx3 array -> normalised float (3, size, size).

    A class rather than a lambda so that DataLoader workers can pickle it.
    """

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float], recipe: str):
        from torchvision.transforms import v2  # here: the metrics need no torchvision otherwise

        if recipe == "cifar":
            crop: Any = v2.RandomCrop(size, padding=4)  # COLT/SDCLR: RandomCrop(32, padding=4)
        elif recipe == "imagenet":
            crop = v2.RandomResizedCrop(size, antialias=True)
        else:
            raise ConfigError(
                f"unknown probe recipe {recipe!r}: use 'cifar' (RandomCrop with 4-pixel padding "
                "+ flip) or 'imagenet' (RandomResizedCrop + flip)"
            )
        self.size, self.recipe = size, recipe
        self.transform = v2.Compose(
            [
                v2.ToImage(),
                crop,
                v2.RandomHorizontalFlip(0.5),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(list(mean), list(std)),
                v2.ToPureTensor(),
            ]
        )

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
            shape = getattr(image, "shape", None)
            raise DataError(
                f"the probe transform expects a uint8 HxWx3 numpy image, got "
                f"{type(image).__name__} with shape {shape}: decode images to RGB arrays first"
            )
        if image.dtype != np.uint8:
            raise DataError(
                f"the probe transform expects uint8 pixels (0..255), got {image.dtype}: "
                "pass the decoded image, not an already scaled float array"
            )
        if not image.flags.writeable:  # read-only memory maps make torch warn
            image = image.copy()
        return self.transform(np.ascontiguousarray(image))

    def __repr__(self) -> str:
        return f"ProbeTrainTransform(size={self.size}, recipe={self.recipe!r})"


def probe_train_transform(
    size: int, mean: Sequence[float], std: Sequence[float], recipe: str = "cifar"
) -> ProbeTrainTransform:
    """The protocol (a) train augmentation: crop + horizontal flip only, no colour.

    ``cifar``: RandomCrop(size, padding=4) + flip (COLT/SDCLR's CIFAR probe); ``imagenet``:
    RandomResizedCrop(size) (scale 0.08-1) + flip. Normalised with ``mean``/``std``, which must
    be those of the pretraining transform.
    """
    size = check_int(size, "size", 1, "use 32 for CIFAR, 224 for ImageNet-100 / Places")
    mean_t = [float(v) for v in mean]
    std_t = [float(v) for v in std]
    if len(mean_t) != 3 or len(std_t) != 3 or min(std_t) <= 0:
        raise ConfigError(
            f"mean/std must be three numbers each (RGB) with std > 0, got mean={mean_t}, "
            f"std={std_t}: use the pretraining transform's normalisation"
        )
    return ProbeTrainTransform(size, mean_t, std_t, recipe)


def _unpack(
    batch: Any, num_classes: int, name: str, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(batch, Mapping) or "image" not in batch or "label" not in batch:
        keys = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
        raise DataError(
            f"{name} must yield dicts with 'image' and 'label', got {keys}: use the ltcl "
            "datamodule's probe loaders"
        )
    images, labels = batch["image"], torch.as_tensor(batch["label"])
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise DataError(
            f"{name} 'image' must be a float tensor (B, 3, H, W), got "
            f"{getattr(images, 'dtype', type(images).__name__)}: give the loader's dataset the "
            "probe transform (probe_train_transform / the test transform), which normalises"
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise DataError(
            f"{name} yields labels {int(labels.min())}..{int(labels.max())} but num_classes is "
            f"{num_classes}: probe loaders must hold labelled in-distribution images only"
        )
    return images.to(device, non_blocking=True), labels.long().to(device, non_blocking=True)


def _features(backbone: nn.Module, images: torch.Tensor, feature_dim: int) -> torch.Tensor:
    with torch.no_grad():
        feats = backbone(images)
    if not isinstance(feats, torch.Tensor):
        raise ConfigError(
            f"the backbone returned {type(feats).__name__}, not a tensor: pass the headless "
            "backbone (projector dropped), whose output is the (B, D) feature"
        )
    feats = feats.flatten(1).float()
    if feats.shape[1] != feature_dim:
        raise ConfigError(
            f"the backbone outputs {feats.shape[1]} features but feature_dim={feature_dim}: set "
            "feature_dim to the backbone's width (512 for ResNet-18, 2048 for ResNet-50)"
        )
    return feats


def _evaluate(
    backbone: nn.Module,
    head: nn.Module,
    loader: Iterable[Any],
    num_classes: int,
    feature_dim: int,
    name: str,
    device: torch.device,
    topk: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Top-1 predictions, targets and top-k accuracy % of backbone + head on ``loader``."""
    preds, targets = [], []
    topk_correct, total = 0, 0
    with torch.no_grad():
        for batch in loader:
            images, labels = _unpack(batch, num_classes, name, device)
            logits = head(_features(backbone, images, feature_dim))
            top = logits.topk(min(topk, num_classes), dim=1).indices
            topk_correct += int((top == labels[:, None]).any(1).sum())
            total += labels.numel()
            preds.append(top[:, 0].cpu())
            targets.append(labels.cpu())
    if total == 0:
        raise DataError(f"{name} yielded no images: check the split it was built from")
    return torch.cat(preds), torch.cat(targets), 100.0 * topk_correct / total


def check_probe_a_settings(
    epochs: Any = 30,
    lr: Any = 30.0,
    milestones: Any = (10, 20),
    momentum: Any = 0.9,
    weight_decay: Any = 0.0,
    seed: Any = 0,
    select_topk: Any = 1,
    prefix: str = "",
) -> tuple[int, float, list[int], float, float, int, int]:
    """Protocol (a)'s settings, checked (before training too: ``prefix`` = their config path)."""
    epochs = check_int(epochs, f"{prefix}epochs", 1, "SDCLR/COLT use 30")
    select_topk = check_int(select_topk, f"{prefix}select_topk", 1, "use 1 (CIFAR) or 5 (ImageNet)")
    if not is_int(seed):
        raise ConfigError(f"{prefix}seed must be an integer, got {seed!r}")
    lr = check_positive(lr, f"{prefix}lr", "SDCLR/COLT use 30")
    weight_decay = check_positive(
        weight_decay, f"{prefix}weight_decay", "COLT uses 0", allow_zero=True
    )
    try:
        momentum = float(momentum)
    except (TypeError, ValueError):
        momentum = float("nan")
    if not 0.0 <= momentum < 1.0:
        raise ConfigError(f"{prefix}momentum must lie in [0, 1), got {momentum!r}: COLT uses 0.9")
    milestones = list(milestones)
    if not all(is_int(m) and m > 0 for m in milestones) or milestones != sorted(milestones):
        raise ConfigError(
            f"{prefix}milestones must be increasing positive epoch numbers, got {milestones!r}: "
            "COLT uses (10, 20) for 30 epochs"
        )
    return epochs, lr, milestones, momentum, weight_decay, int(seed), select_topk


def probe_with_frozen_backbone(
    backbone: nn.Module,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any] | None,
    test_loader: Iterable[Any],
    num_classes: int,
    feature_dim: int,
    epochs: int = 30,
    lr: float = 30.0,
    milestones: Sequence[int] = (10, 20),
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    device: str | torch.device | None = None,
    seed: int = 0,
    select_topk: int = 1,
) -> ProbeResult:
    """SDCLR/COLT's probe: a linear head on a frozen, eval-mode backbone, best val epoch tested.

    The backbone runs under ``torch.no_grad`` in eval mode for the whole probe, so neither its
    weights nor its BatchNorm statistics change (COLT's ``--fixbn``); its train/eval mode is
    restored afterwards. Features are computed per batch because ``train_loader`` augments
    (:func:`probe_train_transform`), so they differ every epoch. SGD with momentum; the lr of
    0-based epoch e is ``lr * 0.1 ** (number of milestones <= e)`` (MultiStepLR). After every
    epoch the head is scored on ``val_loader``; the head of the best epoch (earliest on ties) is
    tested. Selection uses top-1 val accuracy (COLT's CIFAR scripts); ``select_topk=5``
    reproduces its ImageNet-100 / Places scripts. ``seed`` draws the head's init; shuffling and
    augmentation belong to the loaders (seed them there). ``device`` defaults to the backbone's
    device; a different one moves the backbone there (in place).
    """
    if val_loader is None:
        raise ConfigError(
            "protocol (a) selects the model on a validation split; the data config has none: "
            "hold out a balanced validation set (e.g. data.split.val_per_class=500 for CIFAR-10, or "
            "the published valIdxList), or use protocol (b) (probe_on_features), which tests "
            "the last epoch"
        )
    num_classes = check_int(num_classes, "num_classes", 2, "set it to the dataset's class count")
    feature_dim = check_int(feature_dim, "feature_dim", 1, "512 for ResNet-18")
    epochs, lr, milestones, momentum, weight_decay, seed, select_topk = check_probe_a_settings(
        epochs, lr, milestones, momentum, weight_decay, seed, select_topk
    )

    if device is not None:
        dev = torch.device(device)
        backbone.to(dev)
    else:
        param = next(iter(backbone.parameters()), None)
        dev = param.device if param is not None else torch.device("cpu")

    generator = torch.Generator().manual_seed(int(seed))
    head = new_head(feature_dim, num_classes, generator).to(dev)
    optimizer = torch.optim.SGD(
        head.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
    )
    was_training = backbone.training
    backbone.eval()
    history: list[dict[str, float]] = []
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch, best_score = 0, -math.inf
    try:
        for epoch in range(epochs):
            epoch_lr = lr * 0.1 ** sum(epoch >= m for m in milestones)
            set_lr(optimizer, epoch_lr)
            loss_sum, seen = torch.zeros((), device=dev), 0
            for batch in train_loader:
                images, labels = _unpack(batch, num_classes, "train_loader", dev)
                loss = F.cross_entropy(head(_features(backbone, images, feature_dim)), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach() * labels.numel()
                seen += labels.numel()
            if seen == 0:
                raise DataError("train_loader yielded no images: check the probe train split")
            val_pred, val_true, val_topk = _evaluate(
                backbone, head, val_loader, num_classes, feature_dim, "val_loader", dev, select_topk
            )
            val_acc = 100.0 * float((val_pred == val_true).double().mean())
            record = {"epoch": epoch, "loss": float(loss_sum) / seen, "lr": epoch_lr}
            record["val_acc"] = val_acc
            if select_topk != 1:
                record[f"val_top{select_topk}"] = val_topk
            history.append(record)
            if val_topk > best_score:  # strict: ties keep the earliest epoch
                best_score, best_epoch = val_topk, epoch
                best_state = {k: v.detach().clone() for k, v in head.state_dict().items()}
        assert best_state is not None  # epochs >= 1 and val accuracy is finite
        head.load_state_dict(best_state)
        predictions, targets, _ = _evaluate(
            backbone, head, test_loader, num_classes, feature_dim, "test_loader", dev
        )
    finally:
        backbone.train(was_training)

    return ProbeResult(
        predictions=predictions,
        targets=targets,
        per_class=per_class_accuracy(predictions, targets, num_classes),
        best_epoch=best_epoch,
        history=history,
        protocol="a_sdclr_frozen_backbone",
        config={
            "epochs": epochs,
            "lr": lr,
            "milestones": milestones,
            "lr_decay": 0.1,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "optimizer": "sgd",
            "seed": int(seed),
            "selection": f"best_val_top{select_topk}",
            "backbone_mode": "eval (frozen BN)",
        },
    )
