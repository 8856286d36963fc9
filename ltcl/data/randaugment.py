"""BCL's memorization-boosted RandAugment, batched on the training device.

BCL (Zhou et al., ICML 2022, "Contrastive Learning with Boosted Memorization") keeps an EMA of each
sample's contrastive loss, turns it into a weight w in [0, 1] after every epoch
(:func:`bcl_weights`), and augments hard-to-memorise samples harder: after the SimCLR recipe each
image gets ``RandAugment_prob(k, m, p=w)`` with a per-sample magnitude m (:func:`bcl_strength`).
:class:`BatchedRandAugment` applies that to a whole batch, every sample with its own op choice,
magnitude, sign and coin (torchvision v2 on a batch would draw one set for the whole batch).

Source: github.com/MediaBrain-SJTU/BCL, ``data/randaug.py`` (``augment_list``,
``RandAugment_prob``) and ``data/memoboosted_cifar100.py`` (weights, magnitudes). Rule: draw k ops
uniformly with replacement; apply each iff U(0, 1) < p; all of a sample's ops use its one magnitude
m in [0, 30], mapped to the op's value ``v = m / 30 * (hi - lo) + lo``. Ops, in BCL's order:

====  ============  ==========  ===================================================================
 #    op            (lo, hi)    what v does (PIL semantics, pixel coordinates from the top-left)
====  ============  ==========  ===================================================================
 0    shear_x       0, 0.6      x_in = x + s v y, s = +-1 at random (shear about the top-left)
 1    shear_y       0, 0.6      y_in = y + s v x
 2    translate_x   0, 0.66     x_in = x + s v W (shift by a fraction v of the width)
 3    translate_y   0, 0.66     y_in = y + s v H
 4    rotate        0, 60       s v degrees counter-clockwise about the centre
 5    autocontrast  0, 1        (v unused) stretch each channel to [0, 1]; constant channels kept
 6    invert        0, 1        (v unused) 1 - x
 7    equalize      0, 1        (v unused) PIL's per-channel histogram equalisation on 8-bit levels
 8    solarize      0, 110      invert pixels >= v / 255 (a larger m inverts *fewer* pixels)
 9    posterize     4, 8        keep max(1, int(v)) high bits of the 8-bit level
10    contrast      0.1, 1.9    blend with the mean grey level: g + v (x - g)
11    color         0.1, 1.9    blend with the grey image
12    brightness    0.1, 1.9    blend with black: v x
13    sharpness     0.1, 1.9    blend with PIL's SMOOTH filter (1 1 1 / 1 5 1 / 1 1 1) / 13
14    cutout        0, 0.4      square of side v W px, colour (125, 123, 114) / 255; v = 0: none
====  ============  ==========  ===================================================================

Geometric ops sample nearest-neighbour with black fill, as PIL's defaults do. Cutout covers
columns ``left .. int(min(W, left + v W))`` (inclusive, as PIL's rectangle), ``left = int(max(0,
cx - v W / 2))``, rows alike. Where this batched version differs from BCL's PIL code:

- it works in float: no rounding to 8 bits after each op; autocontrast does not truncate its levels
  and contrast uses the exact mean grey (PIL rounds it to a level). Grey is 0.299 R + 0.587 G +
  0.114 B (PIL's). Equalize and posterize are defined on 8-bit levels, so they round x * 255 first
  (posterize with 8 bits and non-equalisable channels are left exactly as they were);
- a nearest-neighbour sample point exactly on a pixel edge (a tie) may round to the other
  neighbour (float32 here, float64 in PIL);
- BCL draws the cutout centre with ``np.random.uniform(w)``, which is uniform on (1, w] (numpy's
  first argument is the lower bound); here it is uniform on [0, W) x [0, H), as Cutout intends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ltcl.errors import ConfigError, DataError

MAX_MAGNITUDE = 30.0  # BCL's magnitude scale: m / 30 maps onto each op's (lo, hi)
OP_RANGES: dict[str, tuple[float, float]] = {
    "shear_x": (0.0, 0.6),
    "shear_y": (0.0, 0.6),
    "translate_x": (0.0, 0.66),
    "translate_y": (0.0, 0.66),
    "rotate": (0.0, 60.0),
    "autocontrast": (0.0, 1.0),
    "invert": (0.0, 1.0),
    "equalize": (0.0, 1.0),
    "solarize": (0.0, 110.0),
    "posterize": (4.0, 8.0),
    "contrast": (0.1, 1.9),
    "color": (0.1, 1.9),
    "brightness": (0.1, 1.9),
    "sharpness": (0.1, 1.9),
    "cutout": (0.0, 0.4),
}
OPS: tuple[str, ...] = tuple(OP_RANGES)
SIGNED_OPS = frozenset({"shear_x", "shear_y", "translate_x", "translate_y", "rotate"})
VARIANTS = {"I": (1, 10.0), "D": (2, 5.0)}  # k and BCL's minimum magnitude ("training stability")
_GREY = (0.299, 0.587, 0.114)
_CUTOUT_FILL = (125.0 / 255.0, 123.0 / 255.0, 114.0 / 255.0)


# --------------------------------------------------------------------------------------------
# Weights and strengths
# --------------------------------------------------------------------------------------------


def bcl_weights(loss_ema: Tensor) -> Tensor:
    """Per-sample weights in [0, 1] from the EMA of each sample's loss: z-score, then
    ``z / max|z| / 2 + 1/2`` (BCL's ``calculate_momentum_weight``); high loss -> high weight.

    If all losses are equal (or there is one sample) every weight is 0.5 instead of BCL's NaN.
    """
    if not isinstance(loss_ema, Tensor) or loss_ema.ndim != 1 or loss_ema.numel() == 0:
        shape = tuple(loss_ema.shape) if isinstance(loss_ema, Tensor) else type(loss_ema).__name__
        raise ValueError(
            f"loss_ema must be a non-empty 1-D tensor (one loss per sample); got {shape}."
        )
    loss = loss_ema.detach() if loss_ema.is_floating_point() else loss_ema.detach().float()
    if not bool(torch.isfinite(loss).all()):
        raise ValueError("loss_ema contains NaN or inf; the loss EMA must be finite.")
    constant = loss.max() == loss.min()  # exact test: the mean of equal floats may differ from them
    std = loss.std() if loss.numel() > 1 else torch.ones_like(loss[0])  # unbiased, as BCL's
    z = (loss - loss.mean()) / std  # (std cancels in z / max|z|)
    w = z / z.abs().max() / 2 + 0.5
    return torch.where(constant, torch.full_like(loss, 0.5), w)


def bcl_strength(
    weights: Tensor,
    variant: str,
    generator: torch.Generator | None = None,
    *,
    max_magnitude: float = MAX_MAGNITUDE,
) -> tuple[int, Tensor, Tensor]:
    """Number of ops k, per-sample magnitudes and per-sample probabilities (= weights).

    BCL-I: k = 1, m = 10 + (30 - 10) w. BCL-D: k = 2, m = 5 + (30 - 5) w U, U ~ U(0, 1) per
    sample, drawn from the CPU ``generator``. ``max_magnitude`` is BCL's ``--rand_strength``.
    In BCL the two views of a sample share m (one draw of U) but draw their ops and coins apart.
    """
    key = str(variant).upper()
    if key not in VARIANTS:
        raise ConfigError(
            f"method.variant = {variant!r} is unknown; use one of {sorted(VARIANTS)} (BCL-I: one op "
            "at magnitude 10-30; BCL-D: two ops at 5-30 scaled by a random draw)."
        )
    k, min_magnitude = VARIANTS[key]
    if not min_magnitude <= max_magnitude <= MAX_MAGNITUDE:
        raise ConfigError(
            f"max_magnitude = {max_magnitude} must lie in [{min_magnitude}, {MAX_MAGNITUDE}] for "
            f"BCL-{key}."
        )
    w = _vector(weights, None, "weights", 0.0, 1.0).to(weights.device)
    scale = w
    if key == "D":
        u = torch.rand(w.shape, generator=_cpu(generator), dtype=torch.float64)
        scale = w * u.to(w.device)
    dtype = weights.dtype if weights.is_floating_point() else torch.float32
    magnitudes = min_magnitude + (max_magnitude - min_magnitude) * scale
    return k, magnitudes.to(dtype), weights.detach().to(dtype, copy=True)


# --------------------------------------------------------------------------------------------
# The 15 ops, each on a batch of rows with a value per row
# --------------------------------------------------------------------------------------------


def _affine(x: Tensor, matrix: Tensor, offset: Tensor) -> Tensor:
    """Nearest-neighbour resampling with black fill, as PIL's ``Image.transform(AFFINE)``:
    input point = matrix @ output point + offset, in pixels from the top-left corner."""
    n, _, h, w = x.shape
    s = x.new_tensor([2.0 / w, 2.0 / h])  # pixels -> affine_grid's [-1, 1] (align_corners=False)
    a = matrix * s[:, None] / s[None, :]
    theta = torch.cat([a, (a.sum(-1) + s * offset - 1.0)[..., None]], dim=2)
    grid = F.affine_grid(theta, [n, 3, h, w], align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _geometric(kind: str) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    def op(x: Tensor, v: Tensor, centre: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        one, zero = torch.ones_like(v), torch.zeros_like(v)
        offset = torch.zeros(len(v), 2, dtype=x.dtype, device=x.device)
        if kind == "shear_x":
            m = [[one, v], [zero, one]]
        elif kind == "shear_y":
            m = [[one, zero], [v, one]]
        elif kind.startswith("translate"):
            m = [[one, zero], [zero, one]]
            axis = 0 if kind == "translate_x" else 1
            offset[:, axis] = v * (w if axis == 0 else h)
        else:  # rotate: PIL's inverse map about the centre (w / 2, h / 2)
            c, s = torch.cos(torch.deg2rad(v)), torch.sin(torch.deg2rad(v))
            m = [[c, -s], [s, c]]
            cx, cy = w / 2.0, h / 2.0
            offset = torch.stack([cx - c * cx + s * cy, cy - s * cx - c * cy], dim=1)
        matrix = torch.stack([torch.stack(row, dim=1) for row in m], dim=1)
        return _affine(x, matrix, offset)

    return op


def _rows(v: Tensor) -> Tensor:
    return v.view(-1, 1, 1, 1)


def _grey(x: Tensor) -> Tensor:
    return (x * x.new_tensor(_GREY).view(1, 3, 1, 1)).sum(1, keepdim=True)


def _blend(x: Tensor, degenerate: Tensor, factor: Tensor) -> Tensor:
    """PIL's ``ImageEnhance``: degenerate + factor * (x - degenerate), clipped."""
    return (_rows(factor) * x + (1.0 - _rows(factor)) * degenerate).clamp(0.0, 1.0)


def _levels(x: Tensor) -> Tensor:
    return (x * 255.0).round().clamp(0, 255)


def _autocontrast(x: Tensor, v: Tensor, centre: Tensor) -> Tensor:
    lo, hi = x.amin(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)
    flat = hi <= lo
    scale = torch.where(flat, torch.ones_like(hi), hi - lo)
    return ((x - torch.where(flat, torch.zeros_like(lo), lo)) / scale).clamp(0.0, 1.0)


def _equalize(x: Tensor, v: Tensor, centre: Tensor) -> Tensor:
    """PIL's ``ImageOps.equalize`` per (row, channel): lut[i] = (step // 2 + cum[i - 1]) // step,
    step = (pixels - count of the brightest level) // 255; step 0 -> unchanged."""
    n, c, h, w = x.shape
    q = _levels(x).long().view(n * c, h * w)
    hist = torch.zeros(n * c, 256, dtype=torch.long, device=x.device)
    hist.scatter_add_(1, q, torch.ones_like(q))
    top = hist.gather(1, q.amax(1, keepdim=True))
    step = (h * w - top) // 255
    cum = torch.cat([torch.zeros_like(top), hist.cumsum(1)[:, :-1]], dim=1)
    lut = ((step // 2 + cum) // step.clamp(min=1)).clamp(max=255)
    out = (lut.gather(1, q).to(x.dtype) / 255.0).view(n, c, h, w)
    return torch.where((step > 0).view(n, c, 1, 1), out, x)


def _solarize(x: Tensor, v: Tensor, centre: Tensor) -> Tensor:
    return torch.where(x >= _rows(v) / 255.0, 1.0 - x, x)


def _posterize(x: Tensor, bits: Tensor, centre: Tensor) -> Tensor:
    size = _rows(torch.exp2(8.0 - bits))  # bits is already max(1, int(v))
    out = torch.floor(_levels(x) / size) * size / 255.0
    return torch.where(size > 1, out, x)


def _contrast(x: Tensor, v: Tensor, centre: Tensor) -> Tensor:
    return _blend(x, _grey(x).mean(dim=(1, 2, 3), keepdim=True), v)


def _sharpness(x: Tensor, v: Tensor, centre: Tensor) -> Tensor:
    degenerate = x.clone()
    if x.shape[-1] > 2 and x.shape[-2] > 2:  # PIL's 3x3 filter leaves the border as it is
        kernel = x.new_tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
        degenerate[..., 1:-1, 1:-1] = F.conv2d(x, kernel.expand(3, 1, 3, 3), groups=3)
    return _blend(x, degenerate, v)


def _cutout(x: Tensor, v: Tensor, centre: Tensor) -> Tensor:
    h, w = x.shape[-2:]
    side = v * w  # BCL: v * width for both sides
    left = torch.floor((centre[:, 0] * w - side / 2).clamp(min=0))
    top = torch.floor((centre[:, 1] * h - side / 2).clamp(min=0))
    right, bottom = (
        torch.floor(torch.clamp(left + side, max=w)),
        torch.floor((top + side).clamp(max=h)),
    )
    cols = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, 1, w)
    rows = torch.arange(h, device=x.device, dtype=x.dtype).view(1, 1, h, 1)
    inside = (cols >= _rows(left)) & (cols <= _rows(right)) & (rows >= _rows(top))
    inside = inside & (rows <= _rows(bottom)) & _rows(side > 0)
    return torch.where(inside, x.new_tensor(_CUTOUT_FILL).view(1, 3, 1, 1), x)


_OP_FNS: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    **{name: _geometric(name) for name in SIGNED_OPS},
    "autocontrast": _autocontrast,
    "invert": lambda x, v, centre: 1.0 - x,
    "equalize": _equalize,
    "solarize": _solarize,
    "posterize": _posterize,
    "contrast": _contrast,
    "color": lambda x, v, centre: _blend(x, _grey(x), v),
    "brightness": lambda x, v, centre: _blend(x, torch.zeros_like(x), v),
    "sharpness": _sharpness,
    "cutout": _cutout,
}


def op_values(op: str, magnitudes: Tensor) -> Tensor:
    """BCL's value of ``op`` at magnitudes m in [0, 30]: m / 30 * (hi - lo) + lo, and
    max(1, int(v)) bits for posterize. Float64, before the random sign of geometric ops."""
    lo, hi = OP_RANGES[op]
    values = magnitudes.to(torch.float64) / MAX_MAGNITUDE * (hi - lo) + lo
    return values.floor().clamp(min=1.0) if op == "posterize" else values


# --------------------------------------------------------------------------------------------
# The batched augmentation
# --------------------------------------------------------------------------------------------


def _cpu(generator: torch.Generator | None) -> torch.Generator | None:
    if generator is not None and generator.device.type != "cpu":
        raise ConfigError(
            f"The generator must be a CPU torch.Generator (draws happen on the CPU so that CPU and "
            f"GPU runs agree); got one on {generator.device}."
        )
    return generator


def _vector(values: Tensor, n: int | None, name: str, lo: float, hi: float) -> Tensor:
    """A 1-D tensor of length n (any if None) with values in [lo, hi], as float64 on the CPU."""
    if not isinstance(values, Tensor) or values.ndim != 1 or (n is not None and len(values) != n):
        shape = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        want = f"({n},), one per image" if n is not None else "1-D, one per sample"
        raise ValueError(f"{name} must have shape {want}; got {shape}.")
    out = values.detach().to("cpu", torch.float64)
    if not bool(((out >= lo) & (out <= hi)).all()):  # False for NaN too
        raise ValueError(
            f"{name} must lie in [{lo:g}, {hi:g}]; got values from {out.min().item():g} to "
            f"{out.max().item():g}."
        )
    return out


def _check_images(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise DataError(f"Expected a (B, 3, H, W) image tensor; got {shape}.")
    if not x.is_floating_point():
        raise DataError(
            f"Images must be float in [0, 1]; got dtype {x.dtype} (convert them with "
            "ltcl.data.batched_transforms.to_float_tensor)."
        )


@dataclass
class RandAugmentDraw:
    """The random choices for a batch of n images and k op slots (all on the CPU)."""

    ops: Tensor  # (n, k) int64: index into BatchedRandAugment.ops
    applied: Tensor  # (n, k) bool: the coin U < p came up
    signs: Tensor  # (n, k) float64, +-1: direction of shear, translation and rotation
    centres: Tensor  # (n, k, 2) float64 in [0, 1): cutout centre (x, y) as fractions of W, H


class BatchedRandAugment(nn.Module):
    """BCL's ``RandAugment_prob`` on a (B, 3, H, W) float batch in [0, 1], per sample.

    Each sample draws k ops uniformly (with replacement) from ``ops``, applies each with its own
    probability at its own magnitude (BCL's 0-30 scale). All draws come from a CPU generator
    (torch's global one if None), so a seed gives the same augmentation on CPU and GPU; each op
    then runs once on the rows that drew it, on the batch's device.
    """

    def __init__(self, ops: Sequence[str] = OPS) -> None:
        super().__init__()
        unknown = [op for op in ops if op not in OP_RANGES]
        if unknown or not ops:
            raise ConfigError(
                f"Unknown or no RandAugment ops {unknown or list(ops)}; known ops: {list(OPS)}."
            )
        self.ops = tuple(ops)

    def draw(
        self, n: int, k: int, probabilities: Tensor, generator: torch.Generator | None = None
    ) -> RandAugmentDraw:
        """Draw op choices, coins, signs and cutout centres; the amount drawn depends only on
        n and k, so a seeded generator advances the same way whatever the data."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ConfigError(
                f"The number of RandAugment ops k must be an integer >= 0; got {k!r}."
            )
        p = _vector(probabilities, n, "probabilities", 0.0, 1.0)
        gen = _cpu(generator)
        ops = torch.randint(len(self.ops), (n, k), generator=gen)
        coins = torch.rand(n, k, generator=gen, dtype=torch.float64)
        signs = torch.where(torch.rand(n, k, generator=gen, dtype=torch.float64) < 0.5, -1.0, 1.0)
        centres = torch.rand(n, k, 2, generator=gen, dtype=torch.float64)
        return RandAugmentDraw(ops=ops, applied=coins < p[:, None], signs=signs, centres=centres)

    def apply(self, x: Tensor, magnitudes: Tensor, draw: RandAugmentDraw) -> Tensor:
        """Apply the drawn ops, slot by slot, to a copy of ``x`` (dtype and shape kept)."""
        _check_images(x)
        n = x.shape[0]
        m = _vector(magnitudes, n, "magnitudes", 0.0, MAX_MAGNITUDE)
        if draw.ops.shape[0] != n:
            raise ValueError(f"The draw is for {draw.ops.shape[0]} images; the batch has {n}.")
        work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        out = work.clone()
        for slot in range(draw.ops.shape[1]):
            for index, name in enumerate(self.ops):
                rows = torch.nonzero((draw.ops[:, slot] == index) & draw.applied[:, slot]).squeeze(
                    1
                )
                if rows.numel() == 0:
                    continue
                values = op_values(name, m[rows])
                if name in SIGNED_OPS:
                    values = values * draw.signs[rows, slot]
                rows_dev = rows.to(x.device)
                out[rows_dev] = _OP_FNS[name](
                    out[rows_dev],
                    values.to(x.device, out.dtype),
                    draw.centres[rows, slot].to(x.device, out.dtype),
                )
        return out.to(x.dtype)

    def forward(
        self,
        x: Tensor,
        magnitudes: Tensor,
        probabilities: Tensor,
        k: int,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        _check_images(x)
        draw = self.draw(x.shape[0], k, probabilities, generator)
        return self.apply(x, magnitudes, draw)

    def extra_repr(self) -> str:
        return f"ops={list(self.ops)}"
