"""The long-tailed DataModule and the OOD pool DataModule on the embedded data and fixtures."""

import numpy as np
import pytest
import torch

from ltcl.data.datamodule import LongTailDataModule, carve_balanced
from ltcl.data.embedded import digits_long_tailed_source, sample_photo_crops
from ltcl.data.ood_pool import OODPoolDataModule
from ltcl.errors import ConfigError, DataError

SPLIT = {"imbalance_ratio": 10, "n_max": 100, "val_per_class": 20, "seed": 0}


def make_dm(tmp_path, **overrides):
    kwargs = dict(
        name="digits_lt",
        num_classes=10,
        train_source=digits_long_tailed_source,
        test_per_class=30,
        split=SPLIT,
        augment={"recipe": "cifar", "size": 32},
        global_batch_size=32,
        split_dir=str(tmp_path / "split"),
    )
    kwargs.update(overrides)
    dm = LongTailDataModule(**kwargs)
    dm.setup("fit")
    return dm


def test_sets_are_disjoint_and_long_tailed(tmp_path):
    dm = make_dm(tmp_path)
    counts = dm.split.class_counts
    assert counts[0] == 100 and counts[-1] == 10 and sorted(counts, reverse=True) == list(counts)
    train = set(dm.train_set.indices.tolist())
    val, test = set(dm.val_set.indices.tolist()), set(dm.test_set.indices.tolist())
    bank = set(dm.bank_set.indices.tolist())
    assert not (train & val) and not (train & test) and not (val & test) and not (bank & test)
    assert train <= bank and not (bank & val)
    assert len(test) == 300 and len(val) == 200
    assert dm.class_groups == {"many": [0, 1, 2, 3], "medium": [4, 5, 6], "few": [7, 8, 9]}
    assert (tmp_path / "split" / "split.json").is_file()


def test_items_carry_their_index_and_batched_views_differ(tmp_path):
    dm = make_dm(tmp_path)
    combined, _, _ = next(iter(dm.train_dataloader()))
    assert list(combined) == ["id"]  # one batch shape for every method
    batch = combined["id"]
    assert batch["image_uint8"].dtype == torch.uint8 and batch["index"].shape == (32,)
    labels = torch.tensor(
        [dm.train_set.source.labels[dm.train_set.indices[i]] for i in batch["index"]]
    )
    assert torch.equal(labels, batch["label"])
    out = dm.on_after_batch_transfer(combined, 0)["id"]
    view1, view2 = out["views"]
    assert view1.shape == (32, 3, 32, 32) and view1.dtype == torch.float32
    assert not torch.allclose(view1, view2)


def test_per_sample_augmentation_in_workers(tmp_path):
    dm = make_dm(tmp_path, augment_on="workers")
    batch, _, _ = next(iter(dm.train_dataloader()))
    view1, view2 = batch["id"]["views"]
    assert view1.shape == (32, 3, 32, 32) and not torch.allclose(view1, view2)


def test_eval_loaders_are_complete_and_ordered(tmp_path):
    dm = make_dm(tmp_path)
    bank_loader, val_loader = dm.val_dataloader()
    seen = torch.cat([b["index"] for b in val_loader])
    assert torch.equal(seen, torch.arange(len(dm.val_set)))
    assert len(dm.test_dataloader()) == 2


def test_same_seed_same_split_other_seed_differs(tmp_path):
    a = make_dm(tmp_path / "a").split.train_indices
    b = make_dm(tmp_path / "b").split.train_indices
    c = make_dm(tmp_path / "c", split={**SPLIT, "seed": 1}).split.train_indices
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_batch_larger_than_train_set(tmp_path):
    with pytest.raises(ConfigError, match="global_batch_size"):
        make_dm(tmp_path, global_batch_size=100_000)


def test_wrong_class_count(tmp_path):
    with pytest.raises(ConfigError, match="num_classes"):
        make_dm(tmp_path, num_classes=100)


def test_unknown_options(tmp_path):
    with pytest.raises(ConfigError, match="augment_on"):
        make_dm(tmp_path, augment_on="gpu")
    with pytest.raises(ConfigError, match="split.kind"):
        make_dm(tmp_path, split={**SPLIT, "kind": "pareto"})
    with pytest.raises(ConfigError, match="group_rule"):
        make_dm(tmp_path, group_rule="quartiles")


def test_carve_balanced_needs_enough_images():
    labels = np.array([0] * 5 + [1] * 3)
    with pytest.raises(DataError, match="test_per_class"):
        carve_balanced(labels, 3, seed=0)
    taken, rest = carve_balanced(labels, 2, seed=0)
    assert len(taken) == 4 and len(rest) == 4 and not set(taken) & set(rest)


def test_ood_pool_candidates_are_seeded_per_round():
    pool = OODPoolDataModule(
        "crops", lambda: sample_photo_crops(num_crops=300, seed=0), candidates_per_round=50, seed=3
    )
    pool.setup()
    assert len(pool) == 300
    first, again, second = pool.candidates(0), pool.candidates(0), pool.candidates(1)
    assert np.array_equal(first, again) and not np.array_equal(first, second)
    assert len(np.unique(first)) == 50
    item = pool.training_dataset(first)[0]
    assert item["image_uint8"].shape == (3, 32, 32)


def test_empty_ood_pool_is_an_error():
    from ltcl.data.sources import ImageSource

    empty = ImageSource(
        labels=np.zeros(0, np.int64), classes=[], images=np.zeros((0, 32, 32, 3), np.uint8)
    )
    pool = OODPoolDataModule("empty", lambda: empty)
    with pytest.raises(DataError, match="no images"):
        pool.setup()


def test_train_and_test_classes_with_other_names_are_refused(tmp_path):
    """Same class count, other names (a, b, c vs a, b, z): z would be scored as c."""
    from ltcl.data.sources import ImageSource

    def source(names):
        labels = np.repeat(np.arange(3), 60)
        images = np.zeros((len(labels), 8, 8, 3), dtype=np.uint8)
        return lambda: ImageSource(labels=labels, classes=names, images=images, name="toy")

    with pytest.raises(DataError, match=r"name their classes differently \(\['c', 'z'\]\)"):
        make_dm(
            tmp_path,
            num_classes=3,
            train_source=source(["a", "b", "c"]),
            test_source=source(["a", "b", "z"]),
            split={"imbalance_ratio": 2, "n_max": 40, "val_per_class": 10, "seed": 0},
        )


def test_one_embedding_loop_for_every_set(tmp_path):
    """datamodule.embed: each set's images in order, the OOD pool by index, modules in eval
    mode during the loop and restored after it."""
    dm = make_dm(tmp_path)
    dm.attach_ood_pool(
        OODPoolDataModule("crops", lambda: sample_photo_crops(num_crops=100, seed=0), seed=3)
    )
    dm.setup("fit")
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.BatchNorm1d(3 * 32 * 32)).train()
    seen_modes = []

    def fn(images):
        seen_modes.append(net.training)
        return net(images)[:, :4]

    for which, dataset in (("train", dm.train_set), ("val", dm.val_set), ("test", dm.test_set)):
        out, labels = dm.embed(fn, which, device=torch.device("cpu"), modules=[net])
        assert out.shape == (len(dataset), 4)
        expected = [dataset.source.labels[j] for j in dataset.indices]
        assert labels.tolist() == [int(v) for v in expected]
    picks = np.array([5, 1, 7])
    out, labels = dm.embed(fn, "ood", picks, device=torch.device("cpu"), modules=[net])
    assert labels.tolist() == dm.ood_pool.pool.labels[picks].tolist()
    assert not any(seen_modes) and net.training


def test_an_index_file_that_selects_carved_test_images_is_refused_with_the_count(tmp_path):
    """Issue: an index file of the whole source put 103 of 300 carved test images into training,
    and the kNN bank held every test image. Now: refused, with the overlap count."""
    reference = make_dm(tmp_path / "ref")
    test = reference.test_set.indices
    pool = np.setdiff1d(np.arange(1000), test)
    leaky = tmp_path / "leaky.npy"
    np.save(leaky, np.concatenate([pool[:200], test[:7]]))
    with pytest.raises(DataError, match=r"puts 7 of the 300 test images .* into the training set"):
        make_dm(tmp_path / "a", split={"kind": "index_file", "index_file": str(leaky)})
    clean = tmp_path / "clean.npy"
    np.save(clean, pool[:200])
    dm = make_dm(tmp_path / "b", split={"kind": "index_file", "index_file": str(clean)})
    test_set = set(dm.test_set.indices.tolist())
    assert test_set == set(test.tolist())  # the same carve: the split seed is the same
    for part in (dm.train_set, dm.val_set, dm.bank_set):  # the default bank skips test images
        assert not test_set & set(part.indices.tolist())
