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

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import kornia.augmentation as K
import kornia.enhance as KE
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import InterpolationMode, v2

from ltcl.errors import ConfigError, DataError

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


def _check_p(value: float, name: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"augment.{name} = {value} is not a probability; use a value in [0, 1].")
    return value


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
            raise ConfigError(f"augment.size must be a positive integer; got {self.size!r}.")
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
        self.flip_p = _check_p(self.flip_p, "flip_p")
        self.jitter_p = _check_p(self.jitter_p, "jitter_p")
        self.grayscale_p = _check_p(self.grayscale_p, "grayscale_p")
        self.blur_p = _check_p(self.blur_p, "blur_p")

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


# --------------------------------------------------------------------------------------------
# Batched path (kornia, on the training device)
# --------------------------------------------------------------------------------------------


def to_float_tensor(batch: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1]; float input is taken to be in [0, 1] already.

    Tensors are channel-first, (B, 3, H, W) or (3, H, W). NumPy arrays are channel-last as images
    are stored, (B, H, W, 3) or (H, W, 3), and are moved to channel-first.
    """
    if isinstance(batch, np.ndarray):
        if batch.ndim not in (3, 4) or batch.shape[-1] != 3:
            raise DataError(f"Expected a (B, H, W, 3) or (H, W, 3) array; got shape {batch.shape}.")
        batch = torch.from_numpy(np.ascontiguousarray(batch)).movedim(-1, -3)
    if not isinstance(batch, torch.Tensor):
        raise DataError(
            f"Expected a tensor or a NumPy array of images; got {type(batch).__name__}."
        )
    if batch.dtype == torch.uint8:
        return batch.to(torch.float32).div_(255.0)
    if batch.is_floating_point():
        return batch.to(torch.float32)
    raise DataError(
        f"Images must be uint8 (0-255) or float (0-1); got dtype {batch.dtype}. Convert them first."
    )


def _check_batch(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise DataError(f"Expected a (B, 3, H, W) image tensor; got {shape}.")


@contextlib.contextmanager
def _rng_from(generator: torch.Generator | None) -> Iterator[None]:
    """Run kornia's draws (global CPU RNG) from a seed taken from ``generator``, leaving the
    global RNG state as it was; without a generator, use the global RNG directly."""
    if generator is None:
        yield
        return
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


class _Normalize(nn.Module):
    """(x - mean) / std with the statistics as buffers, so they move with ``.to(device)``."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class RandomColorJitter(nn.Module):
    """torchvision's ``ColorJitter`` semantics, batched, with a random order *per sample*.

    kornia's ``ColorJitter`` uses torchvision's formulas (brightness multiplies, contrast blends
    with the grayscale mean, saturation with the grayscale image, hue rotates in HSV) but draws one
    order of the four steps per batch, so two views made in the same call share their order. This
    module calls the same kornia functions and draws the order per sample. All draws happen on the
    CPU, so the rows that take each step in each of the four slots are known without a device
    sync; each step then runs once per sample, as in torchvision. Applied to each sample with
    probability ``p``.
    """

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float, p: float):
        super().__init__()
        self.low = [
            max(0.0, 1.0 - brightness),
            max(0.0, 1.0 - contrast),
            max(0.0, 1.0 - saturation),
            -hue,
        ]
        self.high = [1.0 + brightness, 1.0 + contrast, 1.0 + saturation, hue]
        self.active = [k for k in range(4) if self.low[k] != self.high[k]]
        self.p = p

    @staticmethod
    def _step(k: int, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        if k == 0:
            return KE.adjust_brightness_accumulative(x, factor)
        if k == 1:
            return KE.adjust_contrast_with_mean_subtraction(x, factor)
        if k == 2:
            return KE.adjust_saturation_with_gray_subtraction(x, factor)
        return KE.adjust_hue(x, factor * (2.0 * math.pi))  # kornia's hue is in radians

    def draw_params(self, n: int) -> dict[str, torch.Tensor]:
        """CPU draws for a batch of n: the rows that get jittered, their four factors
        (brightness, contrast, saturation, hue) and their order (a permutation of 0..3 per row)."""
        chosen = torch.nonzero(torch.rand(n) < self.p).squeeze(1)
        m = chosen.numel()
        low, high = torch.tensor(self.low), torch.tensor(self.high)
        factors = low + (high - low) * torch.rand(m, 4)
        order = torch.rand(m, 4).argsort(dim=1)  # a uniform random permutation per row
        return {"chosen": chosen, "factors": factors, "order": order}

    def forward(
        self, x: torch.Tensor, params: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        if x.shape[0] == 0 or not self.active or self.p == 0.0:
            return x
        if params is None:
            params = self.draw_params(x.shape[0])
        chosen, order = params["chosen"], params["order"]
        if chosen.numel() == 0:
            return x
        factors = params["factors"]
        # Rows (within `chosen`) that take step k in each slot, found on the CPU and sent to the
        # device in one copy together with their factors.
        plan, rows, values = [], [chosen], []
        for slot in range(4):
            for k in self.active:
                picked = torch.nonzero(order[:, slot] == k).squeeze(1)
                if picked.numel():
                    plan.append((k, picked.numel()))
                    rows.append(picked)
                    values.append(factors[picked, k])
        rows_d = _to_device(torch.cat(rows), x.device)
        values_d = _to_device(torch.cat(values), x.device).to(x.dtype)

        sub = x.index_select(0, rows_d[: chosen.numel()]).clamp(0.0, 1.0)
        start, value_start = chosen.numel(), 0
        for k, count in plan:
            idx = rows_d[start : start + count]
            factor = values_d[value_start : value_start + count]
            sub = sub.index_copy(0, idx, self._step(k, sub.index_select(0, idx), factor))
            start, value_start = start + count, value_start + count
        return x.index_copy(0, rows_d[: chosen.numel()], sub)


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy small CPU parameters to the device without a sync: a copy from pageable memory
    waits for the stream, one from pinned memory does not."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def _aa_filter(x: torch.Tensor, interpolation: str) -> torch.Tensor:
    """The antialiasing kernels of ``F.interpolate(antialias=True)`` (PIL's): cubic with a = -0.5,
    or the triangle for bilinear."""
    x = x.abs()
    if interpolation == "bilinear":
        return (1.0 - x).clamp_(min=0.0)
    a = -0.5
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return torch.where(x < 1.0, near, torch.where(x < 2.0, far, torch.zeros_like(x)))


def _resize_weights(
    start: torch.Tensor, length: torch.Tensor, in_size: int, out_size: int, interpolation: str
) -> torch.Tensor:
    """(B, out_size, in_size) matrices that resize the window [start, start + length) of each
    row to out_size pixels exactly as ``F.interpolate(..., align_corners=False, antialias=True)``
    does for that window alone (taps outside the window get weight 0, weights renormalised)."""
    dtype = torch.float32
    out_pos = torch.arange(out_size, device=start.device, dtype=dtype)
    in_pos = torch.arange(in_size, device=start.device, dtype=dtype)
    scale = (length / out_size)[:, None, None]
    stretch = scale.clamp(min=1.0)  # the kernel widens when downscaling (antialiasing)
    centre = scale * (out_pos[None, :, None] + 0.5)
    offset = in_pos[None, None, :] - start[:, None, None]  # position inside the window
    weights = _aa_filter((offset + 0.5 - centre) / stretch, interpolation)
    weights = weights * ((offset >= 0) & (offset < length[:, None, None]))
    return weights / weights.sum(-1, keepdim=True)


class _RandomResizedCrop(nn.Module):
    """Per-sample random resized crop: kornia draws the boxes (torchvision's ``get_params``
    algorithm: ten tries of area and log-ratio, else a fallback), and each crop is resized with
    torchvision's own kernel (``F.interpolate`` with ``antialias=True``: PIL's bicubic, a = -0.5,
    antialiased when downscaling).

    kornia's own resampling (``cropping_mode="slice"``) calls ``F.interpolate`` once per sample
    *without* antialias, whose bicubic (a = -0.75) is sharper: +1% image contrast over
    torchvision's in our statistics test, and aliasing when a crop is downscaled. Here the resize
    is written as two batched matrix products, ``Wy @ x @ Wx^T``, one per axis: no Python loop
    over the batch and no device sync.
    """

    def __init__(self, cfg: AugmentConfig) -> None:
        super().__init__()
        self.size = cfg.size
        self.interpolation = cfg.interpolation
        self.boxes = K.RandomResizedCrop(
            (cfg.size, cfg.size), scale=cfg.crop_scale, ratio=cfg.crop_ratio, align_corners=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        src = self.boxes.forward_parameters(x.shape)["src"]  # (B, 4, 2) corners (x, y), on the CPU
        left, top = src[:, 0, 0], src[:, 0, 1]
        boxes = torch.stack([left, top, src[:, 2, 0] - left + 1, src[:, 2, 1] - top + 1])
        left, top, crop_w, crop_h = _to_device(boxes, x.device)
        wy = _resize_weights(top, crop_h, height, self.size, self.interpolation).to(x.dtype)
        wx = _resize_weights(left, crop_w, width, self.size, self.interpolation).to(x.dtype)
        return wy[:, None] @ x @ wx[:, None].transpose(-1, -2)


class BatchedAugment(nn.Module):
    """Training augmentation for a batch on any device: uint8 or float (B, 3, H, W) ->
    normalised float32 (B, 3, size, size), with random parameters drawn per sample.

    Same recipe and order as :class:`PerSampleAugment`: crop (kornia's box sampler, torchvision's
    resampling kernel, see :class:`_RandomResizedCrop`), kornia's ``RandomHorizontalFlip``, colour
    jitter, kornia's ``RandomGrayscale`` and ``RandomGaussianBlur`` (sigma per sample, reflect
    padding, as torchvision), normalise. Colour jitter is :class:`RandomColorJitter` by default
    (torchvision's step order drawn per sample); ``jitter_order="per_batch"`` uses kornia's
    ``ColorJitter``, whose order is shared by the batch (same per-image distribution, about half
    the cost: on an H100, B = 512 at 32 px took 9.6 ms per call with per-sample order and 4.8 ms
    with per-batch order, both bound by kernel launches, so one call on ``torch.cat([x, x])``
    makes both views for about the price of one call).

    Randomness: every parameter is drawn on the CPU from torch's global RNG, also when the module
    lives on CUDA (kornia would move its draws to the module's device), so ``torch.manual_seed``
    gives the same augmentations on every device, and nothing waits for the device: parameters
    reach it through pinned, non-blocking copies. With ``generator`` (a CPU ``torch.Generator``)
    each call takes a seed from it and leaves the global RNG untouched. Works under
    ``torch.no_grad``; float input must already be in [0, 1] (not checked: a check would sync).
    """

    def __init__(
        self,
        cfg: AugmentConfig,
        generator: torch.Generator | None = None,
        jitter_order: str = "per_sample",
    ) -> None:
        super().__init__()
        if generator is not None and generator.device.type != "cpu":
            raise ConfigError(
                "BatchedAugment needs a CPU torch.Generator (its parameters are drawn on the CPU); "
                f"got one on {generator.device}. Use torch.Generator() without a device."
            )
        if jitter_order not in ("per_sample", "per_batch"):
            raise ConfigError(
                f"jitter_order = {jitter_order!r} is unknown; use 'per_sample' or 'per_batch'."
            )
        self.cfg = cfg
        self.generator = generator
        self.crop = _RandomResizedCrop(cfg)
        self.flip = K.RandomHorizontalFlip(p=cfg.flip_p) if cfg.flip_p > 0 else None
        self.jitter: nn.Module | None = None
        if cfg.jitter_p > 0 and max(cfg.jitter_strength) > 0:
            if jitter_order == "per_sample":
                self.jitter = RandomColorJitter(*cfg.jitter_strength, p=cfg.jitter_p)
            else:
                self.jitter = K.ColorJitter(*cfg.jitter_strength, p=cfg.jitter_p)
        self.grayscale = K.RandomGrayscale(p=cfg.grayscale_p) if cfg.grayscale_p > 0 else None
        self.blur = None
        if cfg.blur_p > 0:
            k = cfg.blur_kernel
            self.blur = K.RandomGaussianBlur(
                (k, k), cfg.blur_sigma, border_type="reflect", p=cfg.blur_p
            )
        self.normalize = _Normalize(cfg.mean, cfg.std)

    def _apply(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> BatchedAugment:
        # kornia moves a module's random draws to the device it is moved to; keep them on the
        # CPU so that a seed gives the same augmentations on every device and `generator` works.
        super()._apply(fn, *args, **kwargs)
        for module in self.modules():
            if isinstance(module, K.AugmentationBase2D):
                module.set_rng_device_and_dtype(torch.device("cpu"), torch.float32)
        return self

    def forward(
        self, x: torch.Tensor, extra: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> torch.Tensor:
        """`extra` (a method's own step, e.g. BCL's RandAugment) runs on the augmented [0, 1]
        images before normalisation."""
        _check_batch(x)
        x = to_float_tensor(x)
        with _rng_from(self.generator):
            # Bicubic overshoots; clamp as torchvision's uint8 path does (and jitter expects [0, 1]).
            x = self.crop(x).clamp_(0.0, 1.0)
            for step in (self.flip, self.jitter, self.grayscale, self.blur):
                if step is not None:
                    x = step(x)
        if extra is not None:
            x = extra(x)
        return self.normalize(x).contiguous()


class BatchedTestTransform(nn.Module):
    """Evaluation transform for a batch: resize the short side to ``cfg.test_resize`` (bilinear,
    antialiased, as torchvision's ``Resize``), centre crop ``cfg.size``, normalise."""

    __test__ = False  # not a pytest class

    def __init__(self, cfg: AugmentConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.normalize = _Normalize(cfg.mean, cfg.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_batch(x)
        x = to_float_tensor(x)
        height, width = x.shape[-2:]
        short, long = min(height, width), max(height, width)
        target = self.cfg.test_resize
        if short != target:
            new_long = int(target * long / short)  # torchvision's rounding of the long side
            new_h, new_w = (target, new_long) if height <= width else (new_long, target)
            x = F.interpolate(
                x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True
            )
        size = self.cfg.size
        height, width = x.shape[-2:]
        top = int(round((height - size) / 2.0))
        left = int(round((width - size) / 2.0))
        x = x[..., top : top + size, left : left + size]
        return self.normalize(x).contiguous()
