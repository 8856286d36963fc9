"""Tables of the effectiveness campaign (benchmarks/campaign/campaign_cifar10_lt_cpu.sh), from its runs.

    python benchmarks/campaign/campaign_summary.py <log dir> <out dir>

Writes <out dir>/search.md (every trial: its overrides, the guide's and the student's
*validation* kNN, wall time; the SimCLR reference at the same budget) and copies each final
run's results.json into <out dir>/runs/ so that the final tables (ltcl-report) can be rebuilt.
With ``--tier _medium`` it only copies that tier's final runs into <out dir>/runs_medium/.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import optuna
from legacy_keys import current
from omegaconf import OmegaConf


def fmt(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def paired_differences(final: Path) -> str:
    """Per split: the student minus SimCLR of the same pipeline run directory (same split,
    same ID epochs), test kNN and probe (b), All and Few; then the mean and population std."""
    rows, diffs = [], []
    for run in sorted(final.glob("pipeline_*")):
        s, b = run / "student" / "results.json", run / "simclr" / "results.json"
        if not (s.is_file() and b.is_file()):
            continue
        s, b = json.loads(s.read_text()), json.loads(b.read_text())
        d = [
            s["metrics"][p][f] - b["metrics"][p][f]
            for p in ("knn", "linear")
            for f in ("all", "few", "std")
        ]
        diffs.append(d)
        rows.append(f"| {s['split_seed']} | " + " | ".join(f"{x:+.2f}" for x in d) + " |")
    if not diffs:
        return ""
    import numpy as np

    mean, std = np.mean(diffs, axis=0), np.std(diffs, axis=0)
    head = ["| split | kNN All | kNN Few | kNN Std | probe (b) All | probe (b) Few | probe (b) Std |",
            "|---|---|---|---|---|---|---|"]  # fmt: skip
    tail = [
        "| mean ± std | "
        + " | ".join(f"{m:+.2f} ± {v:.2f}" for m, v in zip(mean, std, strict=True))
        + " |"
    ]
    return (
        "\n".join(
            ["Student minus SimCLR, same split and ID epochs (test):", "", *head, *rows, *tail]
        )
        + "\n"
    )


def main(log_dir: str, out_dir: str) -> None:
    log, out = Path(log_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Search trials (split 0, validation split; test numbers are not read)", ""]
    ref = sorted((log / "campaign_search_ref").rglob("results.json"))
    if ref:
        r = json.loads(ref[0].read_text())
        knn = r["val_metrics"]["knn"]
        lines += [
            f"SimCLR, {r['epochs']} epochs: val kNN All {fmt(knn['all'])}, Few {fmt(knn['few'])}, "
            f"train {r['train_time_s']:.0f} s.",
            "",
        ]
    lines += [
        "| trial | overrides | guide / student epochs | guide val kNN All | student val kNN All | "
        "student val kNN Few | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    runs = {}  # search settings -> (run name, overrides shown, guide and student results)
    for run in sorted((log / "campaign_search" / "multirun").glob("pipeline_*")):
        student, guide = run / "student" / "results.json", run / "guide" / "results.json"
        if not student.is_file():
            continue
        s, g = json.loads(student.read_text()), json.loads(guide.read_text())
        overrides = OmegaConf.load(run / ".hydra" / "overrides.yaml")
        tuned = [o for o in overrides if "=" in o and not o.startswith(("task_name", "data", "model",
                 "trainer", "ood=", "ood.candidates", "eval", "hparams_search", "stages.total"))]  # fmt: skip
        tuned = ["=".join((current(o.split("=", 1)[0]), o.split("=", 1)[1])) for o in tuned]
        runs[frozenset(tuned)] = (run.name[-8:], tuned, g, s)
    # Optuna's own trial list (numbers, order): a trial that proposed settings an earlier trial
    # had already run reused that run directory (trusted runs: same settings, same directory).
    study = optuna.load_study(
        study_name="ltcl_method_val", storage=f"sqlite:///{log}/campaign_search.db"
    )
    seen = {}
    for trial in study.trials:
        key = frozenset(f"{current(k)}={v}" for k, v in trial.params.items())
        if key not in runs:
            lines.append(f"| {trial.number} | (no run directory found) | | | | | |")
            continue
        name, tuned, g, s = runs[key]
        wall = (g.get("train_time_s") or 0) + (s.get("train_time_s") or 0)
        again = f" (= trial {seen[key]}: run reused)" if key in seen else ""
        seen.setdefault(key, trial.number)
        lines.append(
            f"| {trial.number}{again} ({name}) | {' '.join(tuned)} | {g['epochs']} / {s['epochs']} | "
            f"{fmt(g['val_metrics']['knn']['all'])} | {fmt(s['val_metrics']['knn']['all'])} | "
            f"{fmt(s['val_metrics']['knn']['few'])} | {wall:.0f} |"
        )
    lines += ["", f"{len(study.trials)} trials, {len(seen)} distinct settings."]
    best = log / "campaign_search" / "multirun" / "optimization_results.yaml"
    if best.is_file():
        b = OmegaConf.load(best)
        lines += ["", f"Best (Optuna): value {b.best_value:.2f}, "
                  + " ".join(f"{current(k)}={v}" for k, v in b.best_params.items())]  # fmt: skip
    (out / "search.md").write_text("\n".join(lines) + "\n")
    paired = paired_differences(log / "campaign_final" / "multirun")
    (out / "paired.md").write_text(paired)
    lines += ["", paired]
    runs = out / "runs"
    for task in ("campaign_final", "campaign_final_random", "campaign_final_colt"):
        for path in sorted((log / task).rglob("results.json")):
            rel = path.relative_to(log / task)
            target = runs / task / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    print("\n".join(lines))


def copy_tier_runs(log_dir: str, out_dir: str, tier: str) -> None:
    """Copy every results.json of the tier's final tasks (campaign_final*<tier>) into
    <out dir>/runs<tier>/<task>/..., the record the tier's tables and plot are rebuilt from."""
    log, out = Path(log_dir), Path(out_dir) / f"runs{tier}"
    for task in sorted(log.glob(f"campaign_final*{tier}")):
        for path in sorted(task.rglob("results.json")):
            target = out / task.name / path.relative_to(task)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
            print(target)


if __name__ == "__main__":
    # python benchmarks/campaign/campaign_summary.py <log dir> <out dir> [--tier _medium]
    if len(sys.argv) == 5 and sys.argv[3] == "--tier":
        copy_tier_runs(sys.argv[1], sys.argv[2], sys.argv[4])
    else:
        main(*sys.argv[1:3])
