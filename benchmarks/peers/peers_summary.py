"""The peers table of docs/research_record.md section 9 and the README: mean ± std over splits.

    python benchmarks/peers/peers_summary.py benchmarks/peers/results/peers_cifar10_lt_cpu [out.md]

Reads <dir>/split<N>/<stage>/results.json (what benchmarks/peers/peers_cifar10_lt_cpu.sh copies
there: one ltcl-pipeline run directory per split) and prints one row per method: test kNN and
probe (b) All / Many / Medium / Few / Std as mean ± population std over the splits, the splits
used, the images processed (in ID epochs' worth) and the median epoch time (the method: a guide
epoch plus a student epoch, sampling rounds included), averaged over splits. Also the
per-split kNN All and probe (b) All of each method, and each method minus SimCLR, paired by split.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROWS = [  # (stage folder, label, images processed in ID epochs' worth)
    ("simclr", "SimCLR", "30"),
    ("sdclr", "SDCLR", "30 (x2 forward passes)"),
    ("bcl_i", "BCL-I", "30"),
    ("bcl_d", "BCL-D", "30 (x2 forward passes)"),
    ("colt", "COLT", "60"),
    ("sdclr_colt", "SDCLR + COLT", "60 (x2 forward passes)"),
    ("student", "the method (guide 15 + student 15)", "45"),
]
COLUMNS = [("knn", g) for g in ("all", "many", "medium", "few", "std")] + [
    ("linear", g) for g in ("all", "many", "medium", "few", "std")
]


def load(folder: Path) -> dict[str, dict[int, dict]]:
    runs: dict[str, dict[int, dict]] = {}
    for split_dir in sorted(folder.glob("split*")):
        split = int(split_dir.name.removeprefix("split"))
        for stage in [row[0] for row in ROWS] + ["guide"]:
            path = split_dir / stage / "results.json"
            if path.exists():
                runs.setdefault(stage, {})[split] = json.loads(path.read_text())
    return runs


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.fmean(values):.2f} ± {statistics.pstdev(values):.2f}"


def table(runs: dict[str, dict[int, dict]]) -> str:
    head = ["method", "splits", "images (ID epochs' worth)", "kNN All", "Many", "Medium", "Few",
            "Std", "probe (b) All", "Many", "Medium", "Few", "Std", "median epoch (s)"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for stage, label, images in ROWS:
        by_split = runs.get(stage, {})
        if not by_split:
            continue
        results = [by_split[s] for s in sorted(by_split)]
        cells = [label, ",".join(str(s) for s in sorted(by_split)), images]
        for protocol, group in COLUMNS:
            cells.append(mean_std([r["metrics"][protocol][group] for r in results]))
        # The median epoch is robust to the stalls of shared cores (whole-run wall times are
        # not: another job on the 2 cores can triple an epoch). The method: guide + student.
        guide = runs.get("guide", {}) if stage == "student" else {}
        epoch = [statistics.median(by_split[s]["epoch_times_s"])
                 + (statistics.median(guide[s]["epoch_times_s"]) if s in guide else 0)
                 for s in sorted(by_split)]  # fmt: skip
        cells.append(f"{statistics.fmean(epoch):.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired(runs: dict[str, dict[int, dict]]) -> str:
    base = runs.get("simclr", {})
    lines = [
        "| method | kNN All per split | probe (b) All per split | kNN All − SimCLR | "
        "probe (b) All − SimCLR | probe (b) Few − SimCLR |",
        "|---|---|---|---|---|---|",
    ]
    for stage, label, _ in ROWS:
        by_split = runs.get(stage, {})
        splits = sorted(set(by_split) & set(base))
        if not splits:
            continue

        def values(protocol, group, source, splits=splits):
            return [source[s]["metrics"][protocol][group] for s in splits]

        diffs = []
        for protocol, group in (("knn", "all"), ("linear", "all"), ("linear", "few")):
            a, b = values(protocol, group, by_split), values(protocol, group, base)
            diffs.append(mean_std([x - y for x, y in zip(a, b, strict=True)]))
        knn = " / ".join(f"{v:.2f}" for v in values("knn", "all", by_split))
        probe = " / ".join(f"{v:.2f}" for v in values("linear", "all", by_split))
        lines.append(f"| {label} | {knn} | {probe} | " + " | ".join(diffs) + " |")
    return "\n".join(lines)


PAIRS = [("sdclr_colt", "sdclr", "SDCLR + COLT − SDCLR"), ("student", "colt", "the method − COLT")]


def other_pairs(runs: dict[str, dict[int, dict]]) -> str:
    lines = ["| pair | kNN All | probe (b) All | probe (b) Few |", "|---|---|---|---|"]
    for a, b, label in PAIRS:
        splits = sorted(set(runs.get(a, {})) & set(runs.get(b, {})))
        if not splits:
            continue
        cells = []
        for protocol, group in (("knn", "all"), ("linear", "all"), ("linear", "few")):
            cells.append(mean_std([runs[a][s]["metrics"][protocol][group]
                                   - runs[b][s]["metrics"][protocol][group] for s in splits]))  # fmt: skip
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ranks(runs: dict[str, dict[int, dict]]) -> str:
    """Each split's order, best first: which claims about the ordering hold on every split."""
    labels = {stage: label for stage, label, _ in ROWS}
    lines = []
    splits = sorted({s for by_split in runs.values() for s in by_split})
    for protocol, name in (("knn", "kNN All"), ("linear", "probe (b) All")):
        for s in splits:
            scores = {
                st: runs[st][s]["metrics"][protocol]["all"]
                for st in labels
                if s in runs.get(st, {})
            }
            order = sorted(scores, key=scores.get, reverse=True)
            lines.append(f"- {name}, split {s}: " + " > ".join(labels[st] for st in order))
    return "\n".join(lines)


def main() -> None:
    folder = Path(sys.argv[1])
    runs = load(folder)
    text = (
        f"## The peers at equal ID epochs (mean ± population std over splits)\n\n{table(runs)}\n\n"
        f"## Per split and paired with SimCLR (same split)\n\n{paired(runs)}\n\n"
        f"## Other pairs (same split)\n\n{other_pairs(runs)}\n\n"
        f"## Order per split (best first)\n\n{ranks(runs)}\n"
    )
    print(text)
    if len(sys.argv) > 2:
        Path(sys.argv[2]).write_text(text)


if __name__ == "__main__":
    main()
