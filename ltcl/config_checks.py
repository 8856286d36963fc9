"""Checks of a composed training config that fail before any data is read or step is taken."""

from __future__ import annotations

from omegaconf import DictConfig

from ltcl.errors import ConfigError


def check_config(cfg: DictConfig) -> None:
    """Fail before any data is read when values are inconsistent."""
    devices = cfg.trainer.get("devices", 1)
    world = (devices if isinstance(devices, int) else 1) * cfg.trainer.get("num_nodes", 1)
    if cfg.data.global_batch_size % world:
        raise ConfigError(
            f"data.global_batch_size={cfg.data.global_batch_size} does not divide by "
            f"{world} processes (trainer.devices x trainer.num_nodes): choose a multiple of {world}"
        )
    accelerator = str(cfg.trainer.get("accelerator", "cpu"))
    if accelerator in ("gpu", "cuda") and isinstance(devices, int) and devices > 0:
        import torch

        available = torch.cuda.device_count()
        if devices > available:
            raise ConfigError(
                f"trainer.devices={devices} but this machine has {available} GPU(s): lower "
                "trainer.devices, or use trainer=cpu / trainer=ddp_cpu without a GPU"
            )
    if accelerator == "cpu" and isinstance(devices, int) and devices > 1:
        from ltcl.utils.hardware import usable_cpu_cores

        cores = usable_cpu_cores()
        if devices > cores:
            raise ConfigError(
                f"trainer.devices={devices} CPU processes but this job may use {cores} core(s): "
                f"use trainer.devices<={cores} (each process then gets "
                f"{max(1, cores // max(1, min(devices, cores)))} thread(s)), or a GPU trainer"
            )
    if cfg.trainer.get("use_distributed_sampler", False):
        raise ConfigError(
            "trainer.use_distributed_sampler must stay false: ltcl's samplers shard each global "
            "batch across processes themselves (ltcl/data/batch_sharding.py)"
        )
    for key, value in (("seed", cfg.get("seed")), ("data.split.seed", cfg.data.split.get("seed"))):
        if value is not None and not (isinstance(value, int) and value >= 0):
            raise ConfigError(f"{key} must be an integer >= 0, got {value!r}")
    if cfg.data.global_batch_size < 2 * world:
        raise ConfigError(
            f"data.global_batch_size={cfg.data.global_batch_size}: a contrastive batch needs at "
            f"least 2 images per process (negatives come from the batch); use 256 or more"
        )
    temperature = cfg.method.get("temperature")
    if temperature is not None and not (isinstance(temperature, int | float) and temperature > 0):
        raise ConfigError(
            f"method.temperature must be a number > 0 (SimCLR uses 0.2), got {temperature!r}"
        )
    from ltcl.evaluation.protocols import PROTOCOLS

    unknown = sorted(set(cfg.eval.get("protocols") or []) - set(PROTOCOLS))
    if unknown:
        raise ConfigError(
            f"unknown eval.protocols {unknown}: choose from {list(PROTOCOLS)}, e.g. "
            "eval.protocols=[knn,linear_b]"
        )
    if cfg.method.get("sampler") is not None and not cfg.get("ood"):
        raise ConfigError(
            f"method={cfg.method.get('name')} samples OOD images and needs an OOD pool: add "
            "ood=tinyimagenet (CIFAR) or ood=embedded (the demo data)"
        )
    if cfg.trainer.get("max_epochs", 1) < 1:
        raise ConfigError(f"trainer.max_epochs must be >= 1, got {cfg.trainer.max_epochs}")
