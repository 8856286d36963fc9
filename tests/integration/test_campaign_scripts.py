"""The campaign's shell scripts build the commands they claim to (their runs take tens of
minutes, so `ltcl-train` here composes the config with --cfg job instead of training)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.helpers import BIN, REPO_ROOT, console_env

SCRIPT = REPO_ROOT / "benchmarks" / "campaign" / "plain_student_from_pipeline_cpu.sh"
# The pipeline student's own stage-2 settings, as a recorded results.json holds them.
STUDENT_METHOD = {
    "temperature": 0.2, "delta": 0.9, "attraction_weights": True, "density_k": 0,
    "positive_bank": 0, "distillation": "feature", "distill_teacher_temperature": 0.1,
    "distill_student_temperature": 0.1, "init": "guide", "k_pos": 5, "lambda_dl": 1.0,
    "repulsion_weights": True,
}  # fmt: skip


def recorded_pipeline(root: Path, depths: list[int]) -> Path:
    """The files of a finished ltcl-pipeline run that the script reads."""
    run = root / "pipeline_cifar10_lt_r100_split2_seed0_abc"
    (run / "guide" / "checkpoints").mkdir(parents=True)
    (run / "guide" / "checkpoints" / "last.ckpt").write_bytes(b"not read by --cfg job")
    (run / "student").mkdir()
    pipeline = {
        "stages": {"guide": {"epochs": 50}, "student": {"epochs": 50}},
        "config": {"data": {"split": {"seed": 2}}, "seed": 0,
                   "model": {"backbone": {"depths": depths}}},
    }  # fmt: skip
    (run / "pipeline.json").write_text(json.dumps(pipeline))
    (run / "student" / "results.json").write_text(
        json.dumps({"config": {"method": STUDENT_METHOD}})
    )
    return run


def run_script(tmp_path: Path, pipeline: Path) -> subprocess.CompletedProcess:
    fake_bin = tmp_path / "bin"
    if not fake_bin.exists():
        fake_bin.mkdir()
        (fake_bin / "python").symlink_to(BIN / "python")
        train = fake_bin / "ltcl-train"
        train.write_text(f'#!/usr/bin/env bash\nexec "{BIN / "ltcl-train"}" "$@" --cfg job\n')
        train.chmod(0o755)
    env = console_env(tmp_path, BIN=str(fake_bin), PIPELINE=str(pipeline), TASK="plain_test")
    return subprocess.run(
        ["bash", str(SCRIPT)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_plain_student_script_continues_the_recorded_pipeline(tmp_path):
    pipeline = recorded_pipeline(tmp_path / "runs", depths=[1, 1, 1, 1])
    done = run_script(tmp_path, pipeline)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    config = OmegaConf.create(done.stdout[done.stdout.index("task_name:") :])
    method = config.method
    # the three switches off, everything else of stage 2 as the pipeline's own student
    assert (method.k_pos, method.lambda_dl, method.repulsion_weights) == (0, 0, False)
    for key in ("temperature", "delta", "attraction_weights", "density_k", "positive_bank",
                "distillation", "distill_teacher_temperature", "distill_student_temperature",
                "init"):  # fmt: skip
        assert method[key] == STUDENT_METHOD[key], key
    assert method.guide_checkpoint == str(pipeline / "guide/checkpoints/last.ckpt")
    # the pipeline's split, seed and one schedule: the student's 50 epochs are epochs 50-99
    assert (config.data.split.seed, config.seed, config.trainer.max_epochs) == (2, 0, 50)
    assert (config.optim.schedule.horizon_epochs, config.optim.schedule.start_epoch) == (100, 50)
    assert config.model.backbone.depths == [1, 1, 1, 1]
    assert config.task_name == "plain_test"


def test_plain_student_script_refuses_what_it_cannot_reproduce(tmp_path):
    small = recorded_pipeline(tmp_path / "small", depths=[2, 2, 2, 2])
    done = run_script(tmp_path, small)
    assert done.returncode == 1
    assert "medium-tier (cifar_resnet10_w16) pipelines only" in done.stderr
    (small / "guide/checkpoints/last.ckpt").unlink()
    done = run_script(tmp_path, small)
    assert done.returncode == 1
    assert "no guide checkpoint" in done.stderr and "ltcl-pipeline run directory" in done.stderr
