"""Stage 2 (method=student) on the embedded data: frozen guide, init, resume and bad input."""

from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback

from ltcl.cli.train import train
from ltcl.errors import ConfigError
from ltcl.models.checkpoints import load_embedding_network
from tests.helpers import StopAfterEpoch, compose_train

SMALL = [
    "model.backbone.width=8",
    "data.global_batch_size=32",
    "trainer.limit_train_batches=3",
    "optim.schedule.warmup_epochs=1",
    "eval.protocols=[]",
]
GUIDE = [
    *SMALL,
    "method=guide",
    "ood=embedded",
    "ood.source.num_crops=400",
    "trainer.max_epochs=2",
    "method.sampler.warmup_epochs=1",
    "method.sampler.interval=1",
    "method.sampler.budget=100",
    "method.sampler.kmeans_iterations=5",
    "method.sampler.refine_iterations=5",
]


@pytest.fixture(scope="module")
def guide_checkpoint(tmp_path_factory) -> Path:
    """A tiny stage-1 run (2 epochs, one sampling round), trained once for this file."""
    folder = tmp_path_factory.mktemp("guide")
    train(compose_train(folder, GUIDE))
    return folder / "run" / "checkpoints" / "last.ckpt"


def student(tmp_path, guide, extra=()):
    overrides = [*SMALL, "method=student", f"method.guide_checkpoint={guide}", *extra]
    return compose_train(tmp_path, overrides)


def checkpoint(tmp_path):
    return torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)


class GuideWatch(Callback):
    """Checks at every step that the guide is frozen, in eval mode and outside the optimiser."""

    def __init__(self):
        self.steps = 0
        self.guide_state = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        guide = pl_module.guide
        assert not guide.training and not any(p.requires_grad for p in guide.parameters())
        optimised = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
        assert not optimised & {id(p) for p in guide.parameters()}
        self.steps += 1

    def on_train_end(self, trainer, pl_module):
        self.guide_state = {k: v.clone() for k, v in pl_module.guide.state_dict().items()}


def test_student_trains_with_a_frozen_guide(tmp_path, guide_checkpoint):
    watch = GuideWatch()
    train(student(tmp_path, guide_checkpoint, ["trainer.max_epochs=2"]), extra_callbacks=[watch])
    assert watch.steps == 6
    guide, _ = load_embedding_network(guide_checkpoint)
    backbone, projector = guide.backbone, guide.projector
    original = {
        **{f"backbone.{k}": v for k, v in backbone.state_dict().items()},
        **{f"projector.{k}": v for k, v in projector.state_dict().items()},
    }
    # The guide's parameters and BN statistics did not move during stage 2 ...
    assert set(watch.guide_state) == set(original)
    for name, value in original.items():
        assert torch.equal(watch.guide_state[name], value), name
    # ... while the student, initialised from it, did; and the guide is not saved twice.
    saved = checkpoint(tmp_path)
    assert set(saved["state_dict"]) == set(original)
    moved = [n for n, v in original.items() if v.is_floating_point()]
    assert any(not torch.equal(saved["state_dict"][n], original[n]) for n in moved)
    assert saved["ltcl_guide"]["path"] == str(guide_checkpoint.resolve())
    assert saved["hyper_parameters"]["name"] == "student"


def test_student_starts_from_the_guide_or_from_scratch(guide_checkpoint):
    from hydra.utils import instantiate

    backbone = load_embedding_network(guide_checkpoint)[0].backbone
    reference = backbone.state_dict()
    for init, equal in (("guide", True), ("scratch", False)):
        cfg = student(Path("/tmp/unused"), guide_checkpoint, [f"method.init={init}"])
        module = instantiate(cfg.method, _convert_="all")
        weights = module.backbone.state_dict()
        same = all(torch.equal(weights[k], reference[k]) for k in reference)
        assert same is equal, init


class GuideCalls(Callback):
    """Counts the frozen guide's forward passes during training."""

    def __init__(self):
        self.calls = 0

    def on_train_start(self, trainer, pl_module):
        pl_module.guide.register_forward_hook(lambda *_: setattr(self, "calls", self.calls + 1))
        pl_module.guide.backbone.register_forward_hook(
            lambda *_: setattr(self, "calls", self.calls + 1)
        )


PLAIN = ["method.k_pos=0", "method.lambda_dl=0", "method.repulsion_weights=false"]


@pytest.mark.slow
def test_plain_student_skips_the_guide_and_trains_the_same_weights(
    tmp_path, guide_checkpoint, monkeypatch
):
    """With the three stage-2 switches off no loss reads the guide's views: the guide is not
    run, and the weights are bit for bit those of a run that computes the guide's views."""
    from ltcl.methods.student import StudentModule

    extra = ["trainer.max_epochs=2", *PLAIN]
    skipped = GuideCalls()
    train(student(tmp_path / "skip", guide_checkpoint, extra), extra_callbacks=[skipped])
    monkeypatch.setattr(StudentModule, "reads_guide_views", property(lambda self: True))
    computed = GuideCalls()
    train(student(tmp_path / "guide", guide_checkpoint, extra), extra_callbacks=[computed])
    assert skipped.calls == 0 and computed.calls > 0
    a, b = checkpoint(tmp_path / "skip"), checkpoint(tmp_path / "guide")
    assert a["global_step"] == b["global_step"] == 6
    for name, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][name]), name


def test_any_guided_term_runs_the_guide(guide_checkpoint):
    from hydra.utils import instantiate

    for extra in (["method.k_pos=1"], ["method.repulsion_weights=true"], ["method.density_k=2"],
                  ["method.positive_bank=64"], ["method.lambda_dl=0.5"]):  # fmt: skip
        overrides = [*PLAIN, *extra]
        cfg = student(Path("/tmp/unused"), guide_checkpoint, overrides)
        assert instantiate(cfg.method, _convert_="all").reads_guide_views, extra
    cfg = student(Path("/tmp/unused"), guide_checkpoint, PLAIN)
    assert not instantiate(cfg.method, _convert_="all").reads_guide_views


VARIANTS = [
    "method.positive_bank=200",
    "method.density_k=4",
    "method.distillation=backbone",
    "method.delta=0.0",
]


@pytest.mark.slow
@pytest.mark.parametrize("variants", [[], VARIANTS], ids=["defaults", "variants"])
def test_resumed_student_equals_the_uninterrupted_run(tmp_path, guide_checkpoint, variants):
    """Bit for bit, also with the stage-2 variants on (the bank's entries are checkpoint state)."""
    extra = ["trainer.max_epochs=3", *variants]
    train(student(tmp_path / "full", guide_checkpoint, extra))
    train(student(tmp_path / "split", guide_checkpoint, extra), extra_callbacks=[StopAfterEpoch(0)])
    train(student(tmp_path / "split", guide_checkpoint, extra))
    full, split = checkpoint(tmp_path / "full"), checkpoint(tmp_path / "split")
    assert full["global_step"] == split["global_step"] == 9
    for name, value in full["state_dict"].items():
        assert torch.equal(value, split["state_dict"][name]), name
    if variants:
        assert int(full["state_dict"]["positive_bank.pushed"]) == 9 * 2 * 32  # 9 steps of 32 images
        assert (full["state_dict"]["positive_bank.labels"] >= 0).all()  # the bank is full


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["model.backbone.width=16"], "backbone"),
        (["model.projector.out_dim=64"], "embedding"),
        (["method.delta=-2"], r"delta must be >= -1"),
        (["method.k_pos=-1"], "k_pos"),
        (["method.init=random"], "unknown student init"),
        (["method.distillation=mse"], "unknown distillation"),
        (["method.density_k=-1"], "density_k"),
        (["method.positive_bank=-5"], "bank size"),
    ],
)
def test_bad_student_config_fails_before_training(tmp_path, guide_checkpoint, extra, match):
    with pytest.raises(ConfigError, match=match):
        train(student(tmp_path, guide_checkpoint, ["trainer.max_epochs=1", *extra]))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_student_without_guide_or_with_a_missing_one(tmp_path):
    with pytest.raises(ConfigError, match="method=student needs a guide"):
        train(compose_train(tmp_path, [*SMALL, "method=student", "trainer.max_epochs=1"]))
    with pytest.raises(ConfigError, match="does not exist"):
        train(student(tmp_path, tmp_path / "nowhere.ckpt", ["trainer.max_epochs=1"]))


def test_guide_from_other_data_is_refused_before_training(tmp_path, guide_checkpoint):
    watch = GuideWatch()
    cfg = student(
        tmp_path, guide_checkpoint, ["trainer.max_epochs=1", "data.split.imbalance_ratio=5"]
    )
    with pytest.raises(ConfigError, match="guide checkpoint .*class counts"):
        train(cfg, extra_callbacks=[watch])
    assert watch.steps == 0
