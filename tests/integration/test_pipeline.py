"""ltcl-pipeline: guide -> student -> evaluation in one run directory; restart after a kill."""

import json
import os
import re
import subprocess
import sys

import pytest

import ltcl.cli.pipeline
from ltcl.cli.pipeline import run_pipeline
from ltcl.errors import ConfigError
from ltcl.run.identity import run_hash
from tests.helpers import REPO_ROOT, DieAtEpochStart, Killed, StopAfterEpoch, compose_train

TINY = [
    "ood.source.num_crops=400",
    "model.backbone.width=8",
    "data.global_batch_size=32",
    "trainer.limit_train_batches=2",
    "optim.schedule.warmup_epochs=1",
    "method.sampler.warmup_epochs=1",
    "method.sampler.interval=1",
    "method.sampler.budget=100",
    "method.sampler.kmeans_iterations=5",
    "method.sampler.refine_iterations=5",
    "eval.protocols=[knn]",
    "eval.plots=false",
    "trainer.max_epochs=2",
]


def test_pipeline_runs_both_stages_in_one_directory(tmp_path):
    cfg = compose_train(
        tmp_path, [*TINY, "stages.student.epochs=1", "stages.compare=[simclr]"], "pipeline"
    )
    summary = run_pipeline(cfg)
    run = tmp_path / "run"
    for stage, method, epochs in (
        ("guide", "guide", 2),
        ("student", "student", 1),
        ("simclr", "simclr", 3),
    ):
        results = json.loads((run / stage / "results.json").read_text())
        assert results["method"] == method and results["epochs"] == epochs, stage
        assert summary[stage]["metrics"]["knn"]["all"] == results["metrics"]["knn"]["all"]
    student_cfg = json.loads((run / "student" / "results.json").read_text())["config"]
    assert student_cfg["method"]["guide_checkpoint"] == str(run / "guide/checkpoints/last.ckpt")
    assert student_cfg["ood"] is None
    table = json.loads((run / "pipeline.json").read_text())["stages"]
    assert set(table) == {"guide", "student", "simclr"}


@pytest.mark.slow
def test_killed_pipeline_restarts_where_it_stopped(tmp_path, monkeypatch):
    real_train = ltcl.cli.pipeline.train
    calls = []

    def train_then_die_in_student(cfg, extra_callbacks=None):
        calls.append(cfg.method.name)
        if cfg.method.name == "student":
            # Killed after the student's first epoch (its last.ckpt is on disk).
            real_train(cfg, extra_callbacks=[DieAtEpochStart(1)])
        return real_train(cfg, extra_callbacks)

    cfg = compose_train(tmp_path, TINY, "pipeline")
    monkeypatch.setattr(ltcl.cli.pipeline, "train", train_then_die_in_student)
    with pytest.raises(Killed):
        run_pipeline(cfg)
    run = tmp_path / "run"
    guide_results = (run / "guide" / "results.json").stat().st_mtime_ns
    assert (run / "student" / "checkpoints" / "last.ckpt").is_file()
    assert not (run / "student" / "results.json").exists()

    resumed = []

    def record(cfg, extra_callbacks=None):
        resumed.append(cfg.method.name)
        return real_train(cfg, extra_callbacks)

    monkeypatch.setattr(ltcl.cli.pipeline, "train", record)
    summary = run_pipeline(compose_train(tmp_path, TINY, "pipeline"))
    assert calls == ["guide", "student"] and resumed == ["student"]  # the guide is reused
    assert (run / "guide" / "results.json").stat().st_mtime_ns == guide_results
    student = json.loads((run / "student" / "results.json").read_text())
    # The student resumed from its epoch-1 checkpoint: only its second epoch ran here.
    assert student["epochs"] == 2 and student["epochs_trained_this_run"] == 1
    assert summary["student"]["metrics"]["knn"]["all"] == student["metrics"]["knn"]["all"]


def test_pipeline_needs_an_ood_pool(tmp_path):
    with pytest.raises(ConfigError, match="OOD pool"):
        overrides = [o for o in TINY if not o.startswith("ood.")]
        run_pipeline(compose_train(tmp_path, [*overrides, "~ood"], "pipeline"))


@pytest.mark.slow
def test_pipeline_multirun_over_split_seeds(tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled", "LTCL_LOG_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "ltcl.cli.pipeline", "-m", *TINY, "trainer.max_epochs=1"]
    command += ["trainer.enable_progress_bar=false", "data.split.seed=0,1"]
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = sorted((tmp_path / "pipeline" / "multirun").glob("*/pipeline.json"))
    names = [p.parent.name for p in runs]
    assert [n.rsplit("_", 1)[0] for n in names] == [
        "pipeline_digits_lt_r10_split0_seed0",
        "pipeline_digits_lt_r10_split1_seed0",
    ]
    assert len({n.rsplit("_", 1)[1] for n in names}) == 2  # the split seed is in the hash too
    for path in runs:
        stages = json.loads(path.read_text())["stages"]
        assert set(stages) == {"guide", "student"}


@pytest.mark.slow
def test_a_stage_stopped_early_is_not_taken_as_finished(tmp_path):
    """A stage ended by max_time or a graceful preemption writes results.json for fewer epochs
    than asked: the pipeline resumes it instead of reusing it."""
    cfg = compose_train(tmp_path, [*TINY, "stages.student.epochs=1"], "pipeline")
    guide_cfg = ltcl.cli.pipeline.stage_config(cfg, "guide", tmp_path / "run")
    ltcl.cli.pipeline.train(guide_cfg, extra_callbacks=[StopAfterEpoch(0)])
    early = json.loads((tmp_path / "run" / "guide" / "results.json").read_text())
    assert early["epochs"] == 1
    summary = run_pipeline(cfg)
    assert summary["guide"]["epochs"] == 2 and summary["guide"]["epochs_trained_this_run"] == 1


@pytest.mark.parametrize(("ckpt_path", "expected"), [("last", []), ("null", ["guide", "student"])])
def test_finished_stages_are_reused_unless_ckpt_path_is_null(
    tmp_path, monkeypatch, ckpt_path, expected
):
    run = tmp_path / "run"
    cfg = compose_train(tmp_path, [*TINY, f"ckpt_path={ckpt_path}"], "pipeline")
    for stage in ("guide", "student"):
        (run / stage).mkdir(parents=True)
        stage_hash = run_hash(ltcl.cli.pipeline.stage_config(cfg, stage, run))
        record = {"epochs": 2, "metrics": {}, "run_hash": stage_hash}
        (run / stage / "results.json").write_text(json.dumps(record))
    called = []
    monkeypatch.setattr(
        ltcl.cli.pipeline, "train", lambda cfg: called.append(cfg.method.name) or {}
    )
    run_pipeline(cfg)
    assert called == expected


def test_a_finished_stage_trained_with_other_settings_is_not_reused(tmp_path, monkeypatch):
    run = tmp_path / "run"
    cfg = compose_train(tmp_path, TINY, "pipeline")
    for stage in ("guide", "student"):
        (run / stage).mkdir(parents=True)
        record = {"epochs": 2, "metrics": {}, "run_hash": "0000beef"}
        (run / stage / "results.json").write_text(json.dumps(record))
    called = []
    monkeypatch.setattr(
        ltcl.cli.pipeline, "train", lambda cfg: called.append(cfg.method.name) or {}
    )
    run_pipeline(cfg)
    assert called == ["guide", "student"]


def test_total_epochs_split_between_the_stages(tmp_path):
    cfg = compose_train(tmp_path, ["stages.total_epochs=30", "stages.guide_share=0.25"], "pipeline")
    assert ltcl.cli.pipeline.stage_epochs(cfg) == (8, 22)
    bad = compose_train(tmp_path, ["stages.total_epochs=30", "stages.guide_share=1.0"], "pipeline")
    with pytest.raises(ConfigError, match="stages.guide_share"):
        ltcl.cli.pipeline.stage_epochs(bad)


@pytest.mark.slow
def test_peers_train_next_to_the_method_at_the_same_budget(tmp_path):
    """stages.compare: each peer in its own sub-directory for guide + student epochs; a peer
    that samples OOD data (COLT) sees the pool, the others do not; ltcl-report rows them."""
    peers = [
        "stages.compare=[sdclr,bcl_d,colt]",
        "stages.peers.colt.sampler.warmup_epochs=1",
        "stages.peers.colt.sampler.budget=100",
        "stages.peers.colt.sampler.kmeans_iterations=5",
        "stages.peers.colt.sampler.kmeans_inits=2",
    ]
    cfg = compose_train(tmp_path, [*TINY, "stages.student.epochs=1", *peers], "pipeline")
    run_pipeline(cfg)
    run = tmp_path / "run"
    for stage, method in (("sdclr", "sdclr"), ("bcl_d", "bcl_D"), ("colt", "colt")):
        results = json.loads((run / stage / "results.json").read_text())
        assert results["method"] == method and results["epochs"] == 3, stage
        assert (results["config"]["ood"] is not None) == (stage == "colt")
    report = subprocess.run(
        [sys.executable, "-m", "ltcl.cli.report", str(run), "--metrics", "knn"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert report.returncode == 0, report.stderr
    for method in ("guide", "student", "sdclr", "bcl_D", "colt"):
        assert method in report.stdout


def test_simclr_at_the_method_budget_is_the_simclr_peer(tmp_path):
    """The one way to train SimCLR at the method's budget, stages.compare=[simclr]: in
    <run dir>/simclr/, for guide + student epochs, on ID data only, with method=simclr's
    settings, and in the run directory the pipeline has without it (added to a finished
    pipeline, it reuses the guide and the student), as stages.simclr.enabled=true gave it."""
    from omegaconf import OmegaConf

    from ltcl.cli.pipeline import planned_stages, stage_config

    base = [*TINY, "stages.student.epochs=1"]
    cfg = compose_train(tmp_path, [*base, "stages.compare=[simclr]"], "pipeline")
    assert planned_stages(cfg) == ["guide", "student", "simclr"]
    assert run_hash(cfg) == run_hash(compose_train(tmp_path, base, "pipeline"))
    simclr = stage_config(cfg, "simclr", tmp_path / "run")
    assert simclr.paths.output_dir == str(tmp_path / "run" / "simclr")
    assert simclr.trainer.max_epochs == 3 and simclr.ood is None and "stages" not in simclr
    shared = [a for a in TINY if not a.startswith(("ood.", "method."))]
    alone = compose_train(tmp_path, [*shared, "method=simclr"])  # ltcl-train method=simclr
    assert OmegaConf.to_container(simclr.method, resolve=True) == OmegaConf.to_container(
        alone.method, resolve=True
    )
    longer = compose_train(
        tmp_path, [*base, "stages.compare=[simclr]", "stages.compare_epochs=5"], "pipeline"
    )
    assert stage_config(longer, "simclr", tmp_path / "run").trainer.max_epochs == 5
    assert run_hash(longer) == run_hash(cfg)


@pytest.mark.parametrize("retired", ["+stages.simclr.enabled=true", "+stages.simclr.epochs=4"])
def test_the_retired_simclr_switch_is_refused_naming_the_one_way(tmp_path, retired):
    """An old experiment file or `+stages.simclr...` composes, and is refused before training
    with the new form named (on the command line without `+`, Hydra refuses it first and the
    console prints the same line: tests/unit/test_errors.py)."""
    cfg = compose_train(tmp_path, [*TINY, retired], "pipeline")
    with pytest.raises(ConfigError, match=re.escape("stages.compare=[simclr]")):
        run_pipeline(cfg)
    assert not list(tmp_path.rglob("*.ckpt"))


def test_an_unknown_peer_is_refused_before_training(tmp_path):
    cfg = compose_train(tmp_path, [*TINY, "stages.compare=[simclr,moco]"], "pipeline")
    with pytest.raises(ConfigError, match="stages.compare lists 'moco'"):
        run_pipeline(cfg)
    assert not list(tmp_path.rglob("*.ckpt"))


def test_one_schedule_gives_each_stage_its_part_of_one_schedule(tmp_path):
    from ltcl.cli.pipeline import stage_config

    cfg = compose_train(
        tmp_path,
        [*TINY, "stages.total_epochs=10", "stages.guide_share=0.4", "stages.one_schedule=true"],
        "pipeline",
    )
    guide, student = (stage_config(cfg, s, tmp_path / "run") for s in ("guide", "student"))
    assert (guide.trainer.max_epochs, student.trainer.max_epochs) == (4, 6)
    assert guide.optim.schedule.horizon_epochs == student.optim.schedule.horizon_epochs == 10
    assert (guide.optim.schedule.start_epoch, student.optim.schedule.start_epoch) == (0, 4)
    plain = stage_config(compose_train(tmp_path, TINY, "pipeline"), "student", tmp_path / "run")
    assert "horizon_epochs" not in plain.optim.schedule


@pytest.mark.slow
def test_one_schedule_through_the_console(tmp_path):
    """`ltcl-pipeline ... stages.one_schedule=true` as a user types it: the guide runs epoch
    [0, 1) and the student epoch [1, 2) of one 2-epoch schedule, recorded in their configs."""
    from tests.helpers import run_console

    args = [*TINY, "run_name=one", "stages.total_epochs=2", "stages.one_schedule=true"]
    done = run_console("ltcl-pipeline", args, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    run = tmp_path / "outputs" / "pipeline" / "one"
    for stage, start in (("guide", 0), ("student", 1)):
        results = json.loads((run / stage / "results.json").read_text())
        schedule = results["config"]["optim"]["schedule"]
        assert results["epochs"] == 1
        assert (schedule["horizon_epochs"], schedule["start_epoch"]) == (2, start)
