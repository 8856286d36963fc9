"""Long-tailed splits: the exponential profile, seeded generation, published index files, groups.

Conventions follow the SDCLR/COLT/BCL family (see ``docs/method.md``, "Data conventions"): a balanced
validation set is held out first, then ``n_c = int(n_max * (1/rho) ** (c/(C-1)))`` images are
drawn for the class of rank ``c``. Splits are saved with checksums so that every result can name
exactly which images it was trained on.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ltcl.errors import ConfigError, DataError
from ltcl.utils.files import atomic_write_bytes, make_folder

__all__ = [
    "LongTailSplit",
    "class_groups",
    "exponential_profile",
    "load_index_file",
    "load_split",
    "make_long_tailed_split",
    "save_split",
    "split_from_index_file",
]

_SPLIT_FILES = ("train_indices", "val_indices", "balanced_indices")
_FORMAT = 1


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def exponential_profile(n_max: int, num_classes: int, imbalance_ratio: float) -> list[int]:
    """Images per class rank: ``int(n_max * (1/rho) ** (c/(C-1)))``.

    Computed exactly this way (not ``rho ** (-c/(C-1))``) because that is the peers' float
    expression, and a different rounding path would change a count by one and break the
    11,165 / 9,754 totals of the published CIFAR splits.
    """
    if not _is_int(n_max) or n_max < 1:
        raise ConfigError(
            f"n_max must be a positive integer, got {n_max!r}: set data.split.n_max "
            "(4500 for CIFAR-10-LT, 450 for CIFAR-100-LT) or leave it null"
        )
    if not _is_int(num_classes) or num_classes < 2:
        raise ConfigError(
            f"num_classes must be an integer >= 2, got {num_classes!r}: a "
            "long-tailed profile needs at least a head and a tail class"
        )
    try:
        rho = float(imbalance_ratio)
    except (TypeError, ValueError):
        rho = float("nan")
    if not math.isfinite(rho) or rho < 1:
        raise ConfigError(
            f"imbalance_ratio must be a finite number >= 1 (head/tail size), got "
            f"{imbalance_ratio!r}: use e.g. data.split.imbalance_ratio=100 (1 = balanced)"
        )
    c_last = num_classes - 1
    counts = [int(n_max * (1 / rho) ** (c / c_last)) for c in range(num_classes)]
    empty = [c for c, n in enumerate(counts) if n == 0]
    if empty:
        raise ConfigError(
            f"data.split.imbalance_ratio={imbalance_ratio:g} with n_max {n_max} leaves "
            f"{len(empty)} class rank(s) with 0 training images (ranks {empty}): their accuracy "
            f"would be reported as 'few' without a single image; use data.split.imbalance_ratio "
            f"<= {n_max}"
        )
    return counts


@dataclass
class LongTailSplit:
    """Indices into one source: the long-tailed pretraining set, validation and probe pool.

    ``class_counts[k]`` is the number of train images of class label ``k``; ``class_order[r]`` is
    the label with the r-th most train images. ``seed``/``val_per_class`` are None for splits
    read from published index files; ``origin`` says where the split came from.
    """

    train_indices: np.ndarray
    val_indices: np.ndarray
    balanced_indices: np.ndarray
    class_counts: list[int]
    class_order: list[int]
    imbalance_ratio: float | None
    n_max: int
    seed: int | None
    val_per_class: int | None
    origin: str = "generated"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in _SPLIT_FILES:
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.int64))
        self.class_counts = [int(c) for c in self.class_counts]
        self.class_order = [int(c) for c in self.class_order]

    @property
    def num_classes(self) -> int:
        return len(self.class_counts)

    def to_dict(self, include_indices: bool = False) -> dict[str, Any]:
        """JSON-ready metadata; index arrays only with ``include_indices`` (they live in .npy)."""
        d: dict[str, Any] = {
            "num_classes": self.num_classes,
            "num_train": len(self.train_indices),
            "num_val": len(self.val_indices),
            "num_balanced": len(self.balanced_indices),
            "class_counts": list(self.class_counts),
            "class_order": list(self.class_order),
            "imbalance_ratio": self.imbalance_ratio,
            "n_max": int(self.n_max),
            "seed": self.seed,
            "val_per_class": self.val_per_class,
            "origin": self.origin,
            "extra": dict(self.extra),
        }
        if include_indices:
            for name in _SPLIT_FILES:
                d[name] = getattr(self, name).tolist()
        return d


def _check_labels(labels: Any, num_classes: int) -> np.ndarray:
    if not _is_int(num_classes) or num_classes < 2:
        raise ConfigError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.size == 0 or not np.issubdtype(lab.dtype, np.integer):
        raise DataError(
            f"labels must be a non-empty 1-D integer array, got dtype {lab.dtype} "
            f"shape {lab.shape}: pass the source's labels"
        )
    if lab.min() < 0 or lab.max() >= num_classes:
        raise DataError(
            f"labels range {lab.min()}..{lab.max()} but num_classes is "
            f"{num_classes}: a long-tailed split needs every label in 0.."
            f"{num_classes - 1} (-1 marks unlabeled OOD images, which cannot be "
            "split); check num_classes and the source"
        )
    return lab.astype(np.int64, copy=False)


def _resolve_order(
    class_order: str | Sequence[int], num_classes: int, rng: np.random.Generator
) -> list[int]:
    if isinstance(class_order, str):
        if class_order == "index":
            return list(range(num_classes))
        if class_order == "random":
            return [int(c) for c in rng.permutation(num_classes)]
        raise ConfigError(
            f"class_order {class_order!r} is unknown: use 'index' (class 0 is the "
            "head), 'random' (seeded permutation) or an explicit list of labels"
        )
    order = [int(c) for c in class_order]
    if sorted(order) != list(range(num_classes)):
        raise ConfigError(
            f"class_order list must be a permutation of 0..{num_classes - 1}, got "
            f"{order[:12]}{'...' if len(order) > 12 else ''}: list every label once"
        )
    return order


def make_long_tailed_split(
    labels: Any,
    num_classes: int,
    imbalance_ratio: float = 100,
    n_max: int | None = None,
    val_per_class: int = 500,
    seed: int = 0,
    class_order: str | Sequence[int] = "index",
) -> LongTailSplit:
    """Seeded long-tailed split of a balanced labelled set.

    Per class (in label order) one permutation of its images is drawn: the first
    ``val_per_class`` become validation (held out before the tail is drawn, as SDCLR does, so
    that val never overlaps the pretraining set), the next ``n_c`` the long-tailed train set.
    ``n_max`` defaults to (smallest class size - val_per_class).
    """
    lab = _check_labels(labels, num_classes)
    if not _is_int(val_per_class) or val_per_class < 0:
        raise ConfigError(
            f"val_per_class must be an integer >= 0, got {val_per_class!r}: "
            "use 500 for CIFAR-10, 50 for CIFAR-100, 0 for no validation set"
        )
    if not _is_int(seed):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    sizes = np.bincount(lab, minlength=num_classes)
    if n_max is None:
        n_max = int(sizes.min()) - int(val_per_class)
        if n_max < 1:
            raise DataError(
                f"the smallest class has {sizes.min()} images, not more than "
                f"val_per_class={val_per_class}: lower val_per_class"
            )
    profile = exponential_profile(n_max, num_classes, imbalance_ratio)
    rng = np.random.default_rng(seed)
    order = _resolve_order(class_order, num_classes, rng)
    want = np.zeros(num_classes, dtype=np.int64)
    for rank, label in enumerate(order):
        want[label] = profile[rank]
    short = [
        (c, int(sizes[c]), int(want[c]) + val_per_class)
        for c in range(num_classes)
        if sizes[c] < want[c] + val_per_class
    ]
    if short:
        c, have, need = short[0]
        raise DataError(
            f"class {c} has {have} images but needs {need} (val_per_class="
            f"{val_per_class} + its long-tail count); {len(short)} class(es) are "
            "short: lower n_max or val_per_class, or use another class_order"
        )
    train, val = [], []
    for c in range(num_classes):
        perm = rng.permutation(np.flatnonzero(lab == c))
        val.append(perm[:val_per_class])
        train.append(perm[val_per_class : val_per_class + want[c]])
    train_idx = np.sort(np.concatenate(train))
    val_idx = np.sort(np.concatenate(val))
    balanced = np.setdiff1d(np.arange(len(lab), dtype=np.int64), val_idx, assume_unique=True)
    return LongTailSplit(
        train_indices=train_idx,
        val_indices=val_idx,
        balanced_indices=balanced,
        class_counts=want.tolist(),
        class_order=order,
        imbalance_ratio=float(imbalance_ratio),
        n_max=int(n_max),
        seed=int(seed),
        val_per_class=int(val_per_class),
        extra={"class_order_rule": class_order if isinstance(class_order, str) else "explicit"},
    )


# --------------------------------------------------------------------------------------------
# Saving and loading with checksums
# --------------------------------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def split_fingerprint(split: LongTailSplit) -> str:
    """sha256 of the split's index arrays (train, val, balanced): two splits with the same class
    counts but other images (another split seed) differ here."""
    h = hashlib.sha256()
    for name in _SPLIT_FILES:
        h.update(np.ascontiguousarray(getattr(split, name), dtype=np.int64).tobytes())
    return h.hexdigest()


def save_split(split: LongTailSplit, directory: str | os.PathLike) -> dict[str, Any]:
    """Write the three index arrays and ``split.json`` (metadata + sha256 of each file).

    Each file is written to a temporary name and renamed, and ``split.json`` goes last, so a
    crash never leaves a manifest that describes half-written arrays.
    """
    d = make_folder(directory, "split folder", "choose a writable folder")
    files: dict[str, dict[str, Any]] = {}
    for name in _SPLIT_FILES:
        buf = io.BytesIO()
        arr = np.ascontiguousarray(getattr(split, name), dtype=np.int64)
        np.save(buf, arr)
        data = buf.getvalue()
        atomic_write_bytes(d / f"{name}.npy", data)
        files[name] = {
            "file": f"{name}.npy",
            "sha256": hashlib.sha256(data).hexdigest(),
            "length": len(arr),
        }
    manifest = {"format": _FORMAT, **split.to_dict(), "files": files}
    atomic_write_bytes(d / "split.json", (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def load_split(directory: str | os.PathLike) -> LongTailSplit:
    """Read a split written by :func:`save_split`, refusing files that changed since."""
    d = Path(directory).expanduser()
    mpath = d / "split.json"
    if not mpath.is_file():
        raise DataError(
            f"no split.json in {d}: point at a folder written by save_split, or "
            "generate the split (make_long_tailed_split + save_split)"
        )
    try:
        m = json.loads(mpath.read_text())
        files = m["files"]
        arrays = {}
        for name in _SPLIT_FILES:
            entry = files[name]
            fpath = d / entry["file"]
            if not fpath.is_file():
                raise DataError(
                    f"split file {fpath} is missing: restore it or regenerate the split"
                )
            digest = _sha256_file(fpath)
            if digest != entry["sha256"]:
                raise DataError(
                    f"split file {fpath} changed since it was written (checksum "
                    f"{digest[:12]}... != {entry['sha256'][:12]}... in split.json): "
                    "regenerate it or restore the file"
                )
            arrays[name] = np.load(fpath, allow_pickle=False)
        return LongTailSplit(
            **arrays,
            class_counts=m["class_counts"],
            class_order=m["class_order"],
            imbalance_ratio=m["imbalance_ratio"],
            n_max=m["n_max"],
            seed=m["seed"],
            val_per_class=m["val_per_class"],
            origin=m.get("origin", "generated"),
            extra=m.get("extra", {}),
        )
    except DataError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(
            f"{mpath} is not a valid ltcl split manifest ({type(e).__name__}: {e}): "
            "regenerate the split with save_split"
        ) from e


# --------------------------------------------------------------------------------------------
# Published index files (SDCLR / COLT / BCL)
# --------------------------------------------------------------------------------------------


def load_index_file(path: str | os.PathLike, source_len: int) -> np.ndarray:
    """A published ``split*_D_i.npy``-style file: unique int indices in ``0..source_len-1``."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(
            f"index file {p} does not exist: set the path to the published split "
            "file (e.g. split/cifar10/split1_D_i.npy from SDCLR/COLT)"
        )
    try:
        idx = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"index file {p} is not a readable .npy array ({e}): re-download it") from e
    if not isinstance(idx, np.ndarray) or not np.issubdtype(idx.dtype, np.integer):
        raise DataError(
            f"index file {p} has dtype {getattr(idx, 'dtype', type(idx).__name__)}, "
            "expected integer indices (int64): it is not an index file"
        )
    if idx.ndim != 1:
        raise DataError(
            f"index file {p} has shape {idx.shape}, expected a 1-D array of "
            "indices: it is not an index file"
        )
    if idx.size == 0:
        raise DataError(f"index file {p} is empty: re-download it")
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0 or hi >= source_len:
        raise DataError(
            f"index file {p} holds indices {lo}..{hi} but the source has "
            f"{source_len} images (valid range 0..{source_len - 1}): the file belongs "
            "to another dataset (e.g. CIFAR-100 vs CIFAR-10, or the JPEG copy instead "
            "of the official arrays)"
        )
    dup = idx.size - np.unique(idx).size
    if dup:
        raise DataError(
            f"index file {p} repeats {dup} indices: it is corrupt or not a split "
            "file; re-download it"
        )
    return idx.astype(np.int64, copy=False)


def split_from_index_file(
    labels: Any,
    num_classes: int,
    index_path: str | os.PathLike,
    val_index_path: str | os.PathLike | None = None,
    balanced_index_path: str | os.PathLike | None = None,
    pool: np.ndarray | None = None,
) -> LongTailSplit:
    """A :class:`LongTailSplit` from published files (``split*_D_i.npy``, ``valIdxList.npy``,
    ``trainIdxList.npy``). Without a val file the val set is empty; without a balanced file the
    balanced pool is every image of ``pool`` (default: all; the images not carved out for
    testing) not in val. Counts are recomputed from the labels."""
    lab = _check_labels(labels, num_classes)
    train = load_index_file(index_path, len(lab))
    val = (
        load_index_file(val_index_path, len(lab))
        if val_index_path is not None
        else np.zeros(0, dtype=np.int64)
    )
    overlap = np.intersect1d(train, val).size
    if overlap:
        raise DataError(
            f"{overlap} indices of {index_path} are also in the validation file "
            f"{val_index_path}: the two files come from different split families"
        )
    if balanced_index_path is not None:
        balanced = load_index_file(balanced_index_path, len(lab))
    else:
        everything = np.arange(len(lab), dtype=np.int64) if pool is None else np.asarray(pool)
        balanced = np.setdiff1d(everything, val)
    counts = np.bincount(lab[train], minlength=num_classes)
    order = np.argsort(-counts, kind="stable")
    vpc: int | None = 0
    if val.size:  # per-class val size when the val file is balanced (SDCLR's is: 500/class)
        val_counts = np.bincount(lab[val], minlength=num_classes)
        vpc = int(val_counts[0]) if (val_counts == val_counts[0]).all() else None
    digest = _sha256_file(Path(index_path).expanduser())
    return LongTailSplit(
        train_indices=np.sort(train),
        val_indices=np.sort(val),
        balanced_indices=np.sort(balanced),
        class_counts=counts.tolist(),
        class_order=order.tolist(),
        imbalance_ratio=float(counts.max() / counts.min()) if counts.min() > 0 else None,
        n_max=int(counts.max()),
        seed=None,
        val_per_class=vpc,
        origin=f"index file {Path(index_path).name} (sha256 {digest})",
        extra={
            "index_path": str(index_path),
            "val_index_path": _str_or_none(val_index_path),
            "balanced_index_path": _str_or_none(balanced_index_path),
        },
    )


def _str_or_none(p: Any) -> str | None:
    return None if p is None else str(p)


# --------------------------------------------------------------------------------------------
# Many / medium / few groups
# --------------------------------------------------------------------------------------------


def class_groups(
    class_counts: Sequence[int] | np.ndarray,
    rule: str = "thirds",
    many_above: int = 100,
    few_below: int = 20,
) -> dict[str, list[int]]:
    """Class labels of the many / medium / few groups, each list in label order.

    ``thirds`` (CIFAR, SDCLR's exp_analyse): classes sorted by train count, descending, ties by
    label; few = the last C//3, medium = the C//3 before, many = the rest (4/3/3 for CIFAR-10,
    34/33/33 for CIFAR-100). ``threshold`` (ImageNet-100-LT, Places-LT): many > 100,
    medium 20..100, few < 20.
    """
    counts = np.asarray(class_counts)
    if (
        counts.ndim != 1
        or counts.size == 0
        or not np.issubdtype(counts.dtype, np.integer)
        or counts.min() < 0
    ):
        raise DataError(
            f"class_counts must be a non-empty 1-D array of counts >= 0, got "
            f"{counts.dtype} {counts.shape}: pass split.class_counts"
        )
    if rule == "thirds":
        order = np.argsort(-counts, kind="stable")
        k = counts.size // 3
        n_many = counts.size - 2 * k
        groups = {
            "many": order[:n_many],
            "medium": order[n_many : n_many + k],
            "few": order[n_many + k :],
        }
    elif rule == "threshold":
        if few_below > many_above:
            raise ConfigError(f"few_below ({few_below}) must not exceed many_above ({many_above})")
        labels = np.arange(counts.size)
        groups = {
            "many": labels[counts > many_above],
            "medium": labels[(counts >= few_below) & (counts <= many_above)],
            "few": labels[counts < few_below],
        }
    else:
        raise ConfigError(
            f"unknown group rule {rule!r}: use 'thirds' (CIFAR) or 'threshold' "
            "(ImageNet-100-LT, Places-LT)"
        )
    return {g: sorted(int(c) for c in v) for g, v in groups.items()}
