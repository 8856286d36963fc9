"""Cluster configs: trainer=ddp, hydra/launcher=slurm (a rendered sbatch script), Optuna."""

import json
import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from hydra_plugins.ltcl_slurm_launcher.launcher import CheckedSlurmLauncher
from ltcl.conf import CONFIG_DIR
from ltcl.errors import ConfigError
from ltcl.run.config_checks import check_config
from ltcl.run.launcher import render_sbatch
from tests.helpers import REPO_ROOT, TINY_GUIDE

TINY = [
    "model.backbone.width=8",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.enable_progress_bar=false",
    "data.global_batch_size=32",
    "optim.schedule.warmup_epochs=0",
    "eval.protocols=[knn]",
    "eval.plots=false",
]


def compose_with_hydra(overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        return compose("train", overrides=overrides, return_hydra_config=True)


def launcher_params(cfg):
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    # What Hydra resolves at launch time; outside a run we fill them in.
    params["submitit_folder"] = "/tmp/sweep/.submitit/%j"
    params["name"] = "ltcl"
    for key in ("nodes", "tasks_per_node", "gpus_per_node"):
        value = params[key]
        if isinstance(value, str) and value.startswith("${"):
            params[key] = OmegaConf.select(cfg, value[2:-1])
    return params


def test_ddp_trainer_config():
    cfg = compose_with_hydra(["trainer=ddp", "trainer.devices=8", "trainer.num_nodes=2"])
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.sync_batchnorm is True
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.use_distributed_sampler is False
    with pytest.raises(ConfigError, match="does not divide by 16 processes"):
        OmegaConf.update(cfg, "data.global_batch_size", 200)
        check_config(cfg)


def test_more_devices_than_available_is_refused_before_training(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    cfg = compose_with_hydra(["trainer=ddp", "trainer.devices=8", "data.global_batch_size=64"])
    with pytest.raises(ConfigError, match="trainer.devices=8 but this machine has 2 GPU"):
        check_config(cfg)


def test_slurm_launcher_renders_a_submission_script():
    cfg = compose_with_hydra(
        ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "trainer=ddp"]
        + ["trainer.devices=4", "trainer.num_nodes=2", "hydra.launcher.timeout_min=600"]
    )
    params = launcher_params(cfg)
    script = render_sbatch(params)
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --time=600",
        "#SBATCH --signal=USR2@120",
        "#SBATCH --cpus-per-task=8",
    ):
        assert line in script, line
    assert "python -m ltcl.cli.train" in script
    assert isinstance(CheckedSlurmLauncher(**params), CheckedSlurmLauncher)


def test_slurm_launcher_without_partition_names_the_field():
    params = launcher_params(compose_with_hydra(["hydra/launcher=slurm"]))
    with pytest.raises(ConfigError, match=r"missing \['partition'\].*hydra.launcher.partition=gpu"):
        CheckedSlurmLauncher(**params)
    params["partition"] = "gpu"
    params["tasks_per_node"] = 2
    with pytest.raises(ConfigError, match="one SLURM task per GPU"):
        render_sbatch(params)


def test_optuna_search_config_composes():
    cfg = compose_with_hydra(["hparams_search=stage1_few", "method=guide", "ood=embedded"])
    assert cfg.objective == "val_metrics.knn.few"
    sweeper = cfg.hydra.sweeper
    assert sweeper.direction == "maximize" and "method.beta" in sweeper.params
    assert instantiate(sweeper.sampler).__class__.__name__ == "TPESampler"


@pytest.mark.slow
def test_optuna_sweep_of_two_trials_on_cpu(tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled", "LTCL_LOG_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "ltcl.cli.train", "hparams_search=stage1_few", *TINY]
    command += [
        *TINY_GUIDE,
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.params={method.beta:'interval(0.0, 1.0)',method.sampler.budget:'choice(50, 100)'}",
    ]
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sweep = tmp_path / "train" / "multirun"
    trials = sorted(sweep.glob("guide_*/results.json"))
    assert len(trials) == 2
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    few = [json.loads(p.read_text())["val_metrics"]["knn"]["few"] for p in trials]
    assert best.best_value == pytest.approx(max(few))
    # The command line replaced two of the search space's entries and kept the others.
    assert set(best.best_params) == {
        "method.beta",
        "method.lambda_dd",
        "method.sampler.budget",
        "method.sampler.interval",
    }
    assert best.best_params["method.sampler.budget"] in (50, 100)
