"""Sources that are arrays already: a uint8 ``.npy`` file (the 300K Random Images pool) and
torchvision's CIFAR files (the published SDCLR/COLT/BCL index files use their order)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ltcl.data.sources import ImageSource
from ltcl.errors import ConfigError, DataError


def npy_array(
    path: str | os.PathLike,
    labels_path: str | os.PathLike | None = None,
    mmap: bool = True,
    exclude_path: str | os.PathLike | None = None,
) -> ImageSource:
    """A uint8 (N,H,W,3) ``.npy`` file, memory-mapped by default (the 300K Random Images file is
    0.92 GB; COLT loads it into RAM twice per process). Labels from ``labels_path`` or -1.
    ``exclude_path``: a .npy of row indices to leave out (``ltcl-pool check``'s exclude.npy)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(
            f"array file {p} does not exist: set the path to a uint8 N x H x W x 3 "
            ".npy file (e.g. 300K_random_images.npy)"
        )
    try:
        arr = np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(
            f"{p} is not a readable .npy array ({e}): give a uint8 N x H x W x 3 "
            "array saved with numpy.save"
        ) from e
    if not isinstance(arr, np.ndarray):
        raise DataError(
            f"{p} is an .npz archive, not one array: save the images alone with numpy.save"
        )
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[3] != 3:
        raise DataError(
            f"{p} holds dtype {arr.dtype} shape {arr.shape}, expected uint8 "
            "N x H x W x 3 (RGB, channels last): convert it, e.g. "
            "np.save(path, images.astype(np.uint8))"
        )
    if arr.shape[0] == 0:
        raise DataError(f"{p} holds no images: point at the full array")
    n = arr.shape[0]
    if labels_path is None:
        labels = np.full(n, -1, dtype=np.int64)
        classes: list[str] = []
    else:
        lp = Path(labels_path).expanduser()
        if not lp.is_file():
            raise DataError(
                f"labels file {lp} does not exist: fix labels_path or set it to "
                "null for an unlabeled pool"
            )
        try:
            lab = np.load(lp, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"labels file {lp} is not a readable .npy array ({e})") from e
        if (
            not isinstance(lab, np.ndarray)
            or not np.issubdtype(lab.dtype, np.integer)
            or lab.ndim != 1
            or len(lab) != n
            or (n and lab.min() < -1)
        ):
            raise DataError(
                f"labels file {lp} must be a 1-D integer array of {n} labels "
                f"(-1 = unknown), got {getattr(lab, 'dtype', '?')} "
                f"{getattr(lab, 'shape', '?')}: it belongs to another array"
            )
        labels = lab.astype(np.int64)
        classes = [str(i) for i in range(int(labels.max()) + 1)] if labels.max() >= 0 else []
    source = ImageSource(labels=labels, classes=classes, images=arr, name=p.stem)
    if exclude_path is None:
        return source
    ep = Path(exclude_path).expanduser()
    try:
        drop = np.load(ep, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(
            f"exclude file {ep} is not a readable .npy of row indices ({e}): give the "
            "exclude.npy that ltcl-pool check wrote, or exclude_path=null"
        ) from e
    if drop.ndim != 1 or (drop.size and (drop.min() < 0 or drop.max() >= n)):
        raise DataError(
            f"exclude file {ep} must hold row indices in 0..{n - 1}: it belongs to another pool"
        )
    return source.subset(np.setdiff1d(np.arange(n), drop.astype(np.int64)))


_CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


def torchvision_cifar(
    root: str | os.PathLike, name: str, train: bool, download: bool = False
) -> ImageSource:
    """Official CIFAR-10/100 arrays via torchvision (needed for the published SDCLR index files,
    which index the official training order)."""
    if name not in _CIFAR_FOLDERS:
        raise ConfigError(f"unknown CIFAR name {name!r}: use 'cifar10' or 'cifar100'")
    if root is None or str(root) == "":
        raise DataError(
            f"CIFAR root is empty: set the source's root to the folder that holds "
            f"{_CIFAR_FOLDERS[name]}/"
        )
    from urllib.error import URLError

    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    r = Path(root).expanduser()
    try:
        ds = cls(root=str(r), train=train, download=download)
    except (RuntimeError, OSError, URLError) as e:
        what = "download failed" if download else "files not found or corrupted"
        alt = (
            "or use the image-folder copy: data=cifar10_lt_folder, which extracts "
            "paths.shared_data_dir/cifar10-jpeg.tar.gz on first use"
            if name == "cifar10"
            else "(no image-folder copy of CIFAR-100 is shared here; copy the official "
            "cifar-100-python.tar.gz next to the code and extract it)"
        )
        raise DataError(
            f"{name} ({'train' if train else 'test'}) in torchvision format is unavailable under "
            f"{r}: {what} ({type(e).__name__}: {e}). Point the source's root at the folder that holds "
            f"{_CIFAR_FOLDERS[name]}/ (data_batch_* / train, test files), {alt}"
        ) from e
    images = np.ascontiguousarray(ds.data, dtype=np.uint8)
    labels = np.asarray(ds.targets, dtype=np.int64)
    return ImageSource(
        labels=labels,
        classes=list(ds.classes),
        images=images,
        name=f"{name}-{'train' if train else 'test'}",
    )
