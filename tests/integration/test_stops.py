"""A stopped run never looks finished (slow tier, one process per run, as a user types it).

SIGTERM (a scheduler, SLURM pre-emption) and SIGINT (Ctrl+C) during training and during a
sampling round, and a full disk while a checkpoint is written: the command exits non-zero with
one line that says what happened and how to go on, ``last.ckpt`` stays loadable, and the same
command again ends where an uninterrupted run ends, bit for bit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

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
GUIDE = [*FAULT_RUN, *FAULT_GUIDE]

# ltcl-train whose sampling round before epoch 2 tells the test it has started (MARKER) and
# takes 3 s longer, so that a signal sent on the marker lands inside the round.
SLOW_ROUND = """
import sys, time
from pathlib import Path
from ltcl.methods.ood_sampling import OODSamplingHooks
from ltcl.cli.train import main

original = OODSamplingHooks.sampling_round

def marked(self, epoch, log_metrics=True):
    if epoch == 2:
        Path(MARKER).touch()
        time.sleep(3)
    return original(self, epoch, log_metrics)

OODSamplingHooks.sampling_round = marked
sys.argv = ["ltcl-train", *sys.argv[1:]]
main()
"""


def env(log_dir: Path) -> dict:
    """As a user's shell has it: no HYDRA_FULL_ERROR (tests/conftest.py sets it in-process)."""
    environment = {**os.environ, "WANDB_MODE": "disabled", "LTCL_LOG_DIR": str(log_dir)}
    environment.pop("HYDRA_FULL_ERROR", None)
    return environment


def train_command(name: str, extra: list[str] = ()) -> list[str]:
    return [str(BIN / "ltcl-train"), *GUIDE, *extra, f"run_name={name}"]


def run_to_end(log_dir: Path, name: str) -> Path:
    done = subprocess.run(
        train_command(name), cwd=REPO_ROOT, env=env(log_dir),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return log_dir / "train" / name


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.time() + seconds
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert path.exists(), (proc.stderr.read() if proc.poll() is not None else "timed out")[-3000:]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    return run_to_end(tmp_path_factory.mktemp("reference"), "uninterrupted")


@pytest.fixture(scope="module")
def uninterrupted(reference_run) -> dict[str, torch.Tensor]:
    return last_params(reference_run)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("phase", ["training", "sampling-round"])
def test_a_signal_stops_the_run_non_zero_and_the_same_command_resumes_it(
    tmp_path, uninterrupted, signum, phase
):
    name = "stopped"
    run = tmp_path / "train" / name
    marker = run / "checkpoints" / "last.ckpt"  # epoch 0 is done: the signal lands in epoch 1
    command = train_command(name)
    if phase == "sampling-round":
        marker = tmp_path / "in-round"
        script = SLOW_ROUND.replace("MARKER", repr(str(marker)))
        command = [sys.executable, "-c", script, *command[1:]]
    proc = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env(tmp_path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for(marker, proc)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=300)

    assert proc.returncode == 128 + signum, stderr[-3000:]
    line = stderr.strip().splitlines()[-1]
    name_of = signal.Signals(signum).name
    assert line.startswith(f"ltcl: stopped by {name_of}: "), line
    assert line.endswith("run the same command to resume"), line
    epochs = read_checkpoint(run / "checkpoints" / "last.ckpt")["epoch"] + 1
    assert f"holds {epochs} finished epoch" in line and epochs < 4
    if phase == "sampling-round":  # the round ran to its end and its epoch was checkpointed
        assert epochs == 2
    assert "Traceback" not in stderr
    assert not (run / "results.json").exists()

    assert_same_params(last_params(run_to_end(tmp_path, name)), uninterrupted)


@pytest.mark.slow
def test_sigterm_during_the_guide_stops_the_pipeline_before_the_student(tmp_path):
    args = [
        str(BIN / "ltcl-pipeline"), "experiment=demo_pipeline", "ckpt_path=last",
        "trainer.max_epochs=4", "method.sampler.warmup_epochs=1", "method.sampler.interval=1",
        "method.sampler.budget=100", "stages.student.epochs=1", "stages.compare=[]",
        "model.backbone.width=8", "eval.protocols=[knn]", "eval.plots=false",
        "trainer.enable_progress_bar=false", "run_name=pipe",
    ]  # fmt: skip
    run = tmp_path / "demo" / "pipe"
    proc = subprocess.Popen(
        args, cwd=REPO_ROOT, env=env(tmp_path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for(run / "guide" / "checkpoints" / "last.ckpt", proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 143, stderr[-3000:]
    assert stderr.strip().splitlines()[-1].startswith("ltcl: stopped by SIGTERM: ")
    assert "guide" in stderr.strip().splitlines()[-1]
    assert not (run / "student").exists()

    done = subprocess.run(
        args, cwd=REPO_ROOT, env=env(tmp_path), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (run / "student" / "results.json").exists()
    assert (run / "pipeline.json").exists()


def mount_tmpfs(folder: Path, size_kib: int) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(folder)],
        capture_output=True,
    )
    return mounted.returncode == 0


# ltcl-train whose second checkpoint write fails as a full disk does (when no tmpfs can be
# mounted): torch's writer error with the OS's ENOSPC as its context.
FULL_DISK = faulty_second_checkpoint_write("""
def faulty(write):
    def failing(handle):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos")
    return failing
""")


@pytest.mark.slow
def test_a_full_disk_while_a_checkpoint_is_written_is_one_line_and_resumes(
    tmp_path, reference_run, uninterrupted
):
    """On a tmpfs just larger than one checkpoint where the machine allows mounting one (the
    second, atomic, write needs room for two), else with a writer that fails as torch does."""
    size = (reference_run / "checkpoints" / "last.ckpt").stat().st_size // 1024
    disk = tmp_path / "disk"
    real_disk = os.geteuid() == 0 and mount_tmpfs(disk, size + size // 2 + 64)
    try:
        command = train_command("full")
        if not real_disk:
            command = [sys.executable, "-c", FULL_DISK, *command[1:]]
        done = subprocess.run(
            command, cwd=REPO_ROOT, env=env(disk), capture_output=True, text=True, timeout=600
        )
        assert done.returncode != 0
        line = done.stderr.strip().splitlines()[-1]
        assert line.startswith("ltcl: error: no space left to write the checkpoint "), line
        assert "the previous last.ckpt is intact" in line
        assert "run the same command to resume" in line
        run = disk / "train" / "full"
        assert read_checkpoint(run / "checkpoints" / "last.ckpt")["epoch"] == 0
        if real_disk:
            subprocess.run(["mount", "-o", "remount,size=65536k", str(disk)], check=True)
        assert_same_params(last_params(run_to_end(disk, "full")), uninterrupted)
    finally:
        if real_disk:
            subprocess.run(["umount", str(disk)], capture_output=True)
