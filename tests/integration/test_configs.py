"""Every config option composes, and every data / OOD config instantiates its DataModule."""

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from ltcl.conf import CONFIG_DIR
from ltcl.data.datamodule import LongTailDataModule
from ltcl.data.ood_pool import OODPoolDataModule
from tests.helpers import compose_train

CONF = Path(CONFIG_DIR)
USER_PATHS = {
    "imagenet100_lt": ["data.lists_dir=/lists", "data.image_root=/images"],
    "places_lt": ["data.lists_dir=/lists", "data.image_root=/images"],
    "imagefolder_lt": ["data.root=/mydata", "data.num_classes=12"],
}


def options(group):
    """The selectable options of a group (files starting with _ are shared pieces)."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml") if not p.stem.startswith("_"))


@pytest.mark.parametrize("name", options("data"))
def test_data_configs_instantiate(tmp_path, name):
    cfg = compose_train(tmp_path, [f"data={name}", *USER_PATHS.get(name, [])])
    dm = instantiate(cfg.data)
    assert isinstance(dm, LongTailDataModule) and dm.name == cfg.data.name


def test_list_file_config_without_paths_says_what_is_missing(tmp_path):
    cfg = compose_train(tmp_path, ["data=imagenet100_lt"])
    with pytest.raises(MissingMandatoryValue, match="lists_dir"):
        instantiate(cfg.data)


@pytest.mark.parametrize("name", options("ood"))
def test_ood_configs_instantiate(tmp_path, name):
    extra = {
        "imagefolder": ["ood.source.root=/pool"],
        "listfile": ["ood.source.list_path=/l.txt", "ood.source.image_root=/i"],
    }
    cfg = compose_train(tmp_path, [f"ood={name}", *extra.get(name, [])])
    assert isinstance(instantiate(cfg.ood), OODPoolDataModule)


@pytest.mark.parametrize(
    "group",
    ["model", "method", "method/sampler", "optim", "trainer", "logger", "experiment", "debug"],
)
def test_every_option_composes_and_resolves(tmp_path, group):
    for name in options(group):
        extra = ["method=guide"] if group == "method/sampler" else []
        cfg = compose_train(tmp_path, [*extra, f"{group}={name}"])
        container = OmegaConf.to_container(cfg, resolve=True)
        assert container["method"]["_target_"].startswith("ltcl.")


def test_a_method_composes_only_its_own_settings(tmp_path):
    """SimCLR neither composes nor records the guide's sampler or loss weights; the guide's
    sampler is its nested group (method/sampler=...)."""
    simclr = compose_train(tmp_path, ["method=simclr"])
    assert "sampler" not in simclr.method and "beta" not in simclr.method
    assert "sampler" not in simclr and "loss" not in simclr
    guide = compose_train(tmp_path, ["method=guide", "method/sampler=colt"])
    assert guide.method.sampler.strategy == "colt" and guide.method.beta == 0.0
    student = compose_train(tmp_path, ["method=student"])
    assert student.method.k_pos == 5 and "sampler" not in student.method


@pytest.mark.parametrize(
    ("experiment", "record"),
    [
        ("method_tuned_cpu", "search_best.yaml"),
        ("method_tuned_cpu_10trials", "search_best_10trials.yaml"),
    ],
)
def test_tuned_experiments_are_the_recorded_search_results(experiment, record):
    """Provenance: each shipped tuned setting composes to the best parameters its search recorded."""
    import sys

    root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root / "benchmarks" / "campaign"))
    from legacy_keys import current

    best = OmegaConf.load(
        root / "benchmarks/campaign/results/campaign_cifar10_lt_cpu" / record
    ).best_params
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose("pipeline", overrides=[f"experiment={experiment}"])
    for key, value in best.items():
        assert OmegaConf.select(cfg, current(key)) == value, key


def test_medium_plain_student_preset_is_the_validation_choice_of_the_stage2_ablation():
    """Provenance of experiment=method_tuned_medium_plain_student_cpu: the stage-2 ablation row with
    the best *validation* kNN All (benchmarks/campaign/results/stage2_ablation_medium_cpu/summary.json,
    split 0) on top of experiment=method_tuned_medium_cpu, which it changes in stage 2 only."""
    import json

    from hydra import compose, initialize_config_dir

    root = Path(__file__).resolve().parents[2]
    rows = json.loads(
        (root / "benchmarks/campaign/results/stage2_ablation_medium_cpu/summary.json").read_text()
    )
    best_name, best = max(rows.items(), key=lambda item: item[1]["knn"]["all"])
    assert best_name == "plain_simclr_student"
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        plain = compose("pipeline", overrides=["experiment=method_tuned_medium_plain_student_cpu"])
        medium = compose("pipeline", overrides=["experiment=method_tuned_medium_cpu"])
    student = plain.stages.student.method
    stage1 = {"beta", "beta_normalization", "lambda_dd", "domain_loss"}
    for key, value in best["settings"].items():
        if key in stage1:
            assert plain.method[key] == value, key
        elif key == "sampler":
            assert plain.method.sampler.strategy == value
        else:
            assert student[key] == value, key
    # everything else is the medium preset's: the same guide, OOD schedule and model
    plain_tree = OmegaConf.to_container(plain)
    medium_tree = OmegaConf.to_container(medium)
    for key in ("k_pos", "lambda_dl", "repulsion_weights"):
        del plain_tree["stages"]["student"]["method"][key]
        del medium_tree["stages"]["student"]["method"][key]
    assert plain_tree == medium_tree


def test_medium_tier_preset_is_the_validation_choice_of_its_ablation():
    """Provenance of experiment=method_tuned_medium_cpu: the small tier's tuned settings with the
    stage 1 of the medium-tier ablation row that had the best *validation* kNN All among the
    guide rows (benchmarks/campaign/results/stage1_ablation_medium_cpu/summary.json), on the medium model."""
    import json

    from hydra import compose, initialize_config_dir

    root = Path(__file__).resolve().parents[2]
    rows = json.loads(
        (root / "benchmarks/campaign/results/stage1_ablation_medium_cpu/summary.json").read_text()
    )
    guides = {k: v for k, v in rows.items() if not k.startswith("method_") and k != "simclr"}
    chosen = max(guides.values(), key=lambda r: r["knn"]["all"])["settings"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        medium = compose("pipeline", overrides=["experiment=method_tuned_medium_cpu"])
        small = compose("pipeline", overrides=["experiment=method_tuned_cpu"])
    method = medium.method
    assert {
        **{k: method[k] for k in chosen if k != "sampler"},
        "sampler": method.sampler.strategy,
    } == chosen
    assert medium.model.backbone.width == 16 and medium.model.backbone.depths == [1, 1, 1, 1]
    # the same stage 2, OOD schedule and sampler (unresolved: ${model...} differs by design)
    for key in ("stages", "ood", "method.sampler"):
        assert OmegaConf.to_container(OmegaConf.select(medium, key)) == OmegaConf.to_container(
            OmegaConf.select(small, key)
        ), key


@pytest.mark.parametrize(
    ("preset", "recorded_runs"),
    [
        ("method_tuned_medium_cpu", "runs_medium/campaign_final_retuned_medium"),
        ("method_tuned_medium_plain_student_cpu", "runs_medium_plain/campaign_final_retuned_medium_plain"),
    ],
)  # fmt: skip
def test_medium_presets_reproduce_the_recorded_campaign_runs(tmp_path, preset, recorded_runs):
    """Each preset's line on the pipeline page (docs/recipes/pipeline.md, "Presets"; the
    README's CPU quick start is the plain one over splits 1-3) gives both stages the settings of
    the recorded runs its numbers come from (split 1), every key but where files live and what
    runs are called: a user of the line reruns what was measured (this caught the OOD candidate
    draw, 20,000 in every campaign run, missing from the presets). Only split 1 and settings
    that do not change what is trained (run_identity.SAFE_TO_CHANGE) are added to the line."""
    import json
    import re
    import shlex
    import sys

    from hydra import compose, initialize_config_dir

    from ltcl.cli.pipeline import stage_config
    from ltcl.run.identity import SAFE_TO_CHANGE

    root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root / "benchmarks" / "campaign"))
    from campaign_pairs import flat

    runs = root / "benchmarks/campaign/results/campaign_cifar10_lt_cpu" / recorded_runs
    recorded = next(runs.glob("multirun/*_split1_*"))
    page = (root / "docs/recipes/pipeline.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", page[page.index("## Presets") :], re.S).group(1)
    (line,) = [x for x in block.splitlines() if f"experiment={preset} " in x]
    words = shlex.split(line)
    assert words[0] == "ltcl-pipeline"
    not_trained = ["trainer.enable_progress_bar=false", "trainer.check_val_every_n_epoch=1000",
                   "eval.protocols=[knn,linear_b]"]  # fmt: skip
    for override in not_trained:
        key = override.split("=")[0]
        assert any(key == safe or key.startswith(safe + ".") for safe in SAFE_TO_CHANGE), key
    overrides = [*words[1:], "data.split.seed=1", *not_trained]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose("pipeline", overrides=overrides)
    where = ("task_name", "run_name", "paths.", "data.split_dir", "logger.",
             "trainer.default_root_dir", "method.guide_checkpoint")  # fmt: skip
    for stage in ("guide", "student"):
        composed = flat(OmegaConf.to_container(stage_config(cfg, stage, tmp_path), resolve=True))
        ran = flat(json.loads((recorded / stage / "results.json").read_text())["config"])
        differ = {
            key
            for key in set(composed) | set(ran)
            if composed.get(key) != ran.get(key)
            and not key.startswith(where)
            and not key.endswith((".root", ".archive", ".cache_dir"))
            and not (key not in ran and composed[key] == ADDED_SINCE.get(key, object()))
        }
        assert not differ, (stage, {k: (composed.get(k), ran.get(k)) for k in differ})


# Keys added after the campaign ran, at the value that does what the code did before them.
ADDED_SINCE = {
    "method.sampler.kmeans": "ltcl",
    "method.sampler.batch_mode": "add",
    "method.sampler.min_cluster_share": 0.0,
    "method.sampler.budget_rule": "gap",
    "method.sampler.density_k": 10,
}


@pytest.mark.parametrize("split", [1, 2, 3])
def test_the_campaign_simclr_in_its_new_form_is_the_recorded_simclr_run(tmp_path, split):
    """benchmarks/campaign/campaign_cifar10_lt_cpu.sh step 3 once asked for SimCLR with
    stages.simclr.enabled=true; in its one form now, stages.compare=[simclr], the same command
    gives the SimCLR stage of the recorded runs every setting (split 1, 2, 3), in the same
    <run dir>/simclr/. Left aside: where files live and what runs are called, data targets
    that moved since (benchmarks/analyses/sampler_analysis.py MOVED), and the guide's loss.* / sampler.*
    keys that the ltcl of those runs recorded for every method and SimCLR never read."""
    import json
    import sys

    from ltcl.cli.pipeline import planned_stages, stage_config

    root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root / "benchmarks" / "campaign"))
    sys.path.insert(0, str(root / "benchmarks" / "analyses"))
    from campaign_pairs import flat
    from legacy_keys import current
    from sampler_analysis import MOVED

    campaign = root / "benchmarks/campaign/results/campaign_cifar10_lt_cpu"
    best = OmegaConf.load(campaign / "search_best.yaml").best_params
    tuned = [f"{current(k)}={'null' if v is None else v}" for k, v in best.items()]
    command = [
        "data=cifar10_lt_folder", "model=small", "trainer=cpu", "data.global_batch_size=256",
        "trainer.enable_progress_bar=false", "trainer.check_val_every_n_epoch=1000",
        "ood=tinyimagenet", "ood.candidates_per_round=20000", *tuned, "stages.total_epochs=30",
        "stages.compare=[simclr]", f"data.split.seed={split}", "eval.protocols=[knn,linear_b]",
    ]  # fmt: skip
    cfg = compose_train(tmp_path, command, "pipeline")
    assert planned_stages(cfg) == ["guide", "student", "simclr"]
    stage = stage_config(cfg, "simclr", tmp_path / "run")
    assert stage.paths.output_dir == str(tmp_path / "run" / "simclr")
    recorded = next((campaign / "runs/campaign_final/multirun").glob(f"*_split{split}_*"))
    ran = flat(json.loads((recorded / "simclr" / "results.json").read_text())["config"])
    assert ran["paths.output_dir"].endswith("/simclr")
    ran = {k: MOVED.get(v, v) if k.endswith("._target_") else v for k, v in ran.items()}
    composed = flat(OmegaConf.to_container(stage, resolve=True))
    where = ("task_name", "run_name", "verbose", "paths.", "data.split_dir", "logger.",
             "trainer.default_root_dir")  # fmt: skip
    differ = {
        key: (composed.get(key, "<absent>"), ran.get(key, "<absent>"))
        for key in set(composed) | set(ran)
        if composed.get(key) != ran.get(key)
        and not key.startswith(where)
        and not key.endswith((".root", ".archive", ".cache_dir"))
        and not (key.startswith(("loss.", "sampler.")) and key not in composed)
        and not (key not in ran and composed[key] == ADDED_SINCE.get(key, object()))
    }
    assert not differ, differ
