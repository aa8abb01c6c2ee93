"""Archive and quarantine: where verified PDFs, rejected records and finished batches go.

Every file lands by temp file + rename in the target folder, so a crash never leaves half a file
under a final name. Source scans are only moved (never changed) and only after the batch's
outputs are written, verified and recorded.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from pipeline.ingest import sha256_file

# mkstemp creates owner-only files; archived records are for every reader of the archive
ARCHIVE_MODE = 0o644
# A temp file written from another machine (shared storage) is only presumed abandoned when no
# write could still be going on: far longer than the slowest copy of one PDF.
FOREIGN_TEMP_AGE = 24 * 3600


def _temp_prefix(path: Path) -> str:
    """``.<name>.<pid>@<host>.``: whose temp file it is, so a later write can tell a killed
    writer's leftover from a live writer's file in progress."""
    return f".{path.name}.{os.getpid()}@{socket.gethostname()}."


def _owner_gone(pid: int, host: str, age: float) -> bool:
    if host != socket.gethostname():
        return age > FOREIGN_TEMP_AGE  # another machine's process cannot be asked
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def sweep_stale_temps(path: Path) -> None:
    """Delete the temp files a killed writer of ``path`` left beside it (SIGKILL, power loss:
    no ``except`` ran); those of live writers stay."""
    if not path.parent.is_dir():
        return
    start = f".{path.name}."
    for leftover in path.parent.glob(f"{glob.escape(start)}*.tmp"):
        owner, _, _random = leftover.name[len(start):-len(".tmp")].rpartition(".")
        pid, _, host = owner.partition("@")
        if not pid.isdigit() or not host:
            continue  # not ours
        with contextlib.suppress(FileNotFoundError):
            if _owner_gone(int(pid), host, time.time() - leftover.stat().st_mtime):
                leftover.unlink()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, ARCHIVE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(dst)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=_temp_prefix(dst), suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, ARCHIVE_MODE)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def archive_path(archive_dir: Path, agency_code: str, year: int | None, record_id: str) -> Path:
    return archive_dir / agency_code / (str(year) if year else "khong-ro-nam") / f"{_safe(record_id)}.pdf"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def safe_name(record_id: str) -> str:
    """The record id as a file name, as its archived PDF is called (work folders use it too)."""
    return _safe(record_id)


def archive_pdf(pdf: Path, target: Path) -> str:
    """Place the verified PDF at its archive path; return its SHA-256 as stored."""
    atomic_copy(pdf, target)
    digest = sha256_file(target)
    if digest != sha256_file(pdf):
        target.unlink(missing_ok=True)
        raise OSError(f"{target}: copy differs from {pdf}; storage may be failing")
    return digest


def quarantine_folder(quarantine_dir: Path, agency_code: str, batch_id: str) -> Path:
    return quarantine_dir / agency_code / batch_id


def quarantine_record(
    quarantine_dir: Path, agency_code: str, batch_id: str, record_id: str, reason: str,
    messages: list[str], batch_dir: Path, source_files: list[str], row: dict[str, Any],
) -> Path:
    """Write ``<record_id>.json`` (for machines) and ``<record_id>.txt`` (for people).

    Copies of the record's source files go beside them so the archivist sees what was scanned;
    the originals stay in the inbox until the record is fixed and archived.
    """
    folder = quarantine_folder(quarantine_dir, agency_code, batch_id)
    name = _safe(record_id)
    info = {"record_id": record_id, "batch_id": batch_id, "agency_code": agency_code,
            "reason": reason, "messages": messages, "manifest_row": row,
            "source_files": source_files}
    atomic_write_bytes(folder / f"{name}.json",
                       json.dumps(info, ensure_ascii=False, indent=2).encode("utf-8"))
    human = [f"Hồ sơ: {record_id}", f"Lô: {agency_code}/{batch_id}", f"Lý do: {reason}", "",
             *messages, ""]
    atomic_write_bytes(folder / f"{name}.txt", "\n".join(human).encode("utf-8"))
    for file_name in source_files:
        src = batch_dir / file_name
        if src.is_file():
            atomic_copy(src, folder / "files" / file_name)
    return folder / f"{name}.json"


def _done_target(batch_dir: Path, inbox_dir: Path) -> Path | None:
    """The batch's path relative to the inbox, or None for a folder outside the inbox."""
    try:
        return batch_dir.resolve().relative_to(inbox_dir.resolve())
    except ValueError:
        return None


# In a done/ folder while an inbox batch is merged into it, file by file; a rerun finding it
# completes the merge. A marker rather than the manifest: a scanned stack has no manifest.
MERGING = ".digitize-merging"


def _merge_into(batch_dir: Path, target: Path) -> None:
    """File by file into a ``target`` that already exists, marked as merging until the last file
    is in: :func:`batch_location` completes an interrupted merge."""
    target.mkdir(parents=True, exist_ok=True)
    (target / MERGING).touch()
    for entry in sorted(batch_dir.iterdir()):
        # a second run of the same batch finishing at the same moment may have moved it already
        with contextlib.suppress(FileNotFoundError):
            os.replace(entry, target / entry.name)
    with contextlib.suppress(FileNotFoundError):
        batch_dir.rmdir()
    (target / MERGING).unlink(missing_ok=True)


def batch_location(batch_dir: Path, inbox_dir: Path, done_dir: Path) -> Path:
    """Where an inbox batch is now, for a rerun after a crash at the very end of a run.

    :func:`finish_batch` only starts once every record is archived, so a batch gone from the
    inbox to ``done/`` (or part-way into a ``done/`` folder that existed before) is finished:
    the rerun reads it there, with the interrupted merge completed, and only its warehouse row
    is left to update. A ``done/`` folder of the same name from an earlier batch is left alone.
    """
    relative = _done_target(batch_dir, inbox_dir)
    if relative is None:
        return batch_dir
    target = done_dir / relative
    if (target / MERGING).exists():
        if batch_dir.is_dir():
            _merge_into(batch_dir, target)
        (target / MERGING).unlink(missing_ok=True)
        return target
    if batch_dir.is_dir() or not target.is_dir():
        return batch_dir
    return target


def finish_batch(batch_dir: Path, inbox_dir: Path, done_dir: Path) -> Path | None:
    """Move a fully archived batch out of the inbox to ``done/<agency>/<batch>``.

    Folders outside the inbox (``digitize run`` on any path) are the user's and stay where they
    are; a batch already in ``done/`` (a rerun after a crash during the move) stays there. The
    folder is renamed in one step, so a kill leaves it wholly in the inbox or wholly in
    ``done/``; only into an existing ``done/`` folder is it merged file by file.
    """
    relative = _done_target(batch_dir, inbox_dir)
    if relative is None:
        return batch_dir if _done_target(batch_dir, done_dir) is not None else None
    target = done_dir / relative
    if not batch_dir.is_dir() and target.is_dir() and not (target / MERGING).exists():
        return target  # a second run of the same batch finished it first
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(batch_dir, target)
    except FileNotFoundError:
        if not target.is_dir():
            raise
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise  # e.g. EXDEV: inbox and done/ must share a file system
        _merge_into(batch_dir, target)
    return target
