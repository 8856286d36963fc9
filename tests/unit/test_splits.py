"""Long-tailed split generation, saving/loading, published index files and class groups."""

import json

import numpy as np
import pytest

from ltcl.data.splits import (
    LongTailSplit,
    class_groups,
    exponential_profile,
    load_index_file,
    load_split,
    make_long_tailed_split,
    save_split,
    split_from_index_file,
)
from ltcl.errors import ConfigError, DataError

CIFAR10_LT = [4500, 2697, 1617, 969, 581, 348, 208, 125, 75, 45]


def cifar_like_labels(num_classes: int, per_class: int, seed: int = 123) -> np.ndarray:
    """Balanced labels in a shuffled order, like the official CIFAR training set."""
    labels = np.repeat(np.arange(num_classes), per_class)
    return np.random.default_rng(seed).permutation(labels)


# ------------------------------------------------------------------ profile


def test_cifar10_profile_matches_published_split_sizes():
    counts = exponential_profile(4500, 10, 100)
    assert counts == CIFAR10_LT
    assert sum(counts) == 11_165


def test_cifar100_profile_matches_published_split_sizes():
    counts = exponential_profile(450, 100, 100)
    assert sum(counts) == 9_754
    assert counts[0] == 450 and counts[-1] == 4
    assert all(a >= b for a, b in zip(counts, counts[1:], strict=False))


def test_profile_ratio_one_is_balanced():
    assert exponential_profile(10, 3, 1) == [10, 10, 10]


@pytest.mark.parametrize(
    "n_max, num_classes, rho",
    [(4500, 10, 0.5), (4500, 10, float("nan")), (0, 10, 100), (4500, 1, 100), (4500.0, 10, 100)],
)
def test_profile_bad_values(n_max, num_classes, rho):
    with pytest.raises(ConfigError, match="set|use|needs|must"):
        exponential_profile(n_max, num_classes, rho)


def test_a_ratio_that_empties_classes_is_refused():
    from ltcl.data.splits import exponential_profile

    with pytest.raises(ConfigError, match="0 training images"):
        exponential_profile(4500, 10, 1e9)
    assert min(exponential_profile(4500, 10, 4500)) == 1


def test_imbalance_ratio_below_one_says_the_fix():
    with pytest.raises(ConfigError, match=r"imbalance_ratio.*>= 1.*data.split.imbalance_ratio"):
        make_long_tailed_split(
            cifar_like_labels(10, 100), 10, imbalance_ratio=0.5, val_per_class=10
        )


# ------------------------------------------------------------------ generation


@pytest.fixture(scope="module")
def cifar10_labels():
    return cifar_like_labels(10, 5000)


def test_cifar10_synthetic_split(cifar10_labels):
    split = make_long_tailed_split(
        cifar10_labels, 10, imbalance_ratio=100, val_per_class=500, seed=1
    )
    assert split.n_max == 4500
    assert len(split.train_indices) == 11_165
    assert len(split.val_indices) == 5_000
    assert len(split.balanced_indices) == 45_000
    assert np.intersect1d(split.train_indices, split.val_indices).size == 0
    assert np.intersect1d(split.balanced_indices, split.val_indices).size == 0
    assert np.union1d(split.balanced_indices, split.val_indices).size == 50_000
    assert np.isin(split.train_indices, split.balanced_indices).all()
    assert np.unique(split.train_indices).size == 11_165
    assert np.bincount(cifar10_labels[split.train_indices]).tolist() == CIFAR10_LT
    assert split.class_counts == CIFAR10_LT
    assert split.class_order == list(range(10))
    assert np.bincount(cifar10_labels[split.val_indices]).tolist() == [500] * 10
    assert split.train_indices.dtype == np.int64


def test_split_is_seeded(cifar10_labels):
    a = make_long_tailed_split(cifar10_labels, 10, seed=3)
    b = make_long_tailed_split(cifar10_labels, 10, seed=3)
    c = make_long_tailed_split(cifar10_labels, 10, seed=4)
    for name in ("train_indices", "val_indices", "balanced_indices"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.train_indices, c.train_indices)
    assert not np.array_equal(a.val_indices, c.val_indices)
    # Different draws, same profile: like the five SDCLR splits.
    assert a.class_counts == c.class_counts
    assert np.intersect1d(a.train_indices, c.train_indices).size < 11_165


def test_class_order_random_and_explicit():
    labels = cifar_like_labels(5, 60)
    r = make_long_tailed_split(
        labels, 5, imbalance_ratio=10, val_per_class=10, seed=0, class_order="random"
    )
    assert sorted(r.class_order) == list(range(5))
    expected = exponential_profile(50, 5, 10)
    for rank, label in enumerate(r.class_order):
        assert r.class_counts[label] == expected[rank]
        assert (labels[r.train_indices] == label).sum() == expected[rank]
    e = make_long_tailed_split(
        labels, 5, imbalance_ratio=10, val_per_class=10, class_order=[4, 3, 2, 1, 0]
    )
    assert e.class_counts == expected[::-1]
    with pytest.raises(ConfigError, match="permutation"):
        make_long_tailed_split(labels, 5, 10, val_per_class=10, class_order=[0, 1, 2])
    with pytest.raises(ConfigError, match="'index'"):
        make_long_tailed_split(labels, 5, 10, val_per_class=10, class_order="sorted")


def test_not_enough_images_in_a_class():
    labels = np.concatenate([np.repeat(np.arange(3), 100), np.full(20, 3)])
    with pytest.raises(DataError, match=r"class 3 has 20 images but needs.*lower n_max"):
        make_long_tailed_split(
            labels, 4, imbalance_ratio=2, n_max=90, val_per_class=10, class_order=[3, 0, 1, 2]
        )


def test_unlabeled_or_out_of_range_labels_are_refused():
    with pytest.raises(DataError, match="-1 marks unlabeled"):
        make_long_tailed_split(np.array([0, 1, -1, 1]), 2)
    with pytest.raises(DataError, match="num_classes"):
        make_long_tailed_split(np.array([0, 1, 5]), 2)


# ------------------------------------------------------------------ save / load


def small_split() -> LongTailSplit:
    return make_long_tailed_split(
        cifar_like_labels(4, 50), 4, imbalance_ratio=5, val_per_class=5, seed=7
    )


def test_save_load_round_trip(tmp_path):
    split = small_split()
    manifest = save_split(split, tmp_path / "s")
    assert set(manifest["files"]) == {"train_indices", "val_indices", "balanced_indices"}
    on_disk = json.loads((tmp_path / "s" / "split.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    assert len(on_disk["files"]["train_indices"]["sha256"]) == 64
    back = load_split(tmp_path / "s")
    for name in ("train_indices", "val_indices", "balanced_indices"):
        assert np.array_equal(getattr(back, name), getattr(split, name))
    assert back.to_dict() == split.to_dict()
    assert not list((tmp_path / "s").glob("*.tmp"))


def test_to_dict_is_json(tmp_path):
    d = small_split().to_dict(include_indices=True)
    assert json.loads(json.dumps(d))["train_indices"] == d["train_indices"]


def test_tampered_split_file_is_refused(tmp_path):
    save_split(small_split(), tmp_path)
    idx = np.load(tmp_path / "train_indices.npy")
    np.save(tmp_path / "train_indices.npy", idx[:-1])
    with pytest.raises(
        DataError,
        match=r"train_indices.npy changed since it was written.*"
        r"regenerate it or restore",
    ):
        load_split(tmp_path)


def test_load_split_missing(tmp_path):
    with pytest.raises(DataError, match="no split.json"):
        load_split(tmp_path)
    save_split(small_split(), tmp_path)
    (tmp_path / "val_indices.npy").unlink()
    with pytest.raises(DataError, match="val_indices.npy is missing"):
        load_split(tmp_path)


# ------------------------------------------------------------------ published index files


def test_index_file_ok_and_errors(tmp_path):
    good = tmp_path / "split1_D_i.npy"
    np.save(good, np.array([3, 1, 4, 0], dtype=np.int64))
    assert load_index_file(good, 10).tolist() == [3, 1, 4, 0]

    with pytest.raises(
        DataError,
        match=r"holds indices 0..4 but the source has 4 images.*"
        r"another dataset",
    ):
        load_index_file(good, 4)

    dup = tmp_path / "dup.npy"
    np.save(dup, np.array([1, 2, 2, 3, 3], dtype=np.int64))
    with pytest.raises(DataError, match="repeats 2 indices"):
        load_index_file(dup, 10)

    flt = tmp_path / "float.npy"
    np.save(flt, np.array([1.0, 2.0]))
    with pytest.raises(DataError, match="dtype float64, expected integer"):
        load_index_file(flt, 10)

    two_d = tmp_path / "2d.npy"
    np.save(two_d, np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(DataError, match="1-D"):
        load_index_file(two_d, 10)

    with pytest.raises(DataError, match="does not exist"):
        load_index_file(tmp_path / "nope.npy", 10)

    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not numpy")
    with pytest.raises(DataError, match="not a readable"):
        load_index_file(junk, 10)


def test_split_from_index_file(tmp_path):
    labels = np.repeat(np.arange(3), 10)  # 0..9 class 0, 10..19 class 1, 20..29 class 2
    train = np.array([0, 1, 2, 3, 10, 11, 20], dtype=np.int64)
    val = np.array([9, 19, 29], dtype=np.int64)
    np.save(tmp_path / "d_i.npy", train)
    np.save(tmp_path / "val.npy", val)
    s = split_from_index_file(labels, 3, tmp_path / "d_i.npy", tmp_path / "val.npy")
    assert s.class_counts == [4, 2, 1]
    assert s.class_order == [0, 1, 2]
    assert s.imbalance_ratio == 4.0 and s.n_max == 4 and s.val_per_class == 1
    assert np.array_equal(s.train_indices, train)
    assert len(s.balanced_indices) == 27 and not np.isin(val, s.balanced_indices).any()
    assert "d_i.npy" in s.origin
    np.save(tmp_path / "bad_val.npy", np.array([0, 19], dtype=np.int64))
    with pytest.raises(DataError, match="1 indices .* also in the validation file"):
        split_from_index_file(labels, 3, tmp_path / "d_i.npy", tmp_path / "bad_val.npy")


# ------------------------------------------------------------------ groups


def test_groups_cifar10_thirds():
    g = class_groups(CIFAR10_LT)
    assert g == {"many": [0, 1, 2, 3], "medium": [4, 5, 6], "few": [7, 8, 9]}
    # Groups follow the counts, not the label order.
    g = class_groups(CIFAR10_LT[::-1])
    assert g == {"many": [6, 7, 8, 9], "medium": [3, 4, 5], "few": [0, 1, 2]}


def test_groups_cifar100_thirds():
    g = class_groups(exponential_profile(450, 100, 100))
    assert (len(g["many"]), len(g["medium"]), len(g["few"])) == (34, 33, 33)
    assert g["many"] == list(range(34))
    assert g["medium"] == list(range(34, 67))
    assert g["few"] == list(range(67, 100))


def test_groups_thirds_ties_are_stable_by_label():
    # Counts all equal: descending sort keeps label order, so the last labels are "few".
    assert class_groups([5] * 6) == {"many": [0, 1], "medium": [2, 3], "few": [4, 5]}


def test_groups_threshold_boundaries():
    g = class_groups([101, 100, 20, 19, 500, 0], rule="threshold")
    assert g == {"many": [0, 4], "medium": [1, 2], "few": [3, 5]}


def test_groups_bad_input():
    with pytest.raises(ConfigError, match="unknown group rule"):
        class_groups([1, 2, 3], rule="quartiles")
    with pytest.raises(DataError, match="class_counts"):
        class_groups([])
