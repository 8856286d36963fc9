"""2 gloo processes train exactly what 1 process trains with the same global batch.

For each method's loss: the same global batches (ltcl's samplers), negatives gathered with
gradients and rank offsets, DDP's gradient average, the same OOD round, and metrics reduced
over processes. The model is per-sample (no BatchNorm: BN statistics of 2 x 16 images differ
from 1 x 32, and SyncBN is GPU-only) and the augmentation deterministic (each rank draws its
own augmentations, by design), so any difference comes from the distributed code.
"""

import csv

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from ltcl.cli.train import train
from ltcl.data.randaugment import BatchedRandAugment, RandAugmentDraw
from tests.helpers import DieAtEpochStart, compose_train

PER_SAMPLE = [
    "model.backbone.width=8",
    "+model.backbone.norm=none",
    "+model.projector.batch_norm=false",
    "+data.augment.crop_scale=[1.0,1.0]",
    "+data.augment.crop_ratio=[1.0,1.0]",
    "+data.augment.flip_p=0",
    "+data.augment.jitter_p=0",
    "+data.augment.grayscale_p=0",
    "data.global_batch_size=32",
    "trainer.precision=32",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=3",
    "trainer.log_every_n_steps=1",
    "trainer.check_val_every_n_epoch=1",
    "optim.schedule.warmup_epochs=0",
    "eval.protocols=[]",
]
GUIDE = [
    "method=guide",
    "ood=embedded",
    "ood.source.num_crops=400",
    "method.sampler.warmup_epochs=0",
    "method.sampler.interval=1",
    "method.sampler.budget=100",
    "method.sampler.kmeans_iterations=5",
    "method.sampler.refine_iterations=5",
]


def run(folder, overrides, processes, callbacks=None):
    extra = ["trainer=ddp_cpu", "trainer.accelerator=cpu"] if processes == 2 else []
    previous = torch.multiprocessing.get_sharing_strategy()
    torch.multiprocessing.set_sharing_strategy("file_system")
    try:
        train(compose_train(folder, [*PER_SAMPLE, *overrides, *extra]), extra_callbacks=callbacks)
    finally:
        torch.multiprocessing.set_sharing_strategy(previous)
    checkpoint = torch.load(folder / "run/checkpoints/last.ckpt", weights_only=False)
    versions = sorted((folder / "run/csv").glob("version_*"))
    with open(versions[0] / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    return checkpoint, rows


def logged(rows, key):
    return [float(r[key]) for r in rows if r.get(key) not in (None, "")]


def assert_same_training(one, two):
    (ckpt1, rows1), (ckpt2, rows2) = one, two
    assert ckpt1["global_step"] == ckpt2["global_step"] == 6
    for name, value in ckpt1["state_dict"].items():
        torch.testing.assert_close(ckpt2["state_dict"][name], value, rtol=1e-4, atol=1e-5)
    # The logged training loss is the mean over processes of each rank's local mean: the
    # global-batch loss. The kNN monitor gathers every rank's features.
    torch.testing.assert_close(
        torch.tensor(logged(rows2, "train/loss_step")),
        torch.tensor(logged(rows1, "train/loss_step")),
        rtol=1e-4,
        atol=1e-5,
    )
    assert logged(rows1, "val/knn_acc") and logged(rows2, "val/knn_acc") == logged(
        rows1, "val/knn_acc"
    )


@pytest.mark.ddp
def test_simclr_two_processes_equal_one(tmp_path):
    assert_same_training(run(tmp_path / "one", [], 1), run(tmp_path / "two", [], 2))


@pytest.mark.ddp
def test_guide_two_processes_equal_one(tmp_path):
    one, two = run(tmp_path / "one", GUIDE, 1), run(tmp_path / "two", GUIDE, 2)
    assert_same_training(one, two)
    a, b = one[0]["ood_sampler"], two[0]["ood_sampler"]
    assert a["round"] == b["round"] == 3
    assert torch.equal(a["picked"], b["picked"]) and torch.equal(
        a["picked_labels"], b["picked_labels"]
    )


STUDENT_VARIANTS = [  # docs/method.md, "Stage 2 variants": the bank is pushed gathered views
    "method.positive_bank=64",
    "method.density_k=4",
    "method.distillation=backbone",
]


PLAIN_STUDENT = ["method.k_pos=0", "method.lambda_dl=0", "method.repulsion_weights=false"]


@pytest.mark.ddp
@pytest.mark.parametrize(
    "variants", [[], STUDENT_VARIANTS, PLAIN_STUDENT], ids=["defaults", "variants", "plain"]
)
def test_student_two_processes_equal_one(tmp_path, variants):
    train(compose_train(tmp_path / "guide", [*PER_SAMPLE, *GUIDE, "trainer.max_epochs=1"]))
    guide = tmp_path / "guide/run/checkpoints/last.ckpt"
    student = ["method=student", f"method.guide_checkpoint={guide}", "method.delta=0.5", *variants]
    one, two = run(tmp_path / "one", student, 1), run(tmp_path / "two", student, 2)
    assert_same_training(one, two)
    if variants == STUDENT_VARIANTS:  # the bank's entries (buffers) were compared above; filled
        assert int(one[0]["state_dict"]["positive_bank.pushed"]) > 64


@pytest.mark.ddp
def test_killed_two_process_guide_resumes_to_the_uninterrupted_result(tmp_path):
    """Killed after epoch 0 (the round before epoch 1 is in last.ckpt), restarted with the
    same command: parameters and sampler state end as in the uninterrupted run."""
    one = run(tmp_path / "one", GUIDE, 1)
    with pytest.raises(Exception, match="Killed"):
        run(tmp_path / "two", GUIDE, 2, callbacks=[DieAtEpochStart(1)])
    two = run(tmp_path / "two", GUIDE, 2)
    assert two[0]["global_step"] == 6
    for name, value in one[0]["state_dict"].items():
        torch.testing.assert_close(two[0]["state_dict"][name], value, rtol=1e-4, atol=1e-5)
    a, b = one[0]["ood_sampler"], two[0]["ood_sampler"]
    assert a["round"] == b["round"] == 3
    for key in ("picked", "picked_labels", "id_pseudo_labels"):
        assert torch.equal(a[key], b[key]), key


@pytest.mark.ddp
def test_sdclr_two_processes_equal_one(tmp_path):
    """The pruning masks come from the (identical) dense weights on every process."""
    one = run(tmp_path / "one", ["method=sdclr"], 1)
    two = run(tmp_path / "two", ["method=sdclr"], 2)
    assert_same_training(one, two)
    masks = [k for k in one[0]["state_dict"] if k.startswith("pruned.mask_")]
    assert masks and all(
        torch.equal(one[0]["state_dict"][k], two[0]["state_dict"][k]) for k in masks
    )


@pytest.mark.ddp
def test_bcl_loss_ema_two_processes_equal_one(tmp_path):
    """Each process updates the EMA with the gathered per-sample losses of the global batch, so
    the table (and the boost weights drawn from it) is the one a single process keeps. One
    epoch: the boost itself draws per rank, as every augmentation does."""
    bcl = ["method=bcl_d", "trainer.max_epochs=1"]
    one, two = run(tmp_path / "one", bcl, 1), run(tmp_path / "two", bcl, 2)
    for name, value in one[0]["state_dict"].items():
        torch.testing.assert_close(two[0]["state_dict"][name], value, rtol=1e-4, atol=1e-5)
    a, b = one[0]["bcl_loss_ema"], two[0]["bcl_loss_ema"]
    assert torch.equal(a["seen"], b["seen"]) and int(a["seen"].sum()) == 3 * 32
    torch.testing.assert_close(b["values"], a["values"], rtol=1e-4, atol=1e-6)


@pytest.mark.ddp
@pytest.mark.parametrize("peer", ["colt"])
def test_colt_two_processes_equal_one(tmp_path, peer):
    # the guide's tiny schedule; COLT's k-means has no refinement, and two starts. Both COLT
    # presets mix the picks into the ID set (gathered over ranks of different lengths).
    colt = [f"method={peer}", *GUIDE[1:-1], "method.sampler.kmeans_inits=2"]
    one, two = run(tmp_path / "one", colt, 1), run(tmp_path / "two", colt, 2)
    assert_same_training(one, two)
    a, b = one[0]["ood_sampler"], two[0]["ood_sampler"]
    assert torch.equal(a["picked"], b["picked"])
    ta, tb = a["strategy"]["tail_scores"], b["strategy"]["tail_scores"]
    assert torch.equal(ta["seen"], tb["seen"])
    torch.testing.assert_close(tb["values"], ta["values"], rtol=1e-4, atol=1e-6)


class CoinFreeRandAugment(BatchedRandAugment):
    """BCL's boost with the random draw made a function of the sample: one op (Brightness, at
    the sample's own magnitude and sign +), applied where the sample's probability is >= 0.5.
    Everything else (the EMA, the weights, the magnitudes, the hook, the op) is the real code."""

    def __init__(self):
        super().__init__(ops=("brightness",))

    def draw(self, n, k, probabilities, generator=None):
        p = probabilities.detach().cpu().double()
        return RandAugmentDraw(
            ops=torch.zeros(n, k, dtype=torch.long),
            applied=(p >= 0.5)[:, None].expand(n, k).clone(),
            signs=torch.ones(n, k, dtype=torch.float64),
            centres=torch.full((n, k, 2), 0.5, dtype=torch.float64),
        )


class UseCoinFreeBoost(Callback):
    def on_fit_start(self, trainer, pl_module):
        pl_module.randaugment = CoinFreeRandAugment()


@pytest.mark.ddp
def test_bcl_with_the_boost_on_two_processes_equal_one(tmp_path):
    """BCL-I for 2 epochs: the second is boosted from the first epoch's loss EMA. Every rank
    looks up its own images' weights in the same table, so with the draw made per sample
    (CoinFreeRandAugment) 2 processes train exactly what 1 process trains."""
    bcl = ["method=bcl"]
    one = run(tmp_path / "one", bcl, 1, callbacks=[UseCoinFreeBoost()])
    two = run(tmp_path / "two", bcl, 2, callbacks=[UseCoinFreeBoost()])
    assert_same_training(one, two)
    # the boost was on in the second epoch (its mean weight is logged) and equal on both
    boost1, boost2 = logged(one[1], "train/boost_mean"), logged(two[1], "train/boost_mean")
    assert boost1 and boost1 == pytest.approx(boost2, abs=1e-6) and 0 < boost1[0] < 1
    torch.testing.assert_close(
        two[0]["bcl_loss_ema"]["values"], one[0]["bcl_loss_ema"]["values"], rtol=1e-4, atol=1e-6
    )
