"""End-to-end ltcl-train runs on the embedded data (CPU, a few steps), resume and bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from ltcl.cli.train import train
from ltcl.errors import ConfigError, DataError
from tests.helpers import REPO_ROOT, DieAtEpochStart, Killed, StopAfterEpoch, compose_train

TINY = [
    "model.backbone.width=8",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=2",
    "data.global_batch_size=32",
    "optim.schedule.warmup_epochs=1",
    "eval.linear_b.epochs=20",
]


def test_train_two_epochs_writes_results_and_checkpoint(tmp_path):
    cfg = compose_train(tmp_path, TINY)
    results = train(cfg)
    run = Path(cfg.paths.output_dir)
    saved = json.loads((run / "results.json").read_text())
    assert saved["method"] == "simclr" and saved["dataset"] == "digits_lt"
    assert saved["epochs"] == 2 and len(saved["epoch_times_s"]) == 2
    for protocol in ("knn", "linear"):
        values = saved["metrics"][protocol]
        assert {"all", "many", "medium", "few", "std", "per_class_std"} <= set(values)
        assert 0.0 <= values["all"] <= 100.0
    assert len(saved["per_class"]["knn_acc"]) == len(saved["per_class"]["linear_acc"]) == 10
    assert len(saved["split"]["files"]["train_indices"]["sha256"]) == 64
    assert saved["per_class"]["train_count"][0] == 100  # n_max of the embedded split
    assert results["train_images"] == sum(saved["per_class"]["train_count"])
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "split" / "split.json").is_file()
    for png in ("per_class_accuracy.png", "group_accuracy.png", "embedding_2d.png"):
        assert (run / png).stat().st_size > 1000
    assert (run / "csv" / "version_0" / "metrics.csv").is_file()


def test_resume_continues_from_last_checkpoint(tmp_path):
    train(compose_train(tmp_path, [*TINY, "trainer.max_epochs=1", "eval.protocols=[]"]))
    last = Path(tmp_path / "run" / "checkpoints" / "last.ckpt")
    first = torch.load(last, weights_only=False)
    results = train(compose_train(tmp_path, [*TINY, "trainer.max_epochs=2", "eval.protocols=[]"]))
    second = torch.load(last, weights_only=False)
    assert second["epoch"] == first["epoch"] + 1 and results["epochs"] == 2
    # Only the second epoch ran in the resumed process; the first part's log is kept.
    assert results["epochs_trained_this_run"] == 1 and len(results["epoch_times_s"]) == 2
    csv_dir = tmp_path / "run" / "csv"
    assert sorted(p.name for p in csv_dir.iterdir()) == ["version_0", "version_1"]
    assert second["global_step"] == 2 * first["global_step"]


def test_unknown_group_option_names_the_choices(tmp_path):
    with pytest.raises(ConfigCompositionException, match="cifar10_lt"):
        compose_train(tmp_path, ["data=cifar11_lt"])


def test_unknown_key_is_rejected(tmp_path):
    with pytest.raises((ConfigCompositionException, ConfigKeyError, ConfigAttributeError)):
        compose_train(tmp_path, ["data.imbalance=10"])


def test_batch_not_divisible_by_devices(tmp_path):
    cfg = compose_train(tmp_path, [*TINY, "trainer.devices=3"])
    with pytest.raises(ConfigError, match="divide"):
        train(cfg)


def test_missing_data_path_is_a_clear_error(tmp_path):
    cfg = compose_train(
        tmp_path,
        [
            *TINY,
            "data=cifar10_lt_folder",
            "data.train_source.archive=null",
            "data.test_source.archive=null",
        ],
    )
    with pytest.raises(DataError, match="cifar10"):
        train(cfg)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("method.temperature=0", "method.temperature must be a number > 0"),
        ("eval.protocols=[knnn]", r"unknown eval.protocols \['knnn'\]"),
    ],
)
def test_bad_method_and_eval_values_stop_before_training(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        train(compose_train(tmp_path, [override]))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=-1", "seed must be an integer >= 0"),
        ("data.split.seed=-1", "data.split.seed must be an integer >= 0"),
        ("data.global_batch_size=1", "needs at least 2 images per process"),
    ],
)
def test_bad_seeds_and_batch_stop_before_training(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        train(compose_train(tmp_path, [override]))


def test_a_second_run_into_a_busy_directory_is_refused(tmp_path):
    from ltcl.utils.lock import run_directory_lock

    with run_directory_lock(tmp_path / "run"):
        with pytest.raises(ConfigError, match="is training in"):
            train(compose_train(tmp_path, ["trainer.max_epochs=1"]))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_diverging_run_stops_instead_of_recording_results(tmp_path, monkeypatch):
    from ltcl.errors import TrainingError

    # 1e6 is refused before training now (config_checks.MAX_BASE_LR); here it must diverge
    monkeypatch.setattr("ltcl.run.config_checks.MAX_BASE_LR", float("inf"))
    cfg = compose_train(tmp_path, ["trainer.max_epochs=3", "optim.schedule.base_lr=1e6"])
    with pytest.raises(TrainingError, match="training diverged|loss became"):
        train(cfg)
    assert not (tmp_path / "run" / "results.json").exists()


def test_imbalance_ratio_below_one(tmp_path):
    cfg = compose_train(tmp_path, [*TINY, "data.split.imbalance_ratio=0.5"])
    with pytest.raises(ConfigError, match="imbalance"):
        train(cfg)


def test_console_script_runs_a_few_steps(tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled", "LTCL_LOG_DIR": str(tmp_path)}
    command = [
        sys.executable,
        "-m",
        "ltcl.cli.train",
        *TINY,
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "logger=csv",
    ]
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = list(Path(tmp_path).glob("train/*/results.json"))
    assert len(results) == 1
    assert json.loads(results[0].read_text())["epochs"] == 1
    # ltcl writes Hydra's record itself once training starts (ltcl/run/record.py)
    record = results[0].parent / ".hydra"
    assert "logger=csv" in (record / "overrides.yaml").read_text()
    assert OmegaConf.load(record / "config.yaml").trainer.max_epochs == 1
    assert OmegaConf.load(record / "hydra.yaml").hydra.job.name


def test_wandb_logger_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = compose_train(
        tmp_path, [*TINY, "trainer.max_epochs=1", "logger=wandb", "eval.protocols=[]"]
    )
    train(cfg)
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, "wandb should have written one offline run to sync later"
    assert (tmp_path / "run" / "csv" / "version_0" / "metrics.csv").is_file()


@pytest.mark.slow
def test_multirun_over_split_seeds_and_report(tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled", "LTCL_LOG_DIR": str(tmp_path)}
    command = [
        sys.executable,
        "-m",
        "ltcl.cli.train",
        "-m",
        *TINY,
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "eval.protocols=[knn]",
        "data.split.seed=0,1",
    ]
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = sorted((tmp_path / "train" / "multirun").glob("*/results.json"))
    assert [p.parent.name.rsplit("_", 1)[0] for p in runs] == [
        "simclr_digits_lt_r10_split0_seed0",
        "simclr_digits_lt_r10_split1_seed0",
    ]
    report = subprocess.run(
        [sys.executable, "-m", "ltcl.cli.report", str(tmp_path / "train" / "multirun")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0 and "| simclr | digits_lt | 2 |" in report.stdout


@pytest.mark.slow
def test_run_stopped_and_resumed_ends_with_the_same_parameters(tmp_path):
    """A run stopped at an epoch boundary (like a preemption) and resumed equals an
    uninterrupted run: shuffles and augmentations are seeded by (seed, epoch, rank)."""
    overrides = [*TINY, "trainer.max_epochs=3", "eval.protocols=[]"]
    train(compose_train(tmp_path / "full", overrides))
    train(compose_train(tmp_path / "split", overrides), extra_callbacks=[StopAfterEpoch(1)])
    train(compose_train(tmp_path / "split", overrides))
    full = torch.load(tmp_path / "full/run/checkpoints/last.ckpt", weights_only=False)
    split = torch.load(tmp_path / "split/run/checkpoints/last.ckpt", weights_only=False)
    assert full["global_step"] == split["global_step"]
    for name, value in full["state_dict"].items():
        assert torch.equal(value, split["state_dict"][name]), name


def test_killed_run_resumes_from_its_last_finished_epoch(tmp_path):
    """A process killed mid-run (not a graceful stop) still leaves last.ckpt of the last
    finished epoch, and the resumed run equals an uninterrupted one."""
    overrides = [*TINY, "trainer.max_epochs=3", "eval.protocols=[]"]
    train(compose_train(tmp_path / "full", overrides))
    with pytest.raises(Killed):
        train(compose_train(tmp_path / "killed", overrides), extra_callbacks=[DieAtEpochStart(2)])
    last = tmp_path / "killed/run/checkpoints/last.ckpt"
    assert torch.load(last, weights_only=False)["epoch"] == 1
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]
    train(compose_train(tmp_path / "killed", overrides))
    full = torch.load(tmp_path / "full/run/checkpoints/last.ckpt", weights_only=False)
    resumed = torch.load(last, weights_only=False)
    assert full["global_step"] == resumed["global_step"]
    for name, value in full["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][name]), name


@pytest.mark.slow
def test_resumed_run_continues_the_same_wandb_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    base = [*TINY, "logger=wandb", "eval.protocols=[knn]", "eval.plots=false"]
    # With plots: the results table and the PNGs go to wandb too (offline files here).
    train(compose_train(tmp_path, [*base, "trainer.max_epochs=1", "eval.plots=true"]))
    run_id = (tmp_path / "run" / "wandb_run_id").read_text().strip()
    media = list((tmp_path / "run" / "wandb").glob("offline-run-*/files/media/**/*.png"))
    assert len(media) == 3, "the three result plots should be logged"
    train(compose_train(tmp_path, [*base, "trainer.max_epochs=2"]))  # resumes (ckpt_path=last)
    runs = sorted((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(r.name.endswith(run_id) for r in runs)
    # A fresh start (ckpt_path=null) is a new wandb run.
    train(compose_train(tmp_path, [*base, "trainer.max_epochs=1", "ckpt_path=null"]))
    assert (tmp_path / "run" / "wandb_run_id").read_text().strip() != run_id


def test_wandb_online_without_a_key_fails_before_training(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    with pytest.raises(ConfigError, match="no W&B API key.*WANDB_MODE=offline"):
        train(compose_train(tmp_path, [*TINY, "logger=wandb"]))
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
def test_a_resumed_run_reports_its_whole_training_time(tmp_path):
    """results.json of a run killed and resumed counts every epoch and the training seconds of
    both invocations (a run restarted after it had finished adds ~0 s), not only the last part."""
    overrides = [*TINY, "trainer.max_epochs=3", "eval.protocols=[]"]
    with pytest.raises(Killed):
        train(compose_train(tmp_path, overrides), extra_callbacks=[DieAtEpochStart(2)])
    first = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=False)["ltcl_time"]
    assert len(first["epoch_times"]) == 2 and first["fit_seconds"] >= sum(first["epoch_times"])
    results = train(compose_train(tmp_path, overrides))
    assert len(results["epoch_times_s"]) == 3 and results["epochs_trained_this_run"] == 1
    assert results["train_time_s"] >= first["fit_seconds"] + results["epoch_times_s"][2] - 0.01
    again = train(compose_train(tmp_path, overrides))  # finished: nothing left to train
    assert again["epoch_times_s"] == results["epoch_times_s"]
    assert again["epochs_trained_this_run"] == 0
    assert again["train_time_s"] >= 0.9 * results["train_time_s"]  # not the ~0 s of this call


@pytest.mark.slow
def test_wandb_gets_each_rounds_picks_and_the_per_class_chart(tmp_path, monkeypatch):
    """Offline: every sampling round logs one grid of its picks (a row per cluster), and the
    final per-class accuracy is a wandb bar chart (a table of class, accuracy, count)."""
    import json

    import numpy as np
    from PIL import Image

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    guide = ["method=guide", "ood=embedded", "ood.source.num_crops=200",
             "method.sampler.warmup_epochs=1", "method.sampler.interval=1",
             "method.sampler.budget=40", "method.sampler.num_clusters=4"]  # fmt: skip
    train(compose_train(tmp_path, [*TINY, *guide, "trainer.max_epochs=3", "logger=wandb",
                                   "eval.protocols=[knn]", "eval.plots=false"]))  # fmt: skip
    files = next((tmp_path / "run" / "wandb").glob("offline-run-*")) / "files" / "media"
    grids = sorted(files.glob("images/sampler/picks_*.png"))
    assert len(grids) == 3  # the rounds before epochs 1, 2 and 3 (kept for a longer resume)
    grid = np.asarray(Image.open(grids[0]))
    assert grid.shape[1] == 8 * 32 + 9 * 2 and grid.shape[0] % (32 + 2) == 2  # 8 per row
    assert 1 <= (grid.shape[0] - 2) // 34 <= 4  # one row per cluster with picks
    tables = list(files.glob("table/results/per_class_knn*.table.json"))
    assert len(tables) == 1
    table = json.loads(tables[0].read_text())
    assert table["columns"] == ["class (training images)", "accuracy", "count"]
    counts = [row[2] for row in table["data"]]
    assert len(counts) == 10 and counts == sorted(counts, reverse=True)  # head to tail
