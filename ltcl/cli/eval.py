"""`ltcl-eval`: evaluate a checkpoint of any ltcl method (Hydra app).

    ltcl-eval ckpt_path=outputs/train/<run>/checkpoints/last.ckpt data=cifar10_lt_folder \\
        eval.protocols=[knn,linear_b,linear_a,few_shot]

The data config must be the training run's (same dataset and split values): the checkpoint
records its dataset, class count and per-class training counts, and a mismatch is an error
before any feature is extracted. Writes results.json and plots to outputs/eval/<run>_<tag>/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ltcl.cli.console import report_errors, run_console
from ltcl.conf import CONFIG_DIR
from ltcl.data.splits import split_fingerprint
from ltcl.errors import ConfigError
from ltcl.evaluation.protocols import check_eval_settings, evaluate_and_record
from ltcl.models.checkpoints import check_data_matches, load_backbone
from ltcl.run.record import defer_hydra_record, take_hydra_record, write_hydra_record


def _run_of(ckpt_path: str) -> str:
    """The training run's name from <run>/checkpoints/x.ckpt (for the eval run directory)."""
    path = Path(str(ckpt_path))
    return path.parent.parent.name if path.parent.name == "checkpoints" else path.stem


def _int_or_none(value) -> int | None:
    return None if value in (None, "") else int(value)


if not OmegaConf.has_resolver("run_of"):
    OmegaConf.register_new_resolver("run_of", _run_of)


def evaluate_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    check_eval_settings(OmegaConf.to_container(cfg.eval, resolve=True))
    backbone, meta = load_backbone(cfg.ckpt_path)
    trained_on = meta.get("data") or {}
    if trained_on and (
        trained_on.get("dataset") != cfg.data.get("name")
        or trained_on.get("num_classes") != cfg.data.get("num_classes")
    ):  # before any image is decoded
        raise ConfigError(
            f"the checkpoint was trained on '{trained_on.get('dataset')}' "
            f"({trained_on.get('num_classes')} classes) but the data config is "
            f"'{cfg.data.get('name')}' ({cfg.data.get('num_classes')} classes): pass data=... of "
            "the training run"
        )
    datamodule = instantiate(cfg.data)
    datamodule.setup("test")
    check_data_matches(
        meta,
        datamodule.name,
        datamodule.num_classes,
        list(datamodule.split.class_counts),
        split_fingerprint(datamodule.split),
    )
    train_config = meta["hyper_parameters"]
    write_hydra_record(take_hydra_record())  # every check passed
    return evaluate_and_record(
        backbone,
        datamodule,
        OmegaConf.to_container(cfg.eval, resolve=True),
        cfg.paths.output_dir,
        method=meta["method"],
        config=OmegaConf.to_container(cfg, resolve=True),
        seed=_int_or_none((meta["data"] or {}).get("seed")),
        epochs=meta["epoch"],
        extra={
            "checkpoint": str(Path(cfg.ckpt_path).resolve()),
            "checkpoint_global_step": meta["global_step"],
            "method_hyper_parameters": {k: v for k, v in train_config.items() if k != "optimizer"},
        },
    )


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
@report_errors
def _hydra_main(cfg: DictConfig) -> float | None:
    defer_hydra_record(cfg)
    return evaluate_checkpoint(cfg)["metrics"].get("knn", {}).get("all")


def main() -> None:
    import sys

    if not any(arg.lstrip("+").startswith("ckpt_path=") for arg in sys.argv[1:]) and not any(
        arg.startswith(("--help", "-h", "--cfg", "-c", "--info", "-i", "--hydra-help"))
        for arg in sys.argv[1:]
    ):
        print(
            "ltcl: error: ltcl-eval needs the checkpoint to evaluate: "
            "ckpt_path=<run dir>/checkpoints/last.ckpt (and the training run's data=...)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    run_console(_hydra_main, "eval")


if __name__ == "__main__":
    main()
