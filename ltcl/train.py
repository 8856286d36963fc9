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
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from ltcl.errors import ConfigError, LtclError
from ltcl.evaluate import evaluate_and_record
from ltcl.utils.checkpoint import AtomicCheckpointIO, resolve_resume_path

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
    if cfg.trainer.get("use_distributed_sampler", False):
        raise ConfigError(
            "trainer.use_distributed_sampler must stay false: ltcl's samplers shard each global "
            "batch across processes themselves (ltcl/data/samplers.py)"
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


def build_loggers(cfg: DictConfig) -> list:
    return [build(node) for node in (cfg.get("logger") or {}).values()]


def train(cfg: DictConfig, extra_callbacks: list | None = None) -> dict[str, Any]:
    """Fit, evaluate, and write results.json; return the results dict.

    `extra_callbacks` (Lightning callbacks) serve tests and programmatic use.
    """
    check_config(cfg)
    L.seed_everything(cfg.seed, workers=True)
    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)

    datamodule = build(cfg.data)
    if cfg.get("ood"):
        datamodule.attach_ood_pool(build(cfg.ood))
    module = build(cfg.method, _convert_="all")
    checkpoint_dir = out / "checkpoints"
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
        *(extra_callbacks or []),
    ]
    loggers = build_loggers(cfg)
    trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        plugins=[AtomicCheckpointIO()],
        # The training loader is rebuilt every epoch: its shuffle and augmentation generators
        # are seeded per epoch (resume-exact), and a sampling round changes the OOD subset.
        reload_dataloaders_every_n_epochs=1,
    )
    resume = resolve_resume_path(cfg.ckpt_path, checkpoint_dir)
    if resume and trainer.is_global_zero:
        print(f"[ltcl] resuming from {resume}", flush=True)

    started = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
        train_time = time.perf_counter() - started
        results: dict[str, Any] = {}
        if trainer.is_global_zero and not cfg.trainer.get("fast_dev_run"):
            results = final_evaluation(cfg, module, datamodule, train_time)
        trainer.strategy.barrier("ltcl-final-evaluation")
        return results
    finally:
        for logger in loggers:
            if type(logger).__name__ == "WandbLogger":
                import wandb

                wandb.finish()


def final_evaluation(cfg: DictConfig, module, datamodule, train_time: float) -> dict[str, Any]:
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
        extra={"epoch_times_s": [round(t, 3) for t in module.epoch_times]},
    )


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    results = train(cfg)
    knn = results.get("metrics", {}).get("knn", {})
    return knn.get("all")


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
