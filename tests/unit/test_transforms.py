"""Augmentation: shapes, randomness per sample, and the per-sample (torchvision) and batched (kornia)
implementations producing the same output statistics.

Statistics tests draw N augmentations of one fixed image with each implementation (independent seeds)
and compare summary statistics of the outputs. Tolerances are sampling error, not fudge factors:

- means: |difference| < Z standard errors of the difference (Welch);
- standard deviations: |log ratio| < Z standard errors, Var(log s) ~ (kurtosis - 1) / (4 n);
- whole distributions of continuous statistics: two-sample Kolmogorov-Smirnov p > P_MIN.

With Z = 4.5 and P_MIN = 1e-4, a correct implementation fails one of the ~75 z checks and ~25
p-value checks with probability below 3e-3 (union bound) for an arbitrary seed; the seeds are fixed,
so the test is deterministic (largest |z| with them: 2.96). About 4.5 standard errors are
detectable: 0.010 in mean image contrast (4%), 0.06 in the grayscale fraction. Planted mistakes that
these tests catch: kornia's ColorJiggle instead of ColorJitter (z = -20), hue not converted to
radians (KS p = 4e-11), jitter strength 0.3 instead of 0.4 (z = 18), grayscale p 0.25 (the
fraction check), blur with zero padding (z = -15) or doubled sigma (z = -10), kornia's own crop
resize (bicubic a = -0.75, no antialias: sharpness z = -5.5) or its defaults (bilinear,
align_corners=True: z = +12). At N = 20,000 the same checks gave all |z| < 3.3 and all
KS p > 0.09.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.stats import ks_2samp

from ltcl.data.batched_transforms import (
    BatchedAugment,
    BatchedTestTransform,
    RandomColorJitter,
    _resize_weights,
    to_float_tensor,
)
from ltcl.data.transforms import AugmentConfig, PerSampleAugment, TestTransform, TwoViews
from ltcl.errors import ConfigError, DataError

N = 2000
Z = 4.5
P_MIN = 1e-4
RAW = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}  # outputs stay in [0, 1] pixel units
IDENTITY_CROP = {"crop_scale": (1.0, 1.0), "crop_ratio": (1.0, 1.0)}


# ------------------------------------------------------------------ images


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real photo (scikit-learn's sample image), box-downsampled to 32x32."""
    from sklearn.datasets import load_sample_image

    return np.array(Image.fromarray(load_sample_image("china.jpg")).resize((32, 32), Image.BOX))


@pytest.fixture(scope="module")
def ramp() -> np.ndarray:
    """Red encodes x, green encodes y: the output reveals the crop box and a flip."""
    yy, xx = np.mgrid[0:32, 0:32]
    image = np.stack([xx / 31, yy / 31, 0.25 + 0.5 * xx * yy / 961], -1)
    return np.round(image * 255).astype(np.uint8)


def _draw_per_sample(cfg: AugmentConfig, image: np.ndarray, seed: int, n: int = N) -> torch.Tensor:
    # One thread, as in a DataLoader worker: on a busy 2-core machine, two OpenMP threads spinning
    # on a 32x32 image made this 20x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        augment = PerSampleAugment(cfg)
        return torch.stack([augment(image) for _ in range(n)])
    finally:
        torch.set_num_threads(threads)


def _draw_batched(
    cfg: AugmentConfig, image: np.ndarray, seed: int, n: int = N, **kw
) -> torch.Tensor:
    torch.manual_seed(seed)
    augment = BatchedAugment(cfg, **kw)
    batch = torch.from_numpy(image).permute(2, 0, 1)[None].expand(n, -1, -1, -1).contiguous()
    with torch.no_grad():
        return torch.cat([augment(chunk) for chunk in batch.split(500)])


# ------------------------------------------------------------------ statistical checks


def _same_mean(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
    a, b = a.double().numpy(), b.double().numpy()
    se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    z = (a.mean() - b.mean()) / se
    assert abs(z) < Z, (
        f"{name}: mean {a.mean():.4f} (torchvision) vs {b.mean():.4f} (kornia), z={z:.2f}"
    )


def _same_std(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
    def log_std_and_var(x: np.ndarray) -> tuple[float, float]:
        centred = x - x.mean()
        m2, m4 = (centred**2).mean(), (centred**4).mean()
        return 0.5 * np.log(m2), (m4 / m2**2 - 1.0) / (4.0 * x.size)

    (la, va), (lb, vb) = log_std_and_var(a.double().numpy()), log_std_and_var(b.double().numpy())
    z = (la - lb) / np.sqrt(va + vb)
    assert abs(z) < Z, (
        f"{name}: std {np.exp(la):.4f} (torchvision) vs {np.exp(lb):.4f} (kornia), z={z:.2f}"
    )


def _same_distribution(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
    _same_mean(name, a, b)
    _same_std(name, a, b)
    p = ks_2samp(a.double().numpy(), b.double().numpy()).pvalue
    assert p > P_MIN, f"{name}: Kolmogorov-Smirnov p = {p:.2g}"


def _near(name: str, fraction: torch.Tensor, expected: float) -> None:
    observed = fraction.double().mean().item()
    se = np.sqrt(expected * (1 - expected) / fraction.numel())
    assert abs(observed - expected) < Z * se, f"{name}: {observed:.4f}, expected {expected}"


def _is_gray(x: torch.Tensor) -> torch.Tensor:
    return ((x - x.mean(1, keepdim=True)).abs().amax((1, 2, 3)) < 1e-3).double()


def _saturation(x: torch.Tensor) -> torch.Tensor:
    return (x.amax(1) - x.amin(1)).mean((1, 2))


# ------------------------------------------------------------------ statistics match


@pytest.fixture(scope="module")
def full_recipe_per_sample(photo) -> torch.Tensor:
    return _draw_per_sample(AugmentConfig(**RAW), photo, seed=0)


@pytest.mark.parametrize("jitter_order", ["per_sample", "per_batch"])
def test_full_cifar_recipe_statistics_match(photo, full_recipe_per_sample, jitter_order):
    a = full_recipe_per_sample
    b = _draw_batched(AugmentConfig(**RAW), photo, seed=1, jitter_order=jitter_order)
    for c in range(3):
        _same_distribution(f"mean of channel {c}", a[:, c].mean((1, 2)), b[:, c].mean((1, 2)))
    _same_distribution("contrast (per-image std)", a.flatten(1).std(1), b.flatten(1).std(1))
    _same_distribution("saturation", _saturation(a), _saturation(b))
    # Only the grayscale step makes R = G = B (saturation jitter never goes below 0.6).
    _near("grayscale fraction, torchvision", _is_gray(a), 0.2)
    _near("grayscale fraction, kornia", _is_gray(b), 0.2)
    _same_mean("grayscale fraction", _is_gray(a), _is_gray(b))


def test_colour_jitter_statistics_match(photo):
    """Jitter alone (always applied, no crop/flip/gray), where hue and order would show."""
    cfg = AugmentConfig(**RAW, **IDENTITY_CROP, flip_p=0.0, grayscale_p=0.0, jitter_p=1.0)
    a = _draw_per_sample(cfg, photo, seed=2)
    b = _draw_batched(cfg, photo, seed=3)
    for c in range(3):
        _same_distribution(f"mean of channel {c}", a[:, c].mean((1, 2)), b[:, c].mean((1, 2)))
    _same_distribution("contrast", a.flatten(1).std(1), b.flatten(1).std(1))
    _same_distribution("saturation", _saturation(a), _saturation(b))
    # Hue shifts move colour between channels: the red-minus-blue balance of each image.
    _same_distribution(
        "red - blue", (a[:, 0] - a[:, 2]).mean((1, 2)), (b[:, 0] - b[:, 2]).mean((1, 2))
    )


def test_crop_boxes_match_torchvision_sampler():
    """The crop boxes themselves: torchvision's RandomResizedCrop parameters against the kornia
    sampler that BatchedAugment uses, 20,000 boxes each, at two input shapes. Width and height are
    discrete, so their histograms are compared with a chi-square test."""
    from scipy.stats import chi2_contingency
    from torchvision.transforms import v2

    from ltcl.data.batched_transforms import _RandomResizedCrop

    n = 20000
    for height, width in ((32, 32), (40, 56)):
        cfg = AugmentConfig(size=32)
        torch.manual_seed(10)
        reference = v2.RandomResizedCrop(32, scale=cfg.crop_scale, ratio=cfg.crop_ratio)
        image = torch.zeros(3, height, width, dtype=torch.uint8)
        drawn = [reference.make_params([image]) for _ in range(n)]
        tv = {key: torch.tensor([float(p[key]) for p in drawn]) for key in drawn[0]}
        torch.manual_seed(11)
        src = _RandomResizedCrop(cfg).boxes.forward_parameters(torch.Size([n, 3, height, width]))
        src = src["src"].double()
        ours = {
            "width": src[:, 2, 0] - src[:, 0, 0] + 1,
            "height": src[:, 2, 1] - src[:, 0, 1] + 1,
            "left": src[:, 0, 0],
            "top": src[:, 0, 1],
        }
        for key in ("width", "height"):
            values = torch.cat([tv[key], ours[key]]).unique()
            table = np.array(
                [[(x == v).sum().item() for v in values] for x in (tv[key], ours[key])]
            )
            p = chi2_contingency(table).pvalue
            assert p > P_MIN, f"{key} histogram differs at {height}x{width}: chi-square p = {p:.2g}"
        for key in ("left", "top"):
            _same_mean(key, tv[key], ours[key])
            _same_std(key, tv[key], ours[key])
        _same_std("aspect", tv["width"] / tv["height"], ours["width"] / ours["height"])


def test_crop_and_flip_statistics_match(ramp):
    """Crop box size, position and aspect, and the flip rate, read off the coordinate image."""
    cfg = AugmentConfig(**RAW, jitter_p=0.0, grayscale_p=0.0)

    def geometry(x: torch.Tensor) -> dict[str, torch.Tensor]:
        red_left, red_right = x[:, 0, :, 0].mean(1), x[:, 0, :, -1].mean(1)
        green_top, green_bottom = x[:, 1, 0, :].mean(1), x[:, 1, -1, :].mean(1)
        width, height = (red_right - red_left).abs(), green_bottom - green_top
        return {
            "flipped": (red_right < red_left).double(),
            "width": width,
            "height": height,
            "area": width * height,
            "aspect": width / height,
            "centre x": (red_left + red_right) / 2,
            "centre y": (green_top + green_bottom) / 2,
        }

    a = geometry(_draw_per_sample(cfg, ramp, seed=4))
    b = geometry(_draw_batched(cfg, ramp, seed=5))
    _near("flip rate, torchvision", a["flipped"], 0.5)
    _near("flip rate, kornia", b["flipped"], 0.5)
    # The per-sample path rounds the crop to uint8, so these statistics are discrete there and
    # continuous here: compare moments, not Kolmogorov-Smirnov.
    for name in ("width", "height", "area", "aspect", "centre x", "centre y"):
        _same_mean(name, a[name], b[name])
        _same_std(name, a[name], b[name])
    # Sanity of the estimate itself: the crop keeps 10% to 100% of the area.
    assert 0.07 < b["area"].min() and b["area"].max() < 1.01  # 10% of 1024 px, rounded


def _sharpness(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels: sensitive to the resampling kernel."""
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean((1, 2, 3))
    return dy + (x[..., 1:] - x[..., :-1]).abs().mean((1, 2, 3))


def test_crop_resampling_statistics_match(photo):
    """Crop alone on the photo. Detects the resampling kernel: with kornia's own crop resize
    (bicubic a = -0.75, no antialias) sharpness differs by z = -5.5, with its defaults (bilinear,
    align_corners=True) by z = +12, with bilinear instead of bicubic by z = +12."""
    cfg = AugmentConfig(**RAW, flip_p=0.0, jitter_p=0.0, grayscale_p=0.0)
    a = _draw_per_sample(cfg, photo, seed=8)
    b = _draw_batched(cfg, photo, seed=9)
    _same_distribution("sharpness", _sharpness(a), _sharpness(b))
    _same_distribution("contrast", a.flatten(1).std(1), b.flatten(1).std(1))
    ratio_a, ratio_b = _sharpness(a) / a.flatten(1).std(1), _sharpness(b) / b.flatten(1).std(1)
    _same_distribution("sharpness / contrast", ratio_a, ratio_b)


def test_blur_statistics_match(photo):
    # sigma >= 0.5 so that every blur changes the image (sigma 0.1 is the identity to 1e-5).
    cfg = AugmentConfig(
        **RAW,
        **IDENTITY_CROP,
        flip_p=0.0,
        jitter_p=0.0,
        grayscale_p=0.0,
        blur_p=0.5,
        blur_kernel=5,
        blur_sigma=(0.5, 2.0),
    )
    a = _draw_per_sample(cfg, photo, seed=6)
    b = _draw_batched(cfg, photo, seed=7)

    unblurred = torch.as_tensor(photo).permute(2, 0, 1).float() / 255
    untouched = lambda x: ((x - unblurred).abs().amax((1, 2, 3)) < 1e-5).double()  # noqa: E731
    _near("unblurred fraction, torchvision", untouched(a), 0.5)
    _near("unblurred fraction, kornia", untouched(b), 0.5)
    _same_mean("sharpness", _sharpness(a), _sharpness(b))
    _same_std("sharpness", _sharpness(a), _sharpness(b))
    _same_mean("contrast", a.flatten(1).std(1), b.flatten(1).std(1))


def test_batched_crop_resize_equals_torchvision_kernel():
    """The batched crop resizes exactly as F.interpolate(antialias=True), which torchvision's
    Resize/RandomResizedCrop call, up- and downscaling (antialiased), bicubic and bilinear."""
    torch.manual_seed(0)
    for interpolation in ("bicubic", "bilinear"):
        for height, width, size in ((32, 32, 32), (20, 24, 32), (96, 80, 40)):
            x = torch.rand(2, 3, height, width)
            for _ in range(10):
                h = int(torch.randint(1, height + 1, ()))
                w = int(torch.randint(1, width + 1, ()))
                top = int(torch.randint(0, height - h + 1, ()))
                left = int(torch.randint(0, width - w + 1, ()))
                ref = F.interpolate(
                    x[:, :, top : top + h, left : left + w],
                    size=(size, size),
                    mode=interpolation,
                    align_corners=False,
                    antialias=True,
                )
                full = torch.full((2,), 1.0)
                wy = _resize_weights(top * full, h * full, height, size, interpolation)
                wx = _resize_weights(left * full, w * full, width, size, interpolation)
                out = wy[:, None] @ x @ wx[:, None].transpose(-1, -2)
                torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


# ------------------------------------------------------------------ per-sample path


def test_per_sample_shape_dtype_and_two_views_differ(photo):
    cfg = AugmentConfig()
    v1, v2 = TwoViews(PerSampleAugment(cfg))(photo)
    assert v1.shape == v2.shape == (3, 32, 32)
    assert v1.dtype == torch.float32 and type(v1) is torch.Tensor
    assert not torch.equal(v1, v2)


def test_per_sample_deterministic_under_manual_seed(photo):
    augment = PerSampleAugment(AugmentConfig())
    torch.manual_seed(123)
    first = [augment(photo) for _ in range(3)]
    torch.manual_seed(123)
    second = [augment(photo) for _ in range(3)]
    for x, y in zip(first, second, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_per_sample_other_input_sizes_and_grayscale(photo):
    big = np.array(Image.fromarray(photo).resize((48, 40)))
    assert PerSampleAugment(AugmentConfig())(big).shape == (3, 32, 32)
    assert PerSampleAugment(AugmentConfig())(photo[:, :, 0]).shape == (3, 32, 32)
    imagenet = AugmentConfig.from_recipe("imagenet", size=64)
    assert PerSampleAugment(imagenet)(big).shape == (3, 64, 64)


def test_normalisation_uses_configured_mean_std(photo):
    cfg = AugmentConfig(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x = TestTransform(cfg)(photo)
    expected = (torch.as_tensor(photo).permute(2, 0, 1).float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(x, expected)


# ------------------------------------------------------------------ batched path


def test_batched_copies_of_one_image_all_differ(photo):
    batch = torch.from_numpy(photo).permute(2, 0, 1)[None].repeat(16, 1, 1, 1)
    torch.manual_seed(0)
    out = BatchedAugment(AugmentConfig())(batch)
    flat = out.flatten(1)
    distance = torch.cdist(flat, flat) + torch.eye(16) * 1e9
    assert distance.min() > 1e-3, "two samples of the batch got the same augmentation"


def test_batched_jitter_is_torchvision_jitter_with_order_per_sample(photo):
    """Row by row, the batched jitter equals torchvision's functional ops applied in that row's
    own order with that row's factors; rows do not share one order."""
    from torchvision.transforms.v2 import functional as TF

    torch.manual_seed(0)
    jitter = RandomColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8)
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].repeat(64, 1, 1, 1).float() / 255
    params = jitter.draw_params(64)
    out = jitter(x, params)
    assert len({tuple(o.tolist()) for o in params["order"]}) > 8
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    chosen = params["chosen"].tolist()
    for row in range(64):
        ref = x[row]
        if row in chosen:
            i = chosen.index(row)
            for k in params["order"][i].tolist():
                ref = ops[k](ref, params["factors"][i, k].item())
        # kornia's and torchvision's RGB <-> HSV differ in float rounding only.
        torch.testing.assert_close(out[row], ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("hw", [(32, 32), (40, 56), (24, 24)])
def test_batched_shapes_and_dtypes(dtype, hw):
    x = torch.randint(0, 256, (5, 3, *hw), dtype=torch.uint8)
    if dtype == torch.float32:
        x = x.float() / 255
    with torch.no_grad():
        out = BatchedAugment(AugmentConfig())(x)
    assert out.shape == (5, 3, 32, 32) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_batched_imagenet_recipe_with_blur_and_channels_last():
    cfg = AugmentConfig.from_recipe("imagenet", size=64)
    assert cfg.blur_kernel == 7 and cfg.blur_p == 0.5 and cfg.test_resize == 73
    x = torch.randint(0, 256, (4, 3, 80, 96), dtype=torch.uint8).contiguous(
        memory_format=torch.channels_last
    )
    out = BatchedAugment(cfg)(x)
    assert out.shape == (4, 3, 64, 64)
    assert BatchedTestTransform(cfg)(x).shape == (4, 3, 64, 64)


def test_batched_generator_is_reproducible_and_leaves_global_rng_alone(photo):
    batch = torch.from_numpy(photo).permute(2, 0, 1)[None].repeat(8, 1, 1, 1)
    cfg = AugmentConfig()
    torch.manual_seed(0)
    state = torch.get_rng_state()
    out1 = BatchedAugment(cfg, generator=torch.Generator().manual_seed(7))(batch)
    assert torch.equal(torch.get_rng_state(), state)
    out2 = BatchedAugment(cfg, generator=torch.Generator().manual_seed(7))(batch)
    torch.testing.assert_close(out1, out2, rtol=0, atol=0)
    torch.manual_seed(3)
    g1 = BatchedAugment(cfg)(batch)
    torch.manual_seed(3)
    g2 = BatchedAugment(cfg)(batch)
    torch.testing.assert_close(g1, g2, rtol=0, atol=0)


def test_batched_draws_stay_on_cpu_when_moved():
    """kornia would move its draws to the module's device; ours stay on the CPU, so a seed means
    the same augmentations everywhere and `generator` controls every draw."""
    import kornia.augmentation as K

    # .to(dtype) runs the same hook as .to(device) (meta tensors cannot stand in for CUDA here).
    augment = BatchedAugment(AugmentConfig.from_recipe("imagenet", size=32)).to(torch.float64)
    modules = [m for m in augment.modules() if isinstance(m, K.AugmentationBase2D)]
    assert len(modules) >= 4  # crop boxes, flip, grayscale, blur
    assert all(m.device == torch.device("cpu") and m.dtype == torch.float32 for m in modules)
    assert augment.normalize.mean.dtype == torch.float64


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("jitter_order", ["per_sample", "per_batch"])
def test_batched_cuda_matches_cpu_under_same_seed(photo, jitter_order):
    cfg = AugmentConfig.from_recipe("cifar", blur_p=0.5)
    batch = torch.from_numpy(photo).permute(2, 0, 1)[None].repeat(64, 1, 1, 1)
    augment = BatchedAugment(cfg, jitter_order=jitter_order)
    torch.manual_seed(0)
    on_cpu = augment(batch)
    torch.manual_seed(0)
    with torch.no_grad():
        on_gpu = augment.to("cuda")(batch.cuda())
    assert on_gpu.device.type == "cuda" and on_gpu.shape == (64, 3, 32, 32)
    # TF32 matrix products (if enabled) and HSV rounding differ slightly between devices.
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=2e-2, rtol=0)
    generator_out = BatchedAugment(cfg, generator=torch.Generator().manual_seed(1)).cuda()(
        batch.cuda()
    )
    assert generator_out.device.type == "cuda"


def test_batched_test_transform_matches_per_sample(photo):
    for cfg in (AugmentConfig(), AugmentConfig.from_recipe("imagenet", size=24)):
        big = np.array(Image.fromarray(photo).resize((45, 37)))
        ref = TestTransform(cfg)(big)
        out = BatchedTestTransform(cfg)(torch.from_numpy(big).permute(2, 0, 1)[None])
        assert out.shape == (1, 3, cfg.size, cfg.size)
        # torchvision resizes uint8 (rounded); the batched path resizes float.
        torch.testing.assert_close(out[0], ref, atol=1.0 / 255 / min(cfg.std) + 1e-5, rtol=0)


def test_to_float_tensor():
    x = torch.tensor([[[[0, 255]]]], dtype=torch.uint8).expand(1, 3, 1, 2)
    torch.testing.assert_close(to_float_tensor(x)[0, :, 0], torch.tensor([[0.0, 1.0]] * 3))
    arr = np.zeros((2, 4, 5, 3), dtype=np.uint8)
    assert to_float_tensor(arr).shape == (2, 3, 4, 5)
    with pytest.raises(DataError):
        to_float_tensor(torch.zeros(1, 3, 2, 2, dtype=torch.int32))


# ------------------------------------------------------------------ config


def test_recipes_and_overrides():
    cifar = AugmentConfig()
    assert (cifar.size, cifar.crop_scale, cifar.interpolation, cifar.blur_p) == (
        32,
        (0.1, 1.0),
        "bicubic",
        0.0,
    )
    assert cifar.jitter_strength == (0.4, 0.4, 0.4, 0.1) and cifar.jitter_p == 0.8
    imagenet = AugmentConfig.from_recipe("imagenet")
    assert (imagenet.size, imagenet.crop_scale, imagenet.blur_p) == (224, (0.08, 1.0), 0.5)
    assert imagenet.blur_kernel == 23 and imagenet.test_resize == 256
    listed = AugmentConfig.from_recipe("cifar", 40, crop_scale=[0.2, 1.0], jitter_p=0.5)
    assert listed.size == 40 and listed.crop_scale == (0.2, 1.0) and listed.jitter_p == 0.5


def test_bad_recipe_and_options_raise_config_error():
    with pytest.raises(ConfigError, match="cifar.*imagenet"):
        AugmentConfig.from_recipe("svhn")
    with pytest.raises(ConfigError, match="known recipes"):
        AugmentConfig(recipe="svhn")
    with pytest.raises(ConfigError, match="Unknown augmentation option"):
        AugmentConfig.from_recipe("cifar", jiter_p=0.5)
    with pytest.raises(ConfigError, match="probability"):
        AugmentConfig(grayscale_p=1.5)
    with pytest.raises(ConfigError, match="crop_scale"):
        AugmentConfig(crop_scale=(0.0, 1.0))
    with pytest.raises(ConfigError, match="odd"):
        AugmentConfig(blur_kernel=4)

    class DeviceGenerator:  # stands in for a CUDA generator on machines without CUDA
        device = torch.device("cuda")

    with pytest.raises(ConfigError, match="CPU"):
        BatchedAugment(AugmentConfig(), generator=DeviceGenerator())  # type: ignore[arg-type]
