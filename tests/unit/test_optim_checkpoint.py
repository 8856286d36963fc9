"""Parameter groups, LR scaling, warm-up + cosine, LARS, atomic checkpoints and resume paths."""

import math

import pytest
import torch
from torch import nn

from ltcl.errors import ConfigError
from ltcl.optim import LARS, parameter_groups, scaled_learning_rate, warmup_cosine_factor
from ltcl.run import checkpoints as ckpt


def test_no_weight_decay_on_bias_and_norm():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    decay, no_decay = parameter_groups([model], weight_decay=1e-4)
    assert {p.shape for p in decay["params"]} == {torch.Size([4, 3, 3, 3]), torch.Size([2, 4])}
    assert len(no_decay["params"]) == 4 and no_decay["weight_decay"] == 0.0  # 2 biases, BN w/b
    assert len(parameter_groups([model], 1e-4, exclude_bias_and_norm=False)) == 1


def test_learning_rate_rules():
    assert scaled_learning_rate(0.5, 256, 512, "linear") == pytest.approx(0.25)
    assert scaled_learning_rate(0.5, 256, 512, "sqrt") == pytest.approx(0.5 / math.sqrt(2))
    assert scaled_learning_rate(0.5, 256, 512, "none") == 0.5
    with pytest.raises(ConfigError, match="scaling"):
        scaled_learning_rate(0.5, 256, 512, "cubic")


def test_warmup_then_cosine():
    values = [warmup_cosine_factor(s, 100, 10, 0.0) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[10] == pytest.approx(1.0)
    assert values[55] == pytest.approx(0.5, abs=0.02)
    assert all(a >= b for a, b in zip(values[10:], values[11:], strict=False))
    assert warmup_cosine_factor(100, 100, 10, 0.01) == pytest.approx(0.01)


def test_lars_trust_ratio_step():
    w = nn.Parameter(torch.tensor([3.0, 4.0]))
    w.grad = torch.tensor([0.6, 0.8])
    LARS([w], lr=1.0, momentum=0.0, eta=0.1).step()
    # trust = eta * |w| / |g| = 0.1 * 5 / 1 = 0.5; update = lr * trust * g
    torch.testing.assert_close(w.data, torch.tensor([3.0 - 0.3, 4.0 - 0.4]))


def test_atomic_save_keeps_the_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    ckpt.atomic_torch_save({"epoch": 1}, path)

    def broken_save(obj, handle):
        handle.write(b"partial")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(ckpt.torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.atomic_torch_save({"epoch": 2}, path)
    monkeypatch.undo()
    assert torch.load(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_resolve_resume_path(tmp_path):
    assert ckpt.resolve_resume_path("last", tmp_path) is None
    (tmp_path / "last.ckpt").write_bytes(b"x")
    assert ckpt.resolve_resume_path("last", tmp_path) == str(tmp_path / "last.ckpt")
    assert ckpt.resolve_resume_path(None, tmp_path) is None
    with pytest.raises(ConfigError, match="does not exist"):
        ckpt.resolve_resume_path(str(tmp_path / "nope.ckpt"), tmp_path)


def test_one_schedule_over_two_runs_equals_one_run():
    """stages.one_schedule: the guide (epochs [0, G)) and the student (epochs [G, G+S)) step
    through the LR values of one (G+S)-epoch run: one warm-up, one cosine."""
    from types import SimpleNamespace

    from ltcl.methods.simclr import SimCLRModule

    def lrs(epochs, steps_per_epoch, **schedule):
        module = SimCLRModule(
            backbone={"name": "small_convnet", "width": 4},
            optimizer=lambda params, lr: torch.optim.SGD(params, lr=lr),
            schedule={"warmup_epochs": 2, **schedule},
        )
        module._trainer = SimpleNamespace(
            estimated_stepping_batches=epochs * steps_per_epoch, max_epochs=epochs
        )
        config = module.configure_optimizers()
        optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
        out = []
        for _ in range(epochs * steps_per_epoch):
            out.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return out

    whole = lrs(10, 3)
    guide = lrs(4, 3, horizon_epochs=10, start_epoch=0)
    student = lrs(6, 3, horizon_epochs=10, start_epoch=4)
    assert guide + student == pytest.approx(whole)
    assert lrs(4, 3) != pytest.approx(guide)  # without it, each run warms up and decays alone
