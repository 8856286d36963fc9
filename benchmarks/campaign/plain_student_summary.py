"""The plain SimCLR student (stage 2's validation choice on the medium tier,
experiment=method_tuned_medium_plain_student_cpu) against SimCLR, the method and the OOD
controls on the splits never tuned on, at 30, 100 and 200 ID epochs (docs/research_record.md 8.11).

    python benchmarks/campaign/plain_student_summary.py [results dir] [--out <prefix>]

Reads the copied results.json files under benchmarks/campaign/results/campaign_cifar10_lt_cpu
(runs_medium, runs_medium_plain, runs_medium_e100, runs_medium_e200) and writes <prefix>.md, <prefix>.json and
<prefix>.png: per split, mean ± population std over splits, and paired differences (each pair
shares the split). Before it reports, it checks what the pairing assumes: the plain student
differs from the method's student on the same split only in the three stage-2 switches, and
trained from the same guide (the same guide metrics, or the same guide checkpoint).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from campaign_pairs import WHERE_KEYS, flat, row

GROUPS = ("all", "many", "medium", "few", "std")
METRICS = [(protocol, group) for protocol in ("knn", "linear") for group in GROUPS]
HEADER = [f"{name} {group.capitalize() if group != 'std' else 'Std'}"
          for name in ("kNN", "probe (b)") for group in GROUPS]  # fmt: skip
PROBE_ALL, PROBE_FEW = HEADER.index("probe (b) All"), HEADER.index("probe (b) Few")
# The keys the plain student changes, and keys in which two runs of one split may differ
# without being different experiments (names, paths, where the guide checkpoint lies).
SWITCHES = {"method.k_pos", "method.lambda_dl", "method.repulsion_weights"}
WHERE = (*WHERE_KEYS, "method.guide_checkpoint")

PIPE_30 = "runs_medium/campaign_final_retuned_medium/multirun"
PLAIN_30 = "runs_medium_plain/campaign_final_retuned_medium_plain/multirun"
PIPE_100 = "runs_medium_e100/campaign_final_retuned_medium_e100/multirun"
# 200 ID epochs: the shipped preset itself (experiment=method_tuned_medium_plain_student_cpu)
PRESET_200 = "runs_medium_e200/campaign_final_plain_preset_medium_e200/multirun"
# budget: [(row, glob of one split's results.json with {split}, images in SimCLR units)]
BUDGETS = {
    "30 ID epochs": [
        ("SimCLR, 30 epochs", "runs_medium/campaign_final_simclr_images_e30_medium/multirun/*_split{split}_*/results.json", "1x"),
        ("SimCLR, 34 epochs (the method's images)", "runs_medium/campaign_final_simclr_images_e34_medium/multirun/*_split{split}_*/results.json", "1.13x"),
        ("SimCLR + random OOD", "runs_medium/campaign_final_random_medium/multirun/*_split{split}_*/results.json", "1.25x"),
        ("COLT's rule", "runs_medium/campaign_final_colt_medium/multirun/*_split{split}_*/results.json", "1.25x"),
        ("the re-tuned guide alone, 15 epochs", PIPE_30 + "/*_split{split}_*/guide/results.json", "0.625x"),
        ("the method (guide 15 + student 15)", PIPE_30 + "/*_split{split}_*/student/results.json", "1.125x"),
        ("the plain student (guide 15 + SimCLR 15)", PLAIN_30 + "/*_split{split}_*/student/results.json", "1.125x"),
    ],
    "100 ID epochs": [
        ("SimCLR, 100 epochs", "runs_medium_e100/campaign_final_simclr_images_e100_medium_e100/multirun/*_split{split}_*/results.json", "1x"),
        ("the re-tuned guide alone, 50 epochs", PIPE_100 + "/*_split{split}_*/guide/results.json", "0.625x"),
        ("the method (guide 50 + student 50)", PIPE_100 + "/*_split{split}_*/student/results.json", "1.125x"),
        ("the plain student (guide 50 + SimCLR 50)", "runs_medium_e100/plain_student_medium_e100/*_split{split}_*/results.json", "1.125x"),
    ],
    "200 ID epochs": [
        ("SimCLR, 200 epochs", "runs_medium_e200/campaign_final_simclr_images_e200_medium_e200/multirun/*_split{split}_*/results.json", "1x"),
        ("the re-tuned guide alone, 100 epochs", PRESET_200 + "/*_split{split}_*/guide/results.json", "0.625x"),
        ("the plain student (guide 100 + SimCLR 100)", PRESET_200 + "/*_split{split}_*/student/results.json", "1.125x"),
    ],
}  # fmt: skip
PAIRS = [  # (a, b): a minus b, where both exist
    ("the plain student", "SimCLR, 30 epochs"),
    ("the plain student", "SimCLR, 100 epochs"),
    ("the plain student", "SimCLR, 200 epochs"),
    ("the plain student", "SimCLR, 34 epochs"),
    ("the plain student", "the method"),
    ("the plain student", "SimCLR + random OOD"),
    ("the plain student", "COLT's rule"),
    ("the method", "SimCLR, 30 epochs"),
    ("the method", "SimCLR, 100 epochs"),
]
SPLITS = (1, 2, 3)


def find(root: Path, pattern: str, split: int) -> Path | None:
    found = sorted(root.glob(pattern.format(split=split)))
    if len(found) > 1:
        raise SystemExit(
            f"{len(found)} runs match {pattern.format(split=split)}: keep one per split"
        )
    return found[0] if found else None


def check_pairing(plain: Path, method: Path) -> str:
    """The plain student and the method's student of one split must differ in the stage-2
    switches only and share their guide; returns how the guide was checked."""
    a, b = (flat(json.loads(p.read_text())["config"]) for p in (plain, method))
    differ = {k for k in set(a) | set(b) if a.get(k) != b.get(k) and not k.startswith(WHERE)}
    if differ != SWITCHES:
        raise SystemExit(f"{plain} and {method} differ in {sorted(differ)}, not {sorted(SWITCHES)}")
    if a["method.k_pos"] != 0 or a["method.lambda_dl"] != 0 or a["method.repulsion_weights"]:
        raise SystemExit(f"{plain} is not the plain student (k_pos 0, lambda_dl 0, no weights)")
    guide_a, guide_b = (Path(str(c["method.guide_checkpoint"])) for c in (a, b))
    if guide_a.parent.parent.parent.name == guide_b.parent.parent.parent.name:
        return "the same guide checkpoint"
    metrics = [
        json.loads((p.parent.parent / "guide" / "results.json").read_text())["metrics"]
        for p in (plain, method)
    ]
    if metrics[0] != metrics[1]:
        raise SystemExit(f"the guides of {plain} and {method} differ: not a paired comparison")
    return "guides with identical test metrics (the same guide, retrained)"


def guide_seconds(root: Path, path: Path, config: dict) -> float | None:
    """A student's guide's training seconds: its pipeline's guide/ or, for a student trained
    from a recorded pipeline's guide, that pipeline's guide among the copied runs."""
    checkpoint = (config.get("method") or {}).get("guide_checkpoint")
    if not checkpoint:
        return None
    sibling = path.parent.parent / "guide" / "results.json"
    if sibling.is_file():
        found = [sibling]
    else:  # <log>/<task>[/multirun]/<pipeline>/guide/checkpoints/last.ckpt: match task and run
        parts = Path(checkpoint).parts
        pipeline, task = parts[-4], parts[-5] if parts[-5] != "multirun" else parts[-6]
        found = sorted(root.glob(f"**/{task}/**/{pipeline}/guide/results.json"))
        found += sorted(root.glob(f"**/{task}/{pipeline}/guide/results.json"))
    return json.loads(found[0].read_text())["train_time_s"] if found else None


def ranked_per_class(record: dict) -> dict:
    """Per-class test accuracies (probe (b), kNN) ordered head to tail by training count."""
    per_class = record["per_class"]
    order = sorted(range(len(per_class["train_count"])), key=lambda c: -per_class["train_count"][c])
    return {key: [per_class[name][c] for c in order]
            for key, name in (("train_count", "train_count"), ("linear", "linear_acc"),
                              ("knn", "knn_acc"))}  # fmt: skip


def seconds_text(runs: list[dict]) -> str:
    """Mean training seconds over splits, as "guide + student" for a student."""
    own = statistics.fmean(r["train_s"] for r in runs)
    guides = [r["guide_train_s"] for r in runs]
    if all(g is not None for g in guides):
        return f"{statistics.fmean(guides):.0f} + {own:.0f}"
    return f"{own:.0f}"


def short(name: str) -> str:
    """A row's name without its parenthesis (the epochs of each stage)."""
    return name.split(" (")[0]


def summarise(root: Path) -> dict:
    report = {}
    for budget, rows in BUDGETS.items():
        table = {}
        for name, pattern, images in rows:
            per_split = {}
            for split in SPLITS:
                path = find(root, pattern, split)
                if path is not None:
                    r = json.loads(path.read_text())
                    per_split[split] = {
                        "metrics": [r["metrics"][p][g] for p, g in METRICS],
                        "train_s": r["train_time_s"],
                        "capped": r["epochs"] < r["config"]["trainer"]["max_epochs"],
                        "guide_train_s": guide_seconds(root, path, r["config"]),
                        "per_class": ranked_per_class(r),
                        "path": path,
                    }
            if per_split:
                table[name] = {"images": images, "splits": per_split}
        if not table:  # a budget not run (e.g. the GPU tier before a device was lent)
            continue
        plain = next((n for n in table if n.startswith("the plain student")), None)
        method = next((n for n in table if n.startswith("the method")), None)
        checks = {
            split: check_pairing(table[plain]["splits"][split]["path"], run["path"])
            for split, run in (table[method]["splits"].items() if plain and method else ())
            if split in table[plain]["splits"]
        }
        pairs = []
        for a_prefix, b_prefix in PAIRS:
            a = next((n for n in table if n.startswith(a_prefix)), None)
            b = next((n for n in table if n.startswith(b_prefix)), None)
            if a is None or b is None:
                continue
            splits = sorted(set(table[a]["splits"]) & set(table[b]["splits"]))
            if not splits:
                continue
            diffs = [
                [x - y for x, y in zip(table[a]["splits"][s]["metrics"],
                                       table[b]["splits"][s]["metrics"], strict=True)]
                for s in splits
            ]  # fmt: skip
            pairs.append({"a": a, "b": b, "splits": splits, "diffs": diffs})
        report[budget] = {"rows": table, "pairs": pairs, "pairing_checked": checks}
    return report


def mean_std(values: list[float]) -> str:
    std = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.2f} ± {std:.2f}"


def markdown(report: dict) -> str:
    lines = []
    for budget, part in report.items():
        lines += [f"### {budget}, test, mean ± population std over splits", ""]
        lines += [
            row(["run", "splits", "images", *HEADER, "train s"]),
            row(["---"] * (4 + len(HEADER))),
        ]
        for name, entry in part["rows"].items():
            runs = entry["splits"]
            columns = list(zip(*(r["metrics"] for r in runs.values()), strict=True))
            capped = [str(s) for s, r in runs.items() if r["capped"]]
            if capped:  # stopped by trainer.max_time before its epochs: not at the budget
                name = f"{name} **(stopped early on split {','.join(capped)})**"
            lines.append(row([name, ",".join(map(str, runs)), entry["images"],
                              *(mean_std(list(c)) for c in columns),
                              seconds_text(list(runs.values()))]))  # fmt: skip
        lines += [
            "",
            row(["a minus b, paired by split", "splits", *HEADER]),
            row(["---"] * (2 + len(HEADER))),
        ]
        for pair in part["pairs"]:
            cells = []
            for column in zip(*pair["diffs"], strict=True):
                per_split = " / ".join(f"{d:+.2f}" for d in column)
                mean = mean_std(list(column))
                cells.append(f"{'' if mean.startswith('-') else '+'}{mean} ({per_split})")
            lines.append(row([f"{short(pair['a'])} − {short(pair['b'])}",
                              ",".join(map(str, pair["splits"])), *cells]))  # fmt: skip
        checked = "; ".join(f"split {s}: {how}" for s, how in part["pairing_checked"].items())
        lines += ["", "Pairing checked (plain student vs the method's student, per split): "
                  + (checked or "no method student at this budget"), ""]  # fmt: skip
        lines += per_class_lines(part)
        lines += [
            "Per split:",
            "",
            row(["split", "run", *HEADER, "train s"]),
            row(["---"] * (3 + len(HEADER))),
        ]
        for split in SPLITS:
            for name, entry in part["rows"].items():
                run = entry["splits"].get(split)
                if run:
                    cells = [f"{v:.2f}" for v in run["metrics"]]
                    lines.append(row([str(split), name, *cells, seconds_text([run])]))
        lines.append("")
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    """Each run minus SimCLR at the same ID epochs (the budget's first row), probe (b) All and
    Few, a dot per split and a bar for the mean, with the issue's target as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(report), figsize=(7 * len(report), 4.5), squeeze=False)
    for ax, (budget, part) in zip(axes[0], report.items(), strict=True):
        reference, *names = list(part["rows"])
        base = part["rows"][reference]["splits"]
        for offset, (column, label, target) in enumerate(
            ((PROBE_ALL, "probe (b) All", 1.5), (PROBE_FEW, "probe (b) Few", 3.0))
        ):
            x = [i + 0.2 * (offset * 2 - 1) for i in range(len(names))]
            means = []
            for xi, name in zip(x, names, strict=True):
                runs = part["rows"][name]["splits"]
                diffs = [r["metrics"][column] - base[s]["metrics"][column]
                         for s, r in runs.items() if s in base]  # fmt: skip
                means.append(statistics.fmean(diffs) if diffs else 0.0)
                ax.scatter([xi] * len(diffs), diffs, s=10, c="k", zorder=3)
            bars = ax.bar(x, means, width=0.4, label=label)
            ax.axhline(target, ls="--", lw=1, color=bars.patches[0].get_facecolor(),
                       label=f"target, {label.split()[-1]} (+{target:g})")  # fmt: skip
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([short(n) for n in names], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(f"test accuracy minus {short(reference)} (points)")
        ax.set_title(f"{budget}, paired by split (dots: splits)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


PER_CLASS_ROWS = ("the method", "the plain student", "SimCLR + random OOD")
PER_CLASS_COLOURS = {"the method": "C1", "the plain student": "C2", "SimCLR + random OOD": "C0"}


def per_class_differences(part: dict) -> dict:
    """Per class (head to tail), each of PER_CLASS_ROWS minus SimCLR at the same ID epochs (the
    budget's first row), probe (b) test accuracy, one list per split both ran."""
    reference, *names = list(part["rows"])
    base = part["rows"][reference]["splits"]
    out = {}
    for name in names:
        if not name.startswith(PER_CLASS_ROWS):
            continue
        runs = part["rows"][name]["splits"]
        out[name] = {
            s: [a - b for a, b in zip(r["per_class"]["linear"], base[s]["per_class"]["linear"],
                                      strict=True)]
            for s, r in runs.items() if s in base
        }  # fmt: skip
    counts = [statistics.fmean(c) for c in zip(*(r["per_class"]["train_count"] for r in base.values()), strict=True)]  # fmt: skip
    return {"reference": reference, "train_count": counts, "differences": out}


def per_class_lines(part: dict) -> list[str]:
    """The per-class differences as a table: mean over splits per class, head to tail, and the
    means over the 3 largest, 4 middle and 3 smallest classes (CIFAR-10's 10 classes)."""
    data = per_class_differences(part)
    counts = [f"{c:.0f}" for c in data["train_count"]]
    lines = [f"Per class, probe (b) minus {data['reference']}, mean over splits (head -> tail):",
             "", row(["run", "splits", *counts, "3 largest", "4 middle", "3 smallest"]),
             row(["---"] * (5 + len(counts)))]  # fmt: skip
    for name, per_split in data["differences"].items():
        if not per_split:
            continue
        means = [statistics.fmean(c) for c in zip(*per_split.values(), strict=True)]
        groups = [statistics.fmean(g) for g in (means[:3], means[3:-3], means[-3:])]
        lines.append(row([short(name), ",".join(map(str, per_split)),
                          *(f"{m:+.2f}" for m in means + groups)]))  # fmt: skip
    return [*lines, ""]


def plot_per_class(report: dict, path: Path) -> None:
    """Where the gain lands: per-class probe (b) accuracy minus SimCLR's, classes from head to
    tail, mean over splits (line) and each split (dots), one panel per budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(report), figsize=(6.5 * len(report), 4.5), squeeze=False)
    for ax, (budget, part) in zip(axes[0], report.items(), strict=True):
        data = per_class_differences(part)
        ranks = range(len(data["train_count"]))
        for name, per_split in data["differences"].items():
            if not per_split:
                continue
            kind = next(k for k in PER_CLASS_ROWS if name.startswith(k))
            x = [r + 0.12 * (PER_CLASS_ROWS.index(kind) - 1) for r in ranks]
            columns = list(zip(*per_split.values(), strict=True))
            label = f"{short(name)} (splits {','.join(map(str, per_split))})"
            ax.plot(x, [statistics.fmean(c) for c in columns], marker="o", label=label,
                    color=PER_CLASS_COLOURS[kind])  # fmt: skip
            for split_diffs in per_split.values():
                ax.scatter(x, split_diffs, s=8, color=PER_CLASS_COLOURS[kind], alpha=0.5)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(list(ranks))
        ax.set_xticklabels([f"{c:.0f}" for c in data["train_count"]], fontsize=8)
        ax.set_xlabel("training images of the class (head -> tail)")
        ax.set_ylabel(f"probe (b) accuracy minus {short(data['reference'])} (points)")
        ax.set_title(f"{budget}: per-class gain over SimCLR, test")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "root", nargs="?", default="benchmarks/campaign/results/campaign_cifar10_lt_cpu"
    )
    parser.add_argument(
        "--out", default="benchmarks/campaign/results/campaign_cifar10_lt_cpu/plain_student"
    )
    args = parser.parse_args()
    report = summarise(Path(args.root))
    text = markdown(report)
    out = Path(args.out)
    out.with_suffix(".md").write_text(text)
    serialisable = {
        budget: {
            "rows": {
                name: {
                    "images": e["images"],
                    "splits": {
                        str(s): {
                            "metrics": dict(zip(HEADER, r["metrics"], strict=True)),
                            "train_s": r["train_s"],
                            "guide_train_s": r["guide_train_s"],
                            "run": str(r["path"].relative_to(args.root)),
                        }  # fmt: skip
                        for s, r in e["splits"].items()
                    },
                }
                for name, e in part["rows"].items()
            },
            "pairs": [
                {**p, "diffs": [dict(zip(HEADER, d, strict=True)) for d in p["diffs"]]}
                for p in part["pairs"]
            ],
            "pairing_checked": {str(s): how for s, how in part["pairing_checked"].items()},
            "per_class_probe_b_minus_simclr": per_class_differences(part),
        }
        for budget, part in report.items()
    }
    out.with_suffix(".json").write_text(json.dumps(serialisable, indent=1))
    plot(report, out.with_suffix(".png"))
    plot_per_class(report, out.with_name(out.name + "_per_class.png"))
    print(text)


if __name__ == "__main__":
    main()
