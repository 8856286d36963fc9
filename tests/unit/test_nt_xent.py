"""NT-Xent against a slow reference written from the formula, on 1 process and on 2 gloo processes."""

import math
import os

import pytest
import torch
import torch.multiprocessing as mp

from ltcl.errors import ConfigError
from ltcl.losses import nt_xent
from tests.helpers import free_port


def reference_nt_xent(z1, z2, tau):
    """l_i = -log(exp(s_ip/tau) / sum_{k != i} exp(s_ik/tau)), averaged over all 2N views."""
    z = torch.cat([z1, z2]).double()
    z = z / z.norm(dim=1, keepdim=True)
    n = z1.shape[0]
    total = 0.0
    for i in range(2 * n):
        positive = i + n if i < n else i - n
        numerator = math.exp(float(z[i] @ z[positive]) / tau)
        denominator = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(2 * n) if k != i)
        total += -math.log(numerator / denominator)
    return total / (2 * n)


@pytest.mark.parametrize("tau", [0.1, 0.2, 0.5])
def test_matches_slow_reference(tau):
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g)
    assert nt_xent(z1, z2, tau, gather=False).item() == pytest.approx(
        reference_nt_xent(z1, z2, tau), rel=1e-5
    )


def test_closed_form_for_identical_views():
    # All embeddings equal: every similarity is 1, so l_i = log(2N - 1).
    z = torch.ones(4, 3)
    assert nt_xent(z, z.clone(), 0.2, gather=False).item() == pytest.approx(math.log(7), rel=1e-6)


def test_gradient_lowers_loss():
    g = torch.Generator().manual_seed(1)
    z1 = torch.randn(8, 4, generator=g, requires_grad=True)
    z2 = torch.randn(8, 4, generator=g, requires_grad=True)
    opt = torch.optim.SGD([z1, z2], lr=0.5)
    first = nt_xent(z1, z2, 0.2, gather=False)
    for _ in range(20):
        opt.zero_grad()
        nt_xent(z1, z2, 0.2, gather=False).backward()
        opt.step()
    assert nt_xent(z1, z2, 0.2, gather=False).item() < first.item() - 0.1


def test_bad_temperature():
    with pytest.raises(ConfigError, match="temperature"):
        nt_xent(torch.randn(2, 3), torch.randn(2, 3), temperature=0.0)


def _model_and_data():
    """A bias-free linear map on fixed inputs: no BN, no randomness (lightly's equivalence test)."""
    g = torch.Generator().manual_seed(3)
    weight = torch.randn(4, 6, generator=g)
    x1, x2 = torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g)
    return weight, x1, x2


def _ddp_worker(rank, world, port, out_path):
    import torch.distributed as dist

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    weight, x1, x2 = _model_and_data()
    weight.requires_grad_(True)
    shard = slice(rank * 4, rank * 4 + 4)
    # Rank-asymmetric: rank 1 also scales its views, so a backward that drops other
    # ranks' contributions cannot pass by symmetry.
    scale = 1.0 + rank
    loss = nt_xent(scale * x1[shard] @ weight.T, scale * x2[shard] @ weight.T, 0.2)
    loss.backward()
    grad = weight.grad.clone()
    dist.all_reduce(grad)
    grad /= world  # what DDP does to parameter gradients
    losses = [torch.zeros(1) for _ in range(world)]
    dist.all_gather(losses, loss.detach().reshape(1))
    if rank == 0:
        torch.save({"grad": grad, "loss": torch.cat(losses).mean()}, out_path)
    dist.destroy_process_group()


@pytest.mark.ddp
def test_two_processes_equal_one_process(tmp_path):
    out = tmp_path / "ddp.pt"
    mp.spawn(_ddp_worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    ddp = torch.load(out)

    weight, x1, x2 = _model_and_data()
    weight.requires_grad_(True)
    scale = torch.cat([torch.ones(4, 1), 2 * torch.ones(4, 1)])
    loss = nt_xent(scale * x1 @ weight.T, scale * x2 @ weight.T, 0.2, gather=False)
    loss.backward()
    assert ddp["loss"].item() == pytest.approx(loss.item(), rel=1e-5)
    torch.testing.assert_close(ddp["grad"], weight.grad, rtol=1e-5, atol=1e-6)
