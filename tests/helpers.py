"""Composing ltcl-train configs in tests without the command line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from lightning.pytorch import Callback
from omegaconf import DictConfig, open_dict

from ltcl.conf import CONFIG_DIR
from ltcl.run.identity import register_resolver

register_resolver()  # ${ltcl_run_hash:} in run_name, as the console commands register it

REPO_ROOT = Path(CONFIG_DIR).parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def compose_train(
    tmp_path: Path, overrides: list[str] | None = None, config_name: str = "train"
) -> DictConfig:
    """The train (or pipeline) config, forced onto CPU, writing only below `tmp_path`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        cfg = compose(config_name, overrides=list(overrides or []))
    with open_dict(cfg):
        cfg.paths.root_dir = str(REPO_ROOT)
        cfg.paths.output_dir = str(tmp_path / "run")
        cfg.paths.log_dir = str(tmp_path / "logs")
        cfg.paths.data_dir = str(tmp_path / "data")
        cfg.paths.shared_data_dir = str(SHARED_DATA)
        cfg.trainer.accelerator = "cpu"
        cfg.trainer.enable_progress_bar = False
    return cfg


class StopAfterEpoch(Callback):
    """Ends a run after `epoch` (0-based), as a preemption at an epoch boundary would."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True


def free_port() -> int:
    """A free local TCP port for a gloo process group in a test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Killed(RuntimeError):
    """Stands for SIGKILL or a preemption: the process dies, nothing after it runs."""


class DieAtEpochStart(Callback):
    """Raises :class:`Killed` when `epoch` (0-based) starts: earlier epochs are finished."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise Killed


# ---- running the console commands as a user does -----------------------------------------
BIN = Path(sys.executable).parent
FAKE_SLURM = REPO_ROOT / "tests" / "fake_slurm"
# A run of a few seconds on the embedded data.
TINY_RUN = [
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "eval.protocols=[knn]",
    "eval.plots=false",
    "model.backbone.width=8",
]
# The guide on the embedded pool, with a round at the start and a short clustering.
TINY_GUIDE = [
    "method=guide",
    "ood=embedded",
    "ood.source.num_crops=200",
    "method.sampler.warmup_epochs=0",
    "method.sampler.kmeans_iterations=5",
    "method.sampler.refine_iterations=5",
]


def console_env(tmp_path: Path, **extra: str) -> dict:
    """Environment of a console command in a test: offline wandb, logs and data under
    tmp_path, the fake SLURM commands first on PATH."""
    env = {
        **os.environ,
        "WANDB_MODE": "disabled",
        "LTCL_LOG_DIR": str(tmp_path / "outputs"),
        "LTCL_DATA_DIR": str(tmp_path / "data"),
        "LTCL_SHARED_DATA_DIR": str(SHARED_DATA),
        "PATH": f"{FAKE_SLURM}:{BIN}:{os.environ.get('PATH', '')}",
        "FAKE_SLURM_DIR": str(tmp_path / "slurm"),
        **extra,
    }
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def run_console(
    command: str,
    args: list[str],
    tmp_path: Path,
    cwd: Path = REPO_ROOT,
    timeout: int = 600,
    **env_extra: str,
) -> subprocess.CompletedProcess:
    """Run ltcl-train / ltcl-pipeline / ltcl-report as a user would; output captured."""
    return subprocess.run(
        [str(BIN / command), *args], cwd=cwd, env=console_env(tmp_path, **env_extra),
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


# ---- faults inside a run (kill -9, signals, full disk), shared by the slow fault tests ------
# A 4-epoch run on the embedded data, long enough to be stopped in its middle.
FAULT_RUN = [
    "data=embedded",
    "trainer.max_epochs=4",
    "trainer.enable_progress_bar=false",
    "eval.protocols=[knn]",
    "eval.plots=false",
    "model.backbone.width=8",
]
# The guide with a sampling round every epoch from epoch 1: its checkpoints hold the sampler's
# state too, so a resumed run equal to an uninterrupted one covers that state.
FAULT_GUIDE = [
    "method=guide",
    "ood=embedded",
    "ood.source.num_crops=200",
    "method.sampler.warmup_epochs=1",
    "method.sampler.interval=1",
    "method.sampler.budget=100",
]


def last_params(run: Path) -> dict:
    """The parameters in a run's last.ckpt."""
    from ltcl.models.checkpoints import read_checkpoint

    return dict(read_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"])


def assert_same_params(a: dict, b: dict) -> None:
    """Bit for bit: what a resumed run must end with."""
    import torch

    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def faulty_second_checkpoint_write(fault: str) -> str:
    """Source of an ltcl-train whose second checkpoint write (the end of epoch 1) goes through
    `fault`: Python defining ``faulty(write)``, which returns the writer given to
    ``atomic_write`` instead of ``write``. Run as ``[python, "-c", source, *ltcl-train args]``."""
    return f"""
import errno, io, sys, time
from pathlib import Path
import ltcl.run.checkpoints as checkpoints
from ltcl.cli.train import main

{fault}

original, calls = checkpoints.atomic_write, []

def patched(path, write):
    calls.append(path)
    return original(path, write if len(calls) < 2 else faulty(write))

checkpoints.atomic_write = patched
sys.argv = ["ltcl-train", *sys.argv[1:]]
main()
"""
