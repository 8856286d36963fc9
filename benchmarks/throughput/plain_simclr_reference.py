"""The reference loop that every GPU throughput number of ltcl is a ratio to.

A SimCLR training loop of the kind the peers ship (SDCLR, COLT, BCL): plain PyTorch, per-image
torchvision transforms in DataLoader workers (two views per image), the same backbone and
projector as ltcl, the same batch, bf16 autocast on CUDA, SGD. It shares nothing with ltcl's
training path but the model classes and the decoded images, so that "ltcl is N x faster" is a
measurement on the same card at the same moment.

    python benchmarks/throughput/plain_simclr_reference.py --data cifar10 --model cifar_resnet18 \
        --batch 512 --workers 16 --seconds 60 --out plain.json
    python benchmarks/throughput/plain_simclr_reference.py --data embedded --model small --seconds 5   # CPU
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from ltcl.models.backbones import build_backbone
from ltcl.models.projector import Projector

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class TwoViewImages(Dataset):
    """uint8 HWC images -> two independently augmented float views (per image, in workers)."""

    def __init__(self, images: np.ndarray):
        self.images = images
        self.transform = v2.Compose([
            v2.ToImage(),
            v2.RandomResizedCrop(32, scale=(0.1, 1.0), interpolation=v2.InterpolationMode.BICUBIC,
                                 antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            v2.RandomGrayscale(p=0.2),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(MEAN, STD),
        ])  # fmt: skip

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image = self.images[i]
        return self.transform(image), self.transform(image)


def load_images(data: str) -> np.ndarray:
    """The long-tailed training images (uint8 N x 32 x 32 x 3) through ltcl's data layer."""
    from hydra import compose, initialize_config_dir

    from ltcl.conf import CONFIG_DIR

    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        cfg = compose("train", overrides=[f"data={data}", "paths.output_dir=/tmp/plain_ref"])
    from hydra.utils import instantiate

    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    source, indices = datamodule.train_set.source, datamodule.train_set.indices
    return np.stack([np.asarray(source.load(int(i))) for i in indices])


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> torch.Tensor:
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.T / tau
    sim.fill_diagonal_(float("-inf"))
    n = z1.shape[0]
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, target)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="cifar10_lt_folder")
    p.add_argument("--model", default="cifar_resnet18", help="a backbone name of ltcl")
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1))
    p.add_argument("--seconds", type=float, default=60.0, help="timed wall time after warm-up")
    p.add_argument("--warmup-steps", type=int, default=5)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    images = load_images(args.data)
    loader = DataLoader(
        TwoViewImages(images), batch_size=args.batch, shuffle=True, drop_last=True,
        num_workers=args.workers, pin_memory=device.type == "cuda",
        persistent_workers=args.workers > 0,
    )  # fmt: skip
    kwargs = {"width": args.width} if args.width else {}
    backbone = build_backbone(args.model, **kwargs).to(device)
    projector = Projector(in_dim=backbone.feature_dim, out_dim=128).to(device)
    params = [*backbone.parameters(), *projector.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.5 * args.batch / 512, momentum=0.9, weight_decay=1e-4)
    steps, timed_images, started = 0, 0, None
    deadline = None
    while deadline is None or time.perf_counter() < deadline:
        for view1, view2 in loader:
            view1 = view1.to(device, non_blocking=True)
            view2 = view2.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                z = projector(backbone(torch.cat([view1, view2])))
            loss = nt_xent(*z.chunk(2), tau=0.2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            if steps == args.warmup_steps:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                started = time.perf_counter()
                deadline = started + args.seconds
            elif started is not None:
                timed_images += view1.shape[0]
            if deadline is not None and time.perf_counter() >= deadline:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    record = {
        "loop": "plain PyTorch SimCLR, per-image torchvision v2 transforms in DataLoader workers",
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "model": args.model, "batch": args.batch, "workers": args.workers,
        "images_per_s": round(timed_images / elapsed, 1), "timed_s": round(elapsed, 1),
        "steps": steps, "final_loss": float(loss.detach()),
        "max_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if device.type == "cuda" else None,
    }  # fmt: skip
    print(json.dumps(record, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
