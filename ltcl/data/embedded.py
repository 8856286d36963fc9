"""Embedded default data: real images that ship inside scikit-learn, so that the package, its
tests and a first run work with no download and no data folder.

- ID set: scikit-learn's handwritten digits (1,797 images, 10 classes), to be split long-tailed
  with :func:`ltcl.data.splits.make_long_tailed_split` (e.g. val_per_class=30, n_max=120, rho=10;
  the smallest class, digit 8, has 174 images).
- OOD pool: seeded random crops of scikit-learn's two sample photographs (china.jpg,
  flower.jpg): natural images, clearly out of distribution for digits.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from ltcl.data.sources import ImageSource
from ltcl.errors import ConfigError

__all__ = ["digits_long_tailed_source", "sample_photo_crops"]

_DIGITS_SIZE = 32


def digits_long_tailed_source() -> ImageSource:
    """The 1,797 scikit-learn digits as uint8 32x32 RGB images, labels 0..9.

    Upsampled 8 -> 32 px with bicubic interpolation rather than nearest: nearest would give
    4x4-pixel blocks whose grid is a low-level cue that random crops shift, and which no
    natural image has; bicubic gives smooth strokes, closer to the photos the CIFAR recipes (and
    their bicubic random-resized crops) were designed for.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    gray = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)  # 0..16 -> 0..255
    out = np.empty((len(gray), _DIGITS_SIZE, _DIGITS_SIZE, 3), dtype=np.uint8)
    for i, g in enumerate(gray):
        big = Image.fromarray(g).resize((_DIGITS_SIZE, _DIGITS_SIZE), Image.Resampling.BICUBIC)
        out[i] = np.asarray(big, dtype=np.uint8)[:, :, None]
    labels = np.asarray(d.target, dtype=np.int64)
    return ImageSource(
        labels=labels, classes=[str(i) for i in range(10)], images=out, name="sklearn-digits"
    )


def sample_photo_crops(num_crops: int = 2000, size: int = 32, seed: int = 0) -> ImageSource:
    """OOD pool: ``num_crops`` seeded random square crops (side 48..160 px) of scikit-learn's
    sample photos, resized (bicubic) to ``size`` x ``size``; labels -1.

    Crops of varied scale give many distinct-looking images from two photos, so the OOD sampler
    has a pool with real diversity to choose from.
    """
    for nm, v in (("num_crops", num_crops), ("size", size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ConfigError(f"{nm} must be a positive integer, got {v!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    from sklearn.datasets import load_sample_images

    sample = load_sample_images()
    photos = [Image.fromarray(np.asarray(a, dtype=np.uint8)).convert("RGB") for a in sample.images]
    names = [os.path.splitext(os.path.basename(f))[0] for f in sample.filenames]
    rng = np.random.default_rng(seed)
    out = np.empty((num_crops, size, size, 3), dtype=np.uint8)
    which = np.empty(num_crops, dtype=np.int64)
    for i in range(num_crops):
        which[i] = int(rng.integers(len(photos)))
        photo = photos[which[i]]
        w, h = photo.size
        side = int(rng.integers(48, 161))
        x = int(rng.integers(0, w - side + 1))
        y = int(rng.integers(0, h - side + 1))
        crop = photo.resize((size, size), Image.Resampling.BICUBIC, box=(x, y, x + side, y + side))
        out[i] = np.asarray(crop, dtype=np.uint8)
    # The photo a crop comes from is its (unused in training) class: round logs count them.
    return ImageSource(
        labels=which,
        classes=names,
        images=out,
        name="sklearn-sample-photo-crops",
    )
