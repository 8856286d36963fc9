"""Evaluation of a pretrained backbone with every protocol of docs/method.md.

Plain PyTorch on top of the DataModule's sets: features phi(x) (projector dropped, eval
mode, test transform) are extracted once, then scored with

- kNN (cosine, k = 200, temperature-weighted votes, T = 0.1) of the test set against the
  balanced training images;
- linear probe (b), BCL's: a linear classifier on the fixed features (Adam 1e-2 -> 1e-6,
  500 epochs), the default because it is fast on a CPU;
- linear probe (a), SDCLR/COLT's: frozen backbone with BN in eval mode, SGD lr 30 for 30
  epochs (x0.1 at 10 and 20), crop + flip, the head chosen on the validation split;
- few-shot probes (protocol b on a 1% balanced subset of the long-tailed set, 100-shot and
  50-shot subsets of the balanced set).

Each is reported as All (mean per-class accuracy) / Many / Medium / Few / Std (population
std of the three groups) and the std of the per-class accuracies.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ltcl.data.datamodule import LongTailDataModule
from ltcl.data.datasets import EvalDataset
from ltcl.errors import ConfigError
from ltcl.evaluation.few_shot import few_shot_subsets
from ltcl.evaluation.knn import group_accuracies, knn_predict, per_class_accuracy
from ltcl.evaluation.linear_probe import check_probe_settings, probe_on_features
from ltcl.evaluation.linear_probe_a import (
    check_probe_a_settings,
    probe_train_transform,
    probe_with_frozen_backbone,
)
from ltcl.evaluation.results import build_results, format_summary, write_results
from ltcl.models.embedding import backbone_features, embed_all
from ltcl.utils.validate import check_int, check_temperature

PROTOCOLS = ("knn", "linear_b", "linear_a", "few_shot")
FEW_SHOT_SUBSETS = ("1pct", "100shot", "50shot")
PROJECTIONS = ("pca", "tsne")


def _check_keys(check, settings: dict[str, Any] | None, prefix: str) -> None:
    settings = dict(settings or {})
    known = set(inspect.signature(check).parameters) - {"prefix"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {[prefix + k for k in unknown]}: use {sorted(known)}"
        )
    check(**settings, prefix=prefix)


def check_eval_settings(options: dict[str, Any], prefix: str = "eval.") -> None:
    """Every evaluation setting, checked before training: a bad one would otherwise fail
    only after the whole run, with no results.json."""
    protocols = options.get("protocols") or []
    unknown = [protocols] if isinstance(protocols, str) else sorted(set(protocols) - set(PROTOCOLS))
    if unknown:
        raise ConfigError(
            f"unknown {prefix}protocols {unknown}: choose from "
            f"{list(PROTOCOLS)}, e.g. {prefix}protocols=[knn,linear_b]"
        )
    knn = options.get("knn") or {}
    check_int(knn.get("k", 200), f"{prefix}knn.k", 1, "the peers use 200")
    check_temperature(knn.get("temperature", 0.1), f"{prefix}knn.temperature", "the peers use 0.1")
    _check_keys(check_probe_settings, options.get("linear_b"), f"{prefix}linear_b.")
    probe_a = dict(options.get("linear_a") or {})
    check_int(probe_a.pop("batch_size", 128), f"{prefix}linear_a.batch_size", 1, "COLT uses 128")
    _check_keys(check_probe_a_settings, probe_a, f"{prefix}linear_a.")
    few_shot = options.get("few_shot") or {}
    subsets = few_shot.get("subsets", FEW_SHOT_SUBSETS)
    wrong = [name for name in subsets if name not in FEW_SHOT_SUBSETS]
    if wrong or isinstance(subsets, str):
        raise ConfigError(
            f"unknown {prefix}few_shot.subsets {wrong or subsets!r}: choose from "
            f"{list(FEW_SHOT_SUBSETS)}"
        )
    check_int(few_shot.get("seed", 0), f"{prefix}few_shot.seed", 0)
    _check_keys(check_probe_settings, few_shot.get("probe"), f"{prefix}few_shot.probe.")
    projection = options.get("embedding_projection", "pca")
    if projection not in PROJECTIONS:
        raise ConfigError(
            f"{prefix}embedding_projection must be one of {list(PROJECTIONS)}, got {projection!r}"
        )


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@torch.no_grad()
def extract_features(
    backbone: nn.Module, loader: Iterable[dict[str, Any]], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Backbone features and labels of every item, in loader order (on the CPU)."""
    backbone.to(device)
    return embed_all(
        lambda images: backbone_features(backbone, images, channels_last=True),
        loader,
        device,
        modules=[backbone],
        bf16_on_cuda=True,
    )


def knn_summary(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    groups: dict[str, list[int]],
    k: int = 200,
    temperature: float = 0.1,
) -> tuple[dict[str, float], list[float]]:
    scores = knn_predict(queries, bank, bank_labels, num_classes, k, temperature)
    per_class = per_class_accuracy(scores.argmax(1), labels, num_classes)
    summary = group_accuracies(per_class, groups)
    summary["per_class_std"] = float(per_class.std(unbiased=False))
    return summary, per_class.tolist()


def evaluate_backbone(
    backbone: nn.Module,
    datamodule: LongTailDataModule,
    protocols: Iterable[str] = ("knn", "linear_b"),
    options: dict[str, Any] | None = None,
    device: str | None = "auto",
    log=print,
) -> dict[str, Any]:
    """Run the chosen protocols; return {"metrics", "per_class", "timing_s", "features"}.

    `options` holds per-protocol settings (keys knn, linear_b, linear_a, few_shot). The
    returned "features" (test features and labels) feed the embedding plot.
    """
    protocols = list(protocols)
    unknown = sorted(set(protocols) - set(PROTOCOLS))
    if unknown:
        raise ConfigError(f"unknown evaluation protocol(s) {unknown}: choose from {PROTOCOLS}")
    options = options or {}
    datamodule.setup("test")
    if not protocols:
        counts = [int(c) for c in datamodule.split.class_counts]
        return {
            "metrics": {},
            "per_class": {"train_count": counts},
            "timing_s": {},
            "features": None,
        }
    dev = resolve_device(device)
    split, groups, num_classes = datamodule.split, datamodule.class_groups, datamodule.num_classes
    loader = datamodule.embedding_loader

    timing: dict[str, float] = {}
    started = time.perf_counter()
    balanced = np.asarray(split.balanced_indices)
    bank_x, bank_y = extract_features(backbone, loader("bank", balanced), dev)
    test_x, test_y = extract_features(backbone, loader("test"), dev)
    val_set = getattr(datamodule, "val_set", None)
    has_val = val_set is not None and len(val_set) > 0 and ({"knn", "linear_b"} & set(protocols))
    if has_val:
        val_x, val_y = extract_features(backbone, loader("val"), dev)
    timing["features"] = time.perf_counter() - started
    log(
        f"[ltcl] features: {len(bank_x)} balanced train, {len(val_x) if has_val else 0} val, "
        f"{len(test_x)} test ({timing['features']:.1f} s on {dev})"
    )

    metrics: dict[str, Any] = {}
    # The same protocols scored on the held-out validation split: what tuning may read.
    val_metrics: dict[str, Any] = {}
    per_class: dict[str, Any] = {"train_count": [int(c) for c in split.class_counts]}
    if "knn" in protocols:
        t = time.perf_counter()
        knn_opts = {"k": 200, "temperature": 0.1, **options.get("knn", {})}
        metrics["knn"], per_class["knn_acc"] = knn_summary(
            bank_x, bank_y, test_x, test_y, num_classes, groups, **knn_opts
        )
        if has_val:
            val_metrics["knn"], _ = knn_summary(
                bank_x, bank_y, val_x, val_y, num_classes, groups, **knn_opts
            )
        timing["knn"] = time.perf_counter() - t
    if "linear_b" in protocols:
        t = time.perf_counter()
        result = probe_on_features(
            bank_x,
            bank_y,
            test_x,
            test_y,
            num_classes,
            device=dev,
            also_evaluate={"val": (val_x, val_y)} if has_val else None,
            **options.get("linear_b", {}),
        )
        metrics["linear"] = {**result.summary(groups), "protocol": "b"}
        if has_val:
            val_per_class = result.other_per_class["val"]
            val_metrics["linear"] = {
                **group_accuracies(val_per_class, groups),
                "per_class_std": float(val_per_class.std(unbiased=False)),
                "protocol": "b",
            }
        per_class["linear_acc"] = result.per_class.tolist()
        timing["linear_b"] = time.perf_counter() - t
    if "linear_a" in protocols:
        t = time.perf_counter()
        metrics["linear_a"], per_class["linear_a_acc"] = _protocol_a(
            backbone, datamodule, balanced, dev, options.get("linear_a", {})
        )
        timing["linear_a"] = time.perf_counter() - t
    if "few_shot" in protocols:
        t = time.perf_counter()
        metrics["few_shot"] = _few_shot(
            datamodule,
            bank_x,
            bank_y,
            balanced,
            test_x,
            test_y,
            dev,
            loader,
            options.get("few_shot", {}),
            backbone,
        )
        timing["few_shot"] = time.perf_counter() - t
    for name, seconds in timing.items():
        log(f"[ltcl] {name}: {seconds:.1f} s")
    return {
        "metrics": metrics,
        "val_metrics": val_metrics,
        "per_class": per_class,
        "timing_s": {k: round(v, 2) for k, v in timing.items()},
        "features": (test_x.numpy(), test_y.numpy()),
    }


def _protocol_a(backbone, datamodule, balanced, device, opts) -> tuple[dict, list[float]]:
    """SDCLR/COLT's probe: crop + flip on the balanced train images, model chosen on val."""
    cfg = datamodule.augment_cfg
    train_transform = probe_train_transform(cfg.size, cfg.mean, cfg.std, cfg.recipe)
    batch_size = int(opts.pop("batch_size", 128)) if opts else 128
    source = datamodule.bank_set.source
    train_loader = DataLoader(
        EvalDataset(source, balanced, train_transform),
        batch_size=batch_size,
        shuffle=True,
        num_workers=datamodule.num_workers,
        drop_last=False,
    )
    if len(datamodule.val_set) == 0:
        val_loader = None
    else:
        val_loader = DataLoader(datamodule.val_set, batch_size=datamodule.eval_batch_size)
    test_loader = DataLoader(datamodule.test_set, batch_size=datamodule.eval_batch_size)
    result = probe_with_frozen_backbone(
        backbone,
        train_loader,
        val_loader,
        test_loader,
        datamodule.num_classes,
        feature_dim=backbone.feature_dim,
        device=device,
        **(opts or {}),
    )
    summary = {
        **result.summary(datamodule.class_groups),
        "protocol": "a",
        "best_epoch": result.best_epoch,
    }
    return summary, result.per_class.tolist()


def _few_shot(
    datamodule, bank_x, bank_y, balanced, test_x, test_y, device, loader, opts, backbone
) -> dict[str, Any]:
    """Protocol (b) on each few-shot subset; 1% comes from the long-tailed set (SDCLR's S_b)."""
    split = datamodule.split
    labels = np.asarray(datamodule.bank_set.source.labels)
    subsets = few_shot_subsets(
        labels,
        np.asarray(split.train_indices),
        balanced,
        datamodule.num_classes,
        seed=int(opts.get("seed", 0)),
    )
    probe_opts = dict(opts.get("probe", {}))
    position = {int(j): i for i, j in enumerate(balanced)}
    out: dict[str, Any] = {}
    for name in opts.get("subsets", ("1pct", "100shot", "50shot")):
        if name not in subsets:
            raise ConfigError(f"unknown few-shot subset '{name}': choose from {sorted(subsets)}")
        indices = np.asarray(subsets[name])
        if all(int(j) in position for j in indices):
            rows = torch.as_tensor([position[int(j)] for j in indices])
            x, y = bank_x[rows], bank_y[rows]
        else:  # a subset outside the balanced set: embed it
            x, y = extract_features(backbone, loader("bank", indices), device)
        result = probe_on_features(
            x, y, test_x, test_y, datamodule.num_classes, device=device, **probe_opts
        )
        out[name] = {
            **result.summary(datamodule.class_groups),
            "protocol": "b",
            "train_images": len(indices),
        }
    return out


def evaluate_and_record(
    backbone: nn.Module,
    datamodule: LongTailDataModule,
    eval_options: dict[str, Any],
    out_dir: str | Path,
    **result_fields: Any,
) -> dict[str, Any]:
    """Evaluate, then write results.json and the plots to `out_dir` and print the summary.

    `eval_options` is the resolved `eval` config group; `result_fields` go to
    :func:`ltcl.evaluation.results.build_results` (method, config, seed, epochs, ...).
    """
    evaluation = evaluate_backbone(
        backbone,
        datamodule,
        protocols=eval_options.get("protocols", ("knn", "linear_b")),
        options=eval_options,
        device=eval_options.get("device", "auto"),
    )
    results = build_results(
        data_summary=datamodule.summary(), evaluation=evaluation, **result_fields
    )
    out = Path(out_dir)
    write_results(
        out,
        results,
        evaluation["features"],
        plots=eval_options.get("plots", True),
        projection=eval_options.get("embedding_projection", "pca"),
    )
    print(format_summary(results), flush=True)
    print(f"[ltcl] results: {out / 'results.json'}", flush=True)
    return results
