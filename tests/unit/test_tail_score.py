"""COLT's tail score against a slow reference, and its per-image EMA."""

import math

import pytest
import torch

from ltcl.errors import ConfigError
from ltcl.ood.tail_score import topk_negative_mass
from ltcl.utils.per_sample import PerSampleEMA


def reference_scores(z1, z2, tau, k):
    z = torch.cat([z1, z2]).double()
    z = z / z.norm(dim=1, keepdim=True)
    n = z1.shape[0]
    mass = []
    for i in range(2 * n):
        positive = i + n if i < n else i - n
        denominator = sum(math.exp(float(z[i] @ z[j]) / tau) for j in range(2 * n) if j != i)
        negatives = sorted(
            (
                math.exp(float(z[i] @ z[j]) / tau) / denominator
                for j in range(2 * n)
                if j not in (i, positive)
            ),
            reverse=True,
        )
        mass.append(sum(negatives[:k]))
    return torch.tensor([(mass[i] + mass[i + n]) / 2 for i in range(n)], dtype=torch.float64)


def test_matches_slow_reference():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    fast = topk_negative_mass(z1, z2, 0.2, k=3, gather=False)
    torch.testing.assert_close(
        fast.double(), reference_scores(z1, z2, 0.2, 3), rtol=1e-5, atol=1e-6
    )


def test_crowded_images_score_higher():
    # Images 0-3 are near-duplicates (a "head"); image 4 is alone (a "tail").
    base = torch.tensor([[1.0, 0.0, 0.0]])
    z = torch.cat([base + 0.01 * torch.randn(4, 3), torch.tensor([[0.0, 0.0, 1.0]])])
    scores = topk_negative_mass(z, z + 0.01, 0.2, k=2, gather=False)
    assert scores[:4].min() > scores[4]


def test_ema_first_value_then_smoothing():
    ema = PerSampleEMA(3, beta=0.9)
    ema.update(torch.tensor([0, 2]), torch.tensor([1.0, 2.0]))
    ema.update(torch.tensor([0]), torch.tensor([0.0]))
    assert ema.values.tolist() == pytest.approx([0.9, 0.0, 2.0])
    restored = PerSampleEMA(3, beta=0.9)
    restored.load_state_dict(ema.state_dict())
    assert torch.equal(restored.values, ema.values) and torch.equal(restored.seen, ema.seen)
    with pytest.raises(ConfigError, match="colt_ema"):
        PerSampleEMA(3, beta=1.0, key="method.sampler.colt_ema")
