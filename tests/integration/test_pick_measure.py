"""benchmarks/pick_measure.py as a user runs it: on a guide run and a SimCLR checkpoint, every
rule's picks measured in both embeddings, written as JSON, a table and a plot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

BIN = Path(sys.executable).parent
TINY = ["trainer.max_epochs=2", "trainer.enable_progress_bar=false", "model.backbone.width=8",
        "eval.protocols=[knn]", "eval.plots=false"]  # fmt: skip


@pytest.mark.slow
def test_pick_measure_on_a_guide_run(tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled", "LTCL_LOG_DIR": str(tmp_path / "logs")}
    guide = ["method=guide", "ood=embedded", "ood.source.num_crops=400",
             "method.sampler.warmup_epochs=1", "method.sampler.budget=100", "task_name=g"]  # fmt: skip
    for args in (guide, ["method=simclr", "task_name=s"]):
        subprocess.run([str(BIN / "ltcl-train"), *TINY, *args], cwd=REPO_ROOT, env=env,
                       check=True, capture_output=True, timeout=600)  # fmt: skip
    (run,) = (tmp_path / "logs" / "g").glob("guide_*")
    (reference,) = (tmp_path / "logs" / "s").glob("simclr_*/checkpoints/last.ckpt")
    done = subprocess.run(
        [sys.executable, "benchmarks/pick_measure.py", str(run), "--reference", str(reference),
         "--out", str(tmp_path / "measure")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads((tmp_path / "measure" / "pick_measure.json").read_text())
    assert {"as run", "random", "COLT's rule"} <= set(out["rules"])
    for entry in out["rules"].values():
        for space in ("guide", "reference"):
            shares = entry["spaces"][space]
            assert abs(sum(shares["per_class"]) - 100) < 0.1
            assert abs(sum(shares["groups"].values()) - 100) < 0.1
    assert out["rules"]["random"]["budgets"] == [100]
    assert (tmp_path / "measure" / "pick_measure.png").stat().st_size > 10_000
    assert "few / random" in (tmp_path / "measure" / "pick_measure.md").read_text()
