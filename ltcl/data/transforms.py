"""Augmentation for contrastive views, per sample (DataLoader workers) or batched (on the device).

Two implementations of the same recipe:

- :class:`PerSampleAugment` uses ``torchvision.transforms.v2`` on one image at a time. Each call draws
  its own random parameters, so it is the reference behaviour (COLT/SDCLR/BCL augment per sample).
- :class:`BatchedAugment` uses kornia on a whole (B, 3, H, W) batch on the training device. Every
  sample draws its own parameters; torchvision v2 on a batch would draw one set for the whole batch,
  which makes every image in the batch get the same crop and the same colours.

``tests/unit/test_transforms.py`` checks that the two give the same output statistics (crop box,
flip rate, colour, contrast, sharpness, grayscale and blur rates). Remaining known differences, all
far below what those statistics can resolve:

- the per-sample path crops and resizes uint8 pixels (rounded to 1/255); the batched path works in
  float32 from the start and clamps bicubic overshoot to [0, 1] instead;
- ``rgb_to_grayscale`` weights differ in the 4th digit (torchvision 0.2989, kornia 0.299);
- kornia's and torchvision's RGB <-> HSV conversions differ by float rounding (< 1e-4);
- when all ten crop tries fail (rare; only for inputs whose aspect ratio lies outside
  ``crop_ratio``), torchvision centres the fallback crop and kornia places it at random.

Random numbers: both paths draw from torch's global CPU generator, so ``torch.manual_seed`` makes
them reproducible; the batched path gives the same augmentations on CPU and CUDA for one seed, and
also accepts a CPU ``torch.Generator``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torchvision.transforms import InterpolationMode, v2

from ltcl.errors import ConfigError, DataError
from ltcl.utils.validate import check_probability

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Recipe-dependent defaults. COLT's CIFAR crop keeps at least 10% of the image and
# resizes bicubically; the 224 px recipe is SimCLR's (8%, bilinear, Gaussian blur p 0.5).
_RECIPES: dict[str, dict[str, Any]] = {
    "cifar": {
        "size": 32,
        "crop_scale": (0.1, 1.0),
        "interpolation": "bicubic",
        "blur_p": 0.0,
        "test_resize": None,  # -> size: CIFAR test images are used as they are
    },
    "imagenet": {
        "size": 224,
        "crop_scale": (0.08, 1.0),
        "interpolation": "bilinear",
        "blur_p": 0.5,
        "test_resize": None,  # -> round(size / 0.875): 256 for 224, the usual eval resize
    },
}
_INTERPOLATIONS = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}


def _pair(value: Any, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"augment.{name} must be a pair (low, high); got {value!r}.") from None
    if not lo <= hi:
        raise ConfigError(f"augment.{name} = ({lo}, {hi}) has low > high; swap the two values.")
    return lo, hi


@dataclass
class AugmentConfig:
    """One augmentation recipe, shared by the per-sample and the batched implementation.

    Fields left at ``None`` take the recipe's default (``cifar``: 32 px, crop scale 0.1-1,
    bicubic, no blur; ``imagenet``: 224 px, crop scale 0.08-1, bilinear, blur p 0.5), so that
    ``AugmentConfig(recipe="imagenet")`` is the full ImageNet recipe. Lists (as OmegaConf gives
    them) are accepted wherever a tuple is expected.
    """

    recipe: str = "cifar"
    size: int | None = None
    crop_scale: tuple[float, float] | None = None
    crop_ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    interpolation: str | None = None
    flip_p: float = 0.5
    jitter_strength: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float | None = None
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel: int | None = None  # None -> about 10% of size, odd (SimCLR)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    test_resize: int | None = None

    def __post_init__(self) -> None:
        if self.recipe not in _RECIPES:
            raise ConfigError(
                f"Unknown augmentation recipe {self.recipe!r}; known recipes: {sorted(_RECIPES)}."
            )
        defaults = _RECIPES[self.recipe]
        for name in ("size", "crop_scale", "interpolation", "blur_p"):
            if getattr(self, name) is None:
                setattr(self, name, defaults[name])

        if (
            isinstance(self.size, bool)
            or not isinstance(self.size, (int, np.integer))
            or self.size < 1
        ):
            raise ConfigError(f"data.augment.size must be a positive integer, got {self.size!r}")
        self.size = int(self.size)
        self.crop_scale = _pair(self.crop_scale, "crop_scale")
        if not (0.0 < self.crop_scale[0] and self.crop_scale[1] <= 1.0):
            raise ConfigError(
                f"augment.crop_scale = {self.crop_scale} must lie in (0, 1]: it is the fraction of "
                "the image area that a crop keeps."
            )
        self.crop_ratio = _pair(self.crop_ratio, "crop_ratio")
        if self.crop_ratio[0] <= 0.0:
            raise ConfigError(f"augment.crop_ratio = {self.crop_ratio} must be positive.")
        if self.interpolation not in _INTERPOLATIONS:
            raise ConfigError(
                f"augment.interpolation = {self.interpolation!r} is unknown; use one of "
                f"{sorted(_INTERPOLATIONS)}."
            )
        self.flip_p = check_probability(self.flip_p, "augment.flip_p")
        self.jitter_p = check_probability(self.jitter_p, "augment.jitter_p")
        self.grayscale_p = check_probability(self.grayscale_p, "augment.grayscale_p")
        self.blur_p = check_probability(self.blur_p, "augment.blur_p")

        strength = tuple(float(v) for v in self.jitter_strength)
        if len(strength) != 4 or min(strength) < 0.0 or strength[3] > 0.5:
            raise ConfigError(
                f"augment.jitter_strength = {self.jitter_strength!r} must be four non-negative "
                "numbers (brightness, contrast, saturation, hue) with hue <= 0.5."
            )
        self.jitter_strength = strength  # type: ignore[assignment]
        self.blur_sigma = _pair(self.blur_sigma, "blur_sigma")
        if self.blur_sigma[0] <= 0.0:
            raise ConfigError(f"augment.blur_sigma = {self.blur_sigma} must be positive.")
        if self.blur_kernel is None:
            kernel = int(0.1 * self.size)
            self.blur_kernel = max(3, kernel + 1 - kernel % 2)
        if int(self.blur_kernel) < 1 or int(self.blur_kernel) % 2 == 0:
            raise ConfigError(
                f"augment.blur_kernel = {self.blur_kernel} must be a positive odd integer."
            )
        self.blur_kernel = int(self.blur_kernel)

        self.mean = tuple(float(v) for v in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(v) for v in self.std)  # type: ignore[assignment]
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0.0:
            raise ConfigError(
                f"augment.mean/std must be three numbers each (RGB) with std > 0; got "
                f"mean={self.mean}, std={self.std}."
            )
        if self.test_resize is None:
            self.test_resize = self.size if self.recipe == "cifar" else round(self.size / 0.875)
        if int(self.test_resize) < self.size:
            raise ConfigError(
                f"augment.test_resize = {self.test_resize} is smaller than size = {self.size}; the "
                "centre crop needs a short side of at least size pixels."
            )
        self.test_resize = int(self.test_resize)

    @classmethod
    def from_recipe(cls, name: str, size: int | None = None, **overrides: Any) -> AugmentConfig:
        """Build the named recipe, optionally at another size and with single fields replaced."""
        if name not in _RECIPES:
            raise ConfigError(
                f"Unknown augmentation recipe {name!r}; known recipes: {sorted(_RECIPES)}."
            )
        fields = {f.name for f in dataclasses.fields(cls)} - {"recipe", "size"}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ConfigError(
                f"Unknown augmentation option(s) {unknown}; known options: {sorted(fields)}."
            )
        return cls(recipe=name, size=size, **overrides)


def augment_config(augment: dict | None) -> AugmentConfig:
    """AugmentConfig from a config dict {recipe: cifar|imagenet, size: ..., overrides...}."""
    options = dict(augment or {})
    return AugmentConfig.from_recipe(options.pop("recipe", "cifar"), **options)


# --------------------------------------------------------------------------------------------
# Per-sample path (torchvision v2, in DataLoader workers)
# --------------------------------------------------------------------------------------------


def _as_rgb_image(image: Any) -> Any:
    """Accept HxW / HxWx1 grayscale arrays too: the recipe needs three channels."""
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3 or image.shape[2] not in (1, 3):
            raise DataError(f"Expected an HxWx3 image array; got shape {image.shape}.")
        if image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        if not image.flags.writeable:  # e.g. a read-only memory map: torch warns on those
            image = image.copy()
        return np.ascontiguousarray(image)
    return image


class PerSampleAugment:
    """Training augmentation for one image: uint8 HxWx3 array (or PIL / uint8 CHW tensor) ->
    normalised float (3, size, size).

    Each call draws new random parameters from torch's global RNG (DataLoader seeds it per worker).
    The crop and the flip run on uint8 (cheap on large images); the colour steps run in float32 so
    that they do not round to 1/255 after every step.
    """

    def __init__(self, cfg: AugmentConfig) -> None:
        self.cfg = cfg
        b, c, s, h = cfg.jitter_strength
        steps: list[Any] = [
            v2.ToImage(),
            v2.RandomResizedCrop(
                cfg.size,
                scale=cfg.crop_scale,
                ratio=cfg.crop_ratio,
                interpolation=_INTERPOLATIONS[cfg.interpolation],
                antialias=True,
            ),
            v2.RandomHorizontalFlip(cfg.flip_p),
            v2.ToDtype(torch.float32, scale=True),
        ]
        if cfg.jitter_p > 0 and max(cfg.jitter_strength) > 0:
            jitter = v2.ColorJitter(brightness=b, contrast=c, saturation=s, hue=h)
            steps.append(v2.RandomApply([jitter], p=cfg.jitter_p))
        if cfg.grayscale_p > 0:
            steps.append(v2.RandomGrayscale(cfg.grayscale_p))
        if cfg.blur_p > 0:
            blur = v2.GaussianBlur(cfg.blur_kernel, sigma=cfg.blur_sigma)
            steps.append(v2.RandomApply([blur], p=cfg.blur_p))
        steps += [v2.Normalize(cfg.mean, cfg.std), v2.ToPureTensor()]
        self.transform = v2.Compose(steps)

    def __call__(self, image: Any) -> torch.Tensor:
        return self.transform(_as_rgb_image(image))

    def __repr__(self) -> str:
        return f"PerSampleAugment({self.cfg})"


class TwoViews:
    """Apply ``transform`` twice: the two independently augmented views of a contrastive pair."""

    def __init__(self, transform: Callable[[Any], torch.Tensor]) -> None:
        self.transform = transform

    def __call__(self, image: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(image), self.transform(image)

    def __repr__(self) -> str:
        return f"TwoViews({self.transform!r})"


class TestTransform:
    """Evaluation transform for one image: resize the short side to ``cfg.test_resize``, centre
    crop ``cfg.size``, float, normalise. For CIFAR (test_resize == size) it is just float + normalise.
    """

    __test__ = False  # not a pytest class

    def __init__(self, cfg: AugmentConfig) -> None:
        self.cfg = cfg
        self.transform = v2.Compose(
            [
                v2.ToImage(),
                v2.Resize(
                    cfg.test_resize, interpolation=InterpolationMode.BILINEAR, antialias=True
                ),
                v2.CenterCrop(cfg.size),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(cfg.mean, cfg.std),
                v2.ToPureTensor(),
            ]
        )

    def __call__(self, image: Any) -> torch.Tensor:
        return self.transform(_as_rgb_image(image))

    def __repr__(self) -> str:
        return f"TestTransform({self.cfg})"
