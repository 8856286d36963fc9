"""`ltcl-train`: pretrain one method on long-tailed ID data (Hydra app).

    ltcl-train method=simclr data=cifar10_lt_folder model=cifar_resnet18 trainer=gpu

The run directory is stable (`outputs/<task>/<run_name>`), so a restarted job resumes
from its own `checkpoints/last.ckpt` (ckpt_path=last, the default). At the end the backbone is
evaluated with `eval.protocols` (kNN and linear probe (b) by default) and the run writes
`results.json` and plots next to the checkpoints.
"""

from __future__ import annotations

import os
import secrets
import string
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from ltcl.errors import ConfigError, LtclError, report_errors
from ltcl.evaluate import evaluate_and_record
from ltcl.objective import check_objective, objective_value
from ltcl.run_identity import (
    check_resume_matches,
    identity_hash,
    register_resolver,
    training_identity,
)
from ltcl.utils.checkpoint import AtomicCheckpointIO, resolve_resume_path
from ltcl.utils.console import quiet_console
from ltcl.utils.hardware import fit_threads_to_cores, resolve_precision
from ltcl.utils.lock import run_directory_lock

register_resolver()  # ${ltcl_run_hash:} in run_name, before Hydra composes anything

LAST_CHECKPOINT_NAME = "last"  # checkpoints/last.ckpt, what ckpt_path=last resumes
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def output_dir(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir)


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
            "batch across processes themselves (ltcl/data/samplers.py)"
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
    from ltcl.evaluate import PROTOCOLS

    unknown = sorted(set(cfg.eval.get("protocols") or []) - set(PROTOCOLS))
    if unknown:
        raise ConfigError(
            f"unknown eval.protocols {unknown}: choose from {list(PROTOCOLS)}, e.g. "
            "eval.protocols=[knn,linear_b]"
        )
    if cfg.trainer.get("max_epochs", 1) < 1:
        raise ConfigError(f"trainer.max_epochs must be >= 1, got {cfg.trainer.max_epochs}")


def build(node: Any, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, but an ltcl error raised by the target surfaces as itself.

    Hydra wraps every exception of a target in InstantiationException; ours already name
    the problem and the fix, so they are re-raised unwrapped.
    """
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, LtclError):
            raise error.__cause__ from None
        raise


WANDB_ID_FILE = "wandb_run_id"


def _is_wandb(node: Any) -> bool:
    return str(node.get("_target_", "")).endswith("WandbLogger")


def check_wandb_credentials(node: Any) -> None:
    """An online wandb run without an API key would hang or fail mid-run: refuse it up front."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if node.get("offline") or mode in ("offline", "disabled", "dryrun"):
        return
    if os.environ.get("WANDB_API_KEY"):
        return
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    if netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore"):
        return
    raise ConfigError(
        "logger=wandb logs online but no W&B API key was found: set WANDB_API_KEY or run "
        "`wandb login`; on a cluster without network use WANDB_MODE=offline and "
        "`wandb sync <run dir>/wandb/offline-run-*` later"
    )


def wandb_run_id(out: Path, resuming: bool) -> str:
    """The run's wandb id, kept in <run dir>/wandb_run_id so that a resumed (requeued) job
    continues the same wandb run; a fresh start gets a new id."""
    path = out / WANDB_ID_FILE
    if resuming and path.is_file():
        return path.read_text(encoding="utf-8").strip()
    # wandb's own id format (8 characters of [a-z0-9]); its generator is not public API.
    run_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    if rank_zero_only.rank == 0:  # only rank zero logs to wandb
        tmp = path.with_suffix(".tmp")
        tmp.write_text(run_id, encoding="utf-8")
        os.replace(tmp, path)
    return run_id


def build_loggers(cfg: DictConfig, resuming: bool = False) -> list:
    loggers = []
    for node in (cfg.get("logger") or {}).values():
        if _is_wandb(node):
            check_wandb_credentials(node)
            loggers.append(build(node, id=wandb_run_id(output_dir(cfg), resuming), resume="allow"))
        else:
            loggers.append(build(node))
    return loggers


def build_plugins() -> list:
    plugins: list = [AtomicCheckpointIO()]
    if SLURMEnvironment.detect():
        # One owner of requeue: submitit (hydra/launcher=slurm, max_num_timeout) requeues a
        # preempted or timed-out job; Lightning's SLURM auto-requeue would be a second one.
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return plugins


RUN_RECORD_KEY = "ltcl_run"  # in every checkpoint: the training config it was trained with


class RecordRunIdentity(Callback):
    """Writes the run's training config and its hash into every checkpoint, so that a resume
    can be checked against it (:func:`ltcl.run_identity.check_resume_matches`)."""

    def __init__(self, identity: dict[str, Any]):
        self.record = {"hash": identity_hash(identity), "identity": identity}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[RUN_RECORD_KEY] = self.record


def check_resume(resume: str | None, identity: dict[str, Any]) -> None:
    """Refuse to resume a checkpoint trained with other settings (see ltcl.run_identity)."""
    if resume is None:
        return
    from ltcl.checkpoints import read_checkpoint

    record = read_checkpoint(resume).get(RUN_RECORD_KEY) or {}
    check_resume_matches(record.get("identity"), identity, resume)


def train(cfg: DictConfig, extra_callbacks: list | None = None) -> dict[str, Any]:
    """Fit, evaluate, and write results.json; return the results dict.

    `extra_callbacks` (Lightning callbacks) serve tests and programmatic use.
    """
    quiet_console(bool(cfg.get("verbose", False)))
    check_config(cfg)
    identity = training_identity(cfg)
    checkpoint_dir = output_dir(cfg) / "checkpoints"
    resume = resolve_resume_path(cfg.ckpt_path, checkpoint_dir)
    check_resume(resume, identity)
    with run_directory_lock(output_dir(cfg)):
        return _train(cfg, identity, resume, extra_callbacks)


def _train(
    cfg: DictConfig, identity: dict[str, Any], resume: str | None, extra_callbacks: list | None
) -> dict[str, Any]:
    L.seed_everything(cfg.seed, workers=True)
    if str(cfg.trainer.get("accelerator", "cpu")) == "cpu":
        devices = cfg.trainer.get("devices", 1)
        fit_threads_to_cores(devices if isinstance(devices, int) else 1)
    out = output_dir(cfg)
    checkpoint_dir = out / "checkpoints"
    out.mkdir(parents=True, exist_ok=True)

    datamodule = build(cfg.data)
    if cfg.get("ood"):
        datamodule.attach_ood_pool(build(cfg.ood))
    module = build(cfg.method, _convert_="all")
    callbacks = [
        # checkpoints/last.ckpt after every epoch, overwritten atomically: a run killed at any
        # point resumes from its last finished epoch. (Lightning >= 2.6 writes save_last only
        # when a top-k file was saved in the same step, so save_top_k=0 + save_last=True
        # would write nothing until the end of training; hence one top-k file named "last".)
        # Saved after the module's on_train_epoch_end, so that it holds the OOD sampling round
        # that ran at the end of its epoch.
        ModelCheckpoint(
            dirpath=checkpoint_dir,
            filename=LAST_CHECKPOINT_NAME,
            monitor=None,
            save_top_k=1,
            save_last=False,
            every_n_epochs=1,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
        ),
        LearningRateMonitor(logging_interval="epoch"),
        RecordRunIdentity(identity),
        *(extra_callbacks or []),
    ]
    loggers = build_loggers(cfg, resuming=resume is not None)
    precision, why = resolve_precision(
        cfg.trainer.get("precision", "auto"), str(cfg.trainer.get("accelerator", "cpu"))
    )
    trainer = instantiate(
        cfg.trainer,
        precision=precision,
        enable_model_summary=bool(cfg.get("verbose", False)),
        callbacks=callbacks,
        logger=loggers or False,
        plugins=build_plugins(),
        # The training loader is rebuilt every epoch: its shuffle and augmentation generators
        # are seeded per epoch (resume-exact), and a sampling round changes the OOD subset.
        reload_dataloaders_every_n_epochs=1,
    )
    if trainer.is_global_zero:
        print(f"[ltcl] precision {precision} ({why})", flush=True)
    if resume and trainer.is_global_zero:
        print(f"[ltcl] resuming from {resume}", flush=True)
    for logger in loggers:  # the whole resolved config, not only the module's arguments
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    started = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
        train_time = time.perf_counter() - started
        results: dict[str, Any] = {}
        if trainer.is_global_zero and not cfg.trainer.get("fast_dev_run"):
            results = final_evaluation(
                cfg, module, datamodule, train_time, identity, precision=precision
            )
            log_results(loggers, results, output_dir(cfg))
        trainer.strategy.barrier("ltcl-final-evaluation")
        return results
    finally:
        for logger in loggers:
            if type(logger).__name__ == "WandbLogger":
                import wandb

                wandb.finish()


def log_results(loggers: list, results: dict[str, Any], out: Path) -> None:
    """The final metrics (and, for wandb, the results table and plots) to every logger."""
    flat = {
        f"results/{protocol}/{field}": value
        for protocol, values in (results.get("metrics") or {}).items()
        if isinstance(values, dict)
        for field, value in values.items()
        if isinstance(value, int | float)
    }
    for logger in loggers:
        if flat:
            logger.log_metrics(flat)
        if type(logger).__name__ == "WandbLogger":
            rows = [
                [p, *(v.get(f) for f in ("all", "many", "medium", "few", "std"))]
                for p, v in (results.get("metrics") or {}).items()
                if isinstance(v, dict) and "all" in v
            ]
            if rows:
                columns = ["protocol", "all", "many", "medium", "few", "std"]
                logger.log_table(key="results/table", columns=columns, data=rows)
            plots = sorted(str(p) for p in out.glob("*.png"))
            if plots:
                logger.log_image(key="results/plots", images=plots)


def final_evaluation(
    cfg: DictConfig,
    module,
    datamodule,
    train_time: float,
    identity: dict[str, Any],
    precision: str | None = None,
) -> dict[str, Any]:
    """Evaluate the trained backbone (rank zero only), write results.json and the plots."""
    return evaluate_and_record(
        module.backbone,
        datamodule,
        OmegaConf.to_container(cfg.eval, resolve=True),
        output_dir(cfg),
        method=cfg.method.name,
        config=OmegaConf.to_container(cfg, resolve=True),
        seed=cfg.seed,
        epochs=module.current_epoch,
        train_time_s=train_time,
        extra={
            "epoch_times_s": [round(t, 3) for t in module.epoch_times],
            "run_hash": identity_hash(identity),
            "precision": precision,
        },
    )


def in_sweep() -> bool:
    """True inside a Hydra multirun job (a sweep or an Optuna trial): only then does the
    objective matter."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@report_errors
def _hydra_main(cfg: DictConfig) -> float | None:
    sweeping = in_sweep()
    if sweeping:
        check_objective(cfg.get("objective"), cfg.eval.protocols)
    results = train(cfg)
    return objective_value(results, cfg.get("objective")) if sweeping else None


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
