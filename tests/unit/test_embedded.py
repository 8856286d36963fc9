"""The embedded default data (scikit-learn digits and sample-photo crops): no download needed."""

import numpy as np
import pytest

from ltcl.data.embedded import digits_long_tailed_source, sample_photo_crops
from ltcl.data.splits import exponential_profile, make_long_tailed_split
from ltcl.errors import ConfigError

DIGIT_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


@pytest.fixture(scope="module")
def digits():
    return digits_long_tailed_source()


def test_digits_shapes_and_labels(digits):
    assert digits.images.shape == (1797, 32, 32, 3) and digits.images.dtype == np.uint8
    assert digits.classes == [str(i) for i in range(10)]
    assert np.bincount(digits.labels).tolist() == DIGIT_COUNTS
    assert digits.images.max() == 255 and digits.images.min() == 0
    img = digits.load(0)
    assert img.shape == (32, 32, 3)
    assert np.array_equal(img[..., 0], img[..., 1])  # gray as RGB


def test_digits_long_tailed_split(digits):
    split = make_long_tailed_split(
        digits.labels, 10, imbalance_ratio=10, n_max=120, val_per_class=30, seed=0
    )
    assert split.class_counts == exponential_profile(120, 10, 10)
    assert len(split.val_indices) == 300
    assert np.bincount(digits.labels[split.train_indices]).tolist() == split.class_counts
    assert np.intersect1d(split.train_indices, split.val_indices).size == 0


def test_photo_crops_deterministic_per_seed():
    a = sample_photo_crops(num_crops=64, size=32, seed=0)
    b = sample_photo_crops(num_crops=64, size=32, seed=0)
    c = sample_photo_crops(num_crops=64, size=32, seed=1)
    assert a.images.shape == (64, 32, 32, 3) and a.images.dtype == np.uint8
    assert a.classes == ["china", "flower"] and set(a.labels.tolist()) == {0, 1}
    assert np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)
    assert a.images.std() > 10  # real photo content, not a blank pool
    assert sample_photo_crops(num_crops=3, size=16).images.shape == (3, 16, 16, 3)


def test_photo_crops_bad_arguments():
    with pytest.raises(ConfigError, match="num_crops"):
        sample_photo_crops(num_crops=0)
    with pytest.raises(ConfigError, match="size"):
        sample_photo_crops(size=-1)
