"""The batched augmentation path: the training recipe on a whole (B, 3, H, W) batch on the
training device, every sample with its own random parameters (kornia's box sampler, torchvision's
resampling kernels). :mod:`ltcl.data.transforms` holds the recipe (:class:`AugmentConfig`) and the
per-sample reference path; its docstring lists the known differences between the two.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import kornia.augmentation as K
import kornia.enhance as KE
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ltcl.data.transforms import AugmentConfig
from ltcl.errors import ConfigError, DataError

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
