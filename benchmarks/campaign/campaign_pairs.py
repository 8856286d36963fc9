"""The campaign's final runs side by side per split, and the paired differences the README
quotes (each pair shares the split; the two runs differ in one thing).

    python benchmarks/campaign/campaign_pairs.py <log dir> [out.md] [--tier _medium]

<log dir> holds the tasks of benchmarks/campaign/campaign_cifar10_lt_cpu.sh: campaign_final (the method
with a schedule per stage + SimCLR), campaign_final_one_schedule (step 3s), campaign_final_random
and campaign_final_colt (controls), campaign_final_simclr_images_e45 / _e60 (step 4). Images
processed, in ID epochs' worth: SimCLR 30 -> 1x; the method (guide 15 on ID + 1:1 OOD, student
15) and SimCLR 45 -> 1.5x; the controls (30 epochs at 1:1) and SimCLR 60 -> 2x. With
--tier, every task name carries that suffix (the medium tier's runs), SimCLR 30 is its own
task (campaign_final_simclr_images_e30<tier>) rather than the pipeline's simclr stage, the
stage-2 variants (campaign_final_student_<name><tier>) and the 10-trial settings
(campaign_final_10trials<tier>) are rows too, each with the config keys in which it differs from
the method, the re-tuned stage 1 (campaign_final_retuned<tier>, step 3u) likewise, with the
keys in which its guide differs, and a per-class table (mean over splits) follows.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

from student_variants_summary import guided_precision

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
    ("random-OOD control", "SimCLR, same images"),
    ("method, one schedule", "random-OOD control"),
    ("COLT-rule control", "random-OOD control"),
    ("COLT-rule control", "SimCLR, same ID epochs"),
    ("tuned guide, whole budget", "random-OOD control"),
    ("tuned guide, whole budget", "SimCLR, same ID epochs"),
]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                   "truck"]  # fmt: skip
# Keys in which two runs of one split may differ without being different experiments.
WHERE_KEYS = ("task_name", "run_name", "paths.", "data.split_dir", "data.train_source.",
              "data.test_source.", "logger.", "trainer.default_root_dir", "ood", "ckpt_path")  # fmt: skip


def images(log: Path, task: str, stage: str | None, unit: int) -> float | None:
    """Images processed by the run of one split (the first found), in units of `unit` ID
    epochs: a guide's epoch adds ood.batch_ratio OOD images per ID image; a pipeline's student
    adds its guide's images. None when the task has no run."""
    found = sorted(
        (log / task / "multirun").glob(f"*split*/{stage + '/' if stage else ''}results.json")
    )
    if not found:
        return None
    total = 0.0
    runs = (
        [found[0]]
        if stage != "student"
        else [found[0].parent.parent / "guide" / "results.json", found[0]]
    )
    for path in runs:
        r = json.loads(path.read_text())
        ood = r["config"].get("ood") or {}
        total += r["epochs"] * (1 + (ood.get("batch_ratio", 0) if ood else 0))
    return total / unit


def times(value: float | None) -> str:
    return "?" if value is None else f"{value:.3g}x"


def tier_runs(log: Path, tier: str) -> dict[str, tuple[str, str | None, str]]:
    """The medium tier's runs (benchmarks/campaign/campaign_medium_cifar10_lt_cpu.sh): the method with
    one schedule (and its guide), SimCLR at the shortest and longest budget found, the
    controls, the stage-2 variants (step 3v) and the 10-trial settings (step 3t)."""
    budgets = sorted(
        int(p.name.removeprefix("campaign_final_simclr_images_e").removesuffix(tier))
        for p in log.glob(f"campaign_final_simclr_images_e*{tier}")
    )
    unit = budgets[0] if budgets else 1
    method = f"campaign_final_one_schedule{tier}"
    specs = {
        "guide alone": (method, "guide", times(images(log, method, "guide", unit))),
        "method, one schedule": (method, "student", times(images(log, method, "student", unit))),
    }
    for task, name in ((f"campaign_final_random{tier}", "random-OOD control"),
                       (f"campaign_final_colt{tier}", "COLT-rule control"),
                       (f"campaign_final_guide{tier}", "tuned guide, whole budget")):  # fmt: skip
        specs[name] = (task, None, times(images(log, task, None, unit)))
    for path in sorted(log.glob(f"campaign_final_student_*{tier}")):
        variant = path.name.removeprefix("campaign_final_student_").removesuffix(tier)
        # the student's images are its guide's (step 3s) plus its own
        guide = images(log, method, "guide", unit)
        own = images(log, path.name, None, unit)
        total = None if None in (guide, own) else guide + own
        specs[f"method, {variant.replace('_', ' ')}"] = (path.name, None, times(total))
    for task, name in ((f"campaign_final_10trials{tier}", "method, 10-trial settings"),
                       (f"campaign_final_retuned{tier}", "method, re-tuned stage 1")):  # fmt: skip
        if (log / task).is_dir():
            specs[name] = (task, "student", times(images(log, task, "student", unit)))
    retuned = f"campaign_final_retuned{tier}"
    if (log / retuned).is_dir():  # its guide at mid-budget, against the method's "guide alone"
        specs["re-tuned guide alone"] = (
            retuned,
            "guide",
            times(images(log, retuned, "guide", unit)),
        )
    # SimCLR's shortest budget is the same ID epochs; a longer one, the same images processed.
    for name, e in zip(
        ("SimCLR, same ID epochs", "SimCLR, same images"),
        budgets[:1] + budgets[1:][-1:],
        strict=False,
    ):
        specs[name] = (
            f"campaign_final_simclr_images_e{e}{tier}",
            None,
            f"{e / unit:.3g}x ({e} epochs)",
        )
    return specs


def tier_pairs(specs: dict) -> list[tuple[str, str]]:
    """TIER_PAIRS, then each other setting of the method against the method and SimCLR."""
    others = [n for n in specs if n.startswith("method, ") and n != "method, one schedule"]
    retuned = "method, re-tuned stage 1"
    extra = [(retuned, b) for b in ("SimCLR, same images", "random-OOD control",
                                    "COLT-rule control", "re-tuned guide alone")]  # fmt: skip
    return (
        TIER_PAIRS
        + (extra if retuned in specs else [])
        + [
            pair
            for n in others
            for pair in ((n, "method, one schedule"), (n, "SimCLR, same ID epochs"))
        ]
    )


def flat(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in (config or {}).items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def config_differences(log: Path, specs: dict, reference: str) -> list[str]:
    """For each run of the tier: the config keys in which it differs from `reference` on the
    same split (paths and names aside), its student's and, for a whole pipeline, its guide's,
    so that a row's label can be checked against what ran."""
    task, stage, _ = specs[reference]
    lines = []
    for name, (other, other_stage, _) in specs.items():
        if not name.startswith("method, ") or name == reference:
            continue
        keys = {"student": set(), "guide": set()}
        compared = 0
        for run in sorted((log / other / "multirun").glob("*split*")):
            split = next(p for p in run.name.split("_") if p.startswith("split"))
            ref = sorted((log / task / "multirun").glob(f"*_{split}_*/{stage}/results.json"))
            mine = run / other_stage / "results.json" if other_stage else run / "results.json"
            if not (ref and mine.is_file()):
                continue
            compared += 1
            pairs = {"student": (mine, ref[0])}
            if other_stage == "student":  # a whole pipeline: its guide too
                pairs["guide"] = (
                    run / "guide" / "results.json",
                    ref[0].parent.parent / "guide" / "results.json",
                )
            for part, (a_path, b_path) in pairs.items():
                a = flat(json.loads(a_path.read_text())["config"])
                b = flat(json.loads(b_path.read_text())["config"])
                keys[part] |= {k for k in set(a) | set(b)
                               if a.get(k) != b.get(k) and not k.startswith(WHERE_KEYS)}  # fmt: skip
        if not compared:  # no split has both runs: say so rather than "differs in nothing"
            lines.append(f"- {name}: no run of {reference!r} on its splits to compare with")
            continue
        shown = ", ".join(sorted(keys["student"])) or "nothing"
        text = f"- {name}: its student differs from the method's in {shown}"
        if keys["guide"]:
            text += f"; its guide in {', '.join(sorted(keys['guide']))}"
        lines.append(text)
    return lines


def per_class_table(log: Path, specs: dict, names: list[str]) -> list[str]:
    """Per-class test accuracy (kNN / probe (b)), mean over the splits, head to tail."""
    rows = {}
    for name in (n for n in names if n in specs):  # a tier may lack a run (e.g. no SimCLR)
        task, stage, _ = specs[name]
        found = sorted(
            (log / task / "multirun").glob(f"*split*/{stage + '/' if stage else ''}results.json")
        )
        per = [json.loads(p.read_text())["per_class"] for p in found]
        if per:
            rows[name] = per
    if not rows:
        return []
    first = next(iter(rows.values()))
    counts = [statistics.fmean(c) for c in zip(*(p["train_count"] for p in first), strict=True)]
    order = sorted(range(len(counts)), key=lambda c: -counts[c])
    head = ["class (train images, mean over splits)"]
    for name, per in rows.items():
        head.append(f"{name} kNN / probe (b), n={len(per)}")
    lines = [row(head), row(["---"] * len(head))]
    for c in order:
        label = CIFAR10_CLASSES[c] if len(counts) == len(CIFAR10_CLASSES) else str(c)
        cells = [f"{label} ({counts[c]:.0f})"]
        for per in rows.values():
            knn = statistics.fmean(p["knn_acc"][c] for p in per)
            probe = statistics.fmean(p["linear_acc"][c] for p in per)
            cells.append(f"{knn:.1f} / {probe:.1f}")
        lines.append(row(cells))
    return lines


def by_split(log: Path, task: str, stage: str | None) -> dict[str, list[float]]:
    out = {}
    for path in sorted((log / task / "multirun").glob("*split*")):
        results = path / stage / "results.json" if stage else path / "results.json"
        if results.is_file():
            split = next(p for p in path.name.split("_") if p.startswith("split"))
            metrics = json.loads(results.read_text())["metrics"]
            out[split] = [metrics[p][g] for p, g in KEYS]
    return out


def train_seconds(log: Path, task: str, stage: str | None) -> dict[str, str]:
    """Per split: the run's training seconds; a student's as "guide + student" (its guide is
    the run its guide_checkpoint came from)."""
    out = {}
    for path in sorted((log / task / "multirun").glob("*split*")):
        results = path / stage / "results.json" if stage else path / "results.json"
        if not results.is_file():
            continue
        split = next(p for p in path.name.split("_") if p.startswith("split"))
        r = json.loads(results.read_text())
        own = f"{r['train_time_s']:.0f}"
        checkpoint = r["config"]["method"].get("guide_checkpoint")
        guide = Path(checkpoint).parent.parent / "results.json" if checkpoint else None
        if guide is not None and guide.is_file():
            own = f"{json.loads(guide.read_text())['train_time_s']:.0f} + {own}"
        out[split] = own
    return out


def summary(runs: dict, seconds: dict, specs: dict) -> list[str]:
    """Each run's mean ± population std over its splits, and its mean training seconds."""
    lines = [row(["run", "splits", "images", *HEADER, "train s"]),
             row(["---"] * (4 + len(HEADER)))]  # fmt: skip
    for name, values in runs.items():
        if not values:
            continue
        columns = list(zip(*values.values(), strict=True))
        cells = [f"{statistics.fmean(c):.2f} ± {statistics.pstdev(c):.2f}" for c in columns]
        parts = [[float(x) for x in t.split(" + ")] for t in seconds[name].values()]
        train = " + ".join(f"{statistics.fmean(c):.0f}" for c in zip(*parts, strict=True))
        lines.append(row([name, str(len(values)), specs[name][2], *cells, train]))
    return lines


def guided_pairs(log: Path, specs: dict) -> list[str]:
    """For each student row: the share of its guided positive pairs that are same-class pairs
    (labels read for this analysis only; student_variants_summary.guided_precision), mean over
    splits, next to the same-class rate of any two views of a batch (chance)."""
    lines = []
    for name, (task, stage, _) in specs.items():
        runs = sorted((log / task / "multirun").glob(f"*split*/{stage or ''}"))
        precision = [p for p in (guided_precision(r) for r in runs) if p is not None]
        chance = [c for c in (last_logged(r, "train/same_class_rate") for r in runs) if c]
        if precision:
            lines.append(
                f"- {name}: {statistics.fmean(precision):.1f}% of guided pairs are same-class "
                f"(splits: {' / '.join(f'{p:.1f}' for p in precision)}; chance "
                f"{100 * statistics.fmean(chance):.1f}%)"
            )
    return lines


def last_logged(run: Path, key: str) -> float | None:
    values = []
    for metrics in sorted(run.glob("csv/version_*/metrics.csv")):
        with metrics.open(newline="") as handle:
            values += [float(line[key]) for line in csv.DictReader(handle) if line.get(key)]
    return values[-1] if values else None


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def main(log_dir: str, out: str | None = None, tier: str = "") -> None:
    log = Path(log_dir)
    specs = tier_runs(log, tier) if tier else dict(RUNS)
    pairs = tier_pairs(specs) if tier else PAIRS
    runs = {name: by_split(log, task, stage) for name, (task, stage, _) in specs.items()}
    seconds = {name: train_seconds(log, task, stage) for name, (task, stage, _) in specs.items()}
    lines = [row(["split", "run", "images", *HEADER, "train s"]),
             row(["---"] * (4 + len(HEADER)))]  # fmt: skip
    for split in sorted({s for r in runs.values() for s in r}):
        for name, values in runs.items():
            if split in values:
                cells = [f"{v:.2f}" for v in values[split]]
                lines.append(row([split, name, specs[name][2], *cells, seconds[name][split]]))
    lines += ["", "Mean ± population std over splits:", "", *summary(runs, seconds, specs)]
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
    differences = config_differences(log, specs, "method, one schedule") if tier else []
    if differences:
        lines += ["", "What each other setting changes (config keys, every split):", "",
                  *differences]  # fmt: skip
    pairs_found = guided_pairs(log, specs) if tier else []
    if pairs_found:
        lines += ["", "Guided positives (training batches of the student):", "", *pairs_found]
    if tier:
        lines += ["", "Per class, head to tail, test:", "",
                  *per_class_table(log, specs, ["SimCLR, same ID epochs", "method, one schedule",
                                                "random-OOD control"])]  # fmt: skip
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
