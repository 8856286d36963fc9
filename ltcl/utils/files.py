"""One way to write a file that a reader never sees half-written.

A job killed mid-write (a checkpoint, results.json, a cache, a split file) would otherwise leave
a truncated file that the next run trusts. Every writer in ltcl goes through
:func:`atomic_write`: the bytes go to a unique temporary file in the same folder, are flushed
to disk, and replace the target with one `os.replace` (atomic on POSIX).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def make_folder(path: str | os.PathLike, what: str, fix: str) -> Path:
    """mkdir -p, with an error that names the folder, what it is for, and the fix."""
    from ltcl.errors import DataError

    folder = Path(path).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create {what} {folder} ({error.strerror}): {fix}") from error
    return folder


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call `write(handle)` on a temporary file, fsync it, and rename it onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, payload: Any) -> Path:
    return atomic_write_text(path, json.dumps(payload, indent=2, default=float))
