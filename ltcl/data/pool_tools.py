"""Build an OOD pool as one uint8 array, and check it for copies of the ID images.

A pool that holds copies or near-copies of the ID *test* images inflates every result of a
method that trains on it, silently. :func:`check_pool` finds three kinds, against each ID set
given (train, test):

- **exact**: the same pixels (SHA-256 of the image bytes);
- **near**: a 64-bit difference hash (dHash: 9 x 8 grey levels by area averaging, one bit per
  horizontal gradient) within ``max_distance`` bits, confirmed by the correlation of 16 x 16
  grey thumbnails (at least ``min_correlation``; a flat image, whose hash bits are noise, is
  never confirmed): resized, re-encoded (JPEG) or slightly recoloured copies;
- **flipped**: the same for the mirror image of a pool image (the horizontal flip is part of
  every contrastive augmentation, so a mirrored copy is as good as a copy).

What it does not find, by design: crops that move the content, rotations, and copies at
another aspect ratio; those need an embedding comparison. The difference hash is computed on
whole arrays with torch's area interpolation (the ``imagehash`` library computes it one PIL
image at a time, minutes for 160,000 images), and the pairs are found by XOR and popcount in
blocks.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ltcl.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


# ---- reading ----------------------------------------------------------------------------------


def list_images(source: str | os.PathLike, exclude_classes: Sequence[str] = ()) -> list[Path]:
    """Image files of a folder (recursively; a top-level folder named in ``exclude_classes``
    is left out) or of a list file (one path per line, relative to the list's folder)."""
    p = Path(source).expanduser()
    if p.is_dir():
        excluded = set(exclude_classes)
        files = sorted(
            f for f in p.rglob("*")
            if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()
            and not (excluded and f.relative_to(p).parts[0] in excluded)
        )  # fmt: skip
    elif p.is_file() and p.suffix in (".txt", ".lst"):
        lines = [line.split()[0] for line in p.read_text().splitlines() if line.strip()]
        files = [
            (p.parent / line) if not Path(line).is_absolute() else Path(line) for line in lines
        ]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise DataError(
                f"{len(missing)} files of the list {p} do not exist (e.g. {missing[0]}): fix the "
                "list or the folder it is read from"
            )
    else:
        raise DataError(
            f"pool source {p} does not exist or is not a folder, a .txt list or a .npy array: "
            "give an image folder, a list file (one path per line) or a uint8 N x H x W x 3 .npy"
        )
    if not files:
        raise DataError(f"pool source {p} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def load_array(path: str | os.PathLike) -> np.ndarray:
    """A uint8 N x H x W x 3 .npy, memory-mapped."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"array {p} does not exist: give a uint8 N x H x W x 3 .npy file")
    try:
        array = np.load(p, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"{p} is not a readable .npy array ({error})") from error
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[3] != 3:
        raise DataError(
            f"{p} holds {array.dtype} {array.shape}, expected uint8 N x H x W x 3 (RGB)"
        )
    if len(array) == 0:
        raise DataError(f"{p} holds no images: an empty pool cannot be used or checked")
    return array


def check_readable(files: Sequence[Path]) -> None:
    """Every file opens as an image (header check, before any work is written)."""
    from PIL import Image

    bad = []
    for f in files:
        try:
            with Image.open(f) as image:
                image.verify()
        except Exception as error:  # PIL raises many kinds
            bad.append(f"{f} ({type(error).__name__})")
    if bad:
        raise DataError(
            f"{len(bad)} of {len(files)} files are not readable images, e.g. {bad[0]}: remove "
            "them or fix the folder, then build again"
        )


def decode(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        if image.size != (size, size):
            image = image.resize((size, size), Image.BICUBIC)
        return np.asarray(image, dtype=np.uint8)


# ---- build ------------------------------------------------------------------------------------


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def build_pool(
    sources: Sequence[str],
    out: str | os.PathLike,
    size: int = 32,
    exclude_classes: Sequence[str] = (),
    command: str = "",
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Write every image of ``sources`` (folders, list files, .npy arrays), resized to
    ``size`` x ``size``, into one uint8 .npy at ``out`` and a manifest beside it
    (``<out>.manifest.json``: sources, counts, the array's SHA-256, the command). Resumable: a
    build stopped half-way continues from ``<out>.partial.json``; a finished one is refused."""
    out = Path(out).expanduser()
    if size < 8:
        raise DataError(f"--size {size}: the pool's images must be at least 8 x 8 pixels")
    manifest_path = out.with_name(out.name + ".manifest.json")
    partial_path = out.with_name(out.name + ".partial.json")
    if manifest_path.exists() and out.exists():
        raise DataError(f"{out} is already built ({manifest_path}): remove both to rebuild")
    plan: list[dict[str, Any]] = []
    for source in sources:
        if str(source).endswith(".npy"):
            array = load_array(source)
            if array.shape[1:3] != (size, size):
                raise DataError(
                    f"{source} holds {array.shape[1]} x {array.shape[2]} images but the pool is "
                    f"{size} x {size}: resize it first, or build with --size {array.shape[1]}"
                )
            plan.append({"source": str(source), "kind": "array", "count": len(array)})
        else:
            files = list_images(source, exclude_classes)
            check_readable(files)
            plan.append({"source": str(source), "kind": "images", "count": len(files),
                         "files": [str(f) for f in files]})  # fmt: skip
    total = sum(p["count"] for p in plan)
    signature = {"sources": [p["source"] for p in plan], "size": size, "total": total,
                 "exclude_classes": list(exclude_classes)}  # fmt: skip
    done = 0
    if partial_path.exists() and out.exists():
        state = json.loads(partial_path.read_text())
        if state.get("signature") != signature:
            raise DataError(
                f"{partial_path} belongs to a build with other sources or size: remove it and "
                f"{out} to start again"
            )
        done = int(state["done"])
        array = np.lib.format.open_memmap(out, mode="r+")
        progress(f"[ltcl-pool] resuming at image {done:,} of {total:,}")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        array = np.lib.format.open_memmap(out, mode="w+", dtype=np.uint8,
                                          shape=(total, size, size, 3))  # fmt: skip
    started, row, next_report = time.perf_counter(), 0, done + max(1, total // 20)
    for item in plan:
        end = row + item["count"]
        if end <= done:
            row = end
            continue
        if item["kind"] == "array":
            source = load_array(item["source"])
            for start in range(max(row, done), end, 4096):
                stop = min(end, start + 4096)
                array[start:stop] = source[start - row : stop - row]
                done = stop
        else:
            files = item["files"]
            for i in range(max(row, done), end):
                array[i] = decode(Path(files[i - row]), size)
                done = i + 1
                if done % 2048 == 0:
                    array.flush()
                    partial_path.write_text(json.dumps({"signature": signature, "done": done}))
                if done >= next_report:
                    rate = (done) / max(1e-9, time.perf_counter() - started)
                    progress(f"[ltcl-pool] {done:,} / {total:,} images ({rate:,.0f}/s)")
                    next_report = done + max(1, total // 20)
        row = end
        array.flush()
        partial_path.write_text(json.dumps({"signature": signature, "done": done}))
    del array
    manifest = {
        "array": str(out),
        "count": total,
        "size": size,
        "sha256": sha256_file(out),
        "sources": [{k: v for k, v in p.items() if k != "files"} for p in plan],
        "exclude_classes": list(exclude_classes),
        "command": command,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    partial_path.unlink(missing_ok=True)
    return manifest


# ---- check ------------------------------------------------------------------------------------


def exact_hashes(images: np.ndarray, block: int = 8192) -> list[bytes]:
    """SHA-256 of each image's bytes."""
    out = []
    for start in range(0, len(images), block):
        chunk = np.ascontiguousarray(images[start : start + block])
        out.extend(hashlib.sha256(image.tobytes()).digest() for image in chunk)
    return out


def difference_hash(images: np.ndarray, flip: bool = False, block: int = 8192) -> np.ndarray:
    """64-bit dHash of each image as uint64: grey (ITU-R 601), area-resized to 9 x 8, one bit
    per left-right comparison. ``flip`` hashes the mirror images."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32)
    out = np.empty(len(images), dtype=np.uint64)
    for start in range(0, len(images), block):
        x = torch.from_numpy(np.array(images[start : start + block])).float()  # a writable copy
        grey = (x * weights).sum(-1)[:, None]  # N 1 H W
        if flip:
            grey = grey.flip(-1)
        small = torch.nn.functional.interpolate(grey, size=(8, 9), mode="area")[:, 0]
        bits = (small[:, :, 1:] > small[:, :, :-1]).reshape(len(x), 64).numpy()
        out[start : start + len(x)] = np.packbits(bits, axis=1).view(">u8").ravel()
    return out


def hamming_pairs(
    pool: np.ndarray, reference: np.ndarray, max_distance: int, block: int = 256
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pool index, reference index, distance) of every pair within ``max_distance`` bits,
    and for each pool image only its closest reference image."""
    found_p, found_r, found_d = [], [], []
    for start in range(0, len(pool), block):
        x = pool[start : start + block, None] ^ reference[None, :]
        distance = np.bitwise_count(x)
        best = distance.argmin(axis=1)
        best_d = distance[np.arange(len(best)), best]
        hit = np.flatnonzero(best_d <= max_distance)
        found_p.append(start + hit)
        found_r.append(best[hit])
        found_d.append(best_d[hit])
    return (np.concatenate(found_p).astype(np.int64), np.concatenate(found_r).astype(np.int64),
            np.concatenate(found_d).astype(np.int64))  # fmt: skip


def thumbnails(images: np.ndarray, flip: bool = False, block: int = 8192) -> np.ndarray:
    """16 x 16 grey thumbnails, zero mean and unit norm (float32, N x 256); a flat image (grey
    std below 2 levels) gets zeros, so it correlates with nothing."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32)
    out = np.zeros((len(images), 256), dtype=np.float32)
    for start in range(0, len(images), block):
        x = torch.from_numpy(np.array(images[start : start + block])).float()  # a writable copy
        grey = (x * weights).sum(-1)[:, None]
        if flip:
            grey = grey.flip(-1)
        small = torch.nn.functional.interpolate(grey, size=(16, 16), mode="area").reshape(
            len(x), 256
        )
        small = small - small.mean(1, keepdim=True)
        std = small.std(1, keepdim=True)
        unit = small / small.norm(dim=1, keepdim=True).clamp_min(1e-6)
        out[start : start + len(x)] = torch.where(std >= 2.0, unit, 0.0).numpy()
    return out


def confirmed(
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
    pool_thumbs: np.ndarray,
    reference_thumbs: np.ndarray,
    min_correlation: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p, r, d = pairs
    keep = (pool_thumbs[p] * reference_thumbs[r]).sum(1) >= min_correlation
    return p[keep], r[keep], d[keep]


def check_pool(
    pool: np.ndarray,
    references: dict[str, np.ndarray],
    max_distance: int = 4,
    min_correlation: float = 0.9,
) -> dict[str, Any]:
    """Copies of each reference set's images in the pool: exact, near, flipped (see module)."""
    for name, images in references.items():
        if images.shape[1:] != pool.shape[1:]:
            raise DataError(
                f"the pool's images are {pool.shape[1]} x {pool.shape[2]} but {name}'s are "
                f"{images.shape[1]} x {images.shape[2]}: build the pool at the ID resolution "
                f"(ltcl-pool build --size {images.shape[1]})"
            )
    pool_exact = exact_hashes(pool)
    pool_hash, pool_flipped = difference_hash(pool), difference_hash(pool, flip=True)
    pool_thumbs, pool_thumbs_flipped = thumbnails(pool), thumbnails(pool, flip=True)
    report: dict[str, Any] = {"pool_size": len(pool), "max_distance": max_distance,
                              "min_correlation": min_correlation, "sets": {}}  # fmt: skip
    flagged: set[int] = set()
    pairs: list[tuple[int, str, int, int, str]] = []
    for name, images in references.items():
        reference_exact = set(exact_hashes(images))
        exact = [i for i, h in enumerate(pool_exact) if h in reference_exact]
        reference_hash, reference_thumbs = difference_hash(images), thumbnails(images)
        near_p, near_r, near_d = confirmed(
            hamming_pairs(pool_hash, reference_hash, max_distance), pool_thumbs,
            reference_thumbs, min_correlation,
        )  # fmt: skip
        flip_p, flip_r, flip_d = confirmed(
            hamming_pairs(pool_flipped, reference_hash, max_distance), pool_thumbs_flipped,
            reference_thumbs, min_correlation,
        )  # fmt: skip
        near = sorted(set(near_p.tolist()) - set(exact))
        flipped = sorted(set(flip_p.tolist()) - set(near_p.tolist()) - set(exact))
        report["sets"][name] = {
            "size": len(images),
            "exact": len(exact),
            "near": len(near),
            "flipped": len(flipped),
            "pool_indices": sorted(set(exact) | set(near) | set(flipped)),
        }
        flagged |= set(exact) | set(near) | set(flipped)
        for p, r, d in zip(near_p, near_r, near_d, strict=True):
            pairs.append((int(d), name, int(p), int(r), "near"))
        for p, r, d in zip(flip_p, flip_r, flip_d, strict=True):
            pairs.append((int(d), name, int(p), int(r), "flipped"))
    report["flagged"] = sorted(flagged)
    report["closest_pairs"] = [
        {"distance": d, "set": s, "pool_index": p, "id_index": r, "kind": k}
        for d, s, p, r, k in sorted(pairs)[:32]
    ]
    return report


def pairs_grid(
    pool: np.ndarray, references: dict[str, np.ndarray], pairs: list[dict], path: Path
) -> Path | None:
    """The closest pairs as an image: pool image above its ID image, one column per pair."""
    if not pairs:
        return None
    from PIL import Image
    from torchvision.utils import make_grid

    top = [torch.from_numpy(np.array(pool[p["pool_index"]])).permute(2, 0, 1) for p in pairs]
    bottom = [
        torch.from_numpy(np.array(references[p["set"]][p["id_index"]])).permute(2, 0, 1)
        for p in pairs
    ]
    grid = make_grid(torch.stack(top + bottom), nrow=len(pairs), padding=2, pad_value=255)
    Image.fromarray(grid.permute(1, 2, 0).numpy()).resize(
        (grid.shape[2] * 2, grid.shape[1] * 2), Image.NEAREST
    ).save(path)
    return path


def write_clean_pool(pool: np.ndarray, drop: Sequence[int], out: Path) -> int:
    keep = np.setdiff1d(np.arange(len(pool)), np.asarray(drop, dtype=np.int64))
    clean = np.lib.format.open_memmap(out, mode="w+", dtype=np.uint8,
                                      shape=(len(keep), *pool.shape[1:]))  # fmt: skip
    for start in range(0, len(keep), 8192):
        clean[start : start + 8192] = pool[keep[start : start + 8192]]
    clean.flush()
    return len(keep)
