"""results.json: the machine-readable record of every training and evaluation run.

Schema (accuracies in %):
    {"method", "dataset", "imbalance_ratio", "split_seed", "seed", "epochs", "train_time_s",
     "metrics": {"knn": {"all","many","medium","few","std","per_class_std"},
                 "linear": {..., "protocol": "b"}, "linear_a": {...},
                 "few_shot": {"1pct": {...}, "100shot": {...}, "50shot": {...}}},   <- test split
     "val_metrics": {"knn": {...}, "linear": {...}},   <- validation split (what tuning reads)
     "per_class": {"train_count": [...], "knn_acc": [...], "linear_acc": [...]},
     "class_groups", "split" (index files and their sha256), "config" (resolved), ...}
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import lightning as L
import torch

from ltcl.utils.files import atomic_write_json

GROUP_KEYS = ("all", "many", "medium", "few", "std")


def environment() -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "lightning": L.__version__,
        "python": platform.python_version(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "cpu_count": os.cpu_count(),
    }


def build_results(
    *,
    method: str,
    data_summary: dict[str, Any],
    evaluation: dict[str, Any],
    config: dict[str, Any],
    seed: int | None,
    epochs: int | None,
    train_time_s: float | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    split = (config.get("data") or {}).get("split") or {}
    return {
        "method": method,
        "dataset": data_summary["dataset"],
        "imbalance_ratio": split.get("imbalance_ratio"),
        "split_seed": split.get("seed"),
        "seed": seed,
        "epochs": epochs,
        "train_time_s": None if train_time_s is None else round(train_time_s, 2),
        "train_images": data_summary["train_images"],
        # test split: for reporting only
        "metrics": evaluation.get("metrics", {}),
        # the held-out balanced validation split: what tuning (objective=val_metrics.*) reads
        "val_metrics": evaluation.get("val_metrics", {}),
        "per_class": evaluation.get("per_class", {"train_count": data_summary["class_counts"]}),
        "class_groups": data_summary["class_groups"],
        "evaluation_time_s": evaluation.get("timing_s", {}),
        "split": data_summary["split"],
        **(extra or {}),
        "environment": environment(),
        "config": config,
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Atomic write, so that a reader (ltcl-report, a sweeper) never sees half a file."""
    atomic_write_json(path, payload)


def write_results(
    run_dir: Path,
    results: dict[str, Any],
    features=None,
    plots: bool = True,
    projection: str = "pca",
) -> list[Path]:
    """results.json plus the PNG plots next to it; returns the files written."""
    run_dir = Path(run_dir)
    write_json(run_dir / "results.json", results)
    written = [run_dir / "results.json"]
    if plots and results.get("metrics"):
        from ltcl.evaluation.report.plots import write_all_plots

        feats, labels = features if features is not None else (None, None)
        written += write_all_plots(
            results, run_dir, features=feats, labels=labels, projection=projection
        )
    return written


def format_summary(results: dict[str, Any]) -> str:
    """One line per protocol, for the console."""
    lines = [f"[ltcl] {results['method']} on {results['dataset']} ({results['epochs']} epochs)"]
    for name, values in (results.get("val_metrics") or {}).items():
        cells = " ".join(f"{k}={values[k]:.2f}" for k in GROUP_KEYS if k in values)
        lines.append(f"[ltcl]   {name + ' (val)':<15} {cells}")
    for name, values in results["metrics"].items():
        if isinstance(values, dict) and "all" in values:
            cells = " ".join(f"{k}={values[k]:.2f}" for k in GROUP_KEYS if k in values)
            lines.append(f"[ltcl]   {name + ' (test)':<15} {cells}")
        elif isinstance(values, dict):
            for sub, inner in values.items():
                cells = " ".join(f"{k}={inner[k]:.2f}" for k in GROUP_KEYS if k in inner)
                lines.append(f"[ltcl]   {name}/{sub:<9} {cells}")
    return "\n".join(lines)
