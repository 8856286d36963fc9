"""Decode many image files once into a cached uint8 array, opened memory-mapped afterwards.

Decoding JPEGs every epoch would make data loading, not the GPU, the bottleneck at CIFAR
scale. The cache is keyed on each file's relative path, size, modification time and label and
on the decode size, so a replaced image is decoded again; concurrent ranks decode once under a
file lock and the array is written atomically.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ltcl.errors import ConfigError, DataError
from ltcl.utils.files import atomic_write, make_folder
from ltcl.utils.lock import FileLock


def decode_image(path: str, image_size: int | None) -> np.ndarray:
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


_CHUNK = 500
_POOL_MIN_IMAGES = 2_000  # below this, starting worker processes costs more than it saves
_PROGRESS_EVERY = 10_000
_CACHE_FORMAT = 1  # bump when the cached array layout changes, so stale caches are not reused
# --------------------------------------------------------------------------------------------
# Decoding many files into a cached array
# --------------------------------------------------------------------------------------------


def _decode_chunk(args: tuple[list[str], int | None, tuple[int, int] | None]) -> np.ndarray:
    """Decode a chunk of files in a worker; all must share ``expect`` (H, W) unless resized."""
    paths, image_size, expect = args
    out = []
    for p in paths:
        a = decode_image(p, image_size)
        if expect is not None and a.shape[:2] != expect:
            raise DataError(
                f"image {p} is {a.shape[1]}x{a.shape[0]} but the first image is "
                f"{expect[1]}x{expect[0]}: a cached array needs one size; set the source's "
                "image_size (e.g. 32) to resize every image, or drop cache_dir"
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
    first = decode_image(paths[0], image_size)
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


def cached_images(
    paths: list[str],
    rel_paths: list[str],
    labels: np.ndarray,
    classes: list[str],
    name: str,
    cache_dir: str | os.PathLike,
    image_size: int | None,
    num_workers: int | None,
) -> np.ndarray:
    """Decode once into ``<cache_dir>/<name>-<hash>.npy`` (+ ``.labels.npy``) and reuse it."""
    try:
        sizes = [f"{st.st_size}:{st.st_mtime_ns}" for st in map(os.stat, paths)]
    except OSError as e:
        raise DataError(
            f"cannot stat image file {e.filename}: {e.strerror}; remove or replace it"
        ) from e
    key = _fingerprint(rel_paths, sizes, labels, image_size)
    cdir = make_folder(
        cache_dir, "cache_dir", "set cache_dir to a writable folder, or to null to decode lazily"
    )
    stem = f"{_safe_name(name)}-{key}"
    img_path, lab_path = cdir / f"{stem}.npy", cdir / f"{stem}.labels.npy"
    images = _open_cache(img_path, lab_path, labels, image_size, quiet=True)
    if images is None:
        # One process decodes; concurrent ranks wait for it and then reuse the file.
        with FileLock(cdir / f".{stem}.lock"):
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
    return images


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


def check_image_size(image_size: int | None) -> None:
    if image_size is not None and (
        isinstance(image_size, bool)
        or not isinstance(image_size, (int, np.integer))
        or image_size < 1
    ):
        raise ConfigError(
            f"image_size must be a positive integer or null, got {image_size!r}: "
            "set the source's image_size to 32 (for example) or null"
        )
