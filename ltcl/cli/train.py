"""`ltcl-train`: pretrain one method on long-tailed ID data (Hydra app).

    ltcl-train method=simclr data=cifar10_lt_folder model=cifar_resnet18 trainer=gpu

The run directory is stable (`outputs/<task>/<run_name>`), so a restarted job resumes
from its own `checkpoints/last.ckpt` (ckpt_path=last, the default). At the end the backbone is
evaluated with `eval.protocols` (kNN and linear probe (b) by default) and the run writes
`results.json` and plots next to the checkpoints.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig, OmegaConf

from ltcl.cli.console import report_errors, run_console
from ltcl.conf import CONFIG_DIR
from ltcl.evaluation.protocols import evaluate_and_record
from ltcl.run.checkpoints import AtomicCheckpointIO, resolve_resume_path
from ltcl.run.config_checks import check_config
from ltcl.run.identity import (
    check_resume_matches,
    identity_hash,
    register_resolver,
    training_identity,
)
from ltcl.run.instantiate import build
from ltcl.run.loggers import build_loggers, log_results
from ltcl.run.objective import run_for_objective
from ltcl.run.record import WriteHydraRecord, defer_hydra_record, take_hydra_record
from ltcl.run.stopping import stops_as, training
from ltcl.utils.console import quiet_console
from ltcl.utils.hardware import fit_threads_to_cores, resolve_precision
from ltcl.utils.lock import run_directory_lock

register_resolver()  # ${ltcl_run_hash:} in run_name, before Hydra composes anything

LAST_CHECKPOINT_NAME = "last"  # checkpoints/last.ckpt, what ckpt_path=last resumes


def output_dir(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir)


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
    can be checked against it (:func:`ltcl.run.identity.check_resume_matches`)."""

    def __init__(self, identity: dict[str, Any]):
        self.record = {"hash": identity_hash(identity), "identity": identity}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[RUN_RECORD_KEY] = self.record


def check_resume(resume: str | None, identity: dict[str, Any]) -> None:
    """Refuse to resume a checkpoint trained with other settings (see ltcl.run.identity)."""
    if resume is None:
        return
    from ltcl.models.checkpoints import read_checkpoint

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
    with run_directory_lock(output_dir(cfg)), stops_as(checkpoint_dir / "last.ckpt"):
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
        WriteHydraRecord(take_hydra_record()),
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
        with training(trainer):  # a stop signal ends training after the current step
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
        # the whole training time: earlier invocations' (from the checkpoint) + this one's
        train_time = module.earlier_fit_seconds + time.perf_counter() - started
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
            "epoch_times_s": [round(t, 3) for t in module.epoch_times],  # every epoch
            "epochs_trained_this_run": module.current_epoch - module.earlier_epochs,
            "run_hash": identity_hash(identity),
            "precision": precision,
        },
    )


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@report_errors
def _hydra_main(cfg: DictConfig) -> float | None:
    defer_hydra_record(cfg)
    return run_for_objective(cfg, train)


def main() -> None:
    run_console(_hydra_main, "train")


if __name__ == "__main__":
    main()
