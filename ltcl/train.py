"""`ltcl-train`: pretrain one method on long-tailed ID data (Hydra app).

    ltcl-train method=simclr data=cifar10_lt_folder model=cifar_resnet18 trainer=gpu

The run directory is stable (`outputs/<task>/<run_name>`), so a restarted job resumes
from its own `checkpoints/last.ckpt` (ckpt_path=last, the default). At the end the run
writes `results.json` (machine-readable) next to the checkpoints.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from ltcl.errors import ConfigError
from ltcl.utils.checkpoint import AtomicCheckpointIO, resolve_resume_path

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
    if cfg.trainer.get("max_epochs", 1) < 1:
        raise ConfigError(f"trainer.max_epochs must be >= 1, got {cfg.trainer.max_epochs}")


def build_loggers(cfg: DictConfig) -> list:
    return [instantiate(node) for node in (cfg.get("logger") or {}).values()]


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, optionally test with kNN, and write results.json; return the results dict."""
    check_config(cfg)
    L.seed_everything(cfg.seed, workers=True)
    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)

    datamodule = instantiate(cfg.data)
    module = instantiate(cfg.method, _convert_="all")
    checkpoint_dir = out / "checkpoints"
    callbacks = [
        ModelCheckpoint(dirpath=checkpoint_dir, save_last=True, save_top_k=0, every_n_epochs=1),
        LearningRateMonitor(logging_interval="epoch"),
    ]
    loggers = build_loggers(cfg)
    trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        plugins=[AtomicCheckpointIO()],
    )
    resume = resolve_resume_path(cfg.ckpt_path, checkpoint_dir)
    if resume and trainer.is_global_zero:
        print(f"[ltcl] resuming from {resume}", flush=True)

    started = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
        train_time = time.perf_counter() - started
        if cfg.eval.test_at_end and not cfg.trainer.get("fast_dev_run"):
            trainer.test(module, datamodule=datamodule, verbose=False)
        results = collect_results(cfg, module, datamodule, train_time)
        if trainer.is_global_zero:
            write_json(out / "results.json", results)
            print(f"[ltcl] results: {out / 'results.json'}", flush=True)
            print(format_summary(results), flush=True)
        return results
    finally:
        for logger in loggers:
            if type(logger).__name__ == "WandbLogger":
                import wandb

                wandb.finish()


def collect_results(cfg: DictConfig, module, datamodule, train_time: float) -> dict[str, Any]:
    data = datamodule.summary()
    knn = module.last_knn.get("test") or module.last_knn.get("val") or {}
    return {
        "method": cfg.method.name,
        "dataset": data["dataset"],
        "imbalance_ratio": cfg.data.split.get("imbalance_ratio"),
        "split_seed": cfg.data.split.get("seed"),
        "seed": cfg.seed,
        "epochs": module.current_epoch,
        "train_time_s": round(train_time, 2),
        "epoch_times_s": [round(t, 3) for t in module.epoch_times],
        "train_images": data["train_images"],
        "metrics": {
            "knn": {k: knn[k] for k in ("all", "many", "medium", "few", "std") if k in knn},
            "knn_evaluated_on": "test" if "test" in module.last_knn else "val",
        },
        "per_class": {
            "train_count": data["class_counts"],
            "knn_acc": knn.get("per_class"),
        },
        "class_groups": data["class_groups"],
        "split": data["split"],
        "environment": {
            "torch": torch.__version__,
            "lightning": L.__version__,
            "python": platform.python_version(),
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "cpu_count": os.cpu_count(),
        },
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


def format_summary(results: dict[str, Any]) -> str:
    knn = results["metrics"]["knn"]
    cells = " ".join(
        f"{k}={knn[k]:.2f}" for k in ("all", "many", "medium", "few", "std") if k in knn
    )
    return (
        f"[ltcl] {results['method']} on {results['dataset']}: kNN ({results['metrics']['knn_evaluated_on']}) "
        f"{cells} | {results['epochs']} epochs in {results['train_time_s']:.1f} s"
    )


def write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=float))
    os.replace(tmp, path)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    results = train(cfg)
    return results["metrics"]["knn"].get("all")


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
