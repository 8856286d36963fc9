"""Stage-1 losses (L_PSD, L_DD) against slow references written from docs/method.md, on 1 and 2 processes."""

import math
import os

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from ltcl.errors import ConfigError
from ltcl.losses import nt_xent
from ltcl.losses.domain import DomainHead, domain_bce_loss, domain_supcon_loss
from ltcl.losses.psd import psd_loss
from tests.helpers import free_port


def reference_weighted_supcon(z1, z2, weight_fn, tau):
    """l_i = -(1/sum_p w_ip) sum_p w_ip log(exp(s_ip/t) / sum_{k != i} exp(s_ik/t)), mean over 2N.

    `weight_fn(i, j, n)` gives w_ij for views i != j (0 = not a positive); view v is image v % n.
    """
    z = torch.cat([z1, z2]).double()
    z = z / z.norm(dim=1, keepdim=True)
    n = z1.shape[0]
    total = 0.0
    for i in range(2 * n):
        denominator = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(2 * n) if k != i)
        weighted, weight_sum = 0.0, 0.0
        for p in range(2 * n):
            w = weight_fn(i, p, n) if p != i else 0.0
            if w:
                weighted += w * math.log(math.exp(float(z[i] @ z[p]) / tau) / denominator)
                weight_sum += w
        total += -weighted / weight_sum
    return total / (2 * n)


def reference_psd(z1, z2, labels, tau, beta):
    def weight(i, j, n):
        if j % n == i % n:  # the other view of the same image: the instance positive
            return 1.0
        same = labels[i % n] >= 0 and labels[i % n] == labels[j % n]
        return beta if same else 0.0

    return reference_weighted_supcon(z1, z2, weight, tau)


def reference_domain_supcon(z1, z2, is_ood, tau):
    return reference_weighted_supcon(
        z1, z2, lambda i, j, n: 1.0 if is_ood[i % n] == is_ood[j % n] else 0.0, tau
    )


def _views(n=7, d=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype), torch.randn(n, d, generator=g, dtype=dtype)


# --- L_PSD ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("tau", [0.1, 0.2, 0.5])
def test_psd_without_pseudo_labels_is_nt_xent(tau):
    z1, z2 = _views(dtype=torch.float32)
    z1.requires_grad_(True)
    no_labels = torch.full((7,), -1, dtype=torch.long)
    psd = psd_loss(z1, z2, no_labels, tau, beta=0.7, gather=False)
    reference = nt_xent(z1, z2, tau, gather=False)
    torch.testing.assert_close(psd, reference, rtol=1e-6, atol=1e-7)
    (grad_psd,) = torch.autograd.grad(psd, z1)
    (grad_ref,) = torch.autograd.grad(reference, z1)
    torch.testing.assert_close(grad_psd, grad_ref, rtol=1e-6, atol=1e-7)


def test_psd_with_beta_zero_is_nt_xent():
    z1, z2 = _views()
    labels = torch.tensor([0, 0, 1, 1, 0, -1, 1])
    torch.testing.assert_close(
        psd_loss(z1, z2, labels, 0.2, beta=0.0, gather=False), nt_xent(z1, z2, 0.2, gather=False)
    )


@pytest.mark.parametrize(("tau", "beta"), [(0.2, 1.0), (0.1, 0.5), (0.5, 2.0)])
def test_psd_matches_slow_reference(tau, beta):
    z1, z2 = _views()
    labels = [0, 2, -1, 0, 2, 0, -1]  # clusters of 3 and 2, two images without a label
    loss = psd_loss(z1, z2, torch.tensor(labels), tau, beta, gather=False)
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(reference_psd(z1, z2, labels, tau, beta), rel=1e-10)


@pytest.mark.parametrize(("tau", "beta"), [(0.2, 1.0), (0.1, 0.5)])
def test_psd_total_beta_normalization_matches_slow_reference(tau, beta):
    """Each anchor's same-cluster views share beta: w = beta / (their number)."""
    z1, z2 = _views()
    labels = [0, 2, -1, 0, 2, 0, -1]

    def weight(i, j, n):
        if j % n == i % n:
            return 1.0
        if not (labels[i % n] >= 0 and labels[i % n] == labels[j % n]):
            return 0.0
        others = sum(1 for k in range(2 * n) if k % n != i % n and labels[k % n] == labels[i % n])
        return beta / others

    loss = psd_loss(z1, z2, torch.tensor(labels), tau, beta, False, beta_normalization="total")
    reference = reference_weighted_supcon(z1, z2, weight, tau)
    assert loss.item() == pytest.approx(reference, rel=1e-10)
    with pytest.raises(ConfigError, match="beta_normalization"):
        psd_loss(z1, z2, torch.tensor(labels), tau, beta, False, beta_normalization="sum")


def test_psd_beta_one_is_supcon_with_clusters_as_classes():
    # Khosla's L_out with labels: the other view is just one of the same-label views.
    z1, z2 = _views()
    labels = [1, 1, 0, 1, 0, 2, 2]
    supcon = reference_weighted_supcon(
        z1, z2, lambda i, j, n: float(labels[i % n] == labels[j % n]), 0.2
    )
    loss = psd_loss(z1, z2, torch.tensor(labels), 0.2, 1.0, gather=False)
    assert loss.item() == pytest.approx(supcon, rel=1e-10)


def test_psd_gradient_lowers_loss():
    g = torch.Generator().manual_seed(1)
    z1 = torch.randn(8, 4, generator=g, requires_grad=True)
    z2 = torch.randn(8, 4, generator=g, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, -1, 2, 2, -1])
    opt = torch.optim.SGD([z1, z2], lr=0.5)
    first = psd_loss(z1, z2, labels, 0.2, 0.5, gather=False)
    for _ in range(20):
        opt.zero_grad()
        psd_loss(z1, z2, labels, 0.2, 0.5, gather=False).backward()
        opt.step()
    assert psd_loss(z1, z2, labels, 0.2, 0.5, gather=False).item() < first.item() - 0.1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": 0.0}, "temperature"),
        ({"beta": -0.5}, "beta"),
        ({"beta": float("nan")}, "beta"),
        ({"pseudo_labels": torch.zeros(4, dtype=torch.long)}, r"pseudo_labels must be \(3,\)"),
        ({"pseudo_labels": torch.zeros(3)}, "integer"),
        ({"z2": torch.randn(3, 5)}, "views"),
    ],
)
def test_psd_bad_arguments(kwargs, match):
    args = {"z1": torch.randn(3, 4), "z2": torch.randn(3, 4)}
    args["pseudo_labels"] = torch.zeros(3, dtype=torch.long)
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        psd_loss(gather=False, **args)


# --- L_DD ----------------------------------------------------------------------------------------


def _bce_by_hand(x, y):
    """-(y log sigmoid(x) + (1 - y) log(1 - sigmoid(x)))."""
    s = 1.0 / (1.0 + math.exp(-x))
    return -(y * math.log(s) + (1 - y) * math.log(1 - s))


LOGITS = [0.5, -1.0, 2.0, 0.3, -0.7, 1.2]
IS_OOD = [True, False, False, False, True, False]


def test_domain_bce_matches_hand_computation():
    logits = torch.tensor(LOGITS, dtype=torch.float64)
    is_ood = torch.tensor(IS_OOD)
    terms = [_bce_by_hand(x, float(y)) for x, y in zip(LOGITS, IS_OOD, strict=True)]
    loss = domain_bce_loss(logits, is_ood)
    assert loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-12)
    expected = F.binary_cross_entropy_with_logits(logits, is_ood.double())
    torch.testing.assert_close(loss, expected)


def test_domain_bce_balanced_matches_hand_computation():
    logits = torch.tensor(LOGITS, dtype=torch.float64)
    terms = [_bce_by_hand(x, float(y)) for x, y in zip(LOGITS, IS_OOD, strict=True)]
    ood = [t for t, y in zip(terms, IS_OOD, strict=True) if y]
    in_dist = [t for t, y in zip(terms, IS_OOD, strict=True) if not y]
    expected = 0.5 * sum(ood) / len(ood) + 0.5 * sum(in_dist) / len(in_dist)
    loss = domain_bce_loss(logits, torch.tensor(IS_OOD), balance=True)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("is_ood", [[True, False, True, False], [False] * 4, [True] * 4])
def test_domain_bce_balanced_equals_plain_when_counts_are_equal_or_one_domain(is_ood):
    logits = torch.tensor([0.1, -2.0, 1.5, 0.4], dtype=torch.float64)
    is_ood = torch.tensor(is_ood)
    torch.testing.assert_close(
        domain_bce_loss(logits, is_ood, balance=True), domain_bce_loss(logits, is_ood)
    )


def test_domain_head_gives_one_logit_per_image_and_learns():
    torch.manual_seed(0)
    head = DomainHead(6)
    features = torch.randn(16, 6)
    is_ood = features[:, 0] > 0
    assert head(features).shape == (16,)
    opt = torch.optim.SGD(head.parameters(), lr=0.5)
    first = domain_bce_loss(head(features), is_ood).item()
    for _ in range(20):
        opt.zero_grad()
        domain_bce_loss(head(features), is_ood).backward()
        opt.step()
    assert domain_bce_loss(head(features), is_ood).item() < first


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: DomainHead(0), "in_dim"),
        (lambda: domain_bce_loss(torch.zeros(3, 1), torch.zeros(3, dtype=torch.bool)), "squeeze"),
        (lambda: domain_bce_loss(torch.zeros(3), torch.zeros(3, dtype=torch.long)), "bool"),
        (lambda: domain_bce_loss(torch.zeros(3), torch.zeros(2, dtype=torch.bool)), "is_ood"),
        (
            lambda: domain_supcon_loss(
                torch.randn(3, 4), torch.randn(3, 4), torch.zeros(3, dtype=torch.bool), 0.0
            ),
            "temperature",
        ),
    ],
)
def test_domain_bad_arguments(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


@pytest.mark.parametrize("tau", [0.1, 0.2, 0.5])
def test_domain_supcon_matches_slow_reference(tau):
    z1, z2 = _views()
    is_ood = [True, False, False, True, False, True, False]
    loss = domain_supcon_loss(z1, z2, torch.tensor(is_ood), tau, gather=False)
    assert loss.item() == pytest.approx(reference_domain_supcon(z1, z2, is_ood, tau), rel=1e-10)


def test_domain_supcon_equals_psd_with_domain_as_pseudo_label():
    # Same L_out reduction: the domain is a pseudo label that every image carries, beta = 1.
    z1, z2 = _views()
    is_ood = torch.tensor([True, False, False, True, False, True, False])
    torch.testing.assert_close(
        domain_supcon_loss(z1, z2, is_ood, 0.2, gather=False),
        psd_loss(z1, z2, is_ood.long(), 0.2, 1.0, gather=False),
    )


# --- 2 gloo processes against 1 process ----------------------------------------------------------

# Labels cross the rank boundary (images 0-3 on rank 0, 4-7 on rank 1): cluster 0 holds
# images 0 and 4, cluster 2 images 3 and 5, cluster 1 images 1 and 7; 2 and 6 have none.
PSEUDO_LABELS = torch.tensor([0, 1, -1, 2, 0, 2, -1, 1])
IS_OOD_8 = torch.tensor([False, True, False, False, True, True, False, True])
BETA = 0.5


def _model_and_data():
    """A bias-free linear map on fixed inputs: no BN, no randomness (lightly's equivalence test)."""
    g = torch.Generator().manual_seed(3)
    weight = torch.randn(4, 6, generator=g)
    x1, x2 = torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g)
    return weight, x1, x2


def _losses(z1, z2, shard, gather):
    return {
        "psd": lambda: psd_loss(z1, z2, PSEUDO_LABELS[shard], 0.2, BETA, gather=gather),
        "domain": lambda: domain_supcon_loss(z1, z2, IS_OOD_8[shard], 0.2, gather=gather),
    }


def _ddp_worker(rank, world, port, out_path):
    import torch.distributed as dist

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    results = {}
    for name in ("psd", "domain"):
        weight, x1, x2 = _model_and_data()
        weight.requires_grad_(True)
        shard = slice(rank * 4, rank * 4 + 4)
        # Rank-asymmetric: rank 1 also scales its views, so a backward that drops other
        # ranks' contributions cannot pass by symmetry.
        scale = 1.0 + rank
        z1, z2 = scale * x1[shard] @ weight.T, scale * x2[shard] @ weight.T
        loss = _losses(z1, z2, shard, gather=True)[name]()
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
@pytest.mark.parametrize("name", ["psd", "domain"])
def test_two_processes_equal_one_process(ddp_results, name):
    weight, x1, x2 = _model_and_data()
    weight.requires_grad_(True)
    scale = torch.cat([torch.ones(4, 1), 2 * torch.ones(4, 1)])
    z1, z2 = scale * x1 @ weight.T, scale * x2 @ weight.T
    loss = _losses(z1, z2, slice(None), gather=False)[name]()
    loss.backward()
    ddp = ddp_results[name]
    assert ddp["loss"].item() == pytest.approx(loss.item(), rel=1e-5)
    torch.testing.assert_close(ddp["grad"], weight.grad, rtol=1e-5, atol=1e-6)


def test_single_process_psd_uses_the_cross_rank_labels():
    # Guards the DDP test: the shared clusters must change the loss, or it proves nothing.
    weight, x1, x2 = _model_and_data()
    z1, z2 = x1 @ weight.T, x2 @ weight.T
    with_labels = psd_loss(z1, z2, PSEUDO_LABELS, 0.2, BETA, gather=False)
    assert with_labels.item() != pytest.approx(nt_xent(z1, z2, 0.2, gather=False).item(), rel=1e-3)
