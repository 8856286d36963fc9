"""Stage-2 variants (docs/method.md, "Stage 2 variants") against slow references written from
their equations: density-aware repulsion, the guided-positive memory bank, backbone
distillation; plus the bank's FIFO and 2 processes = 1 process for the density weights."""

import math
import os

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from ltcl.errors import ConfigError
from ltcl.losses.guided import BankView, guide_density, guided_contrastive_loss
from ltcl.losses.memory_bank import GuidedPositiveBank
from tests.helpers import free_port
from tests.unit.test_stage2_losses import _clustered_guide, _student, reference_gcl


def reference_variant_gcl(
    u1, u2, v1, v2, tau, delta, k_pos, attraction, repulsion, density_k=0, bank=None
):
    """L_GCL with density-aware repulsion and bank positives, term by term (float64).

    Candidates: the 2n batch views, then the bank's M views (guided positives only).
    rho_n = mean of the k largest S_f(n, m), m != n, over the 2n batch views;
    w-_in proportional to (1 - S_f(i, n)) (if repulsion) x (1 - rho_n) (if density_k), mean 1.
    """
    u = F.normalize(torch.cat([u1, u2]).double(), dim=1)
    v = F.normalize(torch.cat([v1, v2]).double(), dim=1)
    n = u1.shape[0]
    if bank is not None:
        u = torch.cat([u, bank.student.double()])
        v = torch.cat([v, bank.guide.double()])
    columns = u.shape[0]

    def s_g(i, j):
        return float(u[i] @ u[j])

    def s_f(i, j):
        return float(v[i] @ v[j])

    def rho(m):
        others = sorted((s_f(m, j) for j in range(2 * n) if j != m), reverse=True)
        return sum(others[:density_k]) / min(density_k, len(others))

    total = 0.0
    for i in range(2 * n):
        other = (i + n) % (2 * n)
        eligible = [j for j in range(columns) if j not in (i, other) and s_f(i, j) >= delta]
        guided = sorted(eligible, key=lambda j: (-s_f(i, j), j))[:k_pos]
        positives = [other, *guided]
        negatives = [j for j in range(2 * n) if j != i and j not in positives]
        w_pos = {other: 1.0}
        for p in guided:
            w_pos[p] = max(s_f(i, p), 0.0) if attraction else 1.0
        raw = {}
        for m in negatives:
            w = (1.0 - s_f(i, m)) if repulsion else 1.0
            if density_k:
                w *= max(1.0 - rho(m), 0.0)
            raw[m] = w
        mean = sum(raw.values()) / len(raw)
        w_neg = {m: w / mean for m, w in raw.items()} if (repulsion or density_k) else raw
        denominator = sum(math.exp(s_g(i, p) / tau) for p in positives)
        denominator += sum(w_neg[m] * math.exp(s_g(i, m) / tau) for m in negatives)
        weighted = sum(
            w_pos[p] * math.log(math.exp(s_g(i, p) / tau) / denominator) for p in positives
        )
        total += -weighted / sum(w_pos.values())
    return total / (2 * n)


CLUSTERS = [0, 1, 0, 2, 0, 1, 0, 3]


def _bank(m=6, d_u=5, d_v=4, seed=7):
    g = torch.Generator().manual_seed(seed)
    guide, _ = _clustered_guide([0, 1, 0, 2, 3, 0][:m], d=d_v, seed=seed)
    student = torch.randn(m, d_u, generator=g, dtype=torch.float64)
    return BankView(F.normalize(guide, dim=1), F.normalize(student, dim=1), torch.arange(m) % 3)


@pytest.mark.parametrize("density_k", [1, 3, 15])
@pytest.mark.parametrize("repulsion", [True, False])
def test_density_repulsion_matches_slow_reference(density_k, repulsion):
    u1, u2 = _student()
    v1, v2 = _clustered_guide(CLUSTERS)
    got = guided_contrastive_loss(
        u1, u2, v1, v2, 0.2, 0.8, 2, True, repulsion, gather=False, density_k=density_k
    )
    want = reference_variant_gcl(u1, u2, v1, v2, 0.2, 0.8, 2, True, repulsion, density_k)
    assert got.item() == pytest.approx(want, rel=1e-10)
    plain = guided_contrastive_loss(u1, u2, v1, v2, 0.2, 0.8, 2, True, repulsion, gather=False)
    assert got.item() != pytest.approx(plain.item(), rel=1e-6)  # the variant does something


def test_reference_without_variants_is_the_plain_reference():
    u1, u2 = _student()
    v1, v2 = _clustered_guide(CLUSTERS)
    want = reference_gcl(u1, u2, v1, v2, 0.2, 0.8, 2, True, True)
    assert reference_variant_gcl(u1, u2, v1, v2, 0.2, 0.8, 2, True, True) == pytest.approx(want)


def test_guide_density_by_hand():
    v = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    # Similarities: 0-1: 1, 0-2: 0, 0-3: -1, 1-2: 0, 1-3: -1, 2-3: 0.
    torch.testing.assert_close(guide_density(v, 1), torch.tensor([1.0, 1.0, 0.0, 0.0]))
    torch.testing.assert_close(guide_density(v, 2), torch.tensor([0.5, 0.5, 0.0, -0.5]))


@pytest.mark.parametrize("k_pos", [1, 3])
@pytest.mark.parametrize("density_k", [0, 2])
def test_bank_positives_match_slow_reference(k_pos, density_k):
    u1, u2 = _student()
    v1, v2 = _clustered_guide(CLUSTERS)
    bank = _bank()
    got, stats = guided_contrastive_loss(
        u1, u2, v1, v2, 0.2, 0.8, k_pos, gather=False, density_k=density_k, bank=bank,
        return_stats=True, labels=torch.tensor(CLUSTERS),
    )  # fmt: skip
    want = reference_variant_gcl(u1, u2, v1, v2, 0.2, 0.8, k_pos, True, True, density_k, bank)
    assert got.item() == pytest.approx(want, rel=1e-10)
    without = guided_contrastive_loss(
        u1, u2, v1, v2, 0.2, 0.8, k_pos, gather=False, density_k=density_k
    )
    assert got.item() != pytest.approx(without.item(), rel=1e-6)  # bank entries were chosen
    assert stats["guided_positives_per_anchor"] > 0


def test_bank_gradient_reaches_the_anchors_only():
    u1, u2 = _student()
    u1.requires_grad_(True)
    v1, v2 = _clustered_guide(CLUSTERS)
    bank = _bank()
    bank.student.requires_grad_(False)
    guided_contrastive_loss(u1, u2, v1, v2, 0.2, 0.8, 3, gather=False, bank=bank).backward()
    assert u1.grad is not None and u1.grad.abs().sum() > 0


def test_empty_bank_is_no_bank():
    u1, u2 = _student()
    v1, v2 = _clustered_guide(CLUSTERS)
    empty = BankView(torch.zeros(0, 4), torch.zeros(0, 5), torch.zeros(0, dtype=torch.long))
    a = guided_contrastive_loss(u1, u2, v1, v2, 0.2, 0.8, 2, gather=False, bank=empty)
    b = guided_contrastive_loss(u1, u2, v1, v2, 0.2, 0.8, 2, gather=False)
    assert torch.equal(a, b)


def test_bank_is_first_in_first_out_and_survives_a_state_dict_round_trip():
    bank = GuidedPositiveBank(size=5, guide_dim=2, student_dim=3)
    assert bank.view().guide.shape == (0, 2)
    for step in range(3):  # 3 steps of 2 images (4 views each): 12 views through 5 slots
        labels = torch.tensor([10 * step, 10 * step + 1])
        student = torch.arange(4 * 3, dtype=torch.float32).reshape(4, 3) + 100 * step
        guide = torch.arange(4 * 2, dtype=torch.float32).reshape(4, 2) + 100 * step
        bank.push(student, guide, labels, gather=False)
    view = bank.view()
    # Views pushed in order (step, view, image): the last 5 are step 1's last view and step 2's
    # four; slot = push index mod 5.
    pushed_labels = [lab for s in range(3) for lab in (10 * s, 10 * s + 1) * 2]
    expected = {index % 5: lab for index, lab in enumerate(pushed_labels)}
    assert view.labels.tolist() == [expected[slot] for slot in range(5)]
    restored = GuidedPositiveBank(size=5, guide_dim=2, student_dim=3)
    restored.load_state_dict(bank.state_dict())
    for a, b in zip(vars(restored.view()).values(), vars(view).values(), strict=True):
        assert torch.equal(a, b)
    assert int(restored.pushed) == 12
    # Both continue alike: the restored bank writes its next views into the same slots.
    more = (torch.ones(4, 3), torch.ones(4, 2), torch.tensor([7, 8]))
    bank.push(*more, gather=False)
    restored.push(*more, gather=False)
    for a, b in zip(vars(restored.view()).values(), vars(bank.view()).values(), strict=True):
        assert torch.equal(a, b)


def test_variant_arguments_are_checked():
    u1, u2 = _student()
    v1, v2 = _clustered_guide(CLUSTERS)
    with pytest.raises(ConfigError, match="density_k"):
        guided_contrastive_loss(u1, u2, v1, v2, gather=False, density_k=-1)
    with pytest.raises(ConfigError, match="bank size"):
        GuidedPositiveBank(size=-3, guide_dim=2, student_dim=2)


# --- 2 processes = 1 process: density weights and bank pushes use gathered views -------------------


def _ddp_worker(rank, world, port, out_path):
    import torch.distributed as dist

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    u1, u2 = _student(dtype=torch.float32)
    v1, v2 = _clustered_guide(CLUSTERS, dtype=torch.float32)
    shard = slice(rank * 4, rank * 4 + 4)
    u1 = u1.clone().requires_grad_(True)
    loss = guided_contrastive_loss(
        u1[shard], u2[shard], v1[shard], v2[shard], 0.2, 0.8, 2, density_k=3
    )
    loss.backward()
    grad = u1.grad.clone()
    dist.all_reduce(grad)
    losses = [torch.zeros(1) for _ in range(world)]
    dist.all_gather(losses, loss.detach().reshape(1))
    bank = GuidedPositiveBank(size=32, guide_dim=4, student_dim=5)
    labels = torch.tensor(CLUSTERS)
    bank.push(torch.cat([u1[shard], u2[shard]]), torch.cat([v1[shard], v2[shard]]), labels[shard])
    if rank == 0:
        torch.save(
            {"loss": torch.cat(losses).mean(), "grad": grad / world, "bank": bank.state_dict()},
            out_path,
        )
    dist.destroy_process_group()


@pytest.mark.ddp
def test_two_processes_equal_one_process(tmp_path):
    out = tmp_path / "ddp.pt"
    mp.spawn(_ddp_worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    ddp = torch.load(out)
    u1, u2 = _student(dtype=torch.float32)
    v1, v2 = _clustered_guide(CLUSTERS, dtype=torch.float32)
    u1.requires_grad_(True)
    loss = guided_contrastive_loss(u1, u2, v1, v2, 0.2, 0.8, 2, gather=False, density_k=3)
    loss.backward()
    assert ddp["loss"].item() == pytest.approx(loss.item(), rel=1e-5)
    # DDP averages gradients of per-rank means; the one-process mean has the same gradient.
    torch.testing.assert_close(ddp["grad"], u1.grad, rtol=1e-5, atol=1e-6)
    bank = GuidedPositiveBank(size=32, guide_dim=4, student_dim=5)
    bank.push(
        torch.cat([u1, u2]).detach(), torch.cat([v1, v2]), torch.tensor(CLUSTERS), gather=False
    )
    for key, value in bank.state_dict().items():
        torch.testing.assert_close(ddp["bank"][key], value)
