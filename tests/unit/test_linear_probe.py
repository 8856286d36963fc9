"""Linear probes: protocol (b) on fixed features, protocol (a) on a frozen backbone, summary()."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ltcl.errors import ConfigError, DataError
from ltcl.evaluation.knn import per_class_accuracy
from ltcl.evaluation.linear_probe import (
    ProbeResult,
    _softmax_regression_grad,
    exponential_lr,
    new_head,
    probe_on_features,
)
from ltcl.evaluation.linear_probe_a import probe_train_transform, probe_with_frozen_backbone

FAST = {"epochs": 30, "lr": 0.1, "final_lr": 1e-3, "batch_size": 16}


def _blobs(centres, per_class, noise=0.05, seed=0):
    """Features around the given centres, `per_class` per centre; labels = centre index."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor(centres, dtype=torch.float32)
    labels = torch.arange(len(centres)).repeat_interleave(per_class)
    feats = centres[labels] + noise * torch.randn(len(labels), centres.shape[1], generator=g)
    return feats, labels


# --------------------------------------------------------------------------------------------
# Protocol (b)
# --------------------------------------------------------------------------------------------


def test_separable_features_are_probed_perfectly():
    x, y = _blobs([[1.0, 0.0], [-1.0, 0.0]], 40)
    xt, yt = _blobs([[1.0, 0.0], [-1.0, 0.0]], 10, seed=1)
    res = probe_on_features(x, y, xt, yt, num_classes=2, **FAST)
    assert res.accuracy == 100.0
    assert res.per_class.tolist() == [100.0, 100.0]
    assert res.best_epoch is None and len(res.history) == FAST["epochs"]
    assert res.predictions.dtype == torch.long and torch.equal(res.targets, yt)


def test_unlearnable_pair_gives_hand_computed_per_class_and_summary():
    # Classes 0 and 1 share one feature point, 50/50: whichever the head predicts there is right
    # for one of them on every test image and wrong on every image of the other.
    same = [1.0, 0.0]
    x, y = _blobs([same, same, [-1.0, 0.0], [0.0, 1.0]], 20, noise=0.0)
    xt, yt = _blobs([same, same, [-1.0, 0.0], [0.0, 1.0]], 5, noise=0.0)
    res = probe_on_features(x, y, xt, yt, num_classes=4, **FAST)
    winner = int(res.predictions[0])
    assert winner in (0, 1) and (res.predictions[:10] == winner).all()
    expected = [0.0, 0.0, 100.0, 100.0]
    expected[winner] = 100.0
    assert res.per_class.tolist() == expected
    s = res.summary({"many": [2, 3], "medium": [0], "few": [1]})
    medium, few = (100.0, 0.0) if winner == 0 else (0.0, 100.0)
    assert s["all"] == pytest.approx(75.0)
    assert (s["many"], s["medium"], s["few"]) == (100.0, medium, few)
    assert s["std"] == pytest.approx(np.std([100.0, 100.0, 0.0]))  # 47.14
    assert s["per_class_std"] == pytest.approx(np.std(expected))  # 43.30


def test_summary_matches_hand_computation():
    # 6 classes, 10 test images each; class c gets 9 - c right: 90, 80, ..., 40 %.
    targets = torch.arange(6).repeat_interleave(10)
    right = torch.cat([torch.arange(10) < 9 - c for c in range(6)])
    predictions = torch.where(right, targets, (targets + 1) % 6)
    per_class = per_class_accuracy(predictions, targets, 6)
    res = ProbeResult(predictions, targets, per_class, best_epoch=None, history=[])
    s = res.summary({"many": [0, 1], "medium": [2, 3], "few": [4, 5]})
    assert s["all"] == pytest.approx(65.0)
    assert (s["many"], s["medium"], s["few"]) == pytest.approx((85.0, 65.0, 45.0))
    assert s["std"] == pytest.approx(math.sqrt(800 / 3))  # deviations 20, 0, -20
    assert s["per_class_std"] == pytest.approx(math.sqrt((625 + 225 + 25) * 2 / 6))


def test_summary_ignores_classes_without_test_images():
    per_class = torch.tensor([100.0, 50.0, float("nan")], dtype=torch.float64)
    res = ProbeResult(torch.zeros(0), torch.zeros(0), per_class, None, [])
    s = res.summary({"many": [0], "medium": [1], "few": [2]})
    assert s["all"] == pytest.approx(75.0) and s["per_class_std"] == pytest.approx(25.0)
    assert math.isnan(s["few"]) and math.isnan(s["std"])


def test_exponential_lr_ends_at_final_lr():
    x, y = _blobs([[1.0, 0.0], [-1.0, 0.0]], 8)
    res = probe_on_features(x, y, x, y, 2, epochs=11, lr=1e-2, final_lr=1e-6, batch_size=4)
    lrs = np.array([h["lr"] for h in res.history])
    assert lrs[0] == 1e-2 and lrs[-1] == 1e-6
    np.testing.assert_allclose(lrs[1:] / lrs[:-1], (1e-6 / 1e-2) ** (1 / 10), rtol=1e-9)
    assert [h["epoch"] for h in res.history] == list(range(11))
    assert exponential_lr(0, 1, 0.5, 1e-3) == 0.5  # one epoch: nothing to decay
    assert exponential_lr(499, 500, 1e-2, 1e-6) == 1e-6


def test_same_seed_same_result_and_global_rng_untouched():
    x, y = _blobs([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], 30, noise=0.8)
    state = torch.get_rng_state()
    a = probe_on_features(x, y, x, y, 3, seed=3, **FAST)
    b = probe_on_features(x, y, x, y, 3, seed=3, **FAST)
    c = probe_on_features(x, y, x, y, 3, seed=4, **FAST)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.predictions, b.predictions)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    assert [h["loss"] for h in a.history] != [h["loss"] for h in c.history]


def test_closed_form_gradient_matches_autograd():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(37, 8, generator=g), torch.randint(0, 5, (37,), generator=g)
    head = new_head(8, 5, g)
    loss_sum = _softmax_regression_grad(head, x, y)
    w_grad, b_grad = head.weight.grad.clone(), head.bias.grad.clone()
    head.zero_grad()
    loss = F.cross_entropy(head(x), y)
    loss.backward()
    assert loss_sum.item() == pytest.approx(loss.item() * 37, rel=1e-5)
    torch.testing.assert_close(w_grad, head.weight.grad)
    torch.testing.assert_close(b_grad, head.bias.grad)


def test_normalize_and_half_precision_features():
    x, y = _blobs([[3.0, 0.0], [-0.5, 0.0]], 20)
    res = probe_on_features(x.half(), y, x.half(), y, 2, normalize=True, **FAST)
    assert res.accuracy == 100.0 and res.config["normalize"] is True


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"final_lr": 1.0}, ConfigError, "must not exceed lr"),
        ({"epochs": 0}, ConfigError, "epochs"),
        ({"batch_size": 0}, ConfigError, "batch_size"),
        ({"lr": float("nan")}, ConfigError, "lr must be"),
        ({"num_classes": 1}, ConfigError, "num_classes"),
        ({"train_labels": torch.tensor([0, 1, 2, 0])}, DataError, "range 0..2"),
        ({"train_labels": torch.tensor([0, 1])}, DataError, "2 labels but the features have 4"),
        ({"test_feats": torch.zeros(3, 5)}, DataError, "same backbone"),
        ({"train_feats": torch.full((4, 2), float("nan"))}, DataError, "NaN"),
    ],
)
def test_bad_arguments_name_the_problem(kwargs, error, match):
    args = {
        "train_feats": torch.randn(4, 2),
        "train_labels": torch.tensor([0, 1, 0, 1]),
        "test_feats": torch.randn(3, 2),
        "test_labels": torch.tensor([0, 1, 1]),
        "num_classes": 2,
        "epochs": 2,
    }
    args.update(kwargs)
    with pytest.raises(error, match=match):
        probe_on_features(**args)


# --------------------------------------------------------------------------------------------
# Protocol (a)
# --------------------------------------------------------------------------------------------


def _backbone() -> nn.Module:
    """(B, 2, 1, 1) "images" -> 2 features through BN and a fixed linear map, in train mode."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(2), nn.Linear(2, 2))
    with torch.no_grad():
        net[1].running_mean.fill_(0.5)
        net[1].running_var.fill_(2.0)
        net[2].weight.copy_(torch.eye(2))
        net[2].bias.zero_()
    return net.train()


def _loader(feats, labels, batch_size=8):
    images = feats[:, :, None, None]
    return [
        {"image": images[i : i + batch_size], "label": labels[i : i + batch_size], "index": i}
        for i in range(0, len(labels), batch_size)
    ]


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_frozen_backbone_keeps_weights_bn_stats_and_mode():
    net = _backbone()
    before = _snapshot(net)
    x, y = _blobs([[1.0, 0.0], [-1.0, 0.0]], 16)
    train = _loader(x, y)
    res = probe_with_frozen_backbone(
        net, train, train, train, 2, 2, epochs=6, lr=1.0, milestones=(2, 4)
    )
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # incl. running stats
    assert int(after["1.num_batches_tracked"]) == 0
    assert net.training  # mode restored
    assert all(p.grad is None for p in net.parameters())
    assert res.accuracy == 100.0 and res.per_class.tolist() == [100.0, 100.0]
    assert [h["lr"] for h in res.history] == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01, 0.01])


class _DriftingLoader:
    """Yields ``epochs[k]`` on its k-th pass (the last one after that): a train set that changes."""

    def __init__(self, epochs):
        self.epochs, self.calls = epochs, 0

    def __iter__(self):
        batches = self.epochs[min(self.calls, len(self.epochs) - 1)]
        self.calls += 1
        return iter(batches)


def test_best_val_epoch_is_tested_not_the_last():
    # Train labels agree with val for 3 epochs, then flip: val accuracy is 100 % early and
    # 0 % at the end, so testing the last head would give 0 %.
    x, y = _blobs([[1.0, 0.0], [-1.0, 0.0]], 16)
    train = _DriftingLoader([_loader(x, y)] * 3 + [_loader(x, 1 - y)])
    val = _loader(*_blobs([[1.0, 0.0], [-1.0, 0.0]], 8, seed=1))
    res = probe_with_frozen_backbone(_backbone(), train, val, val, 2, 2, epochs=8, lr=1.0)
    val_acc = [h["val_acc"] for h in res.history]
    assert val_acc[-1] == 0.0 and max(val_acc) == 100.0  # the case is informative
    assert res.best_epoch == int(np.argmax(val_acc))  # first maximum
    assert res.best_epoch < 3
    assert res.accuracy == 100.0  # test == val here: the best head was tested


def test_ties_keep_the_earliest_epoch():
    # Val images of both classes share one point: val accuracy is 50 % in every epoch.
    x, y = _blobs([[1.0, 0.0], [-1.0, 0.0]], 8)
    xv = torch.zeros(8, 2)
    yv = torch.tensor([0, 1] * 4)
    res = probe_with_frozen_backbone(
        _backbone(), _loader(x, y), _loader(xv, yv), _loader(x, y), 2, 2, epochs=4
    )
    assert [h["val_acc"] for h in res.history] == [50.0] * 4
    assert res.best_epoch == 0


def test_select_topk_records_topk_val_accuracy():
    x, y = _blobs([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], 8)
    loader = _loader(x, y)
    res = probe_with_frozen_backbone(
        _backbone(), loader, loader, loader, 3, 2, epochs=2, select_topk=3
    )
    assert [h["val_top3"] for h in res.history] == [100.0, 100.0]
    assert res.config["selection"] == "best_val_top3"


def test_missing_val_loader_and_wrong_feature_dim():
    x, y = _blobs([[1.0, 0.0], [-1.0, 0.0]], 4)
    loader = _loader(x, y)
    with pytest.raises(ConfigError, match="validation split; the data config has none"):
        probe_with_frozen_backbone(_backbone(), loader, None, loader, 2, 2)
    with pytest.raises(ConfigError, match="outputs 2 features but feature_dim=512"):
        probe_with_frozen_backbone(_backbone(), loader, loader, loader, 2, 512, epochs=1)
    with pytest.raises(DataError, match="'image' and 'label'"):
        probe_with_frozen_backbone(_backbone(), [(x, y)], loader, loader, 2, 2, epochs=1)
    with pytest.raises(ConfigError, match="milestones"):
        probe_with_frozen_backbone(_backbone(), loader, loader, loader, 2, 2, milestones=(20, 10))


def test_probe_train_transform_crops_and_flips_only():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    t = probe_train_transform(32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "cifar")
    out = t(image)
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    levels = out.numpy() * 255.0
    np.testing.assert_allclose(levels, levels.round(), atol=1e-3)  # still 0..255 levels
    assert set(levels.round().astype(int).ravel()) <= set(image.ravel()) | {0}  # no recolouring
    big = probe_train_transform(16, (0.5,) * 3, (0.25,) * 3, "imagenet")(
        rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    )
    assert big.shape == (3, 16, 16)
    with pytest.raises(ConfigError, match="unknown probe recipe"):
        probe_train_transform(32, (0.0,) * 3, (1.0,) * 3, "simclr")
    with pytest.raises(DataError, match="uint8"):
        t(image.astype(np.float32))
