"""`ltcl-pipeline`: the whole method (guide -> student -> evaluation) in one run directory.

    ltcl-pipeline data=cifar10_lt_folder ood=tinyimagenet trainer.max_epochs=100
    ltcl-pipeline -m data=cifar10_lt_folder ood=tinyimagenet data.split.seed=0,1,2

Each stage is an ordinary ``ltcl-train`` run (:func:`ltcl.train.train`) in a sub-directory,
so every ltcl-train option, resume rule and output applies to it. A stage is *finished*
when its ``results.json`` records all its epochs: it is then reused, not retrained. An unfinished stage
resumes from its ``checkpoints/last.ckpt`` (``ckpt_path=last``), so a pipeline killed at any
point restarts where it stopped. ``ckpt_path=null`` retrains every stage from scratch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from ltcl.errors import ConfigError, report_errors, run_console
from ltcl.hydra_record import defer_hydra_record, take_hydra_record, write_hydra_record
from ltcl.objective import run_for_objective
from ltcl.run_identity import run_hash
from ltcl.train import CONFIG_DIR, train

RESULTS_NAME = "results.json"


def stage_config(cfg: DictConfig, stage: str, run_dir: Path) -> DictConfig:
    """The ltcl-train config of one stage: its method, epochs and sub-directory."""
    stage_cfg = cfg.copy()
    guide_epochs, student_epochs = stage_epochs(cfg)
    with open_dict(stage_cfg):
        stage_cfg.paths.output_dir = str(run_dir / stage)
        if stage == "guide":
            stage_cfg.trainer.max_epochs = guide_epochs
        elif stage == "student":
            stage_cfg.method = cfg.stages.student.method
            stage_cfg.method.guide_checkpoint = str(run_dir / "guide" / "checkpoints" / "last.ckpt")
            stage_cfg.trainer.max_epochs = student_epochs
            stage_cfg.ood = None  # stage 2 trains on ID data only
        elif stage == "simclr":
            stage_cfg.method = cfg.stages.simclr.method
            epochs = cfg.stages.simclr.epochs
            stage_cfg.trainer.max_epochs = (
                epochs if epochs is not None else guide_epochs + student_epochs
            )
            stage_cfg.ood = None
        elif stage in (cfg.stages.get("peers") or {}):
            stage_cfg.method = cfg.stages.peers[stage]
            epochs = cfg.stages.get("compare_epochs")
            stage_cfg.trainer.max_epochs = (
                epochs if epochs is not None else guide_epochs + student_epochs
            )
            sampler = stage_cfg.method.get("sampler")
            if sampler is None:
                stage_cfg.ood = None  # only a peer that samples OOD images sees the pool
            elif sampler.get("batch_mode") == "mix":
                # ood.batch_ratio is the guide's; a peer with COLT's mixed batches reads none.
                stage_cfg.ood.batch_ratio = None
        else:
            peers = sorted(cfg.stages.get("peers") or {})
            raise ConfigError(
                f"unknown pipeline stage '{stage}': stages.compare takes peers from {peers}"
            )
        if cfg.stages.get("one_schedule") and stage in ("guide", "student"):
            # One warm-up and one cosine over guide + student, as a single run would have.
            stage_cfg.optim.schedule.horizon_epochs = guide_epochs + student_epochs
            stage_cfg.optim.schedule.start_epoch = 0 if stage == "guide" else guide_epochs
        del stage_cfg["stages"]  # a stage is a plain ltcl-train run: its identity has no stages
    return stage_cfg


def stage_epochs(cfg: DictConfig) -> tuple[int, int]:
    """(guide, student) epochs: stages.<stage>.epochs, or a split of stages.total_epochs by
    stages.guide_share (a search over the split at a fixed total budget)."""
    total = cfg.stages.get("total_epochs")
    if total is None:
        return cfg.stages.guide.epochs, cfg.stages.student.epochs
    share = float(cfg.stages.get("guide_share", 0.5))
    if not (isinstance(total, int) and total >= 2 and 0 < share < 1):
        raise ConfigError(
            f"stages.total_epochs={total!r} and stages.guide_share={share}: need an integer "
            ">= 2 and a share strictly between 0 and 1 (or stages.total_epochs=null)"
        )
    guide = min(total - 1, max(1, round(total * share)))
    return guide, total - guide


def finished_results(stage_dir: Path, epochs: int, expected_hash: str) -> dict[str, Any] | None:
    """The stage's results when it trained all its epochs with this config, else None.

    results.json alone is not proof: a stage ended early (max_time, a graceful preemption)
    also writes one, for fewer epochs; and one trained with other settings (its run_hash
    differs) is not this stage (ltcl-train then refuses to resume it, naming the keys).
    """
    results_file = stage_dir / RESULTS_NAME
    if not results_file.is_file():
        return None
    try:
        results = json.loads(results_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None  # written atomically, so only a hand-edited file gets here: rerun it
    if results.get("run_hash") != expected_hash:
        return None
    return results if (results.get("epochs") or 0) >= epochs else None


def planned_stages(cfg: DictConfig) -> list[str]:
    """guide, student, then SimCLR (stages.simclr.enabled) and every peer of stages.compare."""
    stages = ["guide", "student"]
    if cfg.stages.get("simclr") and cfg.stages.simclr.get("enabled"):
        stages.append("simclr")
    peers = cfg.stages.get("peers") or {}
    for name in cfg.stages.get("compare") or []:
        if name not in peers:
            raise ConfigError(
                f"stages.compare lists '{name}', which is not a peer: choose from {sorted(peers)}"
            )
        if name not in stages:
            stages.append(name)
    return stages


def check_pipeline_config(cfg: DictConfig) -> None:
    if not cfg.get("ood"):
        raise ConfigError(
            "ltcl-pipeline needs an OOD pool for the guide: add ood=... "
            "(ood=tinyimagenet for CIFAR, ood=embedded for the demo data)"
        )
    for stage, epochs in zip(("guide", "student"), stage_epochs(cfg), strict=True):
        if not isinstance(epochs, int) or epochs < 1:
            raise ConfigError(f"stages.{stage}.epochs must be an integer >= 1, got {epochs!r}")
    for key in ("compare_epochs", "simclr.epochs"):
        epochs = OmegaConf.select(cfg.stages, key)
        if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
            raise ConfigError(
                f"stages.{key} must be an integer >= 1 or null (the method's guide + student "
                f"epochs), got {epochs!r}"
            )


def run_pipeline(cfg: DictConfig) -> dict[str, Any]:
    """Run (or reuse) every stage; write pipeline.json; return {stage: results}."""
    check_pipeline_config(cfg)
    planned = planned_stages(cfg)  # an unknown peer fails here, before any training
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    for stage in planned:
        stage_cfg = stage_config(cfg, stage, run_dir)
        # ckpt_path=null means "start fresh" for the pipeline too: no stage is reused.
        results = None
        if cfg.get("ckpt_path") is not None:
            results = finished_results(
                run_dir / stage, stage_cfg.trainer.max_epochs, run_hash(stage_cfg)
            )
        if results is not None:
            print(f"[ltcl] pipeline: {stage} finished earlier, reusing it", flush=True)
        else:
            print(f"[ltcl] pipeline: {stage} -> {run_dir / stage}", flush=True)
            results = train(stage_cfg)
        summary[stage] = results
    write_hydra_record(take_hydra_record())  # every stage was reused: nothing wrote it yet
    if summary.get("student", {}).get("metrics"):
        table = {
            stage: {"epochs": r.get("epochs"), "metrics": r.get("metrics")}
            for stage, r in summary.items()
        }
        record = {"run_dir": str(run_dir), "stages": table}
        record["config"] = OmegaConf.to_container(cfg, resolve=True)
        (run_dir / "pipeline.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
        print(format_table(table), flush=True)
    return summary


def format_table(table: dict[str, dict[str, Any]]) -> str:
    """A short text table of each stage's All / Few / Std (kNN and linear)."""
    lines = ["stage    epochs  kNN all  kNN few  kNN Std  lin all  lin few  lin Std"]
    for stage, row in table.items():
        cells = [f"{stage:<8}", f"{row.get('epochs') or 0:>6}"]
        for protocol in ("knn", "linear"):
            m = (row.get("metrics") or {}).get(protocol) or {}
            cells += [f"{m.get(k, float('nan')):>8.2f}" for k in ("all", "few", "std")]
        lines.append(" ".join(cells))
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="pipeline")
@report_errors
def _hydra_main(cfg: DictConfig) -> float | None:
    defer_hydra_record(cfg)
    # The method's result is its student's (stage 2).
    return run_for_objective(cfg, run_pipeline, lambda summary: summary.get("student", {}))


def main() -> None:
    import sys

    # Hydra cannot compose "no pool" for a group that pipeline.yaml sets; say what is meant.
    if any(arg in ("ood=null", "ood=None", "~ood") for arg in sys.argv[1:]):
        print(
            "ltcl: error: ltcl-pipeline needs an OOD pool for the guide (ood=null was given): "
            "use ood=tinyimagenet for CIFAR or ood=embedded for the demo; a run without OOD "
            "data is ltcl-train method=simclr",
            file=sys.stderr,
        )
        raise SystemExit(2)
    run_console(_hydra_main, "pipeline")


if __name__ == "__main__":
    main()
