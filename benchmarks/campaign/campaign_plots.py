"""Per-class test accuracy against training count, one line per method, mean over splits.

    python benchmarks/campaign/campaign_plots.py <dir with the final runs' results.json> <out.png>

Reads every results.json below the directory, groups them by (method, task), and plots the
probe (b) and kNN per-class accuracies against each class's training count (log scale), so
that a reader sees where a method gains or loses: head or tail.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def medium_label(task: str, r: dict) -> str | None:
    """The medium tier's line for a run, or None for the runs left out of the plot so that it
    stays readable (the other settings of the method: their numbers are in the tables)."""
    if "simclr_images" in task:
        return f"SimCLR, {r['epochs']} epochs"
    if task.startswith("campaign_final_one_schedule"):
        return {"student": "the method", "guide": "guide alone"}.get(r["method"], r["method"])
    if task.startswith("campaign_final_retuned"):  # step 3u: its student only
        return "the method, re-tuned stage 1" if r["method"] == "student" else None
    names = {"random": "random-OOD control", "colt": "COLT-rule control",
             "guide": "tuned guide, whole budget"}  # fmt: skip
    for control, name in names.items():
        if task.startswith(f"campaign_final_{control}_"):
            return name
    return None


def main(runs_dir: str, out: str) -> None:
    groups: dict[str, list[dict]] = defaultdict(list)
    for path in sorted(Path(runs_dir).rglob("results.json")):
        r = json.loads(path.read_text())
        task = r.get("config", {}).get("task_name", "")
        if task.endswith("_medium"):  # the medium tier: name each run by what it is
            label = medium_label(task, r)
            if label is None:
                continue
        else:
            label = (
                r["method"]
                if task == "campaign_final"
                else f"{r['method']} ({task.split('_')[-1]} OOD)"
            )
        groups[label].append(r)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    for ax, key, title in ((axes[0], "linear_acc", "probe (b)"), (axes[1], "knn_acc", "kNN")):
        for label, runs in sorted(groups.items()):
            # classes ranked by training count (rank 0 = head), averaged over splits
            per_rank, counts = [], []
            for r in runs:
                order = np.argsort(r["per_class"]["train_count"])[::-1]
                per_rank.append(np.asarray(r["per_class"][key])[order])
                counts.append(np.asarray(r["per_class"]["train_count"])[order])
            mean = np.mean(per_rank, axis=0)
            ax.plot(np.mean(counts, axis=0), mean, marker="o", label=f"{label} (n={len(runs)})")
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("training images of the class (head -> tail)")
        ax.set_title(f"per-class test accuracy, {title}, mean over splits")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
