"""ltcl-eval on a checkpoint of a tiny ltcl-train run: every protocol, results.json, plots, bad input."""

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

from ltcl.cli.eval import evaluate_checkpoint
from ltcl.cli.train import train
from ltcl.conf import CONFIG_DIR
from ltcl.errors import ConfigError
from tests.helpers import REPO_ROOT, compose_train

TINY = [
    "model.backbone.width=8",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "data.global_batch_size=32",
    "optim.schedule.warmup_epochs=1",
    "eval.protocols=[knn]",
    "eval.plots=false",
]
FAST_PROBES = [
    "eval.linear_b.epochs=20",
    "eval.linear_a.epochs=2",
    "eval.linear_a.milestones=[1]",
    "eval.few_shot.probe.epochs=20",
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    train(compose_train(tmp, TINY))
    return tmp / "run" / "checkpoints" / "last.ckpt"


def compose_eval(tmp_path: Path, overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        cfg = compose("eval", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.root_dir = str(REPO_ROOT)
        cfg.paths.output_dir = str(tmp_path / "eval")
        cfg.paths.data_dir = str(tmp_path / "data")
    return cfg


def test_every_protocol_writes_results_and_plots(checkpoint, tmp_path):
    cfg = compose_eval(
        tmp_path,
        [
            f"ckpt_path={checkpoint}",
            "eval.protocols=[knn,linear_b,linear_a,few_shot]",
            *FAST_PROBES,
        ],
    )
    results = evaluate_checkpoint(cfg)
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert saved["method"] == "simclr" and saved["dataset"] == "digits_lt"
    assert saved["seed"] == 0 and saved["epochs"] == results["epochs"]
    metrics = saved["metrics"]
    for name in ("knn", "linear", "linear_a"):
        assert {"all", "many", "medium", "few", "std", "per_class_std"} <= set(metrics[name])
        assert 0.0 <= metrics[name]["all"] <= 100.0
    assert metrics["linear"]["protocol"] == "b" and metrics["linear_a"]["protocol"] == "a"
    assert set(metrics["few_shot"]) == {"1pct", "100shot", "50shot"}
    assert len(saved["per_class"]["linear_acc"]) == 10
    for png in ("per_class_accuracy.png", "group_accuracy.png", "embedding_2d.png"):
        assert (tmp_path / "eval" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_data_of_another_run_is_refused(checkpoint, tmp_path):
    cfg = compose_eval(tmp_path, [f"ckpt_path={checkpoint}", "data.split.imbalance_ratio=5"])
    with pytest.raises(ConfigError, match="split differs"):
        evaluate_checkpoint(cfg)
    cfg = compose_eval(tmp_path, [f"ckpt_path={checkpoint}", "data.name=other_lt"])
    with pytest.raises(ConfigError, match="trained on 'digits_lt'"):
        evaluate_checkpoint(cfg)
    # another split seed: the same class counts, other images (test images seen in training)
    cfg = compose_eval(tmp_path, [f"ckpt_path={checkpoint}", "data.split.seed=3"])
    with pytest.raises(ConfigError, match="holds other images than the training run"):
        evaluate_checkpoint(cfg)


def test_missing_checkpoint(tmp_path):
    cfg = compose_eval(tmp_path, [f"ckpt_path={tmp_path / 'none.ckpt'}"])
    with pytest.raises(ConfigError, match="does not exist"):
        evaluate_checkpoint(cfg)


def test_checkpoint_of_another_architecture(checkpoint, tmp_path):
    import torch

    state = torch.load(checkpoint, weights_only=False)
    state["hyper_parameters"]["backbone"] = {"name": "small_convnet", "width": 16}
    other = tmp_path / "other.ckpt"
    torch.save(state, other)
    cfg = compose_eval(tmp_path, [f"ckpt_path={other}"])
    with pytest.raises(ConfigError, match="another architecture"):
        evaluate_checkpoint(cfg)


def test_protocol_a_needs_a_validation_split(checkpoint, tmp_path):
    cfg = compose_eval(
        tmp_path, [f"ckpt_path={checkpoint}", "eval.protocols=[linear_a]", *FAST_PROBES]
    )
    with open_dict(cfg):
        cfg.data.split.val_per_class = 0
    with pytest.raises(ConfigError, match="validation"):
        evaluate_checkpoint(cfg)


def test_unknown_protocol(checkpoint, tmp_path):
    cfg = compose_eval(tmp_path, [f"ckpt_path={checkpoint}", "eval.protocols=[svm]"])
    with pytest.raises(ConfigError, match=r"unknown eval.protocols \[.svm.\]"):
        evaluate_checkpoint(cfg)
