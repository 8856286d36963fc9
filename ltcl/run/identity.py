"""A run's identity: everything that changes what is trained, hashed into its directory name.

Two configs that train different models must never share a run directory, or the second
would resume the first one's checkpoint and relabel its results (a sweep training one model
under many labels). So the run directory ends in a short hash of the *training* config, and a
checkpoint records the config it was trained with; resuming into a checkpoint whose recorded
config differs is refused with the differing keys named.

The hash is taken over the unresolved config (interpolations such as
``${trainer.max_epochs}`` stay symbolic), minus :data:`SAFE_TO_CHANGE`: the settings that do
not change what is trained, or that a user legitimately changes on resume (extend
``trainer.max_epochs``, run other evaluation protocols, log elsewhere, add GPUs at the same
global batch). This tuple is the one place that list lives.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ltcl.errors import ConfigError

# Dotted keys (or prefixes) left out of a run's identity. Safe to change when resuming.
SAFE_TO_CHANGE: tuple[str, ...] = (
    "hydra",  # launcher, sweeper, output folders
    "paths",  # where data and runs live (the data itself is named by data.*)
    "logger",  # csv / wandb / none
    "eval",  # evaluation protocols run after training
    "objective",  # the number returned to a sweeper
    "ckpt_path",
    "run_name",
    "task_name",
    "verbose",
    "stages.guide.epochs",  # ltcl-pipeline: stage lengths (extend like trainer.max_epochs)
    "stages.student.epochs",
    "stages.compare",  # adding a peer (SimCLR, ...) to a finished pipeline: its own stage
    "stages.compare_epochs",
    "stages.total_epochs",
    "trainer.max_epochs",  # extend a run (the cosine schedule is recomputed for the new length)
    "trainer.max_time",
    "trainer.devices",  # same global batch on more or fewer processes trains the same model
    "trainer.num_nodes",
    "trainer.strategy",
    "trainer.accelerator",
    "trainer.sync_batchnorm",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
    "trainer.check_val_every_n_epoch",
    "trainer.num_sanity_val_steps",
    "trainer.limit_val_batches",
    "trainer.default_root_dir",
    "trainer.fast_dev_run",
    "data.num_workers",
    "data.eval_batch_size",
)

HASH_LENGTH = 8


def _is_safe(key: str) -> bool:
    return any(key == safe or key.startswith(safe + ".") for safe in SAFE_TO_CHANGE)


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        if not node and prefix:
            out[prefix[:-1]] = {}
        return out
    return {prefix[:-1]: node}


def training_identity(cfg: DictConfig | dict) -> dict[str, Any]:
    """{dotted key: value} of every setting that changes what is trained (unresolved)."""
    if isinstance(cfg, DictConfig):
        container = OmegaConf.to_container(cfg, resolve=False)
    else:
        container = cfg
    return {k: v for k, v in sorted(_flatten(container).items()) if not _is_safe(k)}


def identity_hash(identity: dict[str, Any]) -> str:
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_LENGTH]


def run_hash(cfg: DictConfig | dict) -> str:
    """The short hash that ends a run directory's name."""
    return identity_hash(training_identity(cfg))


def _run_hash_resolver(*, _root_: DictConfig) -> str:
    return run_hash(_root_)


def register_resolver() -> None:
    """``${ltcl_run_hash:}`` in configs (run_name); idempotent."""
    if not OmegaConf.has_resolver("ltcl_run_hash"):
        OmegaConf.register_new_resolver("ltcl_run_hash", _run_hash_resolver, use_cache=False)


def differing_keys(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    keys = sorted(set(recorded) | set(current))
    return [k for k in keys if recorded.get(k, "<absent>") != current.get(k, "<absent>")]


def check_resume_matches(
    recorded: dict[str, Any] | None, current: dict[str, Any], checkpoint: str
) -> None:
    """Refuse to resume a checkpoint trained with another config, naming what differs."""
    ways = (
        "either start a new run directory (drop the explicit run_name, or choose another), or "
        "retrain from scratch here with ckpt_path=null. Settings that may change on resume: "
        "ltcl.run.identity.SAFE_TO_CHANGE (trainer.max_epochs, eval.*, logger.*, trainer.devices, ...)"
    )
    if recorded is None:
        raise ConfigError(
            f"{checkpoint} records no training config (written by an older ltcl), so resuming it "
            f"cannot be checked: {ways}"
        )
    keys = differing_keys(recorded, current)
    if keys:
        shown = "; ".join(
            f"{k}: {recorded.get(k, '<absent>')!r} -> {current.get(k, '<absent>')!r}"
            for k in keys[:12]
        )
        more = f" (and {len(keys) - 12} more)" if len(keys) > 12 else ""
        raise ConfigError(
            f"refusing to resume {checkpoint}: it was trained with other settings ({shown}{more}); "
            f"{ways}"
        )
