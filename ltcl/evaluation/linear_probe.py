"""Linear probes of a pretrained backbone: the two protocols of the peers (docs/method.md, "Evaluation").

- Protocol (a), SDCLR/COLT (:func:`probe_with_frozen_backbone`): the backbone stays frozen in eval
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
from collections.abc import Iterable, Mapping, Sequence
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
    "probe_train_transform",
    "probe_with_frozen_backbone",
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


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _as_features(x: Any, name: str) -> torch.Tensor:
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


def _as_labels(y: Any, n: int, num_classes: int, name: str) -> torch.Tensor:
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


def _new_head(dim: int, num_classes: int, generator: torch.Generator) -> nn.Linear:
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


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


@torch.no_grad()
def _predict_features(head: nn.Module, feats: torch.Tensor) -> torch.Tensor:
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
    epochs = check_int(epochs, "epochs", 1, "BCL uses 500")
    batch_size = check_int(batch_size, "batch_size", 1, "BCL uses 1000")
    if not _is_int(seed):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    lr = check_positive(lr, "lr", "BCL uses 1e-2")
    final_lr = check_positive(final_lr, "final_lr", "BCL uses 1e-6")
    if final_lr > lr:
        raise ConfigError(
            f"final_lr ({final_lr}) must not exceed lr ({lr}): the schedule decays from lr to "
            "final_lr; swap them or set final_lr = lr for a constant rate"
        )
    weight_decay = check_positive(weight_decay, "weight_decay", "BCL uses 5e-6", allow_zero=True)

    x_train = _as_features(train_feats, "train_feats")
    x_test = _as_features(test_feats, "test_feats")
    if x_test.shape[1] != x_train.shape[1]:
        raise DataError(
            f"test_feats have {x_test.shape[1]} dimensions but train_feats {x_train.shape[1]}: "
            "extract both with the same backbone"
        )
    y_train = _as_labels(train_labels, x_train.shape[0], num_classes, "train_labels")
    y_test = _as_labels(test_labels, x_test.shape[0], num_classes, "test_labels")

    dev = torch.device(device) if device is not None else x_train.device
    x_train = x_train.to(dev, torch.float32)
    x_test = x_test.to(dev, torch.float32)
    y_train = y_train.to(dev)
    if normalize:
        x_train = F.normalize(x_train, dim=1)
        x_test = F.normalize(x_test, dim=1)

    generator = torch.Generator().manual_seed(int(seed))
    head = _new_head(x_train.shape[1], num_classes, generator).to(dev)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    n = x_train.shape[0]
    history: list[dict[str, float]] = []
    for epoch in range(epochs):
        epoch_lr = exponential_lr(epoch, epochs, lr, final_lr)
        _set_lr(optimizer, epoch_lr)
        order = torch.randperm(n, generator=generator).to(dev)
        loss_sum = torch.zeros((), device=dev)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            loss_sum += _softmax_regression_grad(
                head, x_train.index_select(0, idx), y_train.index_select(0, idx)
            )
            optimizer.step()
        history.append({"epoch": epoch, "loss": float(loss_sum) / n, "lr": epoch_lr})

    predictions = _predict_features(head, x_test)
    targets = y_test.cpu()
    other: dict[str, torch.Tensor] = {}
    for name, (feats, labels) in (also_evaluate or {}).items():
        x = _as_features(feats, f"{name} features").to(dev, torch.float32)
        y = _as_labels(labels, x.shape[0], num_classes, f"{name} labels").cpu()
        if normalize:
            x = F.normalize(x, dim=1)
        other[name] = per_class_accuracy(_predict_features(head, x), y, num_classes)
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
    epochs = check_int(epochs, "epochs", 1, "SDCLR/COLT use 30")
    select_topk = check_int(select_topk, "select_topk", 1, "use 1 (CIFAR) or 5 (ImageNet)")
    if not _is_int(seed):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    lr = check_positive(lr, "lr", "SDCLR/COLT use 30")
    weight_decay = check_positive(weight_decay, "weight_decay", "COLT uses 0", allow_zero=True)
    try:
        momentum = float(momentum)
    except (TypeError, ValueError):
        momentum = float("nan")
    if not 0.0 <= momentum < 1.0:
        raise ConfigError(f"momentum must lie in [0, 1), got {momentum!r}: COLT uses 0.9")
    milestones = list(milestones)
    if not all(_is_int(m) and m > 0 for m in milestones) or milestones != sorted(milestones):
        raise ConfigError(
            f"milestones must be increasing positive epoch numbers, got {milestones!r}: COLT "
            "uses (10, 20) for 30 epochs"
        )

    if device is not None:
        dev = torch.device(device)
        backbone.to(dev)
    else:
        param = next(iter(backbone.parameters()), None)
        dev = param.device if param is not None else torch.device("cpu")

    generator = torch.Generator().manual_seed(int(seed))
    head = _new_head(feature_dim, num_classes, generator).to(dev)
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
            _set_lr(optimizer, epoch_lr)
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
