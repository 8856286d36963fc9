"""Checks of a composed training config that fail before any data is read or step is taken."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from ltcl.conf import RETIRED, retired
from ltcl.errors import ConfigError
from ltcl.utils.validate import check_int, check_positive

MAX_BASE_LR = 100.0  # at the reference batch: far above every recipe, far below a typo's 1e6

PRECISIONS = ("auto", "32", "32-true", "64", "64-true", "16-mixed", "bf16-mixed", "16-true",
              "bf16-true", "bf16", "16")  # fmt: skip


def _check_types(cfg: DictConfig) -> None:
    """Types and ranges of the common settings (a wrong one would fail deep inside torch or
    Lightning, or worse, train without complaint: a negative weight decay, momentum 1.5)."""
    check_int(cfg.data.global_batch_size, "data.global_batch_size", 1, "use 256 or more")
    check_int(
        cfg.data.get("num_workers", 0), "data.num_workers", 0, "0 decodes in the main process"
    )
    devices = cfg.trainer.get("devices", 1)
    if devices != "auto":
        check_int(devices, "trainer.devices", 1, "the number of processes on each node")
    check_int(cfg.trainer.get("num_nodes", 1), "trainer.num_nodes", 1)
    if str(cfg.trainer.get("precision", "auto")) not in PRECISIONS:
        raise ConfigError(
            f"trainer.precision={cfg.trainer.precision!r} is unknown: use auto (bf16 where the "
            "hardware has it natively, else 32), 32, bf16-mixed or 16-mixed (GPU)"
        )
    limit = cfg.trainer.get("limit_train_batches")
    if limit is not None:  # 0 would train nothing and still write results
        check_positive(limit, "trainer.limit_train_batches", "null trains on every batch")
    schedule = cfg.optim.schedule
    check_positive(schedule.base_lr, "optim.schedule.base_lr", "the peers use 0.5 at batch 512")
    if float(schedule.base_lr) > MAX_BASE_LR:
        raise ConfigError(
            f"optim.schedule.base_lr={schedule.base_lr} is above {MAX_BASE_LR:g}, beyond any "
            "contrastive recipe (the peers use 0.5 at batch 512, SimCLR's LARS about 0.3 per "
            "256 images): the loss would be NaN after the first step; use e.g. 0.5"
        )
    check_positive(
        schedule.get("weight_decay", 0), "optim.schedule.weight_decay", "the peers use 1e-4",
        allow_zero=True,
    )  # fmt: skip
    check_int(
        schedule.get("warmup_epochs", 0), "optim.schedule.warmup_epochs", 0, "the peers use 10"
    )
    check_int(
        schedule.get("reference_batch_size", 512),
        "optim.schedule.reference_batch_size",
        1,
        "the peers use 512",
    )
    ratio = schedule.get("final_lr_ratio", 0.0)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
        raise ConfigError(
            f"optim.schedule.final_lr_ratio must be in [0, 1] (the last epoch's share of "
            f"the peak rate; 0 = cosine to zero), got {ratio!r}"
        )
    momentum = (cfg.optim.get("optimizer") or {}).get("momentum")
    if momentum is not None and (
        isinstance(momentum, bool) or not isinstance(momentum, int | float) or not 0 <= momentum < 1
    ):
        raise ConfigError(
            f"optim.optimizer.momentum must be in [0, 1) (the peers use 0.9), got {momentum!r}"
        )


def _typed_train_overrides() -> list[str]:
    """The overrides typed to ltcl-train (empty outside it: in ltcl-pipeline a setting of the
    optim group is read by the guide, the student and the other peers)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized() or HydraConfig.get().job.config_name != "train":
        return []
    return list(HydraConfig.get().overrides.task)


def _check_method_weight_decay(cfg: DictConfig) -> None:
    """A method that fixes its own weight decay (BCL's presets) does not read
    optim.schedule.weight_decay: typing the latter to ltcl-train must not train silently
    without it. In a pipeline a peer keeps its official decay (docs/recipes/pipeline.md)."""
    own = cfg.method.get("weight_decay")
    if own is None:
        return
    typed = [
        o
        for o in _typed_train_overrides()
        if o.lstrip("+~").startswith("optim.schedule.weight_decay=")
    ]
    if typed:
        raise ConfigError(
            f"method={cfg.method.get('name')} sets its own weight decay (method.weight_decay={own}, "
            f"its official setting), so {typed[0]} would not be read: set "
            "method.weight_decay=... instead"
        )


# Keys a user may append with +key=value: Lightning's Trainer takes (and checks) any of its own
# arguments, Hydra its settings; the others are read when present (the schedule keys that
# ltcl-pipeline sets for a student continuing the guide's schedule; a published split's index
# files on a dataset whose config does not list them).
FREE_FORM_PREFIXES = ("trainer.", "hydra.")
READ_WHEN_PRESENT = (
    "optim.schedule.start_epoch",
    "optim.schedule.horizon_epochs",
    "data.split.index_file",
    "data.split.val_index_file",
)


def is_read_when_appended(key: str) -> bool:
    """A key that is legitimately absent from the config files and read when a user appends
    it: Lightning's and Hydra's own arguments, the keys above, an augmentation field."""
    if key.startswith(FREE_FORM_PREFIXES) or key in READ_WHEN_PRESENT:
        return True
    if key.startswith("data.augment.") and key.count(".") == 2:
        return key.rsplit(".", 1)[1] in _augment_fields()
    return False


def _augment_fields() -> set[str]:
    import dataclasses

    from ltcl.data.transforms import AugmentConfig

    return {f.name for f in dataclasses.fields(AugmentConfig)}


def config_keys(cfg: DictConfig) -> list[str]:
    """Every dotted key of a config's values (unresolved; a node with keys below it is not
    itself a value)."""
    keys, stack = [], [("", OmegaConf.to_container(cfg, resolve=False))]
    while stack:
        prefix, node = stack.pop()
        for key, value in node.items():
            if isinstance(value, dict) and value:
                stack.append((f"{prefix}{key}.", value))
            else:
                keys.append(f"{prefix}{key}")
    return keys


def suggest_keys(key: str, keys: list[str]) -> list[str]:
    """Existing keys the user probably meant: the same key under a group (a sampler key typed
    without ``method.``), else the closest spellings."""
    import difflib

    under = [k for k in keys if k.endswith(f".{key}")]
    if under:
        return sorted(under, key=len)[:2]
    return difflib.get_close_matches(key, keys, n=2, cutoff=0.8)


def _is_group_choice(key: str) -> bool:
    """``experiment`` in ``+experiment=x``, ``method/sampler``: a config group, not a key."""
    from pathlib import Path

    from ltcl.conf import CONFIG_DIR

    if "/" in key or "@" in key:  # a nested group, or a group placed at a package
        return True
    return "." not in key and (Path(CONFIG_DIR) / key).is_dir()


def _target_reads(cfg: DictConfig | None, key: str) -> bool:
    """Whether ``key`` is an argument of the ``_target_`` its parent node instantiates (a
    callable with ``**kwargs`` passes it on, and whatever it reaches refuses an unknown one)."""
    if cfg is None or "." not in key:
        return False
    parent, name = key.rsplit(".", 1)
    target = OmegaConf.select(cfg, f"{parent}._target_", default=None)
    if not isinstance(target, str):
        return False
    import inspect

    from hydra.utils import get_object

    try:
        parameters = inspect.signature(get_object(target)).parameters
    except Exception:  # not importable here: the instantiation will say so
        return False
    return name in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def check_appended_keys(cfg: DictConfig | None = None) -> None:
    """Refuse ``+key=value`` for a key that nothing reads: Hydra appends it, and the run would
    train without the setting the user meant (a sampler key typed without its group, a
    misspelt one). Only inside a Hydra app."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    appended = {}
    for override in overrides:
        if override.startswith("+") and "=" in override:
            key = override.lstrip("+").split("=", 1)[0]
            if not _is_group_choice(key):
                appended[override] = key
    appended = {
        o: k for o, k in appended.items() if not (is_read_when_appended(k) or _target_reads(cfg, k))
    }
    if not appended:
        return
    try:  # the config as the user's other overrides compose it, without the appended keys
        from hydra import compose

        base = compose(
            config_name=hydra_cfg.job.config_name,
            overrides=[o for o in overrides if o not in appended],
        )
    except Exception:  # a check only: never mask the real composition
        return
    keys = config_keys(base) + [f"data.augment.{name}" for name in _augment_fields()]
    for override, key in appended.items():
        if OmegaConf.select(base, key, default=None) is not None:
            continue  # ++key=value on a key that exists: an ordinary override
        value = override.split("=", 1)[1]
        close = suggest_keys(key, keys)
        hint = f"; did you mean {' or '.join(f'{k}={value}' for k in close)}?" if close else ""
        raise ConfigError(
            f"{override} adds the key {key}, which nothing in ltcl reads: the run would train "
            f"without it{hint} (every key: --cfg job)"
        )


def check_retired_keys(cfg: DictConfig) -> None:
    """Refuse a key that conf/ retired (an old experiment file, a +key=... override), naming the
    one way that does the same now (:data:`ltcl.conf.RETIRED`)."""
    for key in RETIRED:
        if OmegaConf.select(cfg, key, default=None) is not None:
            raise ConfigError(retired(key))


def check_config(cfg: DictConfig) -> None:
    """Fail before any data is read when values are inconsistent."""
    check_retired_keys(cfg)
    check_appended_keys(cfg)
    _check_types(cfg)
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
    from ltcl.evaluation.protocols import check_eval_settings

    check_eval_settings(OmegaConf.to_container(cfg.eval, resolve=True))
    if cfg.method.get("sampler") is not None and not cfg.get("ood"):
        raise ConfigError(
            f"method={cfg.method.get('name')} samples OOD images and needs an OOD pool: add "
            "ood=tinyimagenet (CIFAR) or ood=embedded (the demo data)"
        )
    _check_method_weight_decay(cfg)
    if cfg.trainer.get("max_epochs", 1) < 1:
        raise ConfigError(f"trainer.max_epochs must be >= 1, got {cfg.trainer.max_epochs}")
