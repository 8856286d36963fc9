""".hydra/{config,hydra,overrides}.yaml, written when work starts rather than when Hydra starts.

Hydra writes these three files into the run directory before the task function runs. Since a
run directory is named by its training config (:mod:`ltcl.run.identity`), a command that
differs only in a setting that is safe to change (an evaluation protocol, the epoch count) lands
in an earlier run's directory, and a typo there (``eval.protocols=[knnn]``) used to overwrite
that run's record before ltcl refused the command. So ``hydra.output_subdir`` is null and ltcl
writes the same files itself, atomically, once every check has passed: when the first training
epoch starts (``ltcl-train``, each ``ltcl-pipeline`` stage) or the evaluation begins
(``ltcl-eval``).
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

from ltcl.utils.files import atomic_write_text

_pending: dict[str, str] | None = None


def defer_hydra_record(cfg: DictConfig) -> None:
    """Remember this invocation's record (call from the Hydra task function)."""
    global _pending
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    _pending = {
        "dir": str(Path(hydra_cfg.runtime.output_dir) / ".hydra"),
        "config.yaml": OmegaConf.to_yaml(cfg, resolve=False),
        "hydra.yaml": OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg}), resolve=False),
        "overrides.yaml": OmegaConf.to_yaml(hydra_cfg.overrides.task, resolve=False),
    }


def take_hydra_record() -> dict[str, str] | None:
    """The pending record, once: the first stage to start writes it."""
    global _pending
    record, _pending = _pending, None
    return record


def write_hydra_record(record: dict[str, str] | None) -> None:
    if record is None:
        return
    folder = Path(record["dir"])
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        atomic_write_text(folder / name, record[name])


class WriteHydraRecord(Callback):
    """Writes the invocation's record on process 0 when training starts (after data setup and
    every method's fit-start checks). Holds the record itself, so spawned processes have it."""

    def __init__(self, record: dict[str, str] | None):
        self.record = record

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            write_hydra_record(self.record)
            self.record = None
