"""Few-shot probe sets: SDCLR's 1% subset and BCL's 100- / 50-shot subsets (docs/method.md, "Evaluation").

Which set each subset is drawn from, and why:

- ``"1pct"`` (SDCLR/COLT's ``S_b``) is drawn from the **long-tailed pretraining set**: it asks how
  well the features separate classes from a few labelled images the model has already seen
  (unlabelled) during pretraining, with every class equally represented. The published CIFAR
  files are 450 / 400 images (45 / 4 per class), a subset of ``D_i``.
- ``"100shot"`` and ``"50shot"`` (BCL) are drawn from the **balanced probe set** (the full-shot
  probe training list), so they do not depend on which long-tailed split was pretrained on.

All indices point into the same source as ``labels`` (e.g. the official CIFAR training set).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ltcl.errors import ConfigError, DataError
from ltcl.utils.validate import check_int

__all__ = ["FewShotSubsets", "balanced_subset", "few_shot_subsets", "one_percent_per_class"]


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _check_labels(labels: Any) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.size == 0 or not np.issubdtype(lab.dtype, np.integer):
        raise DataError(
            f"labels must be a non-empty 1-D integer array, got dtype {lab.dtype} shape "
            f"{lab.shape}: pass the labels of the whole source the indices point into"
        )
    return lab.astype(np.int64, copy=False)


def _check_pool(pool_indices: Any, n: int, name: str) -> np.ndarray:
    pool = np.asarray(pool_indices)
    if pool.ndim != 1 or (pool.size and not np.issubdtype(pool.dtype, np.integer)):
        raise DataError(
            f"{name} must be a 1-D integer index array, got dtype {pool.dtype} shape "
            f"{pool.shape}: pass indices into the source, e.g. split.train_indices"
        )
    pool = pool.astype(np.int64, copy=False)
    if pool.size and (pool.min() < 0 or pool.max() >= n):
        raise DataError(
            f"{name} holds indices {pool.min()}..{pool.max()} but labels has {n} entries: the "
            "indices and the labels must refer to the same source"
        )
    pool = np.sort(pool)
    if pool.size > 1 and (pool[1:] == pool[:-1]).any():
        raise DataError(
            f"{name} lists some images more than once: a subset could then hold an image "
            "twice; pass each index once (np.unique)"
        )
    return pool


def balanced_subset(
    labels: Any,
    pool_indices: Any,
    per_class: int,
    seed: int,
    num_classes: int | None = None,
) -> np.ndarray:
    """``per_class`` random indices of every class from ``pool_indices``, sorted (int64).

    Classes are ``0..num_classes-1``, or, without ``num_classes``, every label >= 0 that occurs
    in ``labels``; a class with fewer than ``per_class`` images in the pool is an error, since
    a "balanced" subset missing part of a class would silently be long-tailed. Per class (in
    label order) one seeded permutation of its pool images is drawn and its first ``per_class``
    kept, so for one seed and pool a smaller subset is nested in a larger one (the 50-shot set
    is part of the 100-shot set). The result does not depend on the order of ``pool_indices``.
    """
    lab = _check_labels(labels)
    check_int(per_class, "per_class", 1)
    if not _is_int(seed):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    pool = _check_pool(pool_indices, lab.size, "pool_indices")
    pool_labels = lab[pool]
    if pool_labels.size and pool_labels.min() < 0:
        raise DataError(
            f"pool_indices include {int((pool_labels < 0).sum())} unlabeled images (label < 0, "
            "e.g. OOD): a balanced subset needs labelled images; remove them from the pool"
        )
    if num_classes is None:
        classes = np.unique(lab[lab >= 0])
        if classes.size == 0:
            raise DataError("labels has no class labels (all < 0): pass the labelled source")
    else:
        if not _is_int(num_classes) or num_classes < 1:
            raise ConfigError(f"num_classes must be an integer >= 1, got {num_classes!r}")
        if pool_labels.size and pool_labels.max() >= num_classes:
            raise DataError(
                f"the pool has label {int(pool_labels.max())} but num_classes is {num_classes}: "
                "check num_classes and the source"
            )
        classes = np.arange(num_classes)
    counts = np.bincount(pool_labels, minlength=int(classes.max()) + 1)
    short = [int(c) for c in classes if counts[c] < per_class]
    if short:
        worst = min(short, key=lambda c: (counts[c], c))
        raise DataError(
            f"class {worst} has only {counts[worst]} images in the pool, fewer than "
            f"per_class={per_class} ({len(short)} class(es) short: {short[:10]}"
            f"{'...' if len(short) > 10 else ''}): lower per_class to at most "
            f"{min(counts[c] for c in classes)} or draw from a larger pool"
        )
    rng = np.random.default_rng(int(seed))
    chosen = [rng.permutation(pool[pool_labels == c])[:per_class] for c in classes]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def one_percent_per_class(balanced_size: int, num_classes: int) -> int:
    """Images per class of SDCLR's 1% subset: floor(1% of the balanced set / classes), >= 1.

    Rounded down because that reproduces every published ``S_b``: 45,000 -> 45 per class for
    CIFAR-10, 4 for CIFAR-100 (4.5 -> 4; round-half-up would give 5), 12 for ImageNet-100.
    """
    return max(1, int(balanced_size) // (100 * int(num_classes)))


@dataclass(eq=False)
class FewShotSubsets(Mapping[str, np.ndarray]):
    """The few-shot index arrays by name (a read-only mapping), with how they were drawn.

    ``per_class`` is the number per class actually used, ``pools`` names the set each subset
    was drawn from, and ``notes`` says when the 1% subset had to be made smaller than 1%
    (also issued as a warning), so a results record can carry it.
    """

    subsets: dict[str, np.ndarray]
    per_class: dict[str, int]
    pools: dict[str, str]
    seed: int
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.subsets[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.subsets)

    def __len__(self) -> int:
        return len(self.subsets)


def few_shot_subsets(
    labels: Any,
    long_tailed_indices: Any,
    balanced_indices: Any,
    num_classes: int,
    seed: int = 0,
) -> FewShotSubsets:
    """The ``"1pct"``, ``"100shot"`` and ``"50shot"`` probe subsets (see the module docstring).

    ``"1pct"`` takes :func:`one_percent_per_class` images per class from the long-tailed set;
    when its rarest class has fewer (ImageNet-100-LT's tail has 6 images, 1% is 12), every class
    gets the rarest count instead, so the subset stays balanced, and a note and a warning say
    so. The 100- and 50-shot subsets need 100 images of every class in the balanced set.
    """
    lab = _check_labels(labels)
    check_int(num_classes, "num_classes", 2)
    if not _is_int(seed):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    lt_pool = _check_pool(long_tailed_indices, lab.size, "long_tailed_indices")
    bal_pool = _check_pool(balanced_indices, lab.size, "balanced_indices")
    if bal_pool.size == 0 or lt_pool.size == 0:
        raise DataError(
            "the long-tailed and the balanced index sets must both be non-empty: pass "
            "split.train_indices and split.balanced_indices"
        )

    notes: list[str] = []
    target = one_percent_per_class(bal_pool.size, num_classes)
    if bal_pool.size < 100 * num_classes:
        notes.append(
            f"1% of the balanced set ({bal_pool.size} images) is less than one image per class; "
            "the 1% subset uses 1 per class"
        )
    lt_labels = lab[lt_pool]
    lt_counts = np.bincount(lt_labels[lt_labels >= 0], minlength=num_classes)[:num_classes]
    rarest = int(lt_counts.argmin())
    one_pct = target
    if lt_counts[rarest] < target:
        one_pct = int(lt_counts[rarest])
        if one_pct == 0:
            raise DataError(
                f"class {rarest} has no images in the long-tailed set, so no balanced 1% subset "
                "can be drawn from it: check the split (every class needs >= 1 image)"
            )
        notes.append(
            f"1% subset: {one_pct} per class instead of {target} (1% of the balanced set): the "
            f"rarest long-tailed class {rarest} has only {one_pct} images"
        )
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=2)

    subsets: dict[str, np.ndarray] = {}
    draws = [("1pct", lt_pool, one_pct), ("100shot", bal_pool, 100), ("50shot", bal_pool, 50)]
    for name, pool, per_class in draws:
        try:
            subsets[name] = balanced_subset(lab, pool, per_class, seed, num_classes=num_classes)
        except DataError as err:
            where = "long-tailed" if name == "1pct" else "balanced"
            raise DataError(f"{name} subset of the {where} set: {err}") from None
    return FewShotSubsets(
        subsets=subsets,
        per_class={"1pct": one_pct, "100shot": 100, "50shot": 50},
        pools={"1pct": "long_tailed", "100shot": "balanced", "50shot": "balanced"},
        seed=int(seed),
        notes=notes,
    )
