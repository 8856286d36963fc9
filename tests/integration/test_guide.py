"""Stage 1 (method=guide) on the embedded data with the embedded OOD pool: rounds, mixing, resume."""

import numpy as np
import pytest
import torch
from lightning.pytorch import Callback

from ltcl.cli.train import train
from ltcl.errors import ConfigError
from tests.helpers import StopAfterEpoch, compose_train

GUIDE = [
    "method=guide",
    "ood=embedded",
    "ood.source.num_crops=400",
    "model.backbone.width=8",
    "data.global_batch_size=32",
    "trainer.limit_train_batches=3",
    "optim.schedule.warmup_epochs=1",
    "method.sampler.warmup_epochs=1",
    "method.sampler.interval=1",
    "method.sampler.budget=100",
    "method.sampler.kmeans_iterations=5",
    "method.sampler.refine_iterations=5",
    "eval.protocols=[knn]",
    "eval.plots=false",
]


def last_checkpoint(tmp_path):
    return torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)


def test_guide_runs_rounds_and_stores_sampler_state(tmp_path):
    train(compose_train(tmp_path, [*GUIDE, "trainer.max_epochs=3"]))
    state = last_checkpoint(tmp_path)["ood_sampler"]
    # Rounds before epochs 1, 2 and 3 (W = 1, R = 1; the last one for a possible resume).
    assert state["round"] == 3 and [h["epoch"] for h in state["history"]] == [1, 2, 3]
    picked = state["picked"].numpy()
    assert len(picked) == 100 and len(np.unique(picked)) == 100
    assert sum(state["history"][-1]["budgets"]) == 100
    labels = state["picked_labels"].numpy()
    assert labels.min() >= 0 and labels.max() < 10
    assert state["id_pseudo_labels"].shape[0] == 403
    # The embedded pool's crops carry their photo as the class: the round log counts them.
    histogram = state["history"][-1]["pool_classes"]
    assert sum(histogram.values()) == 100 and set(histogram) <= {"china", "flower"}
    assert set(state["history"][-1]["seconds"]) == {"embed", "cluster", "select"}
    # For the analysis (labels never used in training): each cluster's true ID classes and the
    # pool classes it picked, every ID image and every pick counted once (top 5 of 10 classes
    # per cluster, so at most all).
    last = state["history"][-1]
    id_counts = sum(sum(c.values()) for c in last["id_classes_by_cluster"].values())
    assert 0 < id_counts <= 403 and len(last["id_classes_by_cluster"]) <= 10
    picks = sum(sum(c.values()) for c in last["pool_classes_by_cluster"].values())
    assert picks == 100


@pytest.mark.slow
def test_resumed_run_has_the_uninterrupted_sampler_state(tmp_path):
    full = tmp_path / "full"
    train(compose_train(full, [*GUIDE, "trainer.max_epochs=3"]))
    split = tmp_path / "split"
    cfg = compose_train(split, [*GUIDE, "trainer.max_epochs=3", "eval.protocols=[]"])
    train(cfg, extra_callbacks=[StopAfterEpoch(1)])
    assert last_checkpoint(split)["ood_sampler"]["round"] == 2
    train(compose_train(split, [*GUIDE, "trainer.max_epochs=3"]))
    a, b = last_checkpoint(full)["ood_sampler"], last_checkpoint(split)["ood_sampler"]
    assert a["round"] == b["round"] == 3
    assert torch.equal(a["picked"], b["picked"])
    assert torch.equal(a["picked_labels"], b["picked_labels"])
    assert torch.equal(a["id_pseudo_labels"], b["id_pseudo_labels"])
    assert torch.equal(a["centroids"], b["centroids"])
    sizes = [(h["cluster_sizes"], h["budgets"]) for h in a["history"]]
    assert sizes == [(h["cluster_sizes"], h["budgets"]) for h in b["history"]]


def test_guide_without_ood_pool_is_a_clear_error(tmp_path):
    overrides = [o for o in GUIDE if not o.startswith("ood")]
    with pytest.raises(ConfigError, match="OOD pool"):
        train(compose_train(tmp_path, [*overrides, "trainer.max_epochs=2"]))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "method.sampler.budget=100000",
            "method.sampler.budget=100000 OOD images per round is larger",
        ),
        (
            "method.sampler.num_clusters=100000",
            "method.sampler.num_clusters=100000 is larger than the ID",
        ),
        ("method.sampler.dof=0", "method.sampler.dof must be > 0"),
        ("method.sampler.gamma=-1", "method.sampler.gamma must be >= 0"),
    ],
)
def test_sampler_settings_that_cannot_work_stop_before_the_first_step(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        train(compose_train(tmp_path, [*GUIDE, "method.sampler.warmup_epochs=3", override]))
    assert not list((tmp_path / "run").rglob("*.ckpt"))  # no epoch ran


def test_no_warmup_runs_the_first_round_before_epoch_zero(tmp_path):
    overrides = [
        *GUIDE,
        "method.sampler.warmup_epochs=0",
        "method.sampler.interval=2",
        "trainer.max_epochs=2",
    ]
    train(compose_train(tmp_path, overrides))
    state = last_checkpoint(tmp_path)["ood_sampler"]
    # Before epoch 0 (at fit start, initial weights) and before epoch 2 (after the last epoch).
    assert [h["epoch"] for h in state["history"]] == [0, 2]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["colt", "random"])
def test_other_sampler_strategies(tmp_path, strategy):
    train(compose_train(tmp_path, [*GUIDE, f"method/sampler={strategy}", "trainer.max_epochs=2"]))
    checkpoint = last_checkpoint(tmp_path)
    state = checkpoint["ood_sampler"]
    assert state["round"] == 2 and len(np.unique(state["picked"].numpy())) == 100
    if strategy == "colt":
        tail = state["strategy"]["tail_scores"]
        assert bool(tail["seen"].any()) and float(tail["values"].max()) > 0
        assert state["picked_labels"].min() >= 0
    else:
        assert (state["picked_labels"] == -1).all()


class RecordSubsetPerRank(Callback):
    """Writes each process's OOD subset and pseudo labels at the end of training."""

    def __init__(self, folder):
        self.folder = str(folder)

    def on_train_end(self, trainer, pl_module):
        dm = trainer.datamodule
        torch.save(
            {
                "picked": torch.as_tensor(dm.ood_subset),
                "labels": torch.as_tensor(dm.ood_subset_labels),
            },
            f"{self.folder}/rank{trainer.global_rank}.pt",
        )


@pytest.mark.ddp
def test_two_processes_train_on_the_same_ood_subset(tmp_path):
    # ddp_spawn pickles the module to the workers; the default fd sharing cannot rebuild the
    # zero-size buffers of some augmentation modules ("unable to resize file").
    previous = torch.multiprocessing.get_sharing_strategy()
    torch.multiprocessing.set_sharing_strategy("file_system")
    try:
        _two_processes_same_subset(tmp_path)
    finally:
        torch.multiprocessing.set_sharing_strategy(previous)


def _two_processes_same_subset(tmp_path):
    cfg = compose_train(
        tmp_path,
        [
            *GUIDE,
            "trainer=ddp_cpu",
            "trainer.max_epochs=2",
            "trainer.accelerator=cpu",
            "eval.protocols=[]",
        ],
    )
    train(cfg, extra_callbacks=[RecordSubsetPerRank(tmp_path)])
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert len(rank0["picked"]) == 100
    assert torch.equal(rank0["picked"], rank1["picked"])
    assert torch.equal(rank0["labels"], rank1["labels"])
    state = last_checkpoint(tmp_path)["ood_sampler"]
    assert torch.equal(state["picked"], rank0["picked"])


@pytest.mark.ddp
def test_two_processes_pick_the_same_subset_as_one_process(tmp_path):
    """The round of 2 gloo processes equals the round of 1 process on the same weights.

    With W = 0 the round runs at fit start on the seeded initial weights, which are equal in
    both runs (after training they are not: BN statistics of 2 x 16 images differ from
    1 x 32). The ID set is embedded whole, not sharded, and the candidates follow the seed.
    """
    previous = torch.multiprocessing.get_sharing_strategy()
    torch.multiprocessing.set_sharing_strategy("file_system")
    try:
        common = [*GUIDE, "method.sampler.warmup_epochs=0", "method.sampler.interval=100"]
        common += ["trainer.max_epochs=1", "trainer.limit_train_batches=1", "eval.protocols=[]"]
        train(compose_train(tmp_path / "one", common))
        two = compose_train(
            tmp_path / "two", [*common, "trainer=ddp_cpu", "trainer.accelerator=cpu"]
        )
        train(two, extra_callbacks=[RecordSubsetPerRank(tmp_path / "two")])
    finally:
        torch.multiprocessing.set_sharing_strategy(previous)
    one = last_checkpoint(tmp_path / "one")["ood_sampler"]
    both = last_checkpoint(tmp_path / "two")["ood_sampler"]
    assert one["round"] == both["round"] == 1 and len(one["picked"]) == 100
    for key in ("picked", "picked_labels", "id_pseudo_labels"):
        assert torch.equal(one[key], both[key]), key
    # Float sums in another thread layout: equal to rounding, not bit for bit.
    torch.testing.assert_close(one["centroids"], both["centroids"], rtol=1e-4, atol=1e-5)
    for rank in (0, 1):
        per_rank = torch.load(tmp_path / "two" / f"rank{rank}.pt")
        assert torch.equal(per_rank["picked"], one["picked"])
        assert torch.equal(per_rank["labels"], one["picked_labels"])
