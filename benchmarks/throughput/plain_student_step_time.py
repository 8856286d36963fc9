"""What skipping the frozen guide saves the plain student (k_pos 0, lambda_dl 0, no repulsion
weights: no loss term reads the guide's views, so ``StudentModule`` no longer runs the guide).

One student step = two views of a batch through the student's backbone + projector, L_GCL
(NT-Xent at these settings), backward, SGD step; "with the guide" adds the frozen guide's
forward pass (eval mode, no gradients) whose views L_GCL receives, as before the change. The
two are timed round-robin (each round times both), the median per variant kept, so that load
on shared cores hits both alike: the ratio is the robust number. trainer=cpu's settings (bf16
autocast where the CPU has native bf16, channels_last), the medium tier's network by default.

    .venv/bin/python benchmarks/throughput/plain_student_step_time.py [--rounds 5] [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F
from cpu_tier_throughput import native_bf16, round_robin

from ltcl.losses.guided import guided_contrastive_loss
from ltcl.models.backbones import build_backbone
from ltcl.models.projector import Projector

MEDIUM = {"name": "cifar_resnet", "width": 16, "depths": [1, 1, 1, 1]}


def network(spec: dict) -> tuple[torch.nn.Module, torch.nn.Module]:
    backbone = build_backbone(**spec).to(memory_format=torch.channels_last)
    return backbone, Projector(in_dim=backbone.feature_dim, out_dim=128)


def make_step(spec: dict, batch: int, bf16: bool, run_guide: bool):
    backbone, projector = network(spec)
    guide_backbone, guide_projector = (m.eval().requires_grad_(False) for m in network(spec))
    optimizer = torch.optim.SGD([*backbone.parameters(), *projector.parameters()], lr=0.1)
    views = torch.randn(2 * batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            u = F.normalize(projector(backbone(views)), dim=1).float()
            if run_guide:
                with torch.no_grad():
                    v = F.normalize(guide_projector(guide_backbone(views)), dim=1).float()
            else:
                v = u.detach()
        u1, u2 = u.chunk(2)
        v1, v2 = v.chunk(2)
        loss = guided_contrastive_loss(
            u1, u2, v1, v2, 0.2, k_pos=0, repulsion_weights=False, gather=False
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument(
        "--out", default="benchmarks/throughput/results/plain_student_step_time.json"
    )
    args = parser.parse_args()
    bf16 = native_bf16()
    steps = {
        "with the guide's forward (before)": make_step(MEDIUM, args.batch, bf16, True),
        "guide skipped (now)": make_step(MEDIUM, args.batch, bf16, False),
    }
    times = round_robin(steps, args.rounds, args.steps)
    before, now = (statistics.median(t) for t in times.values())
    record = {
        "command": "python benchmarks/throughput/plain_student_step_time.py",
        "network": MEDIUM,
        "batch": args.batch,
        "bf16_autocast": bf16,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "median_step_s": {name: round(statistics.median(t), 4) for name, t in times.items()},
        "all_step_s": {name: [round(x, 4) for x in t] for name, t in times.items()},
        "time_ratio_now_vs_before": round(now / before, 3),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(json.dumps({k: record[k] for k in ("median_step_s", "time_ratio_now_vs_before")}))


if __name__ == "__main__":
    main()
