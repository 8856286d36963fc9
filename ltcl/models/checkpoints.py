"""ltcl checkpoints read back, with checks that name the problem.

Reading rebuilds the backbone (and the projector, for a frozen guide) from the checkpoint's own
hyper-parameters. Writing (atomically) and the resume rule are :mod:`ltcl.run.checkpoints`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ltcl.errors import ConfigError
from ltcl.models.backbones import build_backbone
from ltcl.models.embedding import EmbeddingNetwork
from ltcl.models.projector import Projector


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """torch.load on the CPU, with an error that names the file when it cannot be read."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as error:  # truncated, not a torch file, another pickle format
        raise ConfigError(
            f"checkpoint {path} cannot be read ({type(error).__name__}: {str(error)[:120]}): it "
            "is truncated or not a checkpoint; point at another file, or start fresh with "
            "ckpt_path=null (ltcl writes checkpoints atomically, so a file it wrote is complete)"
        ) from error


def load_backbone(
    ckpt_path: str | Path, expected_backbone: dict | None = None, keep_checkpoint: bool = False
) -> tuple[nn.Module, dict[str, Any]]:
    """The backbone phi of a checkpoint written by ltcl-train, and the checkpoint's metadata.

    The architecture comes from the checkpoint's own hyper-parameters; `expected_backbone`
    (a model config) is compared with it when given.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise ConfigError(
            f"checkpoint {path} does not exist: pass ckpt_path=<run dir>/checkpoints/last.ckpt "
            "of an ltcl-train run"
        )
    checkpoint = read_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters") or {}
    spec = hparams.get("backbone")
    if not isinstance(spec, dict) or "name" not in spec:
        raise ConfigError(
            f"{path} is not an ltcl checkpoint (no backbone in its hyper-parameters): "
            "evaluate checkpoints written by ltcl-train"
        )
    if expected_backbone and dict(expected_backbone) != dict(spec):
        raise ConfigError(
            f"{path} holds a {spec} backbone but the config asks for {dict(expected_backbone)}: "
            "drop the model override or pick the matching checkpoint"
        )
    backbone = build_backbone(**spec)
    _load_part(
        backbone,
        checkpoint,
        "backbone.",
        f"the weights in {path} do not fit a {spec} backbone",
        "another architecture",
    )
    meta = {
        "method": hparams.get("name", "unknown"),
        "backbone": spec,
        "epoch": checkpoint.get("epoch"),
        "global_step": checkpoint.get("global_step"),
        "data": checkpoint.get("ltcl_data"),
        "hyper_parameters": hparams,
    }
    if keep_checkpoint:  # the loaded dict, so that a caller need not read the file again
        meta["checkpoint"] = checkpoint
    return backbone, meta


def _load_part(module: nn.Module, checkpoint: dict, prefix: str, problem: str, writer: str) -> None:
    """Load the `prefix.*` entries of a checkpoint's state_dict into `module`, strictly."""
    state = {
        k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)
    }
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ConfigError(
            f"{problem} ({str(error).splitlines()[0]}): the checkpoint was written by {writer}"
        ) from error


def load_embedding_network(
    ckpt_path: str | Path, expected_backbone: dict | None = None
) -> tuple[EmbeddingNetwork, dict[str, Any]]:
    """The embedding network (backbone phi + projector h) of a checkpoint (the guide of stage
    2), and its metadata."""
    backbone, meta = load_backbone(ckpt_path, expected_backbone, keep_checkpoint=True)
    spec = dict(meta["hyper_parameters"].get("projector") or {})
    projector = Projector(in_dim=backbone.feature_dim, **spec)
    _load_part(
        projector,
        meta.pop("checkpoint"),
        "projector.",
        f"the projector weights in {ckpt_path} do not fit a {spec} projector",
        "another model config",
    )
    meta["projector"] = {
        "hidden_dim": projector.hidden_dim,
        "out_dim": projector.out_dim,
        "batch_norm": bool(spec.get("batch_norm", True)),
    }
    meta["projector_spec"] = spec
    return EmbeddingNetwork(backbone, projector, channels_last=False), meta


def check_data_matches(
    meta: dict[str, Any],
    dataset: str,
    num_classes: int,
    class_counts: list[int],
    split_sha256: str | None = None,
) -> None:
    """Refuse to evaluate a checkpoint on data other than the run's (classes or split)."""
    data = meta.get("data")
    if not data:
        return
    if data["num_classes"] != num_classes or data["dataset"] != dataset:
        raise ConfigError(
            f"the checkpoint was trained on '{data['dataset']}' ({data['num_classes']} classes) "
            f"but the data config is '{dataset}' ({num_classes} classes): pass data=... of the "
            "training run"
        )
    if list(data["class_counts"]) != list(class_counts):
        raise ConfigError(
            "the data config's long-tailed split differs from the training run's (class counts "
            f"{list(class_counts)} vs {list(data['class_counts'])}): use the same "
            "data.split.* values (seed, imbalance_ratio, n_max) as the training run"
        )
    recorded = data.get("split_sha256")
    if recorded and split_sha256 and recorded != split_sha256:
        raise ConfigError(
            "the data config's long-tailed split holds other images than the training run's "
            "(same class counts, different indices: another data.split.seed?), so some test or "
            "validation images could be training images: use the training run's data.split.* "
            "values"
        )
