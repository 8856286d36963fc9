"""Where images come from: image folders, list files, ``.npy`` arrays, torchvision CIFAR, archives.

Every loader checks its input before anything expensive happens and raises
:class:`~ltcl.errors.DataError` with the problem and the fix, so that a wrong path fails in
seconds instead of after a sweep has been scheduled. Nothing here falls back to other data.

Decoded images are cached as one uint8 ``.npy`` array (opened memory-mapped) because decoding
JPEGs every epoch would make data loading, not the GPU, the bottleneck at CIFAR scale.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import multiprocessing
import os
import re
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ltcl.errors import ConfigError, DataError
from ltcl.utils.files import atomic_write, atomic_write_text

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageSource",
    "RowView",
    "extract_archive",
    "image_folder",
    "list_file",
    "npy_array",
    "torchvision_cifar",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_CACHE_FORMAT = 1  # bump when the cached array layout changes, so stale caches are not reused
_PROGRESS_EVERY = 10_000
_POOL_MIN_IMAGES = 2_000  # below this, starting worker processes costs more than it saves
_CHUNK = 500


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


def _decode(path: str, image_size: int | None) -> np.ndarray:
    """Decode one file to uint8 HxWx3 RGB (grayscale/CMYK/palette are converted)."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if image_size is not None and im.size != (image_size, image_size):
                im = im.resize((image_size, image_size), Image.Resampling.BICUBIC)
            return np.asarray(im, dtype=np.uint8).copy()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(
            f"cannot read image file {path} ({type(e).__name__}: {e}): the file is corrupt or "
            "not an image; remove or replace it (or drop it from the list file)"
        ) from e


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
        return _decode(self.paths[int(i)], self.image_size)

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
# Decoding many files into a cached array
# --------------------------------------------------------------------------------------------


def _decode_chunk(args: tuple[list[str], int | None, tuple[int, int] | None]) -> np.ndarray:
    """Decode a chunk of files in a worker; all must share ``expect`` (H, W) unless resized."""
    paths, image_size, expect = args
    out = []
    for p in paths:
        a = _decode(p, image_size)
        if expect is not None and a.shape[:2] != expect:
            raise DataError(
                f"image {p} is {a.shape[1]}x{a.shape[0]} but the first image is "
                f"{expect[1]}x{expect[0]}: a cached array needs one size; set image_size "
                "(data.train_source.image_size=32 and data.test_source.image_size=32, or ood.source.image_size=32) to resize every image, or drop cache_dir"
            )
        out.append(a)
    return np.stack(out)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "images"


def _fingerprint(
    rel_paths: list[str], sizes: list, labels: np.ndarray, image_size: int | None
) -> str:
    """Cache key: each file's relative path, size and modification time (an image replaced by
    another of the same size changes its mtime), its label, and the decode size."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": _CACHE_FORMAT, "image_size": image_size}).encode())
    for rel, size, lab in zip(rel_paths, sizes, labels.tolist(), strict=True):
        h.update(f"{rel}\t{size}\t{lab}\n".encode())
    return h.hexdigest()[:16]


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda handle: np.save(handle, array))


def _pool_context() -> Any:
    # fork reuses the already-imported modules (fast start, no __main__ guard needed);
    # spawn elsewhere.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _build_cache(
    paths: list[str],
    labels: np.ndarray,
    image_size: int | None,
    out: Path,
    name: str,
    num_workers: int | None,
) -> None:
    """Decode ``paths`` into ``out`` (uint8 N,H,W,3) without holding all pixels in RAM."""
    n = len(paths)
    first = _decode(paths[0], image_size)
    expect = None if image_size is not None else first.shape[:2]
    shape = (n, *first.shape)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    workers = num_workers if num_workers is not None else min(8, os.cpu_count() or 1)
    chunks = [(paths[s : s + _CHUNK], image_size, expect) for s in range(0, n, _CHUNK)]
    print(f"[ltcl] decoding {n} images of {name} into {out} ...", flush=True)
    try:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        done, next_report = 0, _PROGRESS_EVERY
        if workers > 1 and n >= _POOL_MIN_IMAGES:
            with _pool_context().Pool(workers) as pool:
                for block in pool.imap(_decode_chunk, chunks):
                    arr[done : done + len(block)] = block
                    done += len(block)
                    if done >= next_report:
                        print(f"[ltcl]   {done}/{n} images decoded", flush=True)
                        next_report += _PROGRESS_EVERY
        else:
            for c in chunks:
                block = _decode_chunk(c)
                arr[done : done + len(block)] = block
                done += len(block)
                if done >= next_report:
                    print(f"[ltcl]   {done}/{n} images decoded", flush=True)
                    next_report += _PROGRESS_EVERY
        arr.flush()
        del arr
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"[ltcl] cached {n} images of {name}: {out}", flush=True)


def _cached_source(
    paths: list[str],
    rel_paths: list[str],
    labels: np.ndarray,
    classes: list[str],
    name: str,
    cache_dir: str | os.PathLike,
    image_size: int | None,
    num_workers: int | None,
) -> ImageSource:
    """Decode once into ``<cache_dir>/<name>-<hash>.npy`` (+ ``.labels.npy``) and reuse it."""
    try:
        sizes = [f"{st.st_size}:{st.st_mtime_ns}" for st in map(os.stat, paths)]
    except OSError as e:
        raise DataError(
            f"cannot stat image file {e.filename}: {e.strerror}; remove or replace it"
        ) from e
    key = _fingerprint(rel_paths, sizes, labels, image_size)
    cdir = Path(cache_dir).expanduser()
    try:
        cdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"cannot create cache_dir {cdir} ({e.strerror}): set cache_dir to a "
            "writable folder, or to null to decode lazily"
        ) from e
    stem = f"{_safe_name(name)}-{key}"
    img_path, lab_path = cdir / f"{stem}.npy", cdir / f"{stem}.labels.npy"
    images = _open_cache(img_path, lab_path, labels, image_size, quiet=True)
    if images is None:
        # One process decodes; concurrent ranks wait for it and then reuse the file.
        with _FileLock(cdir / f".{stem}.lock"):
            images = _open_cache(img_path, lab_path, labels, image_size)
            if images is None:
                _atomic_save_npy(lab_path, labels)  # labels first: images mark completion
                _build_cache(paths, labels, image_size, img_path, name, num_workers)
                images = _open_cache(img_path, lab_path, labels, image_size)
        if images is None:
            raise DataError(
                f"cache {img_path} was written but cannot be read back: check the "
                "disk (space, permissions) and delete the file to rebuild it"
            )
    return ImageSource(
        labels=labels, classes=classes, images=images, paths=paths, name=name, image_size=image_size
    )


def _open_cache(
    img_path: Path,
    lab_path: Path,
    labels: np.ndarray,
    image_size: int | None,
    quiet: bool = False,
) -> np.ndarray | None:
    """The cached array if present and consistent with the scan, else None (rebuild)."""
    if not (img_path.is_file() and lab_path.is_file()):
        return None
    try:
        images = np.load(img_path, mmap_mode="r")
        cached_labels = np.load(lab_path)
    except (OSError, ValueError) as e:
        if not quiet:
            print(f"[ltcl] cache {img_path} is unreadable ({e}); rebuilding it", flush=True)
        return None
    ok = (
        images.dtype == np.uint8
        and images.ndim == 4
        and images.shape[3] == 3
        and images.shape[0] == len(labels)
        and np.array_equal(cached_labels, labels)
        and (image_size is None or images.shape[1:3] == (image_size, image_size))
    )
    if not ok and not quiet:
        print(f"[ltcl] cache {img_path} does not match the files; rebuilding it", flush=True)
    return images if ok else None


def _check_image_size(image_size: int | None) -> None:
    if image_size is not None and (
        isinstance(image_size, bool)
        or not isinstance(image_size, (int, np.integer))
        or image_size < 1
    ):
        raise ConfigError(
            f"image_size must be a positive integer or null, got {image_size!r}: "
            "set data.train_source.image_size=32 (and data.test_source.image_size) or null"
        )


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
    _check_image_size(image_size)
    layout = (
        "expected layout: <root>/"
        + (f"{split}/" if split else "")
        + "<class>/[...]/<image>.{jpg,jpeg,png,bmp,webp}"
    )
    if root is None or str(root) == "":
        raise DataError(
            f"image folder root is empty: set data.root to the dataset folder ({layout})"
        )
    root_p = Path(root).expanduser()
    if not root_p.is_dir():
        raise DataError(
            f"data root {root_p} does not exist or is not a folder: set "
            f"LTCL_DATA_DIR or data.root=... to the folder that holds "
            f"{split or '<class>'}/ ({layout})"
        )
    base = root_p / split if split else root_p
    if not base.is_dir():
        present = sorted(p.name for p in root_p.iterdir() if p.is_dir())
        raise DataError(
            f"split folder {base} does not exist (subfolders of {root_p}: "
            f"{present[:10]}): set split to one of them or fix data.root ({layout})"
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
                "remove the empty folder, add it to exclude, or fix data.root"
            )
        rel_paths.extend(os.path.join(cname, f) for f in files)
        labels.extend([label] * len(files))
    paths = [str(base / r) for r in rel_paths]
    labels_arr = np.asarray(labels, dtype=np.int64)
    src_name = name or (f"{root_p.name}-{split}" if split else root_p.name)
    if cache_dir is not None:
        return _cached_source(
            paths, rel_paths, labels_arr, class_names, src_name, cache_dir, image_size, num_workers
        )
    return ImageSource(
        labels=labels_arr, classes=class_names, paths=paths, name=src_name, image_size=image_size
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
    _check_image_size(image_size)
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
    if cache_dir is not None:
        return _cached_source(
            paths, rel_paths, labels_arr, classes, src_name, cache_dir, image_size, num_workers
        )
    return ImageSource(
        labels=labels_arr, classes=classes, paths=paths, name=src_name, image_size=image_size
    )


def npy_array(
    path: str | os.PathLike, labels_path: str | os.PathLike | None = None, mmap: bool = True
) -> ImageSource:
    """A uint8 (N,H,W,3) ``.npy`` file, memory-mapped by default (the 300K Random Images file is
    0.92 GB; COLT loads it into RAM twice per process). Labels from ``labels_path`` or -1."""
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
    return ImageSource(labels=labels, classes=classes, images=arr, name=p.stem)


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
            f"CIFAR root is empty: set data.root to the folder that holds {_CIFAR_FOLDERS[name]}/"
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
            "or use the image-folder copy (data=cifar10_lt_folder, i.e. image_folder("
            "'<dir>/cifar10', 'train')), e.g. the cifar10/ folder extracted from "
            "../shared/data/cifar10-jpeg.tar.gz with extract_archive(...)"
            if name == "cifar10"
            else "(no image-folder copy of CIFAR-100 is shared here; copy the official "
            "cifar-100-python.tar.gz next to the code and extract it)"
        )
        raise DataError(
            f"{name} ({'train' if train else 'test'}) in torchvision format is unavailable under "
            f"{r}: {what} ({type(e).__name__}: {e}). Point data.root at the folder that holds "
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


# --------------------------------------------------------------------------------------------
# Archives
# --------------------------------------------------------------------------------------------


def extract_archive(archive_path: str | os.PathLike, dest_dir: str | os.PathLike) -> str:
    """Extract a ``.tar.gz`` once into ``dest_dir`` and return the extracted folder.

    Extraction goes to a temporary folder that is renamed into place, and a marker file records
    completion (with the archive's size and mtime, so a replaced archive is re-extracted). Several
    processes (DDP ranks) may call this at once: a file lock lets one extract. Returns
    ``dest_dir/<top>`` when the archive holds a single top-level folder, else ``dest_dir``.
    """
    arc = Path(archive_path).expanduser()
    if not arc.is_file():
        raise DataError(
            f"archive {arc} does not exist: set the archive path (e.g. "
            "../shared/data/cifar10-jpeg.tar.gz) or extract it yourself and point "
            "data.root at the folder"
        )
    dest = Path(dest_dir).expanduser()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"cannot create extraction folder {dest} ({e.strerror}): set it to a writable folder"
        ) from e
    st = arc.stat()
    stamp = {"archive": arc.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    marker = dest / f".{arc.name}.extracted"
    pending = dest / f".{arc.name}.pending"

    def done() -> str | None:
        try:
            info = json.loads(marker.read_text())
        except (OSError, ValueError):
            return None
        tops = info.get("tops", [])
        if {k: info.get(k) for k in stamp} != stamp or not all((dest / t).exists() for t in tops):
            return None
        return str(dest / tops[0]) if len(tops) == 1 and (dest / tops[0]).is_dir() else str(dest)

    found = done()
    if found:
        return found
    with _FileLock(dest / f".{arc.name}.lock"):
        found = done()
        if found:
            return found
        # Remove what an interrupted or outdated extraction of this archive left behind.
        for stale in (pending, marker):
            try:
                for t in json.loads(stale.read_text()).get("tops", []):
                    _remove(dest / t)
            except (OSError, ValueError):
                pass
            stale.unlink(missing_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".extract-{arc.name}-", dir=dest))
        try:
            try:
                with tarfile.open(arc, "r:*") as tf:
                    _safe_extractall(tf, tmp)
            except (tarfile.TarError, OSError, EOFError) as e:
                raise DataError(
                    f"cannot extract {arc} ({type(e).__name__}: {e}): the archive "
                    "is corrupt or not a tar file; copy it again"
                ) from e
            tops = sorted(os.listdir(tmp))
            if not tops:
                raise DataError(f"archive {arc} is empty: copy it again")
            for t in tops:  # an empty folder in the way (an interrupted copy) holds nothing
                if (dest / t).is_dir() and not any((dest / t).iterdir()):
                    (dest / t).rmdir()
            clash = [t for t in tops if (dest / t).exists()]
            if clash:
                raise DataError(
                    f"{[str(dest / t) for t in clash]} already exist(s) but were not "
                    f"extracted from {arc.name} by ltcl: remove them or choose "
                    "another destination folder"
                )
            atomic_write_text(pending, json.dumps({"tops": tops}))
            for t in tops:
                os.replace(tmp / t, dest / t)
            atomic_write_text(marker, json.dumps({**stamp, "tops": tops}))
            pending.unlink(missing_ok=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    found = done()
    assert found is not None
    return found


def _safe_extractall(tf: tarfile.TarFile, dest: Path) -> None:
    """Refuse members that would land outside ``dest`` (absolute paths, ``..``, odd links)."""
    if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
        tf.extractall(dest, filter="data")
        return
    root = os.path.realpath(dest)
    for m in tf.getmembers():
        target = os.path.realpath(os.path.join(dest, m.name))
        if os.path.commonpath([root, target]) != root or m.issym() or m.islnk() or m.isdev():
            raise DataError(
                f"archive member {m.name!r} is a link or points outside the "
                "destination: refusing to extract; use a plain archive of files"
            )
    tf.extractall(dest)  # noqa: S202 - members checked above


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


class _FileLock:
    """An exclusive advisory lock (fcntl) so that concurrent ranks extract only once."""

    def __init__(self, path: Path):
        self.path = path
        self._f: Any = None

    def __enter__(self) -> _FileLock:
        self._f = open(self.path, "a+")  # noqa: SIM115 - closed in __exit__
        try:
            import fcntl

            fcntl.flock(self._f.fileno(), fcntl.LOCK_EX)
        except ImportError:  # no fcntl (Windows): single-process use only
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            import fcntl

            fcntl.flock(self._f.fileno(), fcntl.LOCK_UN)
        except ImportError:
            pass
        self._f.close()
