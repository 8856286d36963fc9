"""ltcl-pool as typed: build a pool from folders with planted copies of ID test images, find
them (exact, resized, JPEG re-encoded, mirrored), leave the clean images alone, and refuse bad
input before any work is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ltcl.data.embedded import digits_long_tailed_source, sample_photo_crops
from tests.helpers import REPO_ROOT

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow  # about 50 s: a pool built and checked through the console


def ltcl_pool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "ltcl-pool"), *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """ID train / test arrays (digits), a pool folder of photo crops plus four planted copies
    of test images: exact (PNG), resized (64 px), JPEG quality 70, mirrored."""
    root = tmp_path_factory.mktemp("pool")
    digits = np.asarray(digits_long_tailed_source().images)
    train, test = digits[:1000], digits[1000:1400]
    np.save(root / "id_train.npy", train)
    np.save(root / "id_test.npy", test)
    folder = root / "pool_images" / "photos"
    folder.mkdir(parents=True)
    for i, image in enumerate(np.asarray(sample_photo_crops(60, seed=3).images)):
        Image.fromarray(image).save(folder / f"clean_{i:03d}.png")
    planted_dir = root / "pool_images" / "zz_planted"
    planted_dir.mkdir()
    Image.fromarray(test[10]).save(planted_dir / "a_exact.png")
    Image.fromarray(test[11]).resize((64, 64), Image.BICUBIC).save(planted_dir / "b_resized.png")
    Image.fromarray(test[12]).save(planted_dir / "c_jpeg.jpg", quality=70)
    Image.fromarray(test[13][:, ::-1]).save(planted_dir / "d_flipped.png")
    return root


def test_build_then_check_finds_every_planted_copy_and_no_clean_image(planted, tmp_path):
    pool = tmp_path / "pool.npy"
    built = ltcl_pool("build", pool, "--from", planted / "pool_images", "--size", 32)
    assert built.returncode == 0, built.stderr
    manifest = json.loads((tmp_path / "pool.npy.manifest.json").read_text())
    assert manifest["count"] == 64 and manifest["size"] == 32 and len(manifest["sha256"]) == 64
    assert manifest["command"].startswith("ltcl-pool build")
    assert np.load(pool).shape == (64, 32, 32, 3)

    checked = ltcl_pool("check", pool, "--against", planted / "id_train.npy",
                        planted / "id_test.npy", "--out", tmp_path / "check",
                        "--fix", tmp_path / "clean.npy")  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    report = json.loads((tmp_path / "check" / "report.json").read_text())
    test = report["sets"]["id_test"]
    # files sort photos/ first (60), then zz_planted/a..d at 60..63
    assert test["exact"] == 1 and test["near"] == 2 and test["flipped"] == 1
    assert report["flagged"] == [60, 61, 62, 63]  # and none of the 60 photo crops
    assert np.load(tmp_path / "check" / "exclude.npy").tolist() == [60, 61, 62, 63]
    assert np.load(tmp_path / "clean.npy").shape == (60, 32, 32, 3)
    assert (tmp_path / "check" / "closest_pairs.png").stat().st_size > 0
    assert "| id_test | 400 | 1 | 2 | 1 | 4 |" in (tmp_path / "check" / "report.md").read_text()

    # the exclusion list is what a .npy pool source reads
    from ltcl.data.array_sources import npy_array

    source = npy_array(pool, exclude_path=tmp_path / "check" / "exclude.npy")
    assert len(source) == 60


def test_bad_input_is_refused_before_any_work(planted, tmp_path):
    missing = ltcl_pool("build", tmp_path / "p.npy", "--from", tmp_path / "nowhere")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    broken = tmp_path / "broken" / "c"
    broken.mkdir(parents=True)
    (broken / "x.jpg").write_bytes(b"not an image")
    unreadable = ltcl_pool("build", tmp_path / "p.npy", "--from", broken.parent)
    assert unreadable.returncode == 2 and "not readable images" in unreadable.stderr
    assert not (tmp_path / "p.npy").exists()  # nothing written
    big = tmp_path / "big.npy"
    np.save(big, np.zeros((3, 64, 64, 3), np.uint8))
    other = ltcl_pool("check", big, "--against", planted / "id_test.npy")
    assert other.returncode == 2 and "build the pool at the ID resolution" in other.stderr
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 32, 32, 3), np.uint8))
    nothing = ltcl_pool("check", empty, "--against", planted / "id_test.npy")
    assert nothing.returncode == 2 and "holds no images" in nothing.stderr
    for result in (missing, unreadable, other, nothing):
        assert result.stderr.startswith("ltcl-pool: error: ") and "Traceback" not in result.stderr
