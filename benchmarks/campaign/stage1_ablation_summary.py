"""The medium tier's stage-1 ablation table (benchmarks/campaign/stage1_ablation_medium_cpu.sh):
split 0, *validation* kNN and probe (b), one run per row (a guide alone, SimCLR, or a whole
pipeline: its student), each against the random-OOD control.

    python benchmarks/campaign/stage1_ablation_summary.py <log dir> --out <dir>

Only validation numbers: these are tuning decisions. Writes <out>/summary.md and
<out>/summary.json (the rows' overrides are read back from each run's recorded config).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

PREFIX = "stage1_medium_"
KEYS = ("all", "few", "std")
STAGE1_KEYS = ("beta", "beta_normalization", "lambda_dd", "domain_loss")
STUDENT_KEYS = ("k_pos", "lambda_dl", "repulsion_weights")


def stage1_settings(config: dict) -> dict:
    method = config["method"]
    settings = {k: method[k] for k in STAGE1_KEYS if k in method}
    if "sampler" in method:
        settings["sampler"] = method["sampler"]["strategy"]
    return settings


def student_settings(config: dict) -> dict:
    method = config["method"]
    return {k: method[k] for k in STUDENT_KEYS if k in method and "guide_checkpoint" in method}


def id_epochs_of_images(r: dict) -> float:
    """Images processed in ID epochs' worth: a guide's epoch adds ood.batch_ratio OOD images
    per ID image."""
    return r["epochs"] * (1 + ((r["config"].get("ood") or {}).get("batch_ratio", 0)))


def collect(log_dir: Path, prefix: str = PREFIX) -> dict[str, dict]:
    """{row: the run's validation metrics, images, seconds and settings}; a student row (a
    pipeline's, stage1_medium_method_*, or one trained from a guide checkpoint) adds its
    guide's images and time, and shows the guide's stage-1 settings and its own."""
    rows = {}
    for task in sorted(log_dir.glob(prefix + "*")):
        runs = sorted(task.glob("multirun/*/results.json"))[:1]
        runs = runs or sorted(task.glob("multirun/*/student/results.json"))[:1]
        if not runs:
            continue
        r = json.loads(runs[0].read_text())
        parts = [r]
        checkpoint = r["config"]["method"].get("guide_checkpoint")
        if checkpoint:  # a student: its guide first
            parts.insert(
                0, json.loads((Path(checkpoint).parent.parent / "results.json").read_text())
            )
        rows[task.name.removeprefix(prefix)] = {
            "knn": {k: r["val_metrics"]["knn"][k] for k in KEYS},
            "linear": {k: r["val_metrics"]["linear"][k] for k in KEYS},
            "id_epochs_of_images": sum(id_epochs_of_images(p) for p in parts),
            "train_seconds": sum(p["train_time_s"] for p in parts),
            "settings": {**stage1_settings(parts[0]["config"]), **student_settings(r["config"])},
            "run": str(runs[0].parent),
        }
    return rows


def table(rows: dict[str, dict], control: str = "random_ood") -> str:
    base = rows.get(control)
    lines = [
        "| row | settings | images (ID epochs) | val kNN All | Few | Std | val probe (b) All | Few | Std "
        f"| kNN All − {control} | probe All − {control} | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in sorted(rows.items(), key=lambda item: -item[1]["linear"]["all"]):
        settings = ", ".join(f"{k} {v}" for k, v in r["settings"].items()) or "SimCLR"
        cells = [f"{r[p][k]:.2f}" for p in ("knn", "linear") for k in KEYS]
        deltas = (
            [f"{r[p]['all'] - base[p]['all']:+.2f}" for p in ("knn", "linear")]
            if base
            else ["–", "–"]
        )
        lines.append(
            f"| {name} | {settings} | {r['id_epochs_of_images']:.3g} | "
            + " | ".join(cells + deltas)
            + f" | {r['train_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("log_dir", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--prefix", default=PREFIX, help="the rows' task-name prefix")
    parser.add_argument(
        "--control", default="random_ood", help="the row the others are read against"
    )
    args = parser.parse_args()
    rows = collect(args.log_dir, args.prefix)
    text = table(rows, args.control) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.md").write_text(text, encoding="utf-8")
    (args.out / "summary.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
