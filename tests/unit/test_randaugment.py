"""BCL's memorization-boosted RandAugment: weights, strengths, and every op of the batched version
against a per-image reference.

References are independent of the module: BCL's formulas written out here (the op table below is
copied by hand from BCL's ``augment_list``), PIL for what BCL does with PIL (geometry, cutout) and
``torchvision.transforms.v2.functional`` on one image for the colour ops. Tolerances:

- geometric ops: nearest-neighbour like PIL, so pixels must be equal; up to 1% may differ, for a
  sample point on a pixel edge (a tie) that float32 here and float64 in PIL round apart;
- colour ops against torchvision: 1e-6 (float32 rounding of the same arithmetic), except contrast
  and colour, 2e-4: torchvision's grey weighs red 0.2989, PIL's (ours) 0.299, a grey difference
  of at most 1e-4 scaled by |1 - factor| <= 0.9;
- colour ops against BCL's PIL code on 8-bit images: 2/255, because PIL rounds grey, mean and the
  smoothed image to 8 bits (<= 0.5/255 * 0.9) and truncates the blend to 8 bits (< 1/255).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageEnhance, ImageOps
from torchvision.transforms.v2 import functional as TF

from ltcl.data.randaugment import (
    OPS,
    BatchedRandAugment,
    bcl_strength,
    bcl_weights,
)
from ltcl.errors import ConfigError, DataError

# BCL data/randaugment.py augment_list(), in order: (op, min value, max value).
BCL_TABLE = [
    ("shear_x", 0.0, 0.6),
    ("shear_y", 0.0, 0.6),
    ("translate_x", 0.0, 0.66),
    ("translate_y", 0.0, 0.66),
    ("rotate", 0, 60),
    ("autocontrast", 0, 1),
    ("invert", 0, 1),
    ("equalize", 0, 1),
    ("solarize", 0, 110),
    ("posterize", 4, 8),
    ("contrast", 0.1, 1.9),
    ("color", 0.1, 1.9),
    ("brightness", 0.1, 1.9),
    ("sharpness", 0.1, 1.9),
    ("cutout", 0, 0.4),
]
GEOMETRIC = ("shear_x", "shear_y", "translate_x", "translate_y", "rotate")
COLOUR = tuple(op for op, _, _ in BCL_TABLE if op not in GEOMETRIC and op != "cutout")
MAGS = torch.tensor([0.0, 30.0, 7.5, 12.3, 15.0, 21.7, 26.4, 29.9])
# At m = 30 shear is 0.6 and every 5th row's sample points fall exactly on pixel edges, where both
# neighbours are nearest and float noise picks one (in PIL too); the geometric check avoids that.
MAGS_NO_TIES = torch.where(MAGS == 30.0, 29.95, MAGS)


def _bcl_value(op: str, m: float) -> float:
    """RandAugment_prob: val = m / 30 * (max - min) + min; Posterize keeps max(1, int(val)) bits."""
    lo, hi = next((lo, hi) for name, lo, hi in BCL_TABLE if name == op)
    value = (float(m) / 30) * float(hi - lo) + lo
    return float(max(1, int(value))) if op == "posterize" else value


def _images(n: int = 8, h: int = 20, w: int = 24, seed: int = 0) -> torch.Tensor:
    """uint8 (n, 3, h, w): each image in its own level range, row 0 full range, row 1 with a
    constant channel (autocontrast and equalize leave that one alone); non-square on purpose."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 256, (n, 3, h, w), generator=g)
    lo = torch.randint(0, 100, (n, 1, 1, 1), generator=g)
    span = torch.randint(30, 156, (n, 1, 1, 1), generator=g)
    q = lo + base * span // 255
    q[0] = base[0]
    if n > 1:
        q[1, 0] = 77
    return q.to(torch.uint8)


def _pil(q: torch.Tensor) -> Image.Image:
    return Image.fromarray(q.permute(1, 2, 0).numpy())


def _from_pil(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255.0


def _pil_reference(op: str, q: torch.Tensor, v: float, sign: float, centre: list[float]):
    """BCL's op (data/randaugment.py) on one uint8 image with PIL, with the sign and cutout
    centre taken from our draw."""
    img = _pil(q)
    w, h = img.size
    v = v * sign if op in GEOMETRIC else v
    affine = {
        "shear_x": (1, v, 0, 0, 1, 0),
        "shear_y": (1, 0, 0, v, 1, 0),
        "translate_x": (1, 0, v * w, 0, 1, 0),
        "translate_y": (1, 0, 0, 0, 1, v * h),
    }
    if op in affine:
        return _from_pil(img.transform(img.size, Image.AFFINE, affine[op]))
    if op == "rotate":
        return _from_pil(img.rotate(v))
    if op == "cutout":
        if v <= 0:
            return _from_pil(img)
        v = v * w
        x0, y0 = centre[0] * w, centre[1] * h
        x0, y0 = int(max(0, x0 - v / 2.0)), int(max(0, y0 - v / 2.0))
        x1, y1 = min(w, x0 + v), min(h, y0 + v)
        ImageDraw.Draw(img).rectangle((x0, y0, x1, y1), (125, 123, 114))
        return _from_pil(img)
    ops = {
        "autocontrast": lambda: ImageOps.autocontrast(img),
        "invert": lambda: ImageOps.invert(img),
        "equalize": lambda: ImageOps.equalize(img),
        "solarize": lambda: ImageOps.solarize(img, v),
        "posterize": lambda: ImageOps.posterize(img, int(v)),
        "contrast": lambda: ImageEnhance.Contrast(img).enhance(v),
        "color": lambda: ImageEnhance.Color(img).enhance(v),
        "brightness": lambda: ImageEnhance.Brightness(img).enhance(v),
        "sharpness": lambda: ImageEnhance.Sharpness(img).enhance(v),
    }
    return _from_pil(ops[op]())


def _tv_reference(op: str, q: torch.Tensor, v: float) -> torch.Tensor:
    """The same op on one image with torchvision v2 (float, except the 8-bit ops)."""
    x = q.float() / 255.0
    fns = {
        "autocontrast": lambda: TF.autocontrast(x),
        "invert": lambda: TF.invert(x),
        "equalize": lambda: TF.equalize(q).float() / 255.0,
        "solarize": lambda: TF.solarize(x, v / 255.0),
        "posterize": lambda: TF.posterize(q, int(v)).float() / 255.0,
        "contrast": lambda: TF.adjust_contrast(x, v),
        "color": lambda: TF.adjust_saturation(x, v),
        "brightness": lambda: TF.adjust_brightness(x, v),
        "sharpness": lambda: TF.adjust_sharpness(x, v),
    }
    return fns[op]()


def _one_op(op: str, q: torch.Tensor, mags: torch.Tensor, seed: int = 1):
    """Apply op to every row of q (probability 1) at mags; return the output and the draw."""
    aug = BatchedRandAugment(ops=(op,))
    draw = aug.draw(len(q), 1, torch.ones(len(q)), torch.Generator().manual_seed(seed))
    return aug.apply(q.float() / 255.0, mags, draw), draw


# --------------------------------------------------------------------------------------------
# Weights and strengths
# --------------------------------------------------------------------------------------------


def _weights_reference(loss: list[float]) -> list[float]:
    n = len(loss)
    mean = sum(loss) / n
    std = (sum((v - mean) ** 2 for v in loss) / (n - 1)) ** 0.5
    z = [(v - mean) / std for v in loss]
    top = max(abs(v) for v in z)
    return [v / top / 2 + 0.5 for v in z]


def test_bcl_weights_match_the_formula():
    loss = torch.tensor([2.3, 0.4, 5.1, 1.7, 1.7, 3.9, 0.05], dtype=torch.float64)
    w = bcl_weights(loss)
    assert torch.allclose(w, torch.tensor(_weights_reference(loss.tolist()), dtype=w.dtype))
    assert w.min() >= 0 and w.max() <= 1 and (w == 1).any()  # 5.1 lies farthest from the mean
    w32 = bcl_weights(torch.rand(1000, generator=torch.Generator().manual_seed(0)) * 6)
    assert w32.dtype == torch.float32 and w32.min() >= 0 and w32.max() <= 1


def test_bcl_weights_constant_losses_are_one_half():
    for loss in (torch.full((5,), 0.1), torch.tensor([3.0]), torch.zeros(4, dtype=torch.float64)):
        w = bcl_weights(loss)
        assert torch.equal(w, torch.full_like(loss, 0.5))


def test_bcl_weights_reject_bad_input():
    with pytest.raises(ValueError, match="1-D"):
        bcl_weights(torch.ones(2, 3))
    with pytest.raises(ValueError, match="1-D"):
        bcl_weights(torch.ones(0))
    with pytest.raises(ValueError, match="finite"):
        bcl_weights(torch.tensor([1.0, float("nan")]))


def test_bcl_strength_variant_i():
    w = torch.tensor([0.0, 0.25, 0.5, 1.0])
    k, m, p = bcl_strength(w, "I", torch.Generator().manual_seed(0))
    assert k == 1
    assert torch.allclose(m, 10 + 20 * w) and torch.equal(p, w)
    assert bcl_strength(w, "i")[0] == 1


def test_bcl_strength_variant_d():
    w = torch.linspace(0, 1, 50)
    k, m, p = bcl_strength(w, "D", torch.Generator().manual_seed(3))
    u = torch.rand(50, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert k == 2 and torch.equal(p, w)
    assert torch.allclose(m, (5 + 25 * w.double() * u).float())
    assert m[0] == 5 and (m >= 5).all() and (m <= 5 + 25 * w).all()
    assert torch.equal(m, bcl_strength(w, "D", torch.Generator().manual_seed(3))[1])
    assert not torch.equal(m, bcl_strength(w, "D", torch.Generator().manual_seed(4))[1])


def test_bcl_strength_rejects_unknown_variant_and_bad_weights():
    with pytest.raises(ConfigError, match=r"method\.variant.*\['D', 'I'\]"):
        bcl_strength(torch.ones(3) / 2, "X")
    with pytest.raises(ValueError, match=r"weights must lie in \[0, 1\]"):
        bcl_strength(torch.tensor([0.5, 1.5]), "I")


# --------------------------------------------------------------------------------------------
# Each op, per sample
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", OPS)
def test_each_op_matches_a_per_image_reference(op):
    q = _images()
    mags = MAGS_NO_TIES if op in GEOMETRIC else MAGS
    out, draw = _one_op(op, q, mags)
    for i in range(len(q)):
        v = _bcl_value(op, mags[i].item())
        sign, centre = draw.signs[i, 0].item(), draw.centres[i, 0].tolist()
        if op in GEOMETRIC or op == "cutout":
            ref = _pil_reference(op, q[i], v, sign, centre)
            differ = (out[i] != ref).any(0).float().mean().item()
            assert differ <= 0.01, f"{op} row {i}: {differ:.1%} of the pixels differ from PIL"
        else:
            atol = 2e-4 if op in ("contrast", "color") else 1e-6
            torch.testing.assert_close(out[i], _tv_reference(op, q[i], v), atol=atol, rtol=0)


def test_op_table_is_bcls():
    assert list(OPS) == [op for op, _, _ in BCL_TABLE]


@pytest.mark.parametrize("op", COLOUR)
def test_colour_ops_match_bcl_pil_on_8_bit_images(op):
    q = _images(seed=5)
    out, _ = _one_op(op, q, MAGS)
    for i in range(len(q)):
        ref = _pil_reference(op, q[i], _bcl_value(op, MAGS[i].item()), 1.0, [0.0, 0.0])
        torch.testing.assert_close(out[i], ref, atol=2 / 255 + 1e-6, rtol=0)


def test_slots_compose_in_order():
    q = _images(4)
    x = q.float() / 255
    m, p = torch.tensor([3.0, 9.0, 20.0, 30.0]), torch.ones(4)
    g = torch.Generator().manual_seed(0)
    twice = BatchedRandAugment(ops=("invert",))(x, m, p, 2, g)
    torch.testing.assert_close(twice, x, atol=1e-6, rtol=0)
    out = BatchedRandAugment(ops=("brightness",))(x, m, p, 2, g)
    for i in range(4):
        v = _bcl_value("brightness", m[i].item())
        ref = TF.adjust_brightness(TF.adjust_brightness(x[i], v), v)
        torch.testing.assert_close(out[i], ref, atol=1e-6, rtol=0)


# --------------------------------------------------------------------------------------------
# Randomness per sample
# --------------------------------------------------------------------------------------------


def test_rows_with_the_same_image_are_augmented_independently():
    x = (_images(1).float() / 255).expand(32, -1, -1, -1)
    m = torch.linspace(5, 30, 32)
    aug = BatchedRandAugment()
    draw = aug.draw(32, 2, torch.ones(32), torch.Generator().manual_seed(0))
    out = aug.apply(x, m, draw)
    assert len({tuple(r) for r in draw.ops.tolist()}) > 20
    assert len({r.numpy().tobytes() for r in out}) > 25
    # one op, one sign: rows differ only by their magnitude and still come out different
    rot = BatchedRandAugment(ops=("rotate",))
    draw = rot.draw(32, 1, torch.ones(32), torch.Generator().manual_seed(0))
    draw.signs.fill_(1.0)
    out = rot.apply(x, m, draw)
    assert len({r.numpy().tobytes() for r in out}) == 32


def test_probability_zero_rows_unchanged_probability_one_rows_changed():
    q = _images(16, seed=2) // 2 + 100  # levels 100-227: autocontrast and solarize change all
    x = q.float() / 255
    p = torch.tensor([0.0, 1.0] * 8)
    g = torch.Generator().manual_seed(0)
    for op in OPS:  # at magnitude 20 every op changes these images
        out = BatchedRandAugment(ops=(op,))(x, torch.full((16,), 20.0), p, 1, g)
        assert torch.equal(out[0::2], x[0::2]), op
        assert all(not torch.equal(out[i], x[i]) for i in range(1, 16, 2)), op
    out = BatchedRandAugment()(x, torch.full((16,), 20.0), p, 2, g)
    assert torch.equal(out[0::2], x[0::2])


def test_draws_follow_bcls_rule():
    n, k = 6000, 2
    p = torch.tensor([0.2, 0.8]).repeat(n // 2)
    draw = BatchedRandAugment().draw(n, k, p, torch.Generator().manual_seed(0))
    counts = torch.bincount(draw.ops.flatten(), minlength=15).double()
    expected = n * k / 15  # uniform over the 15 ops; sd about 27, bound 5 sd
    assert (counts - expected).abs().max() < 5 * (expected * 14 / 15) ** 0.5
    for rate, rows in ((0.2, draw.applied[0::2]), (0.8, draw.applied[1::2])):
        assert abs(rows.double().mean().item() - rate) < 0.025  # sd about 0.005
    assert abs((draw.signs > 0).double().mean().item() - 0.5) < 0.025
    assert 0 <= draw.centres.min() and draw.centres.max() < 1


def test_same_seed_same_output_and_range_dtype_shape():
    x = _images(64, seed=3).float() / 255
    m = torch.rand(64, generator=torch.Generator().manual_seed(0)) * 30
    p = torch.ones(64)
    aug = BatchedRandAugment()
    a = aug(x, m, p, 2, torch.Generator().manual_seed(7))
    assert torch.equal(a, aug(x, m, p, 2, torch.Generator().manual_seed(7)))
    assert not torch.equal(a, aug(x, m, p, 2, torch.Generator().manual_seed(8)))
    assert a.shape == x.shape and a.dtype == x.dtype and a.min() >= 0 and a.max() <= 1
    torch.manual_seed(0)  # generator None: torch's global RNG
    b = aug(x, m, p, 2)
    torch.manual_seed(0)
    assert torch.equal(b, aug(x, m, p, 2))
    for dtype in (torch.float64, torch.float16):
        out = aug(x.to(dtype), m, p, 2, torch.Generator().manual_seed(7))
        assert out.dtype == dtype and out.shape == x.shape
        assert out.min() >= 0 and out.max() <= 1


def test_input_validation():
    aug = BatchedRandAugment()
    x, m, p = torch.rand(4, 3, 8, 8), torch.full((4,), 10.0), torch.ones(4)
    with pytest.raises(DataError, match=r"\(B, 3, H, W\)"):
        aug(torch.rand(4, 1, 8, 8), m, p, 1)
    with pytest.raises(DataError, match=r"\(B, 3, H, W\)"):
        aug(torch.rand(3, 8, 8), m, p, 1)
    with pytest.raises(DataError, match="float"):
        aug((x * 255).to(torch.uint8), m, p, 1)
    with pytest.raises(ValueError, match=r"magnitudes must have shape \(4,\)"):
        aug(x, torch.full((3,), 10.0), p, 1)
    with pytest.raises(ValueError, match=r"magnitudes must lie in \[0, 30\]"):
        aug(x, torch.tensor([1.0, 2.0, 31.0, 4.0]), p, 1)
    with pytest.raises(ValueError, match=r"probabilities must have shape \(4,\)"):
        aug(x, m, torch.ones(5), 1)
    with pytest.raises(ValueError, match=r"probabilities must lie in \[0, 1\]"):
        aug(x, m, torch.tensor([0.5, float("nan"), 0.5, 0.5]), 1)
    with pytest.raises(ConfigError, match="k must be an integer"):
        aug(x, m, p, -1)
    with pytest.raises(ConfigError, match="known ops"):
        BatchedRandAugment(ops=("rotate", "blur"))
    assert torch.equal(aug(x, m, p, 0), x)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_and_cuda_give_the_same_augmentation():
    x = _images(64, seed=4).float() / 255
    w = torch.rand(64, generator=torch.Generator().manual_seed(0))
    k, m, p = bcl_strength(w, "D", torch.Generator().manual_seed(1))
    aug = BatchedRandAugment()
    cpu = aug(x, m, p, k, torch.Generator().manual_seed(2))
    gpu = aug(x.cuda(), m.cuda(), p.cuda(), k, torch.Generator().manual_seed(2)).cpu()
    differ = ((cpu - gpu).abs() > 1e-5).float().mean().item()
    assert differ < 0.005, f"{differ:.2%} of the values differ between CPU and CUDA"
