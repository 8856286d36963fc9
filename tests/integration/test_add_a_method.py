"""docs/architecture.md's recipe, followed by a test: a method that lives outside the package
(tests/toy_method: one module, one config file) trains, resumes and evaluates through the
ltcl-train console command, and runs in an ltcl-pipeline comparison next to SimCLR."""

from __future__ import annotations

import json

import pytest
import torch

from tests.helpers import REPO_ROOT, TINY_RUN, run_console

SEARCH_PATH = f"hydra.searchpath=[file://{REPO_ROOT / 'tests' / 'toy_method' / 'conf'}]"
TOY = [SEARCH_PATH, "method=align_uniform", "run_name=toy", *TINY_RUN]


def _results(path):
    return json.loads(path.read_text())


@pytest.mark.slow
def test_a_toy_method_trains_resumes_and_evaluates(tmp_path):
    env = {"PYTHONPATH": str(REPO_ROOT)}
    done = run_console("ltcl-train", TOY, tmp_path, **env)
    assert done.returncode == 0, done.stderr[-2000:]
    run = tmp_path / "outputs" / "train" / "toy"
    first = _results(run / "results.json")
    assert first["method"] == "align_uniform" and first["epochs"] == 1
    assert 0 <= first["metrics"]["knn"]["all"] <= 100
    # one more epoch: resumes its own checkpoint and trains only epoch 1
    again = run_console("ltcl-train", [*TOY, "trainer.max_epochs=2"], tmp_path, **env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming from" in again.stdout
    assert _results(run / "results.json")["epochs"] == 2
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]


@pytest.mark.slow
def test_a_toy_method_runs_in_a_pipeline_comparison_next_to_simclr(tmp_path):
    args = [
        SEARCH_PATH,
        "+method@stages.peers.align_uniform=align_uniform",
        "stages.compare=[simclr,align_uniform]",
        "run_name=cmp",
        "ood.source.num_crops=400",
        "data.global_batch_size=32",
        "trainer.limit_train_batches=2",
        "method.sampler.warmup_epochs=0",
        "method.sampler.budget=100",
        "method.sampler.kmeans_iterations=5",
        "method.sampler.refine_iterations=5",
        *TINY_RUN,
    ]
    done = run_console("ltcl-pipeline", args, tmp_path, PYTHONPATH=str(REPO_ROOT))
    assert done.returncode == 0, done.stderr[-2000:]
    run = tmp_path / "outputs" / "pipeline" / "cmp"
    for stage, method in (("simclr", "simclr"), ("align_uniform", "align_uniform")):
        results = _results(run / stage / "results.json")
        assert results["method"] == method and results["epochs"] == 2  # guide 1 + student 1
