"""Equal images processed: SimCLR trained for 1.5x and 2x the ID epochs against the runs that
saw that many images (the method: guide 15 epochs on ID + 1:1 OOD, then student 15 on ID = 45
ID-epochs' worth; the random-OOD and COLT controls: 30 epochs at 1:1 = 60), per split.

    python benchmarks/equal_images_summary.py <log dir> [out.md]

<log dir> holds campaign_final, campaign_final_one_schedule, campaign_final_random,
campaign_final_colt and campaign_final_simclr_images_e45 / _e60 (benchmarks/campaign_cifar10_lt_cpu.sh).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KEYS = [("knn", "all"), ("knn", "few"), ("knn", "std"), ("linear", "all"), ("linear", "few"), ("linear", "std")]


def runs(log: Path, task: str, stage: str | None = None) -> dict[str, dict]:
    out = {}
    for path in sorted((log / task / "multirun").glob("*split*")):
        results = path / stage / "results.json" if stage else path / "results.json"
        if results.is_file():
            split = next(p for p in path.name.split("_") if p.startswith("split"))
            out[split] = json.loads(results.read_text())["metrics"]
    return out


def main(log_dir: str, out: str | None = None) -> None:
    log = Path(log_dir)
    rows = [
        ("SimCLR, 30 epochs", "1x", runs(log, "campaign_final", "simclr")),
        ("SimCLR, 45 epochs", "1.5x", runs(log, "campaign_final_simclr_images_e45")),
        ("the method, per-stage schedule", "1.5x", runs(log, "campaign_final", "student")),
        ("the method, one schedule", "1.5x", runs(log, "campaign_final_one_schedule", "student")),
        ("SimCLR, 60 epochs", "2x", runs(log, "campaign_final_simclr_images_e60")),
        ("random-OOD control", "2x", runs(log, "campaign_final_random")),
        ("COLT-rule control", "2x", runs(log, "campaign_final_colt")),
    ]
    header = "| split | run | images | kNN All | kNN Few | kNN Std | probe (b) All | probe (b) Few | probe (b) Std |"
    lines = [header, "|---" * 9 + "|"]
    splits = sorted({s for _, _, r in rows for s in r})
    for split in splits:
        for name, images, by_split in rows:
            if split in by_split:
                m = by_split[split]
                cells = " | ".join(f"{m[p][g]:.2f}" for p, g in KEYS)
                lines.append(f"| {split} | {name} | {images} | {cells} |")
    text = "\n".join(lines) + "\n"
    if out:
        Path(out).write_text(text)
    print(text)


if __name__ == "__main__":
    main(*sys.argv[1:])
