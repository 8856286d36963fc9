"""The campaign's final runs side by side per split, and the paired differences the README
quotes (each pair shares the split; the two runs differ in one thing).

    python benchmarks/campaign_pairs.py <log dir> [out.md] [--tier _medium]

<log dir> holds the tasks of benchmarks/campaign_cifar10_lt_cpu.sh: campaign_final (the method
with a schedule per stage + SimCLR), campaign_final_one_schedule (step 3s), campaign_final_random
and campaign_final_colt (controls), campaign_final_simclr_images_e45 / _e60 (step 4). Images
processed, in ID epochs' worth: SimCLR 30 -> 1x; the method (guide 15 on ID + 1:1 OOD, student
15) and SimCLR 45 -> 1.5x; the controls (30 epochs at 1:1) and SimCLR 60 -> 2x. With
--tier, every task name carries that suffix (the medium tier's runs), and SimCLR 30 is its own
task (campaign_final_simclr_images_e30<tier>) rather than the pipeline's simclr stage.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

KEYS = [("knn", "all"), ("knn", "few"), ("knn", "std"), ("linear", "all"), ("linear", "few"),
        ("linear", "std")]  # fmt: skip
HEADER = ["kNN All", "kNN Few", "kNN Std", "probe (b) All", "probe (b) Few", "probe (b) Std"]
RUNS = {  # name: (task, stage sub-directory or None, images processed)
    "SimCLR 30": ("campaign_final", "simclr", "1x"),
    "SimCLR 45": ("campaign_final_simclr_images_e45", None, "1.5x"),
    "method, per-stage schedule": ("campaign_final", "student", "1.5x"),
    "method, one schedule": ("campaign_final_one_schedule", "student", "1.5x"),
    "SimCLR 60": ("campaign_final_simclr_images_e60", None, "2x"),
    "random-OOD control": ("campaign_final_random", None, "2x"),
    "COLT-rule control": ("campaign_final_colt", None, "2x"),
}
PAIRS = [  # (a, b): a minus b
    ("method, one schedule", "SimCLR 30"),
    ("method, one schedule", "method, per-stage schedule"),
    ("SimCLR 45", "method, one schedule"),
    ("random-OOD control", "SimCLR 30"),
    ("random-OOD control", "SimCLR 60"),
    ("COLT-rule control", "random-OOD control"),
    ("COLT-rule control", "SimCLR 60"),
]


TIER_PAIRS = [
    ("method, one schedule", "SimCLR, same ID epochs"),
    ("method, one schedule", "SimCLR, same images"),
    ("method, one schedule", "guide alone"),
    ("random-OOD control", "SimCLR, same ID epochs"),
    ("method, one schedule", "random-OOD control"),
]


def tier_runs(log: Path, tier: str) -> dict[str, tuple[str, str | None, str]]:
    """The medium tier's runs (benchmarks/campaign_medium_cifar10_lt_cpu.sh): the method with
    one schedule (and its guide), SimCLR at the shortest and longest budget found, the controls."""
    budgets = sorted(
        int(p.name.removeprefix("campaign_final_simclr_images_e").removesuffix(tier))
        for p in log.glob(f"campaign_final_simclr_images_e*{tier}")
    )
    pipeline = log / f"campaign_final_one_schedule{tier}" / "multirun"
    guide = next(iter(sorted(pipeline.glob("*split*/guide/results.json"))), None)
    guide_images = method_images = "?"
    if guide is not None and budgets:  # images processed, in units of SimCLR's shortest budget
        r = json.loads(guide.read_text())
        ratio, epochs = r["config"]["ood"]["batch_ratio"], r["epochs"]
        method_images = f"{(epochs * (1 + ratio) + budgets[0] - epochs) / budgets[0]:.3g}x"
        guide_images = f"{epochs * (1 + ratio) / budgets[0]:.3g}x"
    specs = {
        "guide alone": (f"campaign_final_one_schedule{tier}", "guide", guide_images),
        "method, one schedule": (f"campaign_final_one_schedule{tier}", "student", method_images),
        "random-OOD control": (f"campaign_final_random{tier}", None, "ID + OOD"),
    }
    # SimCLR's shortest budget is the same ID epochs; a longer one, the same images processed.
    for name, e in zip(
        ("SimCLR, same ID epochs", "SimCLR, same images"),
        budgets[:1] + budgets[1:][-1:],
        strict=False,
    ):
        specs[name] = (
            f"campaign_final_simclr_images_e{e}{tier}",
            None,
            f"{e / budgets[0]:.3g}x ({e} epochs)",
        )
    return specs


def by_split(log: Path, task: str, stage: str | None) -> dict[str, list[float]]:
    out = {}
    for path in sorted((log / task / "multirun").glob("*split*")):
        results = path / stage / "results.json" if stage else path / "results.json"
        if results.is_file():
            split = next(p for p in path.name.split("_") if p.startswith("split"))
            metrics = json.loads(results.read_text())["metrics"]
            out[split] = [metrics[p][g] for p, g in KEYS]
    return out


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def main(log_dir: str, out: str | None = None, tier: str = "") -> None:
    log = Path(log_dir)
    specs, pairs = (tier_runs(log, tier), TIER_PAIRS) if tier else (dict(RUNS), PAIRS)
    runs = {name: by_split(log, task, stage) for name, (task, stage, _) in specs.items()}
    lines = [row(["split", "run", "images", *HEADER]), row(["---"] * (3 + len(HEADER)))]
    for split in sorted({s for r in runs.values() for s in r}):
        for name, values in runs.items():
            if split in values:
                images = specs[name][2]
                lines.append(row([split, name, images, *(f"{v:.2f}" for v in values[split])]))
    lines += ["", row(["a minus b, paired by split", "splits", *HEADER]),
              row(["---"] * (2 + len(HEADER)))]  # fmt: skip
    for a, b in pairs:
        splits = sorted(set(runs.get(a, {})) & set(runs.get(b, {})))
        if not splits:
            continue
        diffs = [[x - y for x, y in zip(runs[a][s], runs[b][s], strict=True)] for s in splits]
        cells = []
        for column in zip(*diffs, strict=True):
            per_split = " / ".join(f"{d:+.2f}" for d in column)
            std = statistics.pstdev(column) if len(column) > 1 else 0.0
            cells.append(f"{statistics.fmean(column):+.2f} ± {std:.2f} ({per_split})")
        lines.append(row([f"{a} - {b}", ",".join(s[5:] for s in splits), *cells]))
    text = "\n".join(lines) + "\n"
    if out:
        Path(out).write_text(text)
    print(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("log_dir")
    parser.add_argument("out", nargs="?")
    parser.add_argument("--tier", default="")
    args = parser.parse_args()
    main(args.log_dir, args.out, args.tier)
