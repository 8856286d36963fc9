"""The ablation and stage-2 variants' tables (benchmarks/campaign/student_variants_cpu.sh): validation
kNN on split 0, mean ± population std over the train seeds.

    python benchmarks/campaign/student_variants_summary.py <log dir> --trial <best trial dir> --out <dir>
    python benchmarks/campaign/student_variants_summary.py --best-trial <search multirun dir>

Only validation numbers: these are tuning decisions. Writes <out>/summary.md and
<out>/summary.json; checks that each part's "tuned" run at seed 0 reproduces the search trial.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

KEYS = ("all", "few", "std")
PARTS = [  # part, task prefix, results under multirun/, title
    ("stage2", "student_variants_", "*/results.json", "Stage 2, students from the trial's guide"),
    ("stage1", "stage1_ablation_", "*/student/results.json", "Stage 1, whole pipelines"),
]


def best_trial(search: Path) -> Path:
    """The trial directory whose student has the highest validation kNN All (the objective)."""
    scored = []
    for trial in search.glob("pipeline_*"):
        results = trial / "student" / "results.json"
        if results.is_file():
            scored.append((json.loads(results.read_text())["val_metrics"]["knn"]["all"], trial))
    return max(scored)[1]


def guided_precision(run: Path) -> float | None:
    """Mean over logged steps of the share of guided pairs that are true same-class pairs
    (labels read for this analysis only), or None when the run had no guided positives. Each
    step counts once: a later CSV version (a resumed or re-invoked run) replaces its steps."""
    by_step = {}
    for metrics in sorted(
        run.glob("csv/version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:])
    ):
        with metrics.open(newline="") as handle:
            for line in csv.DictReader(handle):
                if line.get("train/guided_positive_precision"):
                    by_step[int(line["step"])] = float(line["train/guided_positive_precision"])
    return 100 * statistics.mean(by_step.values()) if by_step else None


def collect(log_dir: Path, prefix: str, pattern: str) -> dict[str, dict[int, dict[str, float]]]:
    """{row name: {seed: validation kNN all / few / std, guided-pair precision}} of every task
    with this prefix."""
    record = {}
    for task in sorted(log_dir.glob(prefix + "*")):
        runs = {}
        for results in sorted(task.glob("multirun/" + pattern)):
            r = json.loads(results.read_text())
            runs[r["seed"]] = {k: r["val_metrics"]["knn"][k] for k in KEYS}
            runs[r["seed"]]["guided_precision"] = guided_precision(results.parent)
        if runs:
            record[task.name.removeprefix(prefix)] = runs
    return record


def table(record: dict[str, dict[int, dict[str, float]]]) -> str:
    tuned = record.get("tuned")
    base = {k: statistics.mean(r[k] for r in tuned.values()) for k in KEYS} if tuned else None
    rows = [
        "| row | seeds | val kNN All | val kNN Few | val kNN Std | All − tuned | Few − tuned "
        "| guided pairs of the same class (%) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ["tuned", *sorted(set(record) - {"tuned"})]:
        runs = record.get(name)
        if not runs:
            continue
        mean = {k: statistics.mean(r[k] for r in runs.values()) for k in KEYS}
        spread = {k: statistics.pstdev([r[k] for r in runs.values()]) for k in KEYS}
        cells = [f"{mean[k]:.2f} ± {spread[k]:.2f}" for k in KEYS]
        deltas = [f"{mean[k] - base[k]:+.2f}" for k in ("all", "few")] if base else ["–", "–"]
        precision = [r["guided_precision"] for r in runs.values() if r["guided_precision"]]
        cells += deltas + [f"{statistics.mean(precision):.1f}" if precision else "–"]
        rows.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("log_dir", nargs="?", type=Path)
    parser.add_argument("--best-trial", type=Path, help="print the best trial of this search")
    parser.add_argument("--trial", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.best_trial:
        print(best_trial(args.best_trial))
        return
    trial_all = json.loads((args.trial / "student" / "results.json").read_text())
    trial_all = trial_all["val_metrics"]["knn"]["all"]
    text, record, reproduced = "", {}, {}
    for part, prefix, pattern, title in PARTS:
        record[part] = collect(args.log_dir, prefix, pattern)
        if record[part]:
            seed0 = record[part].get("tuned", {}).get(0)
            reproduced[part] = seed0 is not None and seed0["all"] == trial_all
            text += f"### {title}\n\n{table(record[part])}\n\n"
    text += (
        f"Does each part's tuned run at seed 0 reproduce the search trial's student "
        f"(validation kNN All {trial_all:.2f}, trial {args.trial.name})? {reproduced}\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.md").write_text(text, encoding="utf-8")
    payload = {"trial": str(args.trial), "reproduced": reproduced, "runs": record}
    (args.out / "summary.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
