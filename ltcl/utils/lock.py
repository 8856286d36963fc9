"""One writer per run directory: a second identical command is refused, not run twice.

Two processes training into the same directory would overwrite each other's last.ckpt and
results.json. The lock is an OS file lock (flock) on ``<run dir>/.lock``: the kernel drops it
when the holder dies, so a killed run never leaves a stale lock behind. Only the launching
process (rank 0, or a process outside DDP) takes it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from ltcl.errors import ConfigError


@contextlib.contextmanager
def run_directory_lock(run_dir: str | os.PathLike) -> Iterator[None]:
    if os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("RANK", "0") != "0":
        yield
        return
    import fcntl

    path = Path(run_dir) / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ConfigError(
                f"another ltcl run ({holder}) is training in {run_dir}: wait for it to finish, "
                "or give this run another directory (its settings decide run_name)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class FileLock:
    """An exclusive advisory lock (fcntl) that waits: concurrent ranks decode a cache or extract
    an archive once (the others wait, then reuse it)."""

    def __init__(self, path: Path):
        self.path = path
        self._f = None

    def __enter__(self) -> FileLock:
        self._f = open(self.path, "a+")  # noqa: SIM115 - closed in __exit__
        try:
            import fcntl

            fcntl.flock(self._f.fileno(), fcntl.LOCK_EX)
        except ImportError:  # no fcntl (Windows): single-process use only
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            import fcntl

            fcntl.flock(self._f.fileno(), fcntl.LOCK_UN)
        except ImportError:
            pass
        self._f.close()
