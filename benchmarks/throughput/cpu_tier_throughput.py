"""Training throughput (images/s) of backbone candidates for the CPU tiers, in one run.

One SimCLR step = two augmented views of a batch through backbone + projector, NT-Xent,
backward, SGD step, at the trainer=cpu settings (bf16 autocast where the CPU has native bf16,
channels_last). Candidates are timed round-robin (each round times every candidate once) and
the median per candidate is kept, so that load on shared cores hits all of them alike; the
ratios to the small conv net are the robust part. Projected minutes are for SimCLR on
CIFAR-10-LT (11,165 images) for EPOCHS epochs.

    .venv/bin/python benchmarks/throughput/cpu_tier_throughput.py [--rounds 3] [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ltcl.losses import nt_xent
from ltcl.models.backbones import build_backbone
from ltcl.models.projector import Projector

CANDIDATES = {
    "small w32 (model=small)": {"name": "small_convnet", "width": 32},
    "small w64": {"name": "small_convnet", "width": 64},
    "cifar_resnet w16 [2,2,2,2] (model=cifar_resnet18_w16)": {
        "name": "cifar_resnet",
        "width": 16,
        "depths": [2, 2, 2, 2],
    },
    "cifar_resnet w16 [1,1,1,1]": {"name": "cifar_resnet", "width": 16, "depths": [1, 1, 1, 1]},
    "cifar_resnet w32 [1,1,1,1]": {"name": "cifar_resnet", "width": 32, "depths": [1, 1, 1, 1]},
    "cifar_resnet w32 [2,2,2,2]": {"name": "cifar_resnet", "width": 32, "depths": [2, 2, 2, 2]},
}
TRAIN_IMAGES = 11_165


def native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def make_step(spec: dict, batch: int, bf16: bool):
    backbone = build_backbone(**spec).to(memory_format=torch.channels_last)
    projector = Projector(in_dim=backbone.feature_dim, out_dim=128)
    params = [*backbone.parameters(), *projector.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    views = torch.randn(2 * batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            z = F.normalize(projector(backbone(views)), dim=1).float()
        loss = nt_xent(z[:batch], z[batch:], 0.2, gather=False)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    n_params = sum(p.numel() for p in backbone.parameters())
    return step, n_params


def round_robin(steps: dict, rounds: int, per_round: int) -> dict[str, list[float]]:
    """Seconds per step of each callable, timed round-robin after one warm-up call each (so
    that load on shared cores hits every one alike): one mean per round per callable."""
    for step in steps.values():  # warm-up: allocator, oneDNN kernels
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(rounds):
        for name, step in steps.items():
            started = time.perf_counter()
            for _ in range(per_round):
                step()
            times[name].append((time.perf_counter() - started) / per_round)
        print(f"round {r + 1}/{rounds} done", flush=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--out", default="benchmarks/throughput/results/cpu_tier_throughput.json")
    args = parser.parse_args()
    bf16 = native_bf16()
    steps = {name: make_step(spec, args.batch, bf16) for name, spec in CANDIDATES.items()}
    steps["small w32, fp32 (no autocast)"] = make_step(
        CANDIDATES["small w32 (model=small)"], args.batch, False
    )
    times = round_robin({name: step for name, (step, _) in steps.items()}, args.rounds, args.steps)
    base = statistics.median(times["small w32 (model=small)"])
    rows = []
    for name, (_, n_params) in steps.items():
        seconds = statistics.median(times[name])
        images_per_s = args.batch / seconds  # images (each seen as two views) per second
        rows.append(
            {
                "candidate": name,
                "backbone_params": n_params,
                "images_per_s": round(images_per_s, 1),
                "time_vs_small": round(seconds / base, 2),
                f"minutes_for_{args.epochs}_epochs": round(
                    TRAIN_IMAGES * args.epochs / images_per_s / 60, 1
                ),
            }
        )
    record = {
        "command": "python benchmarks/throughput/cpu_tier_throughput.py",
        "batch": args.batch,
        "bf16_autocast": bf16,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(f"| candidate | backbone params | images/s | time vs small | min / {args.epochs} ep |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['candidate']} | {row['backbone_params']:,} | {row['images_per_s']} | "
            f"{row['time_vs_small']} | {row[f'minutes_for_{args.epochs}_epochs']} |"
        )


if __name__ == "__main__":
    main()
