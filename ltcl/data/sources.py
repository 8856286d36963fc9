"""Where images come from: image folders, list files, ``.npy`` arrays, torchvision CIFAR.

Every loader checks its input before anything expensive happens and raises
:class:`~ltcl.errors.DataError` with the problem and the fix, so that a wrong path fails in
seconds instead of after a sweep has been scheduled. Nothing here falls back to other data.

Decoded images are cached as one uint8 ``.npy`` array (opened memory-mapped,
:mod:`ltcl.data.decode_cache`); archives are extracted by :mod:`ltcl.data.archives`.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ltcl.data.decode_cache import cached_images, check_image_size, decode_image
from ltcl.errors import ConfigError, DataError

# A source does not know which config key built it; its messages say "the source's root" and
# the DataModule that calls it names the key (data.train_source.root, ood.source.root, ...).
SOURCE_PHRASES = ("the source's root", "the source's image_size", "the source's archive")


@contextlib.contextmanager
def naming_the_source(key: str):
    """Re-raise a source's error with ``key`` (e.g. ``data.train_source``) in place of
    "the source's ...", so that a hint names a key the user's config has."""
    try:
        yield
    except (ConfigError, DataError) as error:
        text = str(error)
        for phrase in SOURCE_PHRASES:
            text = text.replace(phrase, f"{key}.{phrase.rsplit(chr(39) + 's ', 1)[1]}")
        if text == str(error):
            raise
        raise type(error)(text) from error


__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageSource",
    "RowView",
    "image_folder",
    "list_file",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


# --------------------------------------------------------------------------------------------
# Memory-mapped arrays that stay lazy through subsetting and pickling
# --------------------------------------------------------------------------------------------


def _is_memmap_root(a: Any) -> bool:
    """True for an np.memmap that maps a file directly (not a slice of one)."""
    return isinstance(a, np.memmap) and isinstance(a.base, mmap.mmap) and bool(a.filename)


def _pack(a: Any) -> tuple:
    """Pickle a memmap by file reference: pickling np.memmap would copy every pixel."""
    if _is_memmap_root(a):
        order = "F" if (a.flags.f_contiguous and not a.flags.c_contiguous) else "C"
        return ("memmap", str(a.filename), int(a.offset), tuple(a.shape), a.dtype.str, order)
    return ("array", a)


def _unpack(packed: tuple) -> Any:
    if packed[0] == "memmap":
        _, filename, offset, shape, dtype, order = packed
        return np.memmap(
            filename,
            dtype=np.dtype(dtype),
            mode="r",
            offset=offset,
            shape=tuple(shape),
            order=order,
        )
    return packed[1]


class RowView:
    """Rows ``index`` of a large (memory-mapped) array, read only when indexed.

    Why: ``memmap[indices]`` copies the chosen pixels into RAM, which for a subset of the 300K
    Random Images file (0.92 GB) defeats memory mapping. A view keeps ``images[i]`` aligned with
    ``labels[i]`` of the subset while reading pages on demand. ``np.asarray(view)`` materialises.
    """

    def __init__(self, base: Any, index: np.ndarray):
        self.base = base
        self.index = np.asarray(index, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.base.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype

    @property
    def ndim(self) -> int:
        return self.base.ndim

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):  # e.g. view[i, :, :, 0]: map the row key, then the rest
            head, rest = self[key[0]], key[1:]
            return head[rest] if np.ndim(self.index[key[0]]) == 0 else head[(slice(None), *rest)]
        rows = self.index[key]
        return np.asarray(self.base[rows])

    def take(self, indices: np.ndarray) -> RowView:
        """A view of a view: compose the index maps instead of reading pixels."""
        return RowView(self.base, self.index[np.asarray(indices, dtype=np.int64)])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = np.asarray(self.base[self.index])
        return out if dtype is None else out.astype(dtype, copy=False)

    def __reduce__(self) -> tuple:
        return (_rowview_from_packed, (_pack(self.base), self.index))

    def __repr__(self) -> str:
        return f"RowView(shape={self.shape}, dtype={self.dtype})"


def _rowview_from_packed(packed: tuple, index: np.ndarray) -> RowView:
    return RowView(_unpack(packed), index)


# --------------------------------------------------------------------------------------------
# ImageSource
# --------------------------------------------------------------------------------------------


@dataclass
class ImageSource:
    """Images as a uint8 array (N,H,W,3), possibly np.memmap, or as file paths decoded lazily.

    ``images`` may also be a :class:`RowView` (a lazy subset of a memory-mapped array). When both
    ``images`` and ``paths`` are set, pixels come from ``images`` (the decoded cache) and
    ``paths`` only records provenance. ``image_size`` resizes lazily decoded files.
    """

    labels: np.ndarray
    classes: list[str]
    images: np.ndarray | RowView | None = None
    paths: list[str] | None = None
    name: str = ""
    image_size: int | None = None

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.labels.ndim != 1:
            raise DataError(
                f"labels of source {self.name!r} must be 1-D, got shape "
                f"{self.labels.shape}: pass one label per image"
            )
        if self.images is None and self.paths is None:
            raise DataError(
                f"source {self.name!r} has neither images nor paths: "
                "give a uint8 (N,H,W,3) array or a list of image files"
            )
        n = len(self.labels)
        if self.images is not None and len(self.images) != n:
            raise DataError(
                f"source {self.name!r} has {len(self.images)} images but {n} "
                "labels: give one label per image"
            )
        if self.paths is not None and len(self.paths) != n:
            raise DataError(
                f"source {self.name!r} has {len(self.paths)} paths but {n} "
                "labels: give one label per image"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, i: int) -> np.ndarray:
        """Return image ``i`` as a fresh, writable uint8 HxWx3 RGB array."""
        n = len(self)
        if not -n <= int(i) < n:
            raise IndexError(f"image index {i} out of range for source {self.name!r} of {n}")
        if self.images is not None:
            return np.array(self.images[int(i)], dtype=np.uint8, copy=True)
        assert self.paths is not None
        return decode_image(self.paths[int(i)], self.image_size)

    def subset(self, indices: np.ndarray | Sequence[int]) -> ImageSource:
        """The images/paths/labels at ``indices``; memory-mapped pixels stay on disk."""
        idx = _check_indices(indices, len(self), self.name)
        images: Any = None
        if self.images is not None:
            if isinstance(self.images, RowView):
                images = self.images.take(idx)
            elif isinstance(self.images, np.memmap):
                images = RowView(self.images, idx)
            else:
                images = self.images[idx]
        paths = [self.paths[j] for j in idx] if self.paths is not None else None
        return ImageSource(
            labels=self.labels[idx],
            classes=list(self.classes),
            images=images,
            paths=paths,
            name=self.name,
            image_size=self.image_size,
        )

    def unlabeled(self) -> ImageSource:
        """The same images with labels -1 and no classes (for using a labeled folder as OOD)."""
        return ImageSource(
            labels=np.full(len(self), -1, dtype=np.int64),
            classes=[],
            images=self.images,
            paths=self.paths,
            name=self.name,
            image_size=self.image_size,
        )

    # Pickle memory-mapped images by file reference (DataLoader workers under spawn).
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if _is_memmap_root(state.get("images")):
            state["images"] = _MemmapRef(_pack(state["images"]))
        return state

    def __setstate__(self, state: dict) -> None:
        if isinstance(state.get("images"), _MemmapRef):
            state["images"] = _unpack(state["images"].packed)
        self.__dict__.update(state)


@dataclass
class _MemmapRef:
    packed: tuple


def _check_indices(indices: Any, n: int, name: str) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.size == 0:
        return np.zeros(0, dtype=np.int64)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise DataError(
            f"subset indices for source {name!r} must be a 1-D integer array, got "
            f"dtype {idx.dtype} shape {idx.shape}: pass np.int64 indices"
        )
    if idx.min() < 0 or idx.max() >= n:
        raise DataError(
            f"subset indices for source {name!r} range {idx.min()}..{idx.max()} "
            f"but the source has {n} images (0..{n - 1}): the indices belong to "
            "another dataset or split"
        )
    return idx.astype(np.int64, copy=False)


# --------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------


def _is_image_file(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _images_under(folder: str, recursive: bool) -> list[str]:
    """Image files below ``folder`` as paths relative to it, sorted; hidden entries skipped."""
    found: list[str] = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel_dir = os.path.relpath(dirpath, folder)
            for f in filenames:
                if _is_image_file(f):
                    found.append(f if rel_dir == "." else os.path.join(rel_dir, f))
    else:
        with os.scandir(folder) as it:
            found = [e.name for e in it if _is_image_file(e.name) and e.is_file()]
    return sorted(found)


def _files_source(
    paths: list[str],
    rel_paths: list[str],
    labels: np.ndarray,
    classes: list[str],
    name: str,
    cache_dir: str | os.PathLike | None,
    image_size: int | None,
    num_workers: int | None,
) -> ImageSource:
    """Image files as a source: decoded once into the cache, or lazily without a cache_dir."""
    images = None
    if cache_dir is not None:
        images = cached_images(
            paths, rel_paths, labels, classes, name, cache_dir, image_size, num_workers
        )
    return ImageSource(
        labels=labels, classes=classes, images=images, paths=paths, name=name, image_size=image_size
    )


def image_folder(
    root: str | os.PathLike,
    split: str | None = "train",
    exclude: list[str] | None = None,
    recursive_labels: bool = True,
    cache_dir: str | os.PathLike | None = None,
    image_size: int | None = None,
    name: str | None = None,
    num_workers: int | None = None,
) -> ImageSource:
    """Images in ``root/<split>/<class>/**/*.{jpg,jpeg,png,bmp,webp}``, labelled by class folder.

    Classes are the sorted class-folder names (for CIFAR-10 that is the official label order).
    ``recursive_labels``: the label is the top-level class folder and images may sit deeper
    (Tiny ImageNet's ``<wnid>/images/*.JPEG``); False takes only files directly in the class
    folder. ``exclude`` drops class folders by name (strict-OOD experiments). With ``cache_dir``
    everything is decoded once into a memory-mapped uint8 array so epochs never decode JPEGs.
    """
    check_image_size(image_size)
    layout = (
        "expected layout: <root>/"
        + (f"{split}/" if split else "")
        + "<class>/[...]/<image>.{jpg,jpeg,png,bmp,webp}"
    )
    if root is None or str(root) == "":
        raise DataError(
            f"image folder root is empty: set the source's root to the dataset folder ({layout})"
        )
    root_p = Path(root).expanduser()
    if not root_p.is_dir():
        raise DataError(
            f"image folder {root_p} does not exist or is not a folder: set LTCL_DATA_DIR (where "
            f"ltcl looks for datasets) or the source's root to the folder that holds "
            f"{split or '<class>'}/ ({layout})"
        )
    base = root_p / split if split else root_p
    if not base.is_dir():
        present = sorted(p.name for p in root_p.iterdir() if p.is_dir())
        raise DataError(
            f"split folder {base} does not exist (subfolders of {root_p}: "
            f"{present[:10]}): set split to one of them or fix the source's root ({layout})"
        )
    with os.scandir(base) as it:
        class_names = sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
    if not class_names:
        raise DataError(
            f"no class folders in {base}: {layout}; for unlabeled images put them "
            "in a single subfolder"
        )
    if exclude:
        if isinstance(exclude, str):
            raise ConfigError(
                f"exclude must be a list of class-folder names, got the string "
                f"{exclude!r}: write exclude=[{exclude}]"
            )
        unknown = sorted(set(exclude) - set(class_names))
        if unknown:
            raise DataError(
                f"exclude names {unknown[:10]} ({len(unknown)} in all) are not class "
                f"folders of {base} (which has {len(class_names)}, e.g. "
                f"{class_names[:5]}): fix the names (Tiny ImageNet uses wnids)"
            )
        class_names = [c for c in class_names if c not in set(exclude)]
        if not class_names:
            raise DataError(f"exclude removes every class folder of {base}: exclude fewer")
    rel_paths: list[str] = []
    labels: list[int] = []
    for label, cname in enumerate(class_names):
        files = _images_under(str(base / cname), recursive_labels)
        if not files:
            hint = "" if recursive_labels else " (images in subfolders need recursive_labels)"
            raise DataError(
                f"class folder {base / cname} holds no images{hint}: {layout}; "
                "remove the empty folder, add it to exclude, or fix the source's root"
            )
        rel_paths.extend(os.path.join(cname, f) for f in files)
        labels.extend([label] * len(files))
    paths = [str(base / r) for r in rel_paths]
    labels_arr = np.asarray(labels, dtype=np.int64)
    src_name = name or (f"{root_p.name}-{split}" if split else root_p.name)
    return _files_source(
        paths, rel_paths, labels_arr, class_names, src_name, cache_dir, image_size, num_workers
    )


def list_file(
    list_path: str | os.PathLike,
    image_root: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    image_size: int | None = None,
    name: str | None = None,
    num_workers: int | None = None,
) -> ImageSource:
    """Images named in a text file, one ``relative/path label`` per line (ImageNet-100-LT,
    Places-LT); paths are relative to ``image_root``. All files are checked up front so that a
    wrong root fails now, not in epoch 3."""
    check_image_size(image_size)
    lp = Path(list_path).expanduser()
    if not lp.is_file():
        raise DataError(
            f"list file {lp} does not exist: set the list path to a text file with "
            "one 'relative/path label' per line"
        )
    ir = Path(image_root).expanduser()
    if not ir.is_dir():
        raise DataError(
            f"image_root {ir} does not exist or is not a folder: set it to the "
            f"folder that the paths in {lp.name} are relative to"
        )
    rel_paths: list[str] = []
    labels: list[int] = []
    with open(lp, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            text = line.strip()
            if not text:
                continue
            parts = text.rsplit(maxsplit=1)
            label: int | None = None
            if len(parts) == 2:
                try:
                    label = int(parts[1])
                except ValueError:
                    label = None
            if label is None or label < 0:
                raise DataError(
                    f"{lp}, line {lineno}: {text[:80]!r} is not 'relative/path "
                    "label' with a non-negative integer label: fix or delete it"
                )
            rel_paths.append(parts[0])
            labels.append(label)
    if not rel_paths:
        raise DataError(
            f"list file {lp} has no entries: expected one 'relative/path label' per line"
        )
    paths = [os.path.join(ir, r) for r in rel_paths]
    missing = [r for r, p in zip(rel_paths, paths, strict=True) if not os.path.isfile(p)]
    if missing:
        raise DataError(
            f"{len(missing)} of {len(paths)} files listed in {lp} are missing under "
            f"image_root {ir}, e.g. {missing[:3]}: set image_root to the folder the "
            "listed paths are relative to, or restore the files"
        )
    labels_arr = np.asarray(labels, dtype=np.int64)
    classes = [str(i) for i in range(int(labels_arr.max()) + 1)]
    src_name = name or lp.stem
    return _files_source(
        paths, rel_paths, labels_arr, classes, src_name, cache_dir, image_size, num_workers
    )
