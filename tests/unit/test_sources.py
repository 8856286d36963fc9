"""Image sources on tiny fixtures written into tmp_path: layouts, caching, and every bad input."""

import os
import pickle
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ltcl.data import decode_cache
from ltcl.data.archives import extract_archive
from ltcl.data.array_sources import npy_array, torchvision_cifar
from ltcl.data.sources import (
    ImageSource,
    RowView,
    image_folder,
    list_file,
)
from ltcl.errors import ConfigError, DataError

SHARED_CIFAR = Path("/work/shared/data/cifar10-jpeg.tar.gz")


def write_image(path: Path, seed: int, size: int = 8, mode: str = "RGB") -> np.ndarray:
    """Write a random image; returns the pixels as RGB (exact for PNG)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "L":
        a = rng.integers(0, 256, (size, size), dtype=np.uint8)
        Image.fromarray(a).save(path)
        return np.repeat(a[:, :, None], 3, axis=2)
    a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(a).save(path)
    return a


def visible(folder: Path) -> list[str]:
    """Files of a folder without hidden ones (the cache's lock file)."""
    return sorted(f for f in os.listdir(folder) if not f.startswith("."))


@pytest.fixture
def folder(tmp_path):
    """root/train/{cat,dog,frog}/ with PNGs (exact pixels), one gray, one upper-case JPEG."""
    root = tmp_path / "toy"
    pixels = {}
    for c, cname in enumerate(["dog", "cat", "frog"]):
        for i in range(3 + c):
            p = root / "train" / cname / f"{i:04d}.png"
            pixels[str(p)] = write_image(p, seed=10 * c + i, mode="L" if i == 2 else "RGB")
    write_image(root / "train" / "frog" / "extra.JPEG", seed=99)
    (root / "train" / "frog" / "notes.txt").write_text("not an image")
    (root / "train" / ".hidden").mkdir()
    return root, pixels


@pytest.fixture
def tiny_imagenet(tmp_path):
    """Tiny ImageNet layout: train/<wnid>/images/*.JPEG plus <wnid>_boxes.txt."""
    root = tmp_path / "tinyimagenet32"
    for w, wnid in enumerate(["n01443537", "n01629819", "n01641577"]):
        for i in range(2):
            write_image(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", seed=w * 10 + i)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("0 0 1 1\n")
    (root / "wnids.txt").write_text("n01443537\nn01629819\nn01641577\n")
    return root


# ------------------------------------------------------------------ image folders


def test_image_folder_classes_labels_pixels(folder):
    root, pixels = folder
    src = image_folder(root, "train")
    assert src.classes == ["cat", "dog", "frog"]  # sorted folder names
    assert np.bincount(src.labels).tolist() == [4, 3, 6]
    assert src.name == "toy-train"
    assert all(os.path.isabs(p) for p in src.paths)
    for i, p in enumerate(src.paths):
        img = src.load(i)
        assert img.dtype == np.uint8 and img.shape == (8, 8, 3)
        if p in pixels:
            assert np.array_equal(img, pixels[p])  # includes the grayscale PNG -> RGB
        assert src.classes[src.labels[i]] == Path(p).parent.name
    assert not any(p.endswith(".txt") for p in src.paths)


def test_image_folder_recursive_tiny_imagenet_and_exclude(tiny_imagenet):
    src = image_folder(tiny_imagenet, "train")
    assert len(src) == 6 and src.classes == ["n01443537", "n01629819", "n01641577"]
    assert src.load(0).shape == (8, 8, 3)
    kept = image_folder(tiny_imagenet, "train", exclude=["n01629819"])
    assert kept.classes == ["n01443537", "n01641577"]
    assert np.bincount(kept.labels).tolist() == [2, 2]
    with pytest.raises(DataError, match=r"exclude names \['n99999999'\].*not class folders"):
        image_folder(tiny_imagenet, "train", exclude=["n99999999"])
    with pytest.raises(DataError, match=r"holds no images.*recursive_labels"):
        image_folder(tiny_imagenet, "train", recursive_labels=False)


def test_image_folder_cache_reuses_the_same_pixels(folder, tmp_path, monkeypatch):
    root, _ = folder
    cache = tmp_path / "cache"
    lazy = image_folder(root, "train")
    first = image_folder(root, "train", cache_dir=cache)
    files = visible(cache)
    assert len(files) == 2 and files[0].startswith("toy-train-")
    assert isinstance(first.images, np.memmap) and first.images.shape == (13, 8, 8, 3)

    def no_rebuild(*a, **k):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(decode_cache, "_build_cache", no_rebuild)
    second = image_folder(root, "train", cache_dir=cache)
    assert visible(cache) == files
    assert np.array_equal(np.asarray(first.images), np.asarray(second.images))
    assert np.array_equal(first.labels, second.labels)
    for i in range(len(lazy)):
        assert np.array_equal(second.load(i), lazy.load(i))
    # A changed file list means a new cache key.
    monkeypatch.undo()
    write_image(root / "train" / "cat" / "new.png", seed=5)
    third = image_folder(root, "train", cache_dir=cache)
    assert len(third) == 14 and len(visible(cache)) == 4


def test_image_folder_cache_with_worker_pool(folder, tmp_path, monkeypatch):
    root, _ = folder
    monkeypatch.setattr(decode_cache, "_POOL_MIN_IMAGES", 1)
    monkeypatch.setattr(decode_cache, "_CHUNK", 4)
    pooled = image_folder(root, "train", cache_dir=tmp_path / "c1", num_workers=2)
    serial = image_folder(root, "train", cache_dir=tmp_path / "c2", num_workers=0)
    assert np.array_equal(np.asarray(pooled.images), np.asarray(serial.images))


def test_cache_needs_one_size_or_image_size(folder, tmp_path):
    root, _ = folder
    write_image(root / "train" / "dog" / "big.png", seed=1, size=12)
    with pytest.raises(
        DataError, match=r"12x12 but the first image is 8x8.*set the source's image_size"
    ):
        image_folder(root, "train", cache_dir=tmp_path / "c")
    src = image_folder(root, "train", cache_dir=tmp_path / "c", image_size=6)
    assert src.images.shape == (14, 6, 6, 3)
    lazy = image_folder(root, "train", image_size=6)  # lazy decoding resizes too
    assert lazy.load(0).shape == (6, 6, 3)


def test_image_folder_layout_errors(tmp_path, folder):
    root, _ = folder
    with pytest.raises(DataError, match=r"does not exist.*LTCL_DATA_DIR .* or the source's root"):
        image_folder(tmp_path / "missing", "train")
    with pytest.raises(DataError, match=r"split folder .*test does not exist.*\['train'\]"):
        image_folder(root, "test")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no class folders.*expected layout"):
        image_folder(tmp_path / "empty", "train")
    # Images directly in the split folder (wrong layout: no class folders).
    flat = tmp_path / "flat" / "train"
    write_image(flat / "a.png", seed=0)
    with pytest.raises(DataError, match="no class folders"):
        image_folder(tmp_path / "flat", "train")
    (root / "train" / "emptyclass").mkdir()
    (root / "train" / "emptyclass" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"class folder .*emptyclass holds no images"):
        image_folder(root, "train")
    with pytest.raises(ConfigError, match="image_size"):
        image_folder(root, "train", image_size=0)


def test_unreadable_image(folder, tmp_path):
    root, _ = folder
    bad = root / "train" / "cat" / "zz_corrupt.jpg"
    bad.write_bytes(np.random.default_rng(0).bytes(300))
    src = image_folder(root, "train")
    i = src.paths.index(str(bad))
    with pytest.raises(DataError, match=r"zz_corrupt.jpg.*remove or replace it"):
        src.load(i)
    with pytest.raises(DataError, match="zz_corrupt.jpg"):
        image_folder(root, "train", cache_dir=tmp_path / "c")
    assert not [f for f in os.listdir(tmp_path / "c") if f.endswith(".tmp")]


def test_split_none_uses_root_as_class_parent(folder):
    root, _ = folder
    src = image_folder(root / "train", split=None)
    assert src.classes == ["cat", "dog", "frog"] and src.name == "train"


# ------------------------------------------------------------------ list files


def test_list_file(folder, tmp_path):
    root, pixels = folder
    lst = tmp_path / "train.txt"
    lst.write_text("train/dog/0000.png 2\n\ntrain/cat/0001.png 0\n  train/frog/0000.png 5  \n")
    src = list_file(lst, root)
    assert src.labels.tolist() == [2, 0, 5]
    assert src.classes == [str(i) for i in range(6)]
    assert np.array_equal(src.load(0), pixels[str(root / "train/dog/0000.png")])
    cached = list_file(lst, root, cache_dir=tmp_path / "c")
    assert cached.images.shape == (3, 8, 8, 3)
    assert np.array_equal(cached.load(2), src.load(2))


@pytest.mark.parametrize(
    "bad_line", ["train/dog/0000.png", "train/dog/0000.png cat", "train/dog/0000.png -1"]
)
def test_list_file_malformed_line(folder, tmp_path, bad_line):
    root, _ = folder
    lst = tmp_path / "l.txt"
    lst.write_text(f"train/cat/0000.png 0\n{bad_line}\n")
    with pytest.raises(DataError, match=r"line 2: .*'relative/path label'"):
        list_file(lst, root)


def test_list_file_missing_files_and_paths(folder, tmp_path):
    root, _ = folder
    lst = tmp_path / "l.txt"
    lst.write_text("train/cat/0000.png 0\nnope/a.png 1\nnope/b.png 1\n")
    with pytest.raises(DataError, match=r"2 of 3 files listed .* missing.*nope/a.png"):
        list_file(lst, root)
    with pytest.raises(DataError, match="list file .* does not exist"):
        list_file(tmp_path / "none.txt", root)
    with pytest.raises(DataError, match="image_root .* does not exist"):
        list_file(lst, tmp_path / "none")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(DataError, match="no entries"):
        list_file(tmp_path / "empty.txt", root)


# ------------------------------------------------------------------ npy arrays


def test_npy_array_memmap_subset_pickle(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (20, 4, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "pool.npy", arr)
    src = npy_array(tmp_path / "pool.npy")
    assert isinstance(src.images, np.memmap)
    assert src.labels.tolist() == [-1] * 20 and src.classes == []
    assert np.array_equal(src.load(3), arr[3]) and src.load(3).flags.writeable
    sub = src.subset(np.array([5, 1, 7]))
    assert isinstance(sub.images, RowView) and sub.images.shape == (3, 4, 4, 3)
    assert np.array_equal(np.asarray(sub.images), arr[[5, 1, 7]])
    assub = sub.subset(np.array([2, 0]))
    assert np.array_equal(assub.load(0), arr[7]) and np.array_equal(assub.load(1), arr[5])
    assert np.array_equal(sub.images[1, :, :, 0], arr[1, :, :, 0])
    # Pickled by file reference, not by pixels (DataLoader workers with spawn).
    back = pickle.loads(pickle.dumps(src))
    assert isinstance(back.images, np.memmap) and np.array_equal(back.load(19), arr[19])
    back_sub = pickle.loads(pickle.dumps(assub))
    assert np.array_equal(back_sub.load(0), arr[7])
    assert len(pickle.dumps(assub)) < arr.nbytes
    with pytest.raises(DataError, match="range"):
        src.subset(np.array([0, 20]))
    np.save(tmp_path / "lab.npy", np.arange(20) % 4)
    labelled = npy_array(tmp_path / "pool.npy", tmp_path / "lab.npy", mmap=False)
    assert not isinstance(labelled.images, np.memmap)
    assert labelled.classes == ["0", "1", "2", "3"]
    assert labelled.subset([1, 2]).labels.tolist() == [1, 2]


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 4, 4, 3), np.float32),
        np.zeros((2, 4, 4), np.uint8),
        np.zeros((2, 4, 4, 1), np.uint8),
    ],
)
def test_npy_array_wrong_format(tmp_path, bad):
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(DataError, match=r"expected uint8 N x H x W x 3"):
        npy_array(tmp_path / "bad.npy")


def test_npy_array_missing_and_bad_labels(tmp_path):
    with pytest.raises(DataError, match=r"does not exist.*300K_random_images"):
        npy_array(tmp_path / "300K_random_images.npy")
    np.save(tmp_path / "a.npy", np.zeros((3, 2, 2, 3), np.uint8))
    np.save(tmp_path / "l.npy", np.zeros(4, np.int64))
    with pytest.raises(DataError, match="3 labels"):
        npy_array(tmp_path / "a.npy", tmp_path / "l.npy")


def test_image_source_validates_lengths():
    with pytest.raises(DataError, match="one label per image"):
        ImageSource(labels=np.zeros(2), classes=[], images=np.zeros((3, 2, 2, 3), np.uint8))
    with pytest.raises(DataError, match="neither images nor paths"):
        ImageSource(labels=np.zeros(2), classes=[])


# ------------------------------------------------------------------ torchvision CIFAR


def test_torchvision_cifar_missing_files_says_how_to_point_at_a_copy(tmp_path):
    with pytest.raises(DataError, match=r"cifar-10-batches-py.*cifar10_lt_folder.*cifar10-jpeg"):
        torchvision_cifar(tmp_path, "cifar10", train=True, download=False)
    with pytest.raises(DataError, match="cifar-100-python"):
        torchvision_cifar(tmp_path, "cifar100", train=False)
    with pytest.raises(ConfigError, match="'cifar10' or 'cifar100'"):
        torchvision_cifar(tmp_path, "cifar1000", train=True)


def test_torchvision_cifar_download_failure(tmp_path, monkeypatch):
    from torchvision import datasets

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(datasets, "CIFAR10", offline)
    with pytest.raises(DataError, match=r"download failed.*no network.*the source's root"):
        torchvision_cifar(tmp_path, "cifar10", train=True, download=True)


def test_torchvision_cifar_converts_arrays(tmp_path, monkeypatch):
    from torchvision import datasets

    class Fake:
        def __init__(self, root, train, download):
            self.data = np.ones((4, 32, 32, 3), np.uint8)
            self.targets = [0, 1, 2, 1]
            self.classes = ["a", "b", "c"]

    monkeypatch.setattr(datasets, "CIFAR100", Fake)
    src = torchvision_cifar(tmp_path, "cifar100", train=False)
    assert src.labels.dtype == np.int64 and src.labels.tolist() == [0, 1, 2, 1]
    assert src.images.shape == (4, 32, 32, 3) and src.name == "cifar100-test"


# ------------------------------------------------------------------ archives


def make_archive(tmp_path: Path) -> Path:
    src = tmp_path / "src" / "toyset"
    for c in ("a", "b"):
        write_image(src / "train" / c / "0.png", seed=1)
    arc = tmp_path / "toyset.tar.gz"
    with tarfile.open(arc, "w:gz") as tf:
        tf.add(src, arcname="toyset")
    return arc


def test_extract_archive_once(tmp_path):
    arc = make_archive(tmp_path)
    out = extract_archive(arc, tmp_path / "data")
    assert out == str(tmp_path / "data" / "toyset")
    assert len(image_folder(out, "train")) == 2
    marker = tmp_path / "data" / ".toyset.tar.gz.extracted"
    stamp = marker.stat().st_mtime_ns
    again = extract_archive(arc, tmp_path / "data")
    assert again == out and marker.stat().st_mtime_ns == stamp  # not extracted twice
    assert [p for p in os.listdir(tmp_path / "data") if not p.startswith(".")] == ["toyset"]


def test_extract_archive_errors(tmp_path):
    with pytest.raises(DataError, match="archive .* does not exist"):
        extract_archive(tmp_path / "none.tar.gz", tmp_path / "d")
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"\x00" * 50)
    with pytest.raises(DataError, match="corrupt or not a tar"):
        extract_archive(junk, tmp_path / "d")
    arc = make_archive(tmp_path)
    (tmp_path / "d2" / "toyset").mkdir(parents=True)
    (tmp_path / "d2" / "toyset" / "notes.txt").write_text("mine")  # someone else's: kept
    with pytest.raises(DataError, match="already exist"):
        extract_archive(arc, tmp_path / "d2")


def test_an_empty_folder_in_the_way_is_filled_from_the_archive(tmp_path):
    """An interrupted copy leaves cifar10/ empty: the archive is still extracted into it."""
    from ltcl.data.archives import image_folder_or_archive

    arc = make_archive(tmp_path)
    (tmp_path / "data" / "toyset").mkdir(parents=True)
    source = image_folder_or_archive(str(tmp_path / "data" / "toyset"), "train", archive=str(arc))
    assert len(source) == 2


# ------------------------------------------------------------------ the real shared copy


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_CIFAR.is_file(), reason="shared CIFAR-10 JPEG copy not present")
def test_shared_cifar10_copy(tmp_path):
    root = extract_archive(SHARED_CIFAR, tmp_path / "data")
    src = image_folder(root, "train", cache_dir=tmp_path / "cache")
    assert len(src) == 50_000
    assert src.classes == [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    assert np.bincount(src.labels).tolist() == [5000] * 10
    assert src.images.shape == (50_000, 32, 32, 3) and src.images.dtype == np.uint8
    lazy = image_folder(root, "train")
    assert np.array_equal(src.load(12_345), lazy.load(12_345))


def test_stale_cache_is_rebuilt(folder, tmp_path):
    root, _ = folder
    first = image_folder(root, "train", cache_dir=tmp_path / "c")
    img_file = Path(first.images.filename)
    del first
    np.save(img_file, np.zeros((2, 8, 8, 3), np.uint8))  # truncated/foreign content, same name
    again = image_folder(root, "train", cache_dir=tmp_path / "c")
    assert again.images.shape == (13, 8, 8, 3)
    assert np.array_equal(again.load(0), image_folder(root, "train").load(0))


def test_a_datamodule_names_the_key_of_the_source_that_failed(tmp_path):
    """The plain source says "the source's root"; the DataModule that built it names the key
    (issue: hints named data.root for configs that have none)."""
    from ltcl.data.sources import naming_the_source

    with pytest.raises(DataError, match=r"or data\.test_source\.root to the folder"):
        with naming_the_source("data.test_source"):
            image_folder(tmp_path / "nowhere", split="test")
