"""Few-shot probe subsets: SDCLR's 1% of the long-tailed set, BCL's 100- / 50-shot."""

from __future__ import annotations

import numpy as np
import pytest

from ltcl.data.splits import exponential_profile
from ltcl.errors import ConfigError, DataError
from ltcl.evaluation.few_shot import (
    FewShotSubsets,
    balanced_subset,
    few_shot_subsets,
    one_percent_per_class,
)


def _cifar_like(num_classes, per_class, n_max, val_per_class):
    """A shuffled balanced source, its long-tailed set (rho 100) and the balanced probe set."""
    rng = np.random.default_rng(0)
    labels = rng.permutation(np.repeat(np.arange(num_classes), per_class))
    profile = exponential_profile(n_max, num_classes, 100)
    lt, bal = [], []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        lt.append(members[val_per_class : val_per_class + profile[c]])
        bal.append(members[val_per_class:])
    return labels, np.concatenate(lt), np.concatenate(bal)


def _per_class(labels, subset, num_classes):
    return np.bincount(labels[subset], minlength=num_classes)


def test_cifar10_sizes_and_pools():
    labels, lt, bal = _cifar_like(10, 5000, 4500, 500)  # 11,165 LT, 45,000 balanced
    assert len(lt) == 11165 and len(bal) == 45000
    subsets = few_shot_subsets(labels, lt, bal, 10, seed=1)
    assert isinstance(subsets, FewShotSubsets) and set(subsets) == {"1pct", "100shot", "50shot"}
    assert subsets.per_class == {"1pct": 45, "100shot": 100, "50shot": 50}
    assert subsets.pools == {"1pct": "long_tailed", "100shot": "balanced", "50shot": "balanced"}
    assert subsets.notes == []
    for name, pool, k in [("1pct", lt, 45), ("100shot", bal, 100), ("50shot", bal, 50)]:
        idx = subsets[name]
        assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)  # sorted, no repeats
        assert np.isin(idx, pool).all()
        assert _per_class(labels, idx, 10).tolist() == [k] * 10
    assert np.isin(subsets["50shot"], subsets["100shot"]).all()  # nested by design


def test_cifar100_one_percent_is_four_per_class():
    labels, lt, bal = _cifar_like(100, 500, 450, 50)  # rarest LT class: 4 images
    assert one_percent_per_class(len(bal), 100) == 4  # 45,000 / 100 / 100 = 4.5 -> 4
    subsets = few_shot_subsets(labels, lt, bal, 100)
    assert len(subsets["1pct"]) == 400 and subsets.notes == []
    assert _per_class(labels, subsets["1pct"], 100).tolist() == [4] * 100


def test_rare_tail_shrinks_the_one_percent_subset_with_a_note():
    labels, lt, bal = _cifar_like(10, 5000, 4500, 500)
    lt = lt[~np.isin(lt, np.flatnonzero(labels == 9)[520:])]  # class 9 keeps 20 LT images
    with pytest.warns(UserWarning, match="rarest long-tailed class 9 has only 20"):
        subsets = few_shot_subsets(labels, lt, bal, 10)
    assert subsets.per_class["1pct"] == 20 and len(subsets.notes) == 1
    assert _per_class(labels, subsets["1pct"], 10).tolist() == [20] * 10


def test_seeded_and_independent_of_pool_order():
    labels, lt, bal = _cifar_like(10, 300, 200, 0)
    a = balanced_subset(labels, bal, 30, seed=7)
    b = balanced_subset(labels, bal[::-1], 30, seed=7)
    c = balanced_subset(labels, bal, 30, seed=8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_not_enough_images_names_the_class_and_fix():
    labels, lt, bal = _cifar_like(10, 5000, 4500, 500)
    with pytest.raises(DataError, match=r"class 9 has only 45 images .* per_class=100"):
        balanced_subset(labels, lt, 100, seed=0)
    small_bal = np.concatenate([np.flatnonzero(labels == c)[:60] for c in range(10)])
    short = r"100shot subset of the balanced set: class \d has only 60"
    with pytest.warns(UserWarning, match="less than one image per class"):
        with pytest.raises(DataError, match=short):
            few_shot_subsets(labels, lt, small_bal, 10)


def test_bad_pools_and_arguments():
    labels = np.repeat(np.arange(3), 5)
    with pytest.raises(DataError, match="more than once"):
        balanced_subset(labels, [0, 0, 5, 10], 1, seed=0)
    with pytest.raises(DataError, match="same source"):
        balanced_subset(labels, [0, 99], 1, seed=0)
    with pytest.raises(DataError, match="class 2 has only 0"):
        balanced_subset(labels, [0, 5], 1, seed=0)
    with pytest.raises(DataError, match="unlabeled"):
        balanced_subset(np.array([0, 1, -1]), [0, 1, 2], 1, seed=0)
    with pytest.raises(ConfigError, match="per_class"):
        balanced_subset(labels, [0, 5, 10], 0, seed=0)
    assert balanced_subset(labels, np.arange(15), 5, seed=0).tolist() == list(range(15))
