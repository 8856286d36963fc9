"""The stage-2 variants' table (benchmarks/student_variants_cpu.sh): validation kNN on split 0.

    python benchmarks/student_variants_summary.py <log dir> --trial <best trial dir> --out <dir>
    python benchmarks/student_variants_summary.py --best-trial <search multirun dir>

Only validation numbers: the variants are tuning decisions. Writes <out>/summary.md and
<out>/summary.json; checks that the "tuned" run at seed 0 reproduces the search trial's student.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

KEYS = ("all", "few", "std")


def best_trial(search: Path) -> Path:
    """The trial directory whose student has the highest validation kNN All (the objective)."""
    scored = []
    for trial in search.glob("pipeline_*"):
        results = trial / "student" / "results.json"
        if results.is_file():
            scored.append((json.loads(results.read_text())["val_metrics"]["knn"]["all"], trial))
    return max(scored)[1]


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
    trial_val = json.loads((args.trial / "student" / "results.json").read_text())["val_metrics"]
    rows, record = [], {}
    for task in sorted(args.log_dir.glob("student_variants_*")):
        name = task.name.removeprefix("student_variants_")
        runs = {}
        for results in sorted(task.glob("multirun/*/results.json")):
            r = json.loads(results.read_text())
            runs[r["seed"]] = {k: r["val_metrics"]["knn"][k] for k in KEYS}
        record[name] = runs
    tuned = record.get("tuned", {})
    reproduced = 0 in tuned and tuned[0]["all"] == trial_val["knn"]["all"]
    base = {k: statistics.mean(r[k] for r in tuned.values()) for k in KEYS} if tuned else None
    header = (
        "| variant | seeds | val kNN All | val kNN Few | val kNN Std | All − tuned | Few − tuned |"
    )
    rows = [header, "|---|---|---|---|---|---|---|"]
    for name, runs in record.items():
        if not runs:
            continue
        mean = {k: statistics.mean(r[k] for r in runs.values()) for k in KEYS}
        spread = {k: statistics.pstdev([r[k] for r in runs.values()]) for k in KEYS}
        cells = [f"{mean[k]:.2f} ± {spread[k]:.2f}" for k in KEYS]
        deltas = [f"{mean[k] - base[k]:+.2f}" for k in ("all", "few")] if base else ["–", "–"]
        rows.append(f"| {name} | {len(runs)} | " + " | ".join(cells + deltas) + " |")
    text = "\n".join(rows) + (
        f"\n\nThe tuned run at seed 0 {'reproduces' if reproduced else 'does NOT reproduce'} the "
        f"search trial's student (validation kNN All {trial_val['knn']['all']:.2f}; trial "
        f"{args.trial.name}).\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.md").write_text(text, encoding="utf-8")
    payload = {"trial": str(args.trial), "reproduced": reproduced, "runs": record}
    (args.out / "summary.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
