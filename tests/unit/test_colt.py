"""The exact COLT preset (method=colt): its tail-score form, remainder rule and k-means starts
against direct references, and the method end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ltcl.cli.train import train
from ltcl.errors import ConfigError
from ltcl.ood.budgets import round_to_total, softmax_tail_budgets
from ltcl.ood.clustering import cluster_id_embeddings, kmeans
from ltcl.ood.tail_score import colt_tail_score
from tests.helpers import compose_train


def reference_colt_scores(z1, z2, num_id, tau, k):
    """COLT's score from its description: for ID image i, p_v(j | i) over every other view of
    the batch (ID and OOD) for each view v; a negative's probability averaged over v; top-k sum."""
    z = torch.cat([z1, z2]).double()
    z = z / z.norm(dim=1, keepdim=True)
    n = z1.shape[0]
    scores = []
    for i in range(num_id):
        averaged = {}
        for anchor in (i, i + n):
            denominator = sum(
                math.exp(float(z[anchor] @ z[j]) / tau) for j in range(2 * n) if j != anchor
            )
            for j in range(2 * n):
                if j in (i, i + n):
                    continue
                p = math.exp(float(z[anchor] @ z[j]) / tau) / denominator
                averaged[j] = averaged.get(j, 0.0) + p / 2
        scores.append(sum(sorted(averaged.values(), reverse=True)[:k]))
    return torch.tensor(scores, dtype=torch.float64)


def test_colt_tail_score_matches_its_description():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(7, 4, generator=g), torch.randn(7, 4, generator=g)
    fast = colt_tail_score(z1, z2, num_id=5, temperature=0.2, k=3, gather=False)
    torch.testing.assert_close(
        fast.double(), reference_colt_scores(z1, z2, 5, 0.2, 3), rtol=1e-5, atol=1e-6
    )


def test_the_remainder_goes_to_the_last_cluster_as_in_colt():
    weights = np.array([0.26, 0.26, 0.26, 0.22])
    assert round_to_total(weights, 10, "last").tolist() == [2, 2, 2, 4]  # int(w K), rest last
    assert round_to_total(weights, 10, "largest").tolist() == [3, 3, 2, 2]
    budgets = softmax_tail_budgets(np.array([0.1, 0.2, 0.3]), 100, 1.0, "last")
    z = (np.array([0.1, 0.2, 0.3]) - 0.2) / np.std([0.1, 0.2, 0.3], ddof=1)
    w = np.exp(-z) / np.exp(-z).sum()
    expected = np.floor(w * 100).astype(int)
    expected[-1] += 100 - expected.sum()
    assert budgets.tolist() == expected.tolist()
    with pytest.raises(ConfigError, match="budget_remainder"):
        round_to_total(weights, 10, "first")


def test_several_kmeans_starts_keep_the_lowest_inertia():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(300, 8, generator=g)
    best = cluster_id_embeddings(z, 6, refine_iterations=0, kmeans_inits=5, seed=3)
    inertias = [kmeans(z, 6, 50, seed=3 * 1000 + i).inertia for i in range(5)]
    assert best.kmeans_inertia == pytest.approx(min(inertias))


COLT = [
    "method=colt",
    "ood=embedded",
    "ood.source.num_crops=400",
    "method.sampler.warmup_epochs=1",
    "method.sampler.interval=1",
    "method.sampler.budget=100",
    "method.sampler.kmeans_iterations=5",
    "trainer.max_epochs=2",
    "eval.protocols=[knn]",
    "eval.plots=false",
]


def test_colt_preset_is_colts_schedule_and_trains(tmp_path):
    cfg = compose_train(tmp_path, ["method=colt", "ood=embedded"])
    sampler = cfg.method.sampler
    assert (sampler.strategy, sampler.warmup_epochs, sampler.interval, sampler.budget) == (
        "colt",
        100,
        25,
        10000,
    )
    assert (sampler.num_clusters, sampler.kmeans_inits, sampler.budget_remainder) == (
        10,
        10,
        "last",
    )
    assert (
        sampler.tail_score == "colt" and cfg.method.beta == 0 and cfg.method.domain_loss == "supcon"
    )
    results = train(compose_train(tmp_path / "run", COLT))
    assert results["method"] == "colt"
    state = torch.load(tmp_path / "run" / "run" / "checkpoints" / "last.ckpt", weights_only=False)[
        "ood_sampler"
    ]
    assert state["round"] == 2 and len(np.unique(state["picked"].numpy())) == 100
    assert float(state["strategy"]["tail_scores"]["seen"].float().mean()) > 0.9


def test_colt_without_an_ood_pool_stops_before_training(tmp_path):
    with pytest.raises(ConfigError, match="needs an OOD pool"):
        train(compose_train(tmp_path, ["method=colt", "trainer.max_epochs=1"]))
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.slow
def test_colt_resumes_exactly(tmp_path):
    """Stopped after epoch 0 and resumed: the same parameters, picks and tail-score EMA."""
    from tests.helpers import StopAfterEpoch

    def ckpt(folder):
        return torch.load(folder / "run" / "checkpoints" / "last.ckpt", weights_only=False)

    train(compose_train(tmp_path / "full", COLT))
    train(compose_train(tmp_path / "cut", COLT), extra_callbacks=[StopAfterEpoch(0)])
    train(compose_train(tmp_path / "cut", COLT))
    full, cut = ckpt(tmp_path / "full"), ckpt(tmp_path / "cut")
    for key, value in full["state_dict"].items():
        assert torch.equal(value, cut["state_dict"][key]), key
    a, b = full["ood_sampler"], cut["ood_sampler"]
    assert torch.equal(a["picked"], b["picked"])
    assert torch.equal(
        a["strategy"]["tail_scores"]["values"], b["strategy"]["tail_scores"]["values"]
    )


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sdclr", "bcl", "simclr"])
def test_colt_sampling_on_top_of_any_method(tmp_path, method):
    """ "+COLT": any method takes an OOD pool and COLT's sampling rounds by config, and trains
    on the ID and the sampled OOD views together (as COLT's SDCLR+COLT and BCL+COLT do)."""
    plus_colt = [f"method={method}", "+method/sampler=colt", *COLT[1:]]
    cfg = compose_train(tmp_path, plus_colt)
    assert cfg.method.sampler.strategy == "colt" and cfg.method.name.startswith(method)
    results = train(cfg)
    assert results["epochs"] == 2
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    state = ckpt["ood_sampler"]
    assert state["round"] == 2 and len(np.unique(state["picked"].numpy())) == 100
    assert float(state["strategy"]["tail_scores"]["seen"].float().mean()) > 0.9


def test_a_method_without_a_sampler_has_no_sampling_state(tmp_path):
    cfg = compose_train(tmp_path, ["method=sdclr", "trainer.max_epochs=1", "eval.protocols=[knn]"])
    assert "sampler" not in cfg.method
    train(cfg)
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert "ood_sampler" not in ckpt
