"""The per-stage schedule confound: the tuned method with one LR schedule over both stages
(campaign step 3s) against the same method with a schedule per stage and SimCLR, paired by
split (each split's three runs share the split and the ID epochs).

    python benchmarks/one_schedule_summary.py <campaign_final multirun> <one_schedule multirun> [out.md]
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def split_of(run: Path) -> str:
    return next(p for p in run.name.split("_") if p.startswith("split"))


def metrics(path: Path) -> dict | None:
    if not path.is_file():
        return None
    m = json.loads(path.read_text())["metrics"]
    return {f"{p} {g}": m[p][g] for p in ("knn", "linear") for g in ("all", "few", "std")}


def main(per_stage: str, one: str, out: str | None = None) -> None:
    rows, diffs = [], {"vs SimCLR": [], "vs per-stage": []}
    one_runs = {split_of(r): r for r in Path(one).glob("pipeline_*")}
    for run in sorted(Path(per_stage).glob("pipeline_*")):
        split = split_of(run)
        if split not in one_runs:
            continue
        simclr = metrics(run / "simclr" / "results.json")
        staged = metrics(run / "student" / "results.json")
        single = metrics(one_runs[split] / "student" / "results.json")
        if not (simclr and staged and single):
            continue
        for name, m in (("SimCLR", simclr), ("per-stage schedule", staged), ("one schedule", single)):
            rows.append([split, name, *(m[k] for k in simclr)])
        diffs["vs SimCLR"].append([single[k] - simclr[k] for k in simclr])
        diffs["vs per-stage"].append([single[k] - staged[k] for k in simclr])
    keys = ["kNN All", "kNN Few", "kNN Std", "probe (b) All", "probe (b) Few", "probe (b) Std"]
    lines = ["| split | method | " + " | ".join(keys) + " |", "|---" * (2 + len(keys)) + "|"]
    lines += [f"| {r[0]} | {r[1]} | " + " | ".join(f"{v:.2f}" for v in r[2:]) + " |" for r in rows]
    lines += ["", "| one schedule minus | n | " + " | ".join(keys) + " |", "|---" * (2 + len(keys)) + "|"]
    for name, values in diffs.items():
        if not values:
            continue
        cells = []
        for column in zip(*values, strict=True):
            mean = statistics.fmean(column)
            std = statistics.pstdev(column) if len(column) > 1 else 0.0
            cells.append(f"{mean:+.2f} ± {std:.2f}")
        lines.append(f"| {name} | {len(values)} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    if out:
        Path(out).write_text(text)
    print(text)


if __name__ == "__main__":
    main(*sys.argv[1:])
