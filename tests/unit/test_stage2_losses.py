"""Stage-2 losses (L_GCL, L_DL) against slow references written from docs/method.md, on 1 and 2 processes."""

import math
import os

import pytest
import torch
import torch.multiprocessing as mp

from ltcl.errors import ConfigError
from ltcl.losses import nt_xent
from ltcl.losses.guided import (
    distillation_loss,
    feature_distillation_loss,
    guided_contrastive_loss,
    guided_contrastive_weights,
    guided_positive_selection,
    relational_distillation_loss,
)
from tests.helpers import free_port

# --- slow references -----------------------------------------------------------------------------


def _unit_views(a, b):
    z = torch.cat([a, b]).double()
    return z / z.norm(dim=1, keepdim=True)


def reference_selection(s_f, i, n, delta, k_pos):
    """G(i): views j != i, j != other view, S_f >= delta; the k_pos largest, ties to the lowest j."""
    other = (i + n) % (2 * n)
    eligible = [j for j in range(2 * n) if j not in (i, other) and s_f(i, j) >= delta]
    if delta > 1:
        eligible = []
    return sorted(eligible, key=lambda j: (-s_f(i, j), j))[:k_pos]


def reference_gcl(u1, u2, v1, v2, tau, delta, k_pos, attraction, repulsion):
    """L_GCL written term by term from docs/method.md (plain Python floats, float64 inputs)."""
    u, v = _unit_views(u1, u2), _unit_views(v1, v2)
    n = u1.shape[0]

    def s_g(i, j):
        return float(u[i] @ u[j])

    def s_f(i, j):
        return float(v[i] @ v[j])

    total = 0.0
    for i in range(2 * n):
        other = (i + n) % (2 * n)
        guided = reference_selection(s_f, i, n, delta, k_pos)
        positives = [other, *guided]
        negatives = [j for j in range(2 * n) if j != i and j not in positives]
        w_pos = {other: 1.0}
        for p in guided:
            w_pos[p] = max(s_f(i, p), 0.0) if attraction else 1.0
        if repulsion and negatives:
            mean = sum(1.0 - s_f(i, m) for m in negatives) / len(negatives)
            w_neg = {m: (1.0 - s_f(i, m)) / mean for m in negatives}
        else:
            w_neg = dict.fromkeys(negatives, 1.0)
        denominator = sum(math.exp(s_g(i, p) / tau) for p in positives)
        denominator += sum(w_neg[m] * math.exp(s_g(i, m) / tau) for m in negatives)
        weighted = sum(
            w_pos[p] * math.log(math.exp(s_g(i, p) / tau) / denominator) for p in positives
        )
        total += -weighted / sum(w_pos.values())
    return total / (2 * n)


def reference_relational(u1, u2, v1, v2, tau_t, tau_s):
    u, v = _unit_views(u1, u2), _unit_views(v1, v2)
    m = u.shape[0]
    total = 0.0
    for i in range(m):
        others = [j for j in range(m) if j != i]
        t = [math.exp(float(v[i] @ v[j]) / tau_t) for j in others]
        s = [math.exp(float(u[i] @ u[j]) / tau_s) for j in others]
        p = [x / sum(t) for x in t]
        q = [x / sum(s) for x in s]
        total += sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))
    return total / m


def reference_feature(u1, u2, v1, v2):
    u, v = _unit_views(u1, u2), _unit_views(v1, v2)
    return sum(1.0 - float(u[i] @ v[i]) for i in range(u.shape[0])) / u.shape[0]


# --- data ----------------------------------------------------------------------------------------


def _student(n=8, d=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype), torch.randn(n, d, generator=g, dtype=dtype)


def _clustered_guide(clusters, d=4, noise=0.15, seed=1, dtype=torch.float64):
    """Noisy copies of cluster centres: same-cluster views have S_f around 0.9 or more."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(max(clusters) + 1, d, generator=g, dtype=dtype)
    centres = centres / centres.norm(dim=1, keepdim=True)
    base = centres[torch.tensor(clusters)]
    v1 = base + noise * torch.randn(base.shape, generator=g, dtype=dtype)
    v2 = base + noise * torch.randn(base.shape, generator=g, dtype=dtype)
    return v1, v2


CLUSTERS = [0, 1, 0, 2, 0, 1, 0, 3]  # clusters of 4, 2, 1 and 1 images


def _single_process_columns(n):
    own = torch.arange(2 * n)
    return own, (own + n) % (2 * n)


# --- L_GCL reduces to NT-Xent ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "k_pos", "attraction"), [(1.5, 5, True), (1.5, 5, False), (0.8, 0, True)]
)
def test_gcl_without_guided_positives_or_repulsion_weights_is_nt_xent(delta, k_pos, attraction):
    u1, u2 = _student(dtype=torch.float32)
    u1.requires_grad_(True)
    v1, v2 = _clustered_guide(CLUSTERS, dtype=torch.float32)
    gcl = guided_contrastive_loss(
        u1, u2, v1, v2, 0.2, delta, k_pos, attraction, repulsion_weights=False, gather=False
    )
    reference = nt_xent(u1, u2, 0.2, gather=False)
    torch.testing.assert_close(gcl, reference, rtol=1e-6, atol=1e-6)
    (grad_gcl,) = torch.autograd.grad(gcl, u1)
    (grad_ref,) = torch.autograd.grad(reference, u1)
    torch.testing.assert_close(grad_gcl, grad_ref, rtol=1e-6, atol=1e-6)


def test_gcl_repulsion_weights_change_the_loss():
    # Same setting as above but with w- on: if the weights were ignored this would be NT-Xent.
    u1, u2 = _student()
    v1, v2 = _clustered_guide(CLUSTERS)
    gcl = guided_contrastive_loss(u1, u2, v1, v2, 0.2, 1.5, 5, gather=False)
    assert gcl.item() != pytest.approx(nt_xent(u1, u2, 0.2, gather=False).item(), rel=1e-3)


# --- L_GCL against the slow reference ------------------------------------------------------------


@pytest.mark.parametrize(
    ("tau", "delta", "k_pos"),
    [(0.2, 0.8, 5), (0.1, 0.9, 2), (0.5, 0.5, 1), (0.2, -1.0, 100)],
)
@pytest.mark.parametrize("attraction", [True, False])
@pytest.mark.parametrize("repulsion", [True, False])
def test_gcl_matches_slow_reference(tau, delta, k_pos, attraction, repulsion):
    u1, u2 = _student()
    v1, v2 = _clustered_guide(CLUSTERS)
    loss = guided_contrastive_loss(
        u1, u2, v1, v2, tau, delta, k_pos, attraction, repulsion, gather=False
    )
    assert loss.dtype == torch.float64
    expected = reference_gcl(u1, u2, v1, v2, tau, delta, k_pos, attraction, repulsion)
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_reference_data_exercises_the_threshold_and_the_cap():
    # Guards the test above: some anchors must have more eligible views than k_pos, some none.
    v = _unit_views(*_clustered_guide(CLUSTERS))
    n = len(CLUSTERS)
    eligible = [
        len(reference_selection(lambda i, j: float(v[i] @ v[j]), i, n, 0.8, 100))
        for i in range(2 * n)
    ]
    assert max(eligible) > 5
    assert min(eligible) == 0
    u1, u2 = _student()
    _, stats = guided_contrastive_loss(
        u1, u2, *_clustered_guide(CLUSTERS), 0.2, 0.8, 2, gather=False, return_stats=True
    )
    capped = sum(min(e, 2) for e in eligible) / (2 * n)
    assert stats["guided_positives_per_anchor"].item() == pytest.approx(capped)
    assert stats["anchors_with_guided_positives"].item() == pytest.approx(
        sum(e > 0 for e in eligible) / (2 * n)
    )


# --- a hand-made batch ---------------------------------------------------------------------------


def _hand_made_guide():
    """4 images, both views on the same guide vector: a; b with <a,b> = 0.9; c orthogonal;
    d with <a,d> = 0.85 and <b,d> = 0.765 - sqrt(0.19 * 0.2775) (about 0.535)."""
    a = [1.0, 0.0, 0.0]
    b = [0.9, math.sqrt(1 - 0.81), 0.0]
    c = [0.0, 0.0, 1.0]
    d = [0.85, -math.sqrt(1 - 0.7225), 0.0]
    v = torch.tensor([a, b, c, d], dtype=torch.float64)
    return v, v.clone()


def _hand_made_weights(**kwargs):
    v1, v2 = _hand_made_guide()
    v = torch.cat([v1, v2])
    own, other = _single_process_columns(4)
    return guided_contrastive_weights(v @ v.T, own, other, **kwargs)


def _rows(columns_per_anchor):
    """Bool mask (8, 8) from the columns of anchors 0-3; anchors 4-7 (second views) are the same."""
    mask = torch.zeros(8, 8, dtype=torch.bool)
    for i, cols in enumerate(columns_per_anchor * 2):
        mask[i, cols] = True
    return mask


def test_hand_made_guided_positive_mask():
    v1, v2 = _hand_made_guide()
    v = torch.cat([v1, v2])
    own, other = _single_process_columns(4)
    s_f = v @ v.T
    # Columns: 0-3 = first views of a, b, c, d; 4-7 = their second views.
    # a: b (0.9) and d (0.85), both views of each; b: a (0.9); c: none; d: a (0.85).
    expected = _rows([[1, 3, 5, 7], [0, 4], [], [0, 4]])
    torch.testing.assert_close(guided_positive_selection(s_f, own, other, 0.8, 5), expected)
    # The cap keeps the most guide-similar: both views of b for a (0.9 > 0.85).
    expected_k2 = _rows([[1, 5], [0, 4], [], [0, 4]])
    torch.testing.assert_close(guided_positive_selection(s_f, own, other, 0.8, 2), expected_k2)
    # Ties (both views of d at 0.85) go to the lowest column.
    expected_k3 = _rows([[1, 3, 5], [0, 4], [], [0, 4]])
    torch.testing.assert_close(guided_positive_selection(s_f, own, other, 0.8, 3), expected_k3)
    # A higher threshold drops d; delta > 1 and k_pos = 0 select nothing.
    expected_high = _rows([[1, 5], [0, 4], [], []])
    torch.testing.assert_close(guided_positive_selection(s_f, own, other, 0.88, 5), expected_high)
    nothing = torch.zeros(8, 8, dtype=torch.bool)
    torch.testing.assert_close(guided_positive_selection(s_f, own, other, 1.01, 5), nothing)
    torch.testing.assert_close(guided_positive_selection(s_f, own, other, 0.8, 0), nothing)
    # The other view (S_f = 1) and the own column are never guided positives.
    assert not guided_positive_selection(s_f, own, other, -1.0, 100)[torch.arange(8), other].any()
    assert not guided_positive_selection(s_f, own, other, -1.0, 100)[torch.arange(8), own].any()


def test_hand_made_attraction_weights_are_the_guide_similarities():
    weights = _hand_made_weights(delta=0.8, k_pos=5)
    own, other = _single_process_columns(4)
    expected = torch.zeros(8, 8, dtype=torch.float64)
    expected[torch.arange(8), other] = 1.0
    for i in range(8):
        expected[i, weights.guided[i]] = weights.guide_similarity[i, weights.guided[i]]
    torch.testing.assert_close(weights.attraction, expected)
    assert weights.attraction[0, 1].item() == pytest.approx(0.9)
    assert weights.attraction[0, 3].item() == pytest.approx(0.85)
    assert weights.attraction[0, 4].item() == 1.0
    torch.testing.assert_close(weights.positive, weights.guided | (expected == 1.0))
    # Switched off: every positive attracts with weight 1.
    plain = _hand_made_weights(delta=0.8, k_pos=5, attraction_weights=False)
    torch.testing.assert_close(plain.attraction, weights.positive.double())


def test_hand_made_repulsion_weights_follow_the_formula_and_average_to_one():
    weights = _hand_made_weights(delta=0.8, k_pos=2)
    # Anchor a with k_pos = 2: positives b, b' and a'; negatives c, c' (1 - 0 = 1) and d, d'
    # (1 - 0.85 = 0.15), mean 0.575.
    assert weights.negative[0].nonzero().flatten().tolist() == [2, 3, 6, 7]
    assert weights.repulsion[0, 2].item() == pytest.approx(1 / 0.575)
    assert weights.repulsion[0, 3].item() == pytest.approx(0.15 / 0.575)
    # Anchor b: negatives c, c' (1) and d, d' (1 - <b,d>).
    b_d = weights.guide_similarity[1, 3].item()
    assert b_d == pytest.approx(0.765 - math.sqrt(0.19 * 0.2775))
    mean = (2 + 2 * (1 - b_d)) / 4
    assert weights.repulsion[1, 7].item() == pytest.approx((1 - b_d) / mean)
    # Anchor c: every negative has S_f = 0, so every weight is 1.
    torch.testing.assert_close(weights.repulsion[2, weights.negative[2]], torch.ones(6).double())
    # Zero outside N(i), and a mean of 1 over each anchor's negatives.
    assert (weights.repulsion[~weights.negative] == 0).all()
    means = weights.repulsion.sum(dim=1) / weights.negative.sum(dim=1)
    torch.testing.assert_close(means, torch.ones(8).double())
    assert not (weights.negative & weights.positive).any()
    assert not weights.negative[torch.arange(8), torch.arange(8)].any()
    plain = _hand_made_weights(delta=0.8, k_pos=2, repulsion_weights=False)
    torch.testing.assert_close(plain.repulsion, weights.negative.double())


def test_hand_made_loss_and_stats():
    u1, u2 = _student(n=4, d=3, seed=5)
    v1, v2 = _hand_made_guide()
    loss, stats = guided_contrastive_loss(
        u1, u2, v1, v2, 0.2, 0.8, 5, gather=False, return_stats=True
    )
    assert stats["guided_positives_per_anchor"].item() == pytest.approx((4 + 2 + 0 + 2) / 4)
    assert stats["anchors_with_guided_positives"].item() == pytest.approx(0.75)
    assert loss.item() == pytest.approx(
        reference_gcl(u1, u2, v1, v2, 0.2, 0.8, 5, True, True), rel=1e-10
    )


# --- gradients -----------------------------------------------------------------------------------


def test_gcl_gradient_lowers_loss_and_never_reaches_the_guide():
    u1, u2 = (z.float().requires_grad_(True) for z in _student(seed=2))
    v1, v2 = (v.float().requires_grad_(True) for v in _clustered_guide(CLUSTERS))
    opt = torch.optim.SGD([u1, u2], lr=0.5)

    def loss():
        return guided_contrastive_loss(u1, u2, v1, v2, 0.2, 0.8, 3, gather=False)

    first = loss().item()
    for _ in range(20):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < first - 0.1
    assert v1.grad is None and v2.grad is None
    assert u1.grad is not None


def test_distillation_gradient_never_reaches_the_guide():
    u1, u2 = (z.requires_grad_(True) for z in _student(d=4))
    v1, v2 = (v.requires_grad_(True) for v in _clustered_guide(CLUSTERS))
    distillation_loss(u1, u2, v1, v2, mode="both", gather=False).backward()
    assert v1.grad is None and v2.grad is None
    assert u1.grad.abs().sum() > 0


# --- L_DL ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("tau_t", "tau_s"), [(0.2, 0.2), (0.1, 0.3), (0.5, 0.1)])
def test_relational_distillation_matches_slow_reference(tau_t, tau_s):
    u1, u2 = _student()  # D = 5 against the guide's D' = 4: allowed
    v1, v2 = _clustered_guide(CLUSTERS)
    loss = relational_distillation_loss(u1, u2, v1, v2, tau_t, tau_s, gather=False)
    expected = reference_relational(u1, u2, v1, v2, tau_t, tau_s)
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    assert loss.item() > 0


def test_relational_distillation_is_zero_when_student_equals_guide():
    u1, u2 = _student()
    loss = relational_distillation_loss(u1, u2, u1.clone(), u2.clone(), 0.3, 0.3, gather=False)
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    # Scale does not matter (everything is normalised); different temperatures do.
    scaled = relational_distillation_loss(u1, u2, 3 * u1, 3 * u2, 0.3, 0.3, gather=False)
    assert scaled.item() == pytest.approx(0.0, abs=1e-12)
    assert relational_distillation_loss(u1, u2, u1, u2, 0.1, 0.3, gather=False).item() > 1e-3


def test_feature_distillation_matches_slow_reference_and_is_zero_on_the_guide():
    u1, u2 = _student(d=4)
    v1, v2 = _clustered_guide(CLUSTERS)
    loss = feature_distillation_loss(u1, u2, v1, v2)
    assert loss.item() == pytest.approx(reference_feature(u1, u2, v1, v2), rel=1e-12)
    assert feature_distillation_loss(u1, u2, 2 * u1, u2).item() == pytest.approx(0.0, abs=1e-12)


def test_distillation_modes_dispatch():
    u1, u2 = _student(d=4)
    v1, v2 = _clustered_guide(CLUSTERS)
    relational = relational_distillation_loss(u1, u2, v1, v2, 0.1, 0.2, gather=False)
    feature = feature_distillation_loss(u1, u2, v1, v2)

    def by_mode(mode):
        return distillation_loss(u1, u2, v1, v2, mode, 0.1, 0.2, gather=False)

    torch.testing.assert_close(by_mode("relational"), relational)
    torch.testing.assert_close(by_mode("feature"), feature)
    torch.testing.assert_close(by_mode("both"), relational + feature)


# --- bad arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": 0.0}, "temperature must be > 0"),
        ({"delta": float("nan")}, "delta"),
        ({"delta": -1.5}, "delta must be >= -1"),
        ({"k_pos": -1}, "k_pos must be an int >= 0"),
        ({"k_pos": 2.5}, "k_pos"),
        ({"u2": torch.randn(3, 5)}, "views"),
        ({"v1": torch.randn(4, 2), "v2": torch.randn(4, 2)}, "guide views hold 4 images"),
    ],
)
def test_gcl_bad_arguments(kwargs, match):
    args = {"u1": torch.randn(3, 4), "u2": torch.randn(3, 4)}
    args |= {"v1": torch.randn(3, 2), "v2": torch.randn(3, 2)}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        guided_contrastive_loss(gather=False, **args)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"mode": "cosine"},
            "unknown distillation mode 'cosine'; valid modes: relational, feature, both",
        ),
        ({"mode": "feature"}, "student D=4 and guide D'=2"),
        ({"mode": "both"}, "student D=4 and guide D'=2"),
        ({"teacher_temperature": 0.0}, "teacher_temperature must be > 0"),
        ({"student_temperature": -1.0}, "student_temperature must be > 0"),
    ],
)
def test_distillation_bad_arguments(kwargs, match):
    u1, u2 = torch.randn(3, 4), torch.randn(3, 4)
    v1, v2 = torch.randn(3, 2), torch.randn(3, 2)
    with pytest.raises(ConfigError, match=match):
        distillation_loss(u1, u2, v1, v2, gather=False, **kwargs)


def test_guided_positive_selection_bad_arguments():
    own, other = _single_process_columns(2)
    with pytest.raises(ConfigError, match="delta"):
        guided_positive_selection(torch.eye(4), own, other, float("nan"), 5)
    with pytest.raises(ConfigError, match="k_pos"):
        guided_positive_selection(torch.eye(4), own, other, 0.8, -2)


# --- 2 gloo processes against 1 process ----------------------------------------------------------

# Clusters cross the rank boundary (images 0-3 on rank 0, 4-7 on rank 1), so guided
# positives and the repulsion weights use columns gathered from the other rank.
DDP_CLUSTERS = [0, 1, 2, 0, 1, 0, 2, 1]
DDP_GCL = {"temperature": 0.2, "delta": 0.8, "k_pos": 2}


def _model_and_data():
    """A bias-free linear map on fixed inputs: no BN, no randomness (lightly's equivalence test)."""
    g = torch.Generator().manual_seed(3)
    weight = torch.randn(4, 6, generator=g)
    x1, x2 = torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g)
    v1, v2 = _clustered_guide(DDP_CLUSTERS, d=3, dtype=torch.float32)
    return weight, x1, x2, v1, v2


def _losses(u1, u2, v1, v2, gather):
    return {
        "gcl": lambda: guided_contrastive_loss(u1, u2, v1, v2, **DDP_GCL, gather=gather),
        "relational": lambda: relational_distillation_loss(u1, u2, v1, v2, 0.1, 0.2, gather=gather),
    }


def _ddp_worker(rank, world, port, out_path):
    import torch.distributed as dist

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    results = {}
    for name in ("gcl", "relational"):
        weight, x1, x2, v1, v2 = _model_and_data()
        weight.requires_grad_(True)
        shard = slice(rank * 4, rank * 4 + 4)
        # Rank-asymmetric: rank 1 also scales its views, so a backward that drops other
        # ranks' contributions cannot pass by symmetry.
        scale = 1.0 + rank
        u1, u2 = scale * x1[shard] @ weight.T, scale * x2[shard] @ weight.T
        loss = _losses(u1, u2, v1[shard], v2[shard], gather=True)[name]()
        loss.backward()
        grad = weight.grad.clone()
        dist.all_reduce(grad)
        grad /= world  # what DDP does to parameter gradients
        losses = [torch.zeros(1) for _ in range(world)]
        dist.all_gather(losses, loss.detach().reshape(1))
        results[name] = {"grad": grad, "loss": torch.cat(losses).mean()}
    if rank == 0:
        torch.save(results, out_path)
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "ddp.pt"
    mp.spawn(_ddp_worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    return torch.load(out)


@pytest.mark.ddp
@pytest.mark.parametrize("name", ["gcl", "relational"])
def test_two_processes_equal_one_process(ddp_results, name):
    weight, x1, x2, v1, v2 = _model_and_data()
    weight.requires_grad_(True)
    scale = torch.cat([torch.ones(4, 1), 2 * torch.ones(4, 1)])
    u1, u2 = scale * x1 @ weight.T, scale * x2 @ weight.T
    loss = _losses(u1, u2, v1, v2, gather=False)[name]()
    loss.backward()
    ddp = ddp_results[name]
    assert ddp["loss"].item() == pytest.approx(loss.item(), rel=1e-5)
    torch.testing.assert_close(ddp["grad"], weight.grad, rtol=1e-5, atol=1e-6)


def test_single_process_gcl_uses_cross_rank_guided_positives():
    # Guards the DDP test: guided positives must cross the rank boundary and change the
    # loss, or the equality above proves nothing about the guide's gather.
    weight, x1, x2, v1, v2 = _model_and_data()
    u1, u2 = x1 @ weight.T, x2 @ weight.T
    v = torch.nn.functional.normalize(torch.cat([v1, v2]), dim=1)
    own, other = _single_process_columns(8)
    guided = guided_positive_selection(v @ v.T, own, other, DDP_GCL["delta"], DDP_GCL["k_pos"])
    image = torch.arange(16) % 8
    crosses = (image[:, None] < 4) != (image[None, :] < 4)
    assert (guided & crosses).any()
    gcl = guided_contrastive_loss(u1, u2, v1, v2, **DDP_GCL, gather=False)
    assert gcl.item() != pytest.approx(nt_xent(u1, u2, 0.2, gather=False).item(), rel=1e-3)


def test_guided_positive_precision_against_a_direct_count():
    """The analysis statistic: the share of guided pairs (i, j) whose true labels agree, and
    the share among all candidate pairs; labels never change the loss."""
    g = torch.Generator().manual_seed(5)
    u1, u2 = torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g)
    v1 = torch.randn(8, 6, generator=g)
    v2 = v1 + 0.1 * torch.randn(8, 6, generator=g)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    plain = guided_contrastive_loss(u1, u2, v1, v2, delta=0.0, k_pos=3, gather=False)
    loss, stats = guided_contrastive_loss(
        u1, u2, v1, v2, delta=0.0, k_pos=3, gather=False, return_stats=True, labels=labels
    )
    assert torch.equal(loss, plain)
    v = torch.nn.functional.normalize(torch.cat([v1, v2]), dim=1)
    sim = v @ v.T
    n = 8
    lab = labels.repeat(2)
    guided_same = guided_total = cand_same = cand_total = 0
    for i in range(2 * n):
        other = i + n if i < n else i - n
        eligible = [j for j in range(2 * n) if j not in (i, other) and sim[i, j] >= 0.0]
        chosen = sorted(eligible, key=lambda j: (-float(sim[i, j]), j))[:3]
        guided_total += len(chosen)
        guided_same += sum(int(lab[j] == lab[i]) for j in chosen)
        for j in range(2 * n):
            if j != i:
                cand_total += 1
                cand_same += int(lab[j] == lab[i])
    assert float(stats["guided_positive_precision"]) == pytest.approx(guided_same / guided_total)
    assert float(stats["same_class_rate"]) == pytest.approx(cand_same / cand_total)
