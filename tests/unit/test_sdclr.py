"""SDCLR's pruned self-competitor against direct references, and the method end to end."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from ltcl.cli.train import train
from ltcl.errors import ConfigError
from ltcl.models.backbones import build_backbone
from ltcl.models.pruning import (
    PrunedBranch,
    check_prune_percent,
    global_magnitude_masks,
    prunable_weights,
)
from tests.helpers import StopAfterEpoch, compose_train


def test_global_mask_prunes_the_smallest_magnitudes_of_all_layers_together():
    g = torch.Generator().manual_seed(0)
    weights = {"a": torch.randn(20, 5, generator=g) * 0.1, "b": torch.randn(30, generator=g) * 3.0}
    masks = global_magnitude_masks(weights, 0.6)
    # reference: one sorted list of every |w|, the smallest 60% dropped
    everything = sorted(
        [
            (abs(v), name, i)
            for name, w in weights.items()
            for i, v in enumerate(w.flatten().tolist())
        ]
    )
    dropped = {(name, i) for _, name, i in everything[: math.ceil(0.6 * len(everything))]}
    for name, w in weights.items():
        expected = torch.tensor([(name, i) not in dropped for i in range(w.numel())]).view_as(w)
        assert torch.equal(masks[name], expected)
    # global, not per layer: the small-weight layer loses more than 60%, the other less
    assert masks["a"].float().mean() < 0.3 and masks["b"].float().mean() > 0.8  # per layer: 0.4


def test_mask_keeps_ties_at_the_threshold_and_prunes_ceil_p_n_as_sdclr():
    """SDCLR's Mask.magnitudePruning: threshold = the ceil(p N)-th smallest |w|, keep |w| >=
    threshold. With ties at the threshold fewer than ceil(p N) weights are pruned."""
    weights = {"a": torch.tensor([0.1, -0.2, 0.2, 0.2, 0.5]), "b": torch.tensor([-0.2, 0.9, 0.05])}
    masks = global_magnitude_masks(weights, 0.3)  # ceil(0.3 x 8) = 3: threshold 0.2 (sorted[3])
    assert masks["a"].tolist() == [False, True, True, True, True]
    assert masks["b"].tolist() == [True, True, False]  # 2 pruned, not 3: the 0.2s tie
    odd = {"w": torch.arange(1.0, 11.0)}  # ceil(0.25 x 10) = 3 pruned (round would give 2)
    assert global_magnitude_masks(odd, 0.25)["w"].tolist() == [False] * 3 + [True] * 7
    assert global_magnitude_masks(odd, 0.0)["w"].all()


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, True, "0.9"])
def test_prune_percent_outside_0_1_is_refused(bad):
    with pytest.raises(ConfigError, match="method.prune_percent must be in"):
        check_prune_percent(bad)


def _manual_pruned_forward(backbone, branch, x):
    """Reference: a deep copy with weight * mask in every conv and the branch's own BNs."""
    model = copy.deepcopy(backbone)
    with torch.no_grad():
        for name, mask in branch.masks().items():
            model.get_parameter(name).mul_(mask)
    for name in branch.norm_names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, copy.deepcopy(branch.norms[name.replace(".", "__")]))
    return model(x), model


def test_pruned_branch_is_the_masked_network_with_its_own_batchnorm():
    torch.manual_seed(0)
    backbone = build_backbone("small_convnet", width=8)
    branch = PrunedBranch(backbone, 0.9)
    with torch.no_grad():  # make the branch's BN differ from the dense one
        for norm in branch.norms.values():
            norm.weight.uniform_(0.5, 1.5)
    branch.update_masks(backbone)
    x = torch.randn(6, 3, 32, 32)
    dense_stats = [
        m.running_mean.clone() for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)
    ]
    backbone.train()
    out = branch(backbone, x)
    reference, ref_model = _manual_pruned_forward(backbone, branch, x)
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-6)
    # routing: the pruned forward moved the branch's BN statistics, never the dense ones
    after = [m.running_mean for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(a, b) for a, b in zip(dense_stats, after, strict=True))
    own = [m.running_mean for m in branch.norms.values()]
    assert any(not torch.equal(o, d) for o, d in zip(own, dense_stats, strict=True))


def test_gradients_reach_the_dense_weights_through_the_mask():
    torch.manual_seed(0)
    backbone = build_backbone("small_convnet", width=8)
    branch = PrunedBranch(backbone, 0.5)
    branch.update_masks(backbone)
    branch(backbone, torch.randn(4, 3, 32, 32)).sum().backward()
    for name, mask in branch.masks().items():
        grad = backbone.get_parameter(name).grad
        assert grad is not None and torch.all(grad[~mask] == 0) and grad[mask].abs().sum() > 0
    assert set(branch.weight_names) == set(prunable_weights(backbone))


SDCLR = ["method=sdclr", "trainer.max_epochs=3", "eval.protocols=[knn]", "eval.plots=false"]


@pytest.mark.slow
def test_sdclr_trains_keeps_its_masks_in_the_checkpoint_and_resumes_exactly(tmp_path):
    results = train(compose_train(tmp_path / "full", SDCLR))
    assert results["method"] == "sdclr" and results["epochs"] == 3
    full = torch.load(tmp_path / "full" / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    masks = {k: v for k, v in full["state_dict"].items() if k.startswith("pruned.mask_")}
    kept = sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
    assert masks and kept == pytest.approx(0.1, abs=1e-3)
    # stopped after epoch 0, then resumed: the same parameters and masks as without the stop
    train(compose_train(tmp_path / "cut", SDCLR), extra_callbacks=[StopAfterEpoch(0)])
    train(compose_train(tmp_path / "cut", SDCLR))
    cut = torch.load(tmp_path / "cut" / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    for key, value in full["state_dict"].items():
        assert torch.equal(value, cut["state_dict"][key]), key


def test_sdclr_bad_prune_percent_stops_before_training(tmp_path):
    with pytest.raises(ConfigError, match="method.prune_percent"):
        train(compose_train(tmp_path, [*SDCLR, "method.prune_percent=1.0"]))
    assert not list(tmp_path.rglob("*.ckpt"))
