"""kill -9 at random points, then the same command again: the run ends where an uninterrupted
run ends, bit for bit, and last.ckpt is never unreadable (slow tier).

The kill times are drawn (seeded) over the whole run, so they land in training steps, in the
guide's sampling rounds (every epoch here), in evaluation and while last.ckpt is written.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ltcl.models.checkpoints import read_checkpoint
from tests.helpers import (
    FAULT_GUIDE,
    FAULT_RUN,
    REPO_ROOT,
    assert_same_params,
    faulty_second_checkpoint_write,
    last_params,
)

BIN = Path(sys.executable).parent
COMMON = FAULT_RUN
GUIDE = FAULT_GUIDE


def command(tmp_path: Path, run_name: str, extra: list[str]) -> list[str]:
    return [str(BIN / "ltcl-train"), *COMMON, *extra, f"run_name={run_name}"]


def env(tmp_path: Path) -> dict:
    return {**os.environ, "WANDB_MODE": "disabled", "LTCL_LOG_DIR": str(tmp_path / "outputs")}


def run_to_end(tmp_path: Path, name: str, extra: list[str]) -> Path:
    done = subprocess.run(
        command(tmp_path, name, extra), cwd=REPO_ROOT, env=env(tmp_path),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp_path / "outputs" / "train" / name


def killed_and_resumed(tmp_path: Path, name: str, extra: list[str], kills: list[float]) -> Path:
    run = tmp_path / "outputs" / "train" / name
    for delay in kills:
        proc = subprocess.Popen(
            command(tmp_path, name, extra), cwd=REPO_ROOT, env=env(tmp_path),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        last = run / "checkpoints" / "last.ckpt"
        if last.exists():
            read_checkpoint(last)  # never unreadable, whenever the kill landed
    return run_to_end(tmp_path, name, extra)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["simclr", "guide", "student"])
def test_kill_9_at_random_points_resumes_to_the_uninterrupted_result(tmp_path, method):
    extra: list[str] = []
    if method == "guide":
        extra = GUIDE
    if method == "student":
        guide = run_to_end(tmp_path, "the_guide", GUIDE)
        extra = ["method=student", f"method.guide_checkpoint={guide}/checkpoints/last.ckpt"]
    reference = last_params(run_to_end(tmp_path, "uninterrupted", extra))
    rng = random.Random(f"kill-{method}")
    kills = sorted(rng.uniform(4.0, 14.0) for _ in range(3))
    resumed = last_params(killed_and_resumed(tmp_path, "killed", extra, kills))
    assert_same_params(reference, resumed)


# ltcl-train with a checkpoint writer that stops half-way through its second write (the end of
# epoch 1) and waits there, so that the test can kill it inside the write.
HALF_WRITE = faulty_second_checkpoint_write("""
def faulty(write):
    buffer = io.BytesIO()
    write(buffer)
    def stalled(handle):
        handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        handle.flush()
        Path(MARKER).touch()  # tell the test: a kill from here on lands mid-write
        time.sleep(600)
    return stalled
""")


@pytest.mark.slow
def test_kill_9_while_last_ckpt_is_written_resumes_to_the_uninterrupted_result(tmp_path):
    extra = GUIDE  # a sampling round every epoch: the checkpoint holds the sampler's state too
    reference = last_params(run_to_end(tmp_path, "uninterrupted", extra))
    marker = tmp_path / "writing"
    script = HALF_WRITE.replace("MARKER", repr(str(marker)))
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *command(tmp_path, "killed", extra)[1:]],
        cwd=REPO_ROOT, env=env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert marker.exists(), proc.stderr.read().decode()[-3000:] if proc.poll() is not None else ""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run = tmp_path / "outputs" / "train" / "killed"
    last = run / "checkpoints" / "last.ckpt"
    assert read_checkpoint(last)["epoch"] == 0  # the epoch-0 file, whole; the half write is not it
    assert list(last.parent.glob(".last.ckpt.*.tmp"))  # the interrupted temporary file
    resumed = last_params(run_to_end(tmp_path, "killed", extra))
    assert_same_params(reference, resumed)
