"""Sweeps, Optuna searches, SLURM launches and resumes whose results can be trusted.

Each user path runs as a user types it: the console command in a subprocess, through Hydra.
SLURM is faked by tests/fake_slurm (sbatch records the script and runs the job locally, as a
one-node allocation would), the only thing this machine cannot have.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from ltcl.cli.train import train
from ltcl.errors import ConfigError
from ltcl.run.identity import SAFE_TO_CHANGE, run_hash, training_identity
from ltcl.run.objective import check_objective, is_test_metric
from tests.helpers import (
    BIN,
    REPO_ROOT,
    TINY_GUIDE,
    TINY_RUN,
    compose_train,
    console_env,
    run_console,
)

TINY = TINY_RUN


def ltcl(command: str, args: list[str], tmp_path: Path, timeout: int = 600, **env_extra):
    """Run a console command (ltcl-train, ltcl-pipeline) as a user would, logs under tmp_path."""
    return run_console(command, args, tmp_path, timeout=timeout, **env_extra)


def results_under(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("results.json"))]


# ---- run identity ------------------------------------------------------------------------


def test_identity_ignores_safe_settings_and_sees_training_ones(tmp_path):
    base = compose_train(tmp_path)
    same = compose_train(tmp_path, ["trainer.max_epochs=7", "eval.protocols=[knn]", "logger=none"])
    other = compose_train(tmp_path, ["optim.schedule.base_lr=0.1"])
    assert run_hash(base) == run_hash(same)
    assert run_hash(base) != run_hash(other)
    assert "optim.schedule.base_lr" in training_identity(base)
    assert not any(k.startswith(("paths.", "logger.", "eval.")) for k in training_identity(base))
    assert "trainer.max_epochs" in SAFE_TO_CHANGE


@pytest.mark.slow
def test_sweep_of_two_values_trains_two_models_in_two_directories(tmp_path):
    done = ltcl(
        "ltcl-train", ["-m", "data=embedded", *TINY, "method.temperature=0.2,0.5"], tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming" not in done.stdout
    # a quiet console: ltcl's lines, no Lightning tips or known warnings
    assert "Tip:" not in done.stdout + done.stderr and "LeafSpec" not in done.stderr
    assert "knn (val)" in done.stdout and "knn (test)" in done.stdout
    runs = sorted((tmp_path / "outputs" / "train" / "multirun").glob("simclr_*"))
    assert len(runs) == 2
    results = results_under(tmp_path / "outputs")
    assert sorted(r["config"]["method"]["temperature"] for r in results) == [0.2, 0.5]
    assert len({r["run_hash"] for r in results}) == 2
    assert all(r["epochs"] == 1 for r in results)
    # Two different models: their kNN scores of the same test set differ.
    assert results[0]["per_class"]["knn_acc"] != results[1]["per_class"]["knn_acc"]


def test_resume_with_a_changed_training_setting_is_refused_with_the_keys_named(tmp_path):
    cfg = compose_train(tmp_path, TINY)
    train(cfg)
    changed = compose_train(
        tmp_path, [*TINY, "optim.schedule.base_lr=0.1", "method.temperature=0.5"]
    )
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    with pytest.raises(ConfigError) as error:
        train(changed)
    message = str(error.value)
    assert "optim.schedule.base_lr: 0.5 -> 0.1" in message
    assert "method.temperature: 0.2 -> 0.5" in message
    assert "ckpt_path=null" in message and "new run directory" in message
    assert last.read_bytes() == before  # nothing in the run directory changed


@pytest.mark.slow
def test_changed_setting_refusal_is_one_line_from_the_console(tmp_path):
    args = ["run_name=mine", "data=embedded", *TINY]
    assert ltcl("ltcl-train", args, tmp_path).returncode == 0
    done = ltcl("ltcl-train", [*args, "optim.schedule.base_lr=0.1"], tmp_path)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("ltcl: error: refusing to resume")
    assert "optim.schedule.base_lr: 0.5 -> 0.1" in lines[-1]
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_extending_max_epochs_resumes_and_trains_only_the_new_epochs(tmp_path):
    train(compose_train(tmp_path, TINY))
    extended = compose_train(tmp_path, [*TINY[1:], "trainer.max_epochs=2"])
    results = train(extended)
    assert results["epochs"] == 2
    assert results["epochs_trained_this_run"] == 1  # one new epoch, not two
    assert len(results["epoch_times_s"]) == 2  # the times of every epoch, across the resume


def test_explicit_checkpoint_of_another_config_is_refused(tmp_path):
    train(compose_train(tmp_path / "a", TINY))
    ckpt = tmp_path / "a" / "run" / "checkpoints" / "last.ckpt"
    other = compose_train(tmp_path / "b", [*TINY, "seed=3", f"ckpt_path={ckpt}"])
    with pytest.raises(ConfigError, match="seed: 0 -> 3"):
        train(other)


def test_checkpoint_without_a_record_is_refused(tmp_path):
    train(compose_train(tmp_path, TINY))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=False)
    del checkpoint["ltcl_run"]
    torch.save(checkpoint, last)
    with pytest.raises(ConfigError, match="records no training config"):
        train(compose_train(tmp_path, TINY))


# ---- objectives --------------------------------------------------------------------------


def test_objective_is_checked_against_the_protocols_before_training():
    check_objective("val_metrics.knn.all", ["knn", "linear_b"])
    check_objective("val_metrics.linear.few", ["linear_b"])
    with pytest.raises(ConfigError, match="needs the knn protocol"):
        check_objective("val_metrics.knn.all", ["linear_b"])
    with pytest.raises(ConfigError, match="not a results.json metric"):
        check_objective("metricz.knn.all", ["knn"])
    with pytest.raises(ConfigError, match="group field"):
        check_objective("val_metrics.knn.alll", ["knn"])
    with pytest.raises(ConfigError, match="validation metrics exist for"):
        check_objective("val_metrics.linear_a.all", ["linear_a"])


@pytest.mark.slow
def test_plain_run_never_fails_on_the_objective(tmp_path):
    done = ltcl("ltcl-train", ["data=embedded", *TINY, "eval.protocols=[linear_b]"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (result,) = results_under(tmp_path / "outputs")
    assert "linear" in result["val_metrics"] and "knn" not in result["metrics"]


@pytest.mark.slow
def test_sweep_with_an_unreadable_objective_stops_before_training(tmp_path):
    args = ["-m", "data=embedded", *TINY, "eval.protocols=[linear_b]", "seed=0,1"]
    done = ltcl("ltcl-train", args, tmp_path)
    assert done.returncode == 2
    assert "ltcl: error: objective=val_metrics.knn.all needs the knn protocol" in done.stderr
    assert not list((tmp_path / "outputs").rglob("*.ckpt"))


def test_shipped_searches_optimise_validation_metrics_only():
    """No shipped hparams_search (nor the defaults) may tune on a test-set number."""
    configs = sorted((REPO_ROOT / "conf" / "hparams_search").glob("*.yaml"))
    assert configs
    for path in [*configs, REPO_ROOT / "conf" / "train.yaml", REPO_ROOT / "conf" / "pipeline.yaml"]:
        from omegaconf import OmegaConf

        objective = OmegaConf.load(path).get("objective")
        assert objective is not None, path
        assert not is_test_metric(objective), f"{path.name} optimises a test metric: {objective}"
        assert str(objective).startswith("val_metrics."), path


def test_results_record_validation_metrics_next_to_test_metrics(tmp_path):
    cfg = compose_train(tmp_path, [*TINY[:-3], "eval.plots=false", "model.backbone.width=8"])
    results = train(cfg)
    for where in ("metrics", "val_metrics"):
        for protocol in ("knn", "linear"):
            assert set(results[where][protocol]) >= {"all", "many", "medium", "few", "std"}
    # val and test are different images: the numbers are not copies of each other.
    assert results["val_metrics"]["knn"] != results["metrics"]["knn"]


# ---- Optuna ------------------------------------------------------------------------------


@pytest.mark.slow
def test_optuna_search_gives_each_trial_its_own_run_and_resumes_from_sqlite(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = [
        "-m",
        "hparams_search=stage1_few",
        *TINY_GUIDE,
        *TINY,
        "hydra.sweeper.n_trials=3",
        f"hydra.sweeper.storage={storage}",
        "method.beta=interval(0.0, 1.0)",
        "method.lambda_dd=interval(0.0, 1.0)",
        "method.sampler.budget=choice(50, 100)",
        "method.sampler.interval=choice(1, 2)",
    ]
    done = ltcl("ltcl-train", args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming" not in done.stdout
    sweep = tmp_path / "outputs" / "train" / "multirun"
    results = results_under(sweep)
    assert len(results) == 3 and len({r["run_hash"] for r in results}) == 3
    betas = {r["config"]["method"]["beta"] for r in results}
    assert len(betas) == 3  # each trial trained with its own settings
    # The study lives in sqlite: a second command continues it (3 + 1 trials).
    one_more = [a if a != "hydra.sweeper.n_trials=3" else "hydra.sweeper.n_trials=1" for a in args]
    again = ltcl("ltcl-train", one_more, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    import optuna

    study = optuna.load_study(study_name="ltcl_stage1_few", storage=storage)
    assert len(study.trials) == 4
    assert all(t.state.name == "COMPLETE" for t in study.trials)


# ---- SLURM (fake sbatch) -------------------------------------------------------------------


def recorded_scripts(tmp_path: Path) -> list[str]:
    return [p.read_text() for p in sorted((tmp_path / "slurm").glob("sbatch_*.sh"))]


@pytest.mark.slow
def test_slurm_sweep_through_hydra_submits_and_trains(tmp_path):
    args = ["-m", "hydra/launcher=slurm", "hydra.launcher.partition=debug"]
    args += ["hydra.launcher.timeout_min=30", "data=embedded", *TINY, "seed=0,1"]
    done = ltcl("ltcl-train", args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (script,) = recorded_scripts(tmp_path)
    for line in (
        "#SBATCH --partition=debug",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --time=30",
        "#SBATCH --signal=USR2@120",
        "#SBATCH --array=0-1",
    ):
        assert line in script, line
    assert "submitit.core._submit" in script
    results = results_under(tmp_path / "outputs" / "train" / "multirun")
    assert sorted(r["seed"] for r in results) == [0, 1]


@pytest.mark.slow
def test_slurm_multinode_job_script(tmp_path):
    """The README's 2 nodes x 4 GPUs job: recorded (this machine cannot run it)."""
    args = ["-m", "hydra/launcher=slurm", "hydra.launcher.partition=gpu"]
    args += ["trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2", "data=embedded", *TINY]
    proc = subprocess.Popen(
        [str(BIN / "ltcl-train"), *args],
        cwd=REPO_ROOT,
        env=console_env(tmp_path, FAKE_SLURM_RUN="0"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        script = wait_for_script(tmp_path)
    finally:
        proc.kill()
        proc.wait()
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --gpus-per-node=4",
    ):
        assert line in script, line


def wait_for_script(tmp_path: Path, timeout: float = 120.0) -> str:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        scripts = recorded_scripts(tmp_path)
        if scripts:
            return scripts[0]
        time.sleep(0.2)
    raise AssertionError("no sbatch script was submitted")


@pytest.mark.slow
def test_failed_slurm_job_reports_its_error_to_the_sweep(tmp_path):
    """A job that stops on a config error must not leave the submitting sweep waiting."""
    args = ["-m", "hydra/launcher=slurm", "hydra.launcher.partition=debug", *TINY_GUIDE, *TINY]
    done = ltcl("ltcl-train", [*args, "method.sampler.budget=100000"], tmp_path, timeout=300)
    assert done.returncode != 0
    assert (
        "method.sampler.budget=100000 OOD images per round is larger than the OOD pool"
        in done.stderr
    )


def test_slurm_without_partition_names_the_field_and_submits_nothing(tmp_path):
    done = ltcl("ltcl-train", ["-m", "hydra/launcher=slurm", "data=embedded", *TINY], tmp_path)
    assert done.returncode != 0
    assert "hydra.launcher.partition" in done.stderr
    assert not recorded_scripts(tmp_path)


@pytest.mark.slow
def test_slurm_pipeline_sweep(tmp_path):
    args = ["-m", "hydra/launcher=slurm", "hydra.launcher.partition=debug", *TINY]
    args += [
        "ood.source.num_crops=200",
        "method.sampler.warmup_epochs=0",
        "method.sampler.budget=100",
    ]
    args += ["data.split.seed=0,1"]
    done = ltcl("ltcl-pipeline", args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (script,) = recorded_scripts(tmp_path)
    assert "#SBATCH --array=0-1" in script and "#SBATCH --partition=debug" in script
    runs = sorted((tmp_path / "outputs" / "pipeline" / "multirun").glob("pipeline_*"))
    assert len(runs) == 2
    for run in runs:
        assert (run / "guide" / "results.json").is_file()
        assert (run / "student" / "results.json").is_file()


@pytest.mark.slow
def test_optuna_search_on_slurm(tmp_path):
    args = ["-m", "hparams_search=stage1_few", "hydra/launcher=slurm"]
    args += ["hydra.launcher.partition=debug", *TINY_GUIDE, *TINY, "hydra.sweeper.n_trials=2"]
    args += ["method.sampler.budget=choice(50, 100)", "method.sampler.interval=choice(1, 2)"]
    done = ltcl("ltcl-train", args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(recorded_scripts(tmp_path)) == 2  # one submission per trial (n_jobs=1)
    assert len(results_under(tmp_path / "outputs" / "train" / "multirun")) == 2


# ---- the pipeline --------------------------------------------------------------------------


def test_pipeline_with_another_student_setting_gets_its_own_directory(tmp_path):
    base = compose_train(tmp_path, config_name="pipeline")
    other = compose_train(tmp_path, ["stages.student.method.delta=0.5"], config_name="pipeline")
    longer = compose_train(tmp_path, ["trainer.max_epochs=40"], config_name="pipeline")
    assert run_hash(base) != run_hash(other)
    assert run_hash(base) == run_hash(longer)
