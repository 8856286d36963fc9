"""What the OOD sampler picked: for a guide (or COLT) run, each cluster's true ID classes, its
budget and the pool classes it took, at the last round and over all rounds.

    python benchmarks/analyses/sampler_analysis.py <run dir> [--out <dir>]

Labels are read from the data for this analysis only; the sampler never sees them. Writes
`sampler_analysis.json`, `sampler_analysis.md` and `sampler_analysis.png` into --out.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate

# Targets that moved since a run recorded its config (the architecture refactor).
MOVED = {
    "ltcl.data.datamodule.image_folder_or_archive": "ltcl.data.archives.image_folder_or_archive",
    "ltcl.data.sources.npy_array": "ltcl.data.array_sources.npy_array",
    "ltcl.data.sources.torchvision_cifar": "ltcl.data.array_sources.torchvision_cifar",
}


def current(node):
    if isinstance(node, dict):
        return {k: MOVED.get(v, v) if k == "_target_" else current(v) for k, v in node.items()}
    return node


def wnid_names(pool_root: Path) -> dict[str, str]:
    words = pool_root / "words.txt"
    if not words.is_file():
        return {}
    pairs = (line.split("\t", 1) for line in words.read_text().splitlines() if "\t" in line)
    return {wnid: name.split(",")[0].strip() for wnid, name in pairs}


def analyse(run_dir: Path) -> dict:
    results = json.loads((run_dir / "results.json").read_text())
    config = results["config"]
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["ood_sampler"]
    train_source = instantiate(current(config["data"]["train_source"]))()
    pool = instantiate(current(config["ood"]["source"]))()
    train_indices = np.load(run_dir / "split" / "train_indices.npy")
    id_labels = np.asarray(train_source.labels)[train_indices]
    names = wnid_names(Path(config["ood"]["source"].get("root", ".")))
    pool_names = [names.get(c, c) for c in pool.classes]
    clusters = state["id_pseudo_labels"]
    picked, picked_labels = state["picked"].numpy(), state["picked_labels"].numpy()
    pool_labels = np.asarray(pool.labels)[picked]
    rows = []
    budgets = state["history"][-1]["budgets"]
    for k in range(len(budgets)):
        members = id_labels[clusters.numpy() == k] if clusters is not None else np.array([])
        id_counts = Counter(train_source.classes[c] for c in members.tolist())
        took = Counter(pool_names[c] for c in pool_labels[picked_labels == k].tolist())
        rows.append(
            {
                "cluster": k,
                "size": int(len(members)),
                "budget": int(budgets[k]),
                "id_classes": dict(id_counts.most_common(3)),
                "purity": round(max(id_counts.values()) / len(members), 3) if members.size else 0,
                "pool_classes": dict(took.most_common(5)),
            }
        )
    rounds = [
        {
            "round": h["round"],
            "epoch": h["epoch"],
            "budgets": h["budgets"],
            "top_pool_classes": {
                names.get(c, c): n for c, n in list(h.get("pool_classes", {}).items())[:5]
            },
        }
        for h in state["history"]
    ]
    return {
        "run_dir": str(run_dir),
        "strategy": config["method"]["sampler"]["strategy"]
        if "sampler" in config["method"]
        else config["sampler"]["strategy"],
        "last_round": rows,
        "rounds": rounds,
    }


def to_markdown(report: dict) -> str:
    lines = [
        f"Sampler: `{report['strategy']}`; run `{report['run_dir']}`.",
        "",
        "| cluster | ID images | its true classes (top 3) | purity | budget | pool classes taken (top 5) |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["last_round"]:
        ids = ", ".join(f"{c} {n}" for c, n in r["id_classes"].items())
        took = ", ".join(f"{c} {n}" for c, n in r["pool_classes"].items())
        lines.append(
            f"| {r['cluster']} | {r['size']} | {ids} | {r['purity']} | {r['budget']} | {took} |"
        )
    lines += [
        "",
        "| round | before epoch | budgets | most picked pool classes |",
        "|---|---|---|---|",
    ]
    for r in report["rounds"]:
        top = ", ".join(f"{c} {n}" for c, n in r["top_pool_classes"].items())
        lines.append(f"| {r['round']} | {r['epoch']} | {r['budgets']} | {top} |")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["last_round"]
    fig, ax = plt.subplots(figsize=(11, 0.55 * len(rows) + 1.5))
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [r["size"] for r in rows], height=0.4, label="ID images in the cluster")
    ax.barh(y + 0.2, [r["budget"] for r in rows], height=0.4, label="OOD budget")
    labels = []
    for r in rows:
        main = next(iter(r["id_classes"]), "-")
        took = ", ".join(list(r["pool_classes"])[:3])
        labels.append(f"{r['cluster']}: {main} ({r['purity']:.0%}) <- {took}")
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("images")
    ax.set_title(
        f"Last sampling round ({report['strategy']}): cluster, its main ID class <- pool classes"
    )
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or args.run_dir
    report = analyse(args.run_dir)
    write_report(out, "sampler_analysis", report, to_markdown(report), plot)


def write_report(out: Path, stem: str, report: dict, markdown: str, plot_fn) -> None:
    """<stem>.json, <stem>.md and <stem>.png into `out` (shared by the analyses here)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2))
    (out / f"{stem}.md").write_text(markdown)
    plot_fn(report, out / f"{stem}.png")
    print(markdown)


if __name__ == "__main__":
    main()
