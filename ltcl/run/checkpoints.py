"""ltcl checkpoints written atomically and resumed by rule.

A job killed while `torch.save` streams to `last.ckpt` would leave a truncated file that cannot
be resumed from; every checkpoint goes through :func:`ltcl.utils.files.atomic_write`, so the
previous one stays intact until the new one is complete. Reading a checkpoint back is
:mod:`ltcl.models.checkpoints`.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ltcl.errors import ConfigError, TrainingError
from ltcl.utils.files import atomic_write


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to `path` through a temporary file and an atomic rename."""
    atomic_write(path, lambda handle: torch.save(obj, handle))


def _no_space(error: BaseException) -> bool:
    """A full disk, however torch words it (its stream writer reports ENOSPC as "file write
    failed", with "No space left on device" in the chain or not at all)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(seen) or "Disk quota exceeded" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO whose saves are atomic (see module doc)."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options: Any | None = None) -> None:
        try:
            atomic_torch_save(checkpoint, path)
        except Exception as error:
            folder = Path(path).parent
            if not _no_space(error):
                raise
            free = shutil.disk_usage(folder).free / 2**20
            kept = "the previous last.ckpt is intact" if Path(path).exists() else "none was kept"
            raise TrainingError(
                f"no space left to write the checkpoint {path} ({free:.1f} MiB free on its "
                f"file system; {type(error).__name__}: {str(error).splitlines()[0][:100]}): "
                f"{kept}; free space there or move the run (LTCL_LOG_DIR / paths.log_dir), "
                "then run the same command to resume"
            ) from error


def resolve_resume_path(ckpt_path: str | None, checkpoint_dir: str | os.PathLike) -> str | None:
    """`last` -> <checkpoint_dir>/last.ckpt when it exists (auto-resume), else start fresh.

    Any other value must be an existing file; a missing one is an error rather than a
    silent fresh start.
    """
    if ckpt_path in (None, "", "none", "null"):
        return None
    if ckpt_path == "last":
        last = Path(checkpoint_dir) / "last.ckpt"
        return str(last) if last.is_file() else None
    if not Path(ckpt_path).is_file():
        raise ConfigError(
            f"ckpt_path={ckpt_path} does not exist: give an existing checkpoint, 'last' to "
            "resume from this run's last.ckpt when present, or ckpt_path=null to start fresh"
        )
    return str(ckpt_path)
