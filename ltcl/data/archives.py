"""Extracting a dataset archive (.tar.gz) once, safely, even with several ranks at once."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from ltcl.data.sources import ImageSource, image_folder
from ltcl.errors import DataError
from ltcl.utils.files import atomic_write_text, make_folder
from ltcl.utils.lock import FileLock

# --------------------------------------------------------------------------------------------
# Archives
# --------------------------------------------------------------------------------------------


def extract_archive(archive_path: str | os.PathLike, dest_dir: str | os.PathLike) -> str:
    """Extract a ``.tar.gz`` once into ``dest_dir`` and return the extracted folder.

    Extraction goes to a temporary folder that is renamed into place, and a marker file records
    completion (with the archive's size and mtime, so a replaced archive is re-extracted). Several
    processes (DDP ranks) may call this at once: a file lock lets one extract. Returns
    ``dest_dir/<top>`` when the archive holds a single top-level folder, else ``dest_dir``.
    """
    arc = Path(archive_path).expanduser()
    if not arc.is_file():
        raise DataError(
            f"archive {arc} does not exist: set LTCL_SHARED_DATA_DIR to the folder that holds "
            f"{arc.name} (or the source's archive to the file), or extract it yourself and "
            "point the source's root at the folder"
        )
    dest = make_folder(dest_dir, "extraction folder", "set it to a writable folder")
    st = arc.stat()
    stamp = {"archive": arc.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    marker = dest / f".{arc.name}.extracted"
    pending = dest / f".{arc.name}.pending"

    def done() -> str | None:
        try:
            info = json.loads(marker.read_text())
        except (OSError, ValueError):
            return None
        tops = info.get("tops", [])
        if {k: info.get(k) for k in stamp} != stamp or not all((dest / t).exists() for t in tops):
            return None
        return str(dest / tops[0]) if len(tops) == 1 and (dest / tops[0]).is_dir() else str(dest)

    found = done()
    if found:
        return found
    with FileLock(dest / f".{arc.name}.lock"):
        found = done()
        if found:
            return found
        # Remove what an interrupted or outdated extraction of this archive left behind.
        for stale in (pending, marker):
            try:
                for t in json.loads(stale.read_text()).get("tops", []):
                    _remove(dest / t)
            except (OSError, ValueError):
                pass
            stale.unlink(missing_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".extract-{arc.name}-", dir=dest))
        try:
            try:
                with tarfile.open(arc, "r:*") as tf:
                    _safe_extractall(tf, tmp)
            except (tarfile.TarError, OSError, EOFError) as e:
                raise DataError(
                    f"cannot extract {arc} ({type(e).__name__}: {e}): the archive "
                    "is corrupt or not a tar file; copy it again"
                ) from e
            tops = sorted(os.listdir(tmp))
            if not tops:
                raise DataError(f"archive {arc} is empty: copy it again")
            for t in tops:  # an empty folder in the way (an interrupted copy) holds nothing
                if (dest / t).is_dir() and not any((dest / t).iterdir()):
                    (dest / t).rmdir()
            clash = [t for t in tops if (dest / t).exists()]
            if clash:
                raise DataError(
                    f"{[str(dest / t) for t in clash]} already exist(s) but were not "
                    f"extracted from {arc.name} by ltcl: remove them or choose "
                    "another destination folder"
                )
            atomic_write_text(pending, json.dumps({"tops": tops}))
            for t in tops:
                os.replace(tmp / t, dest / t)
            atomic_write_text(marker, json.dumps({**stamp, "tops": tops}))
            pending.unlink(missing_ok=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    found = done()
    assert found is not None
    return found


def _safe_extractall(tf: tarfile.TarFile, dest: Path) -> None:
    """Refuse members that would land outside ``dest`` (absolute paths, ``..``, odd links)."""
    if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
        tf.extractall(dest, filter="data")
        return
    root = os.path.realpath(dest)
    for m in tf.getmembers():
        target = os.path.realpath(os.path.join(dest, m.name))
        if os.path.commonpath([root, target]) != root or m.issym() or m.islnk() or m.isdev():
            raise DataError(
                f"archive member {m.name!r} is a link or points outside the "
                "destination: refusing to extract; use a plain archive of files"
            )
    tf.extractall(dest)  # noqa: S202 - members checked above


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def image_folder_or_archive(
    root: str, split: str = "train", archive: str | None = None, **kwargs
) -> ImageSource:
    """An image folder, extracted once from `archive` (a .tar.gz) when `root` is absent.

    The archive must hold `<basename(root)>/` at its top, as the shared CIFAR-10 and Tiny
    ImageNet copies do, and is extracted into the parent of `root`.
    """
    # An existing but empty (or split-less) folder, e.g. left by an interrupted copy, is
    # treated as absent: the archive fills it.
    missing = not os.path.isdir(root) or not os.path.isdir(os.path.join(root, split))
    if missing and archive:
        extracted = extract_archive(archive, os.path.dirname(os.path.abspath(root)))
        if not os.path.isdir(os.path.join(root, split)):
            raise DataError(
                f"extracting {archive} into {extracted} did not create {root}/{split}: point "
                "the source's root (data.train_source.root / data.test_source.root, or "
                "ood.source.root; by default under paths.data_dir) at the folder inside the "
                f"archive that holds {split}/"
            )
    return image_folder(root, split=split, **kwargs)
