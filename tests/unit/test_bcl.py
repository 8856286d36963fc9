"""BCL: the per-sample loss against a direct reference, the view hook, and the method end to end
(trains, keeps its loss EMA in the checkpoint, resumes bit for bit, refuses a bad variant)."""

from __future__ import annotations

import math

import pytest
import torch

from ltcl.cli.train import train
from ltcl.data.batched_transforms import BatchedAugment
from ltcl.data.transforms import AugmentConfig
from ltcl.errors import ConfigError
from ltcl.losses.nt_xent import nt_xent
from tests.helpers import StopAfterEpoch, compose_train


def reference_per_sample_nt_xent(z1, z2, tau):
    """Each image's loss: the mean over its two views of -log softmax of its positive."""
    z = torch.cat([z1, z2]).double()
    z = z / z.norm(dim=1, keepdim=True)
    n = z1.shape[0]
    terms = []
    for i in range(2 * n):
        positive = i + n if i < n else i - n
        denominator = sum(math.exp(float(z[i] @ z[j]) / tau) for j in range(2 * n) if j != i)
        terms.append(-math.log(math.exp(float(z[i] @ z[positive]) / tau) / denominator))
    return torch.tensor([(terms[i] + terms[i + n]) / 2 for i in range(n)], dtype=torch.float64)


def test_per_sample_nt_xent_matches_the_reference_and_averages_to_the_loss():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    per_sample = nt_xent(z1, z2, 0.2, gather=False, per_sample=True)
    torch.testing.assert_close(
        per_sample.double(), reference_per_sample_nt_xent(z1, z2, 0.2), rtol=1e-5, atol=1e-6
    )
    torch.testing.assert_close(per_sample.mean(), nt_xent(z1, z2, 0.2, gather=False))


def test_the_extra_step_runs_on_unnormalised_views_before_normalisation():
    cfg = AugmentConfig.from_recipe("cifar")
    augment = BatchedAugment(cfg, generator=torch.Generator().manual_seed(0))
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    seen = {}

    def extra(views):
        seen["range"] = (float(views.min()), float(views.max()))
        return torch.zeros_like(views)

    out = augment(images, extra)
    assert 0.0 <= seen["range"][0] and seen["range"][1] <= 1.0  # before normalisation
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1)
    torch.testing.assert_close(out, ((0 - mean) / std).expand_as(out))


BCL = ["method=bcl", "trainer.max_epochs=3", "eval.protocols=[knn]", "eval.plots=false"]


def _ckpt(path):
    return torch.load(path / "run" / "checkpoints" / "last.ckpt", weights_only=False)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["I", "D"])
def test_bcl_trains_keeps_its_loss_ema_and_resumes_exactly(tmp_path, variant):
    overrides = [*BCL, f"method.variant={variant}"]
    results = train(compose_train(tmp_path / "full", overrides))
    assert results["method"] == f"bcl_{variant}" and results["epochs"] == 3
    full = _ckpt(tmp_path / "full")
    ema = full["bcl_loss_ema"]
    assert ema["seen"].float().mean() > 0.9 and float(ema["values"][ema["seen"]].min()) > 0
    assert any(k.startswith("pruned.") for k in full["state_dict"]) == (variant == "D")
    # stopped after epoch 1 (the boost is on from epoch 1), then resumed: the same parameters
    # and the same loss EMA as without the stop
    train(compose_train(tmp_path / "cut", overrides), extra_callbacks=[StopAfterEpoch(1)])
    train(compose_train(tmp_path / "cut", overrides))
    cut = _ckpt(tmp_path / "cut")
    assert torch.equal(cut["bcl_loss_ema"]["values"], ema["values"])
    for key, value in full["state_dict"].items():
        assert torch.equal(value, cut["state_dict"][key]), key


@pytest.mark.slow
def test_bcl_is_simclr_until_the_boost_starts(tmp_path):
    """Epoch 0 has no loss EMA yet: BCL-I trains what SimCLR trains (up to float rounding of the
    loss's mean) at SimCLR's weight decay (BCL-I's own is 5e-4). From epoch 1 the boosted views
    make it another model."""
    common = ["eval.protocols=[knn]", "eval.plots=false"]

    def weights(name, method, epochs):
        own_decay = ["method.weight_decay=1e-4"] if method == "bcl" else []
        train(
            compose_train(
                tmp_path / name,
                [f"method={method}", f"trainer.max_epochs={epochs}", *common, *own_decay],
            )
        )
        return _ckpt(tmp_path / name)["state_dict"]

    bcl, simclr = weights("bcl1", "bcl", 1), weights("simclr1", "simclr", 1)
    for key, value in simclr.items():
        torch.testing.assert_close(bcl[key], value, rtol=1e-4, atol=1e-5)
    bcl, simclr = weights("bcl2", "bcl", 2), weights("simclr2", "simclr", 2)
    drift = max(float((bcl[k].float() - v.float()).abs().max()) for k, v in simclr.items())
    assert drift > 1e-3


@pytest.mark.parametrize(
    "override, key",
    [("method.variant=X", "method.variant"), ("method.loss_ema=1.0", "method.loss_ema")],
)
def test_bad_bcl_settings_stop_before_training(tmp_path, override, key):
    with pytest.raises(ConfigError, match=key):
        train(compose_train(tmp_path, [*BCL, override]))
    assert not list(tmp_path.rglob("*.ckpt"))
