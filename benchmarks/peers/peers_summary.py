"""The peers table of docs/research_record.md section 9 and the README: mean ± std over splits.

    python benchmarks/peers/peers_summary.py benchmarks/peers/results/peers_cifar10_lt_cpu [out.md]
    python benchmarks/peers/peers_summary.py benchmarks/peers/results/peers_official_cifar10_lt_cpu \
        [out.md] --before benchmarks/peers/results/peers_cifar10_lt_cpu

With --before, SimCLR and the method (which the peers' official presets do not change) come
from the earlier folder, and a last table compares each re-run peer with its earlier run on the
same splits, with the config keys the re-run changed.

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


def images_label(results: dict, default: str) -> str:
    """COLT's mixed batches (the official presets) process the ID set and the K picks once per
    epoch from the first round on: epochs x (N + K) / N ID epochs' worth."""
    sampler = results.get("config", {}).get("method", {}).get("sampler") or {}
    if sampler.get("batch_mode") != "mix":
        return default
    n, k, epochs = results["split"]["num_train"], sampler["budget"], results["epochs"]
    mixed = max(0, epochs - sampler["warmup_epochs"])
    worth = (epochs * n + mixed * k) / n
    return f"{worth:.1f}" + (" (x2 forward passes)" if "x2" in default else "")


def table(runs: dict[str, dict[int, dict]]) -> str:
    head = ["method", "splits", "images (ID epochs' worth)", "kNN All", "Many", "Medium", "Few",
            "Std", "probe (b) All", "Many", "Medium", "Few", "Std", "median epoch (s)"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for stage, label, images in ROWS:
        by_split = runs.get(stage, {})
        if not by_split:
            continue
        results = [by_split[s] for s in sorted(by_split)]
        cells = [
            label,
            ",".join(str(s) for s in sorted(by_split)),
            images_label(results[0], images),
        ]
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


UNCHANGED = ("simclr", "guide", "student")  # not touched by the peers' official presets


def flat(tree, prefix: str = "") -> dict[str, object]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, object] = {}
    for key, value in tree.items():
        out.update(flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


IGNORED = ("paths.", "hydra", "task_name", "run_name", "ood.source.root", "ood.source.archive",
           "logger.csv.save_dir", "trainer.default_root_dir", "ood.source._target_",
           "ood.source.cache_dir", "data.train_source.", "data.test_source.", "data.split_dir")  # fmt: skip


def changed_keys(before: dict, after: dict) -> list[str]:
    """Config keys whose values differ between a peer's earlier run and its re-run (paths and
    names aside): what the official presets changed, nothing else."""
    a, b = flat(before.get("config", {})), flat(after.get("config", {}))
    keys = sorted(k for k in set(a) | set(b) if not k.startswith(IGNORED) and a.get(k) != b.get(k))
    return [f"{k}: {a.get(k, '—')} → {b.get(k, '—')}" for k in keys]


def before_after(before: dict[str, dict[int, dict]], after: dict[str, dict[int, dict]]) -> str:
    """Each re-run peer against its earlier run on the same splits, and each against SimCLR."""
    head = ["peer", "splits", "kNN All before", "after", "after − before", "probe (b) All before",
            "after", "after − before", "probe (b) Few before", "after", "after − before",
            "probe (b) All − SimCLR before", "after"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = after.get("simclr", {})
    for stage, label, _ in ROWS:
        if stage in UNCHANGED:
            continue
        splits = sorted(set(before.get(stage, {})) & set(after.get(stage, {})) & set(base))
        if not splits:
            continue
        cells = [label, ",".join(map(str, splits))]
        for protocol, group in (("knn", "all"), ("linear", "all"), ("linear", "few")):
            old = [before[stage][s]["metrics"][protocol][group] for s in splits]
            new = [after[stage][s]["metrics"][protocol][group] for s in splits]
            cells += [
                mean_std(old),
                mean_std(new),
                mean_std([n - o for n, o in zip(new, old, strict=True)]),
            ]
        simclr = [base[s]["metrics"]["linear"]["all"] for s in splits]
        for source in (before, after):
            mine = [source[stage][s]["metrics"]["linear"]["all"] for s in splits]
            cells.append(mean_std([m - b for m, b in zip(mine, simclr, strict=True)]))
        lines.append("| " + " | ".join(cells) + " |")
    changes = []
    for stage, label, _ in ROWS:
        if stage in UNCHANGED or not after.get(stage) or not before.get(stage):
            continue
        per_split = {s: tuple(changed_keys(before[stage][s], after[stage][s]))
                     for s in sorted(set(before[stage]) & set(after[stage]))}  # fmt: skip
        kinds = set(per_split.values())
        listed = (
            "; ".join(next(iter(kinds))) if len(kinds) == 1 else f"differs by split: {per_split}"
        )
        changes.append(f"- {label}: {listed or 'no config key changed'}")
    return (
        "\n".join(lines)
        + "\n\nConfig keys the re-run changed (every split alike):\n\n"
        + "\n".join(changes)
    )


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="<folder>/split<N>/<stage>/results.json")
    parser.add_argument("out", type=Path, nargs="?", help="also write the tables here")
    parser.add_argument(
        "--before", type=Path, help="an earlier peers folder: SimCLR and the method are taken "
        "from it, and each re-run peer is compared with its earlier run"
    )  # fmt: skip
    args = parser.parse_args()
    runs = load(args.folder)
    before = load(args.before) if args.before else {}
    for stage in UNCHANGED:
        if stage in before and stage not in runs:
            runs[stage] = before[stage]
    text = (
        f"## The peers at equal ID epochs (mean ± population std over splits)\n\n{table(runs)}\n\n"
        f"## Per split and paired with SimCLR (same split)\n\n{paired(runs)}\n\n"
        f"## Other pairs (same split)\n\n{other_pairs(runs)}\n\n"
        f"## Order per split (best first)\n\n{ranks(runs)}\n"
    )
    if before:
        text += f"\n## Before and after the official presets\n\n{before_after(before, runs)}\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
