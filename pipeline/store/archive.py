"""Archive and quarantine: where verified PDFs, rejected records and finished batches go.

Every file lands by temp file + rename in the target folder, so a crash never leaves half a file
under a final name. Source scans are only moved (never changed) and only after the batch's
outputs are written, verified and recorded.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from pipeline.errors import BatchError
from pipeline.intake.ingest import sha256_file
from pipeline.text import tokens

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


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new name in ``folder`` durable: without it a power cut can lose the
    entry although the file's data were synced."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(folder: Path) -> None:
    """``mkdir -p`` whose new folders survive a power cut: each one's entry in its parent is
    synced, or a synced file inside could vanish with the folder that held it."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for new in reversed(missing):
        with contextlib.suppress(FileExistsError):
            new.mkdir()
        fsync_dir(new.parent)


def _synced_temp(path: Path, write: Callable[[BinaryIO], None], mode: int = ARCHIVE_MODE,
                 make_parents: bool = True) -> Path:
    """A temp file beside ``path`` with ``write``'s content, synced to disk, with ``mode``
    (mkstemp makes it owner-only until then, so a secret is never readable by others). Without
    ``make_parents`` a missing folder raises FileNotFoundError instead of being made."""
    if make_parents:
        make_dirs(path.parent)
    sweep_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _replace(tmp: Path, path: Path) -> None:
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes, mode: int = ARCHIVE_MODE,
                       make_parents: bool = True) -> None:
    """Write ``path`` whole or not at all, durably (notes, reports: these may be replaced)."""
    _replace(_synced_temp(path, lambda fh: fh.write(data), mode, make_parents), path)


def write_once(path: Path, data: bytes, mode: int = ARCHIVE_MODE) -> bool:
    """Create ``path`` with ``data``, whole and durably, unless it exists (then it is left as it
    is and False returned): the temp file is hard-linked to the name, which never replaces, so
    of two writers at once (two processes, two machines on a share) the first one's file stays."""
    tmp = _synced_temp(path, lambda fh: fh.write(data), mode)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return True


def _copy_of(src: Path) -> Callable[[BinaryIO], None]:
    def copy(fh: BinaryIO) -> None:
        with src.open("rb") as source:
            shutil.copyfileobj(source, fh, 1 << 20)

    return copy


def atomic_copy(src: Path, dst: Path) -> None:
    _replace(_synced_temp(dst, _copy_of(src)), dst)


# --- names ---------------------------------------------------------------------------------------
# A record id is outside text: never a path. Files are named by a key over the exact agency code
# and record id (80 bits of SHA-256: no two records of a province meet, and a clash would still
# be refused by place_new, not overwrite), lower case so that a case-insensitive share (SMB) keeps
# them apart too, plus a short readable slug for the person browsing the folder.
_KEY_HEX = 20
_SLUG_CHARS = 40


def record_name(agency_code: str, record_id: str) -> str:
    """``<slug>_<key>``: ``HS/001`` -> ``hs-001_3f9c…``; unique per (agency, record id), at most
    61 ASCII characters whatever the id's length."""
    key = hashlib.sha256(f"{agency_code}\0{record_id}".encode()).hexdigest()[:_KEY_HEX]
    slug = "-".join(tokens(record_id))[:_SLUG_CHARS].strip("-") or "hs"
    return f"{slug}_{key}"


def check_component(value: str, what: str) -> str:
    """``value`` (an agency code or batch id from an operator or a folder name) as one path
    component, or BatchError: no separators, no ``..``, no control characters, at most 120
    characters (room for a "~n" suffix; a file name is at most 255 bytes)."""
    bad = (not value or value in (".", "..") or any(c in value for c in "/\\")
           or any(unicodedata.category(c).startswith("C") for c in value)
           or len(value) > 120 or value != value.strip())
    if bad:
        raise BatchError(
            f"{what} {value!r} không dùng được làm tên thư mục (rỗng, có '/', '\\', '..', ký tự "
            "điều khiển, dấu cách ở đầu/cuối hoặc dài quá 120 ký tự). Đặt lại tên thư mục lô hoặc "
            f"giá trị --batch-id/--agency rồi chạy lại. ({what} is not a safe folder name.)")
    return value


def archive_path(archive_dir: Path, agency_code: str, year: int | None, record_id: str,
                 version: int = 1) -> Path:
    """Where version ``version`` of a record's PDF is archived; versions sit side by side."""
    folder = archive_dir / check_component(agency_code, "Mã cơ quan") / (
        str(year) if year else "khong-ro-nam")
    return folder / f"{record_name(agency_code, record_id)}_v{version}.pdf"


def work_folder(work_dir: Path, agency_code: str, record_id: str) -> Path:
    return work_dir / check_component(agency_code, "Mã cơ quan") / record_name(agency_code, record_id)


def place_new(pdf: Path, target: Path) -> str:
    """Put a copy of ``pdf`` at ``target``, which must not exist yet; return its SHA-256.

    Never replaces a file: the synced temp file is hard-linked to the final name (``link`` fails
    where ``rename`` would overwrite), then the directory is synced, so the name survives a power
    cut before the warehouse is told. A ``target`` that exists with the same content (a run
    killed after this step) is taken as placed; one with other content raises FileExistsError.
    """
    tmp = _synced_temp(target, _copy_of(pdf))
    try:
        digest = sha256_file(tmp)
        if digest != sha256_file(pdf):
            raise OSError(f"{target}: copy differs from {pdf}; storage may be failing")
        try:
            os.link(tmp, target)
        except FileExistsError:
            if sha256_file(target) != digest:
                raise
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(target.parent)
    return digest


def quarantine_folder(quarantine_dir: Path, agency_code: str, batch_id: str) -> Path:
    return (quarantine_dir / check_component(agency_code, "Mã cơ quan")
            / check_component(batch_id, "Mã lô"))


def quarantine_pdf(quarantine_dir: Path, agency_code: str, batch_id: str, record_id: str,
                   pdf: Path) -> Path:
    """The PDF made for a held record, beside its note, for the archivist to judge."""
    target = (quarantine_folder(quarantine_dir, agency_code, batch_id)
              / f"{record_name(agency_code, record_id)}.pdf")
    atomic_copy(pdf, target)
    return target


def quarantine_record(
    quarantine_dir: Path, agency_code: str, batch_id: str, record_id: str, reason: str,
    messages: list[str], batch_dir: Path, source_files: list[str], row: dict[str, Any],
) -> Path:
    """Write ``<name>.json`` (for machines) and ``<name>.txt`` (for people), named by
    :func:`record_name`; the note replaces an earlier note of the same record (its history is in
    the warehouse's events).

    Copies of the record's source files go beside them so the archivist sees what was scanned;
    the originals stay in the inbox until the record is fixed and archived.
    """
    folder = quarantine_folder(quarantine_dir, agency_code, batch_id)
    name = record_name(agency_code, record_id)
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


def _move_aside(src: Path, folder: Path) -> None:
    """Move ``src`` into ``folder`` under its name, or with a time suffix when a file of that name
    is there already: a resolved note is kept, never replaced."""
    make_dirs(folder)
    target = folder / src.name
    if target.exists():
        target = folder / f"{src.stem}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}{src.suffix}"
    os.rename(src, target)


def _noted_files(folder: Path) -> set[str]:
    """The source files that the notes still in ``folder`` refer to."""
    names: set[str] = set()
    for note in folder.glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            names.update(json.loads(note.read_text(encoding="utf-8")).get("source_files", []))
    return names


def resolve_notes(quarantine_dir: Path, resolved_dir: Path, agency_code: str, batch_id: str,
                  record_id: str | None = None) -> int:
    """Move a record's quarantine note (all notes of the batch with ``record_id=None``) from
    ``quarantine/<agency>/<batch>/`` to ``resolved/<agency>/<batch>/`` once it is archived: the
    quarantine folder lists only what still needs work, and the story of a fix is kept. Scan
    copies go with the last note that refers to them. Returns the number of files moved."""
    folder = quarantine_folder(quarantine_dir, agency_code, batch_id)
    if not folder.is_dir():
        return 0
    target = quarantine_folder(resolved_dir, agency_code, batch_id)
    prefix = record_name(agency_code, record_id) if record_id is not None else ""
    moved = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
             and (record_id is None or p.stem == prefix)]
    for path in moved:
        _move_aside(path, target)
    copies = folder / "files"
    if copies.is_dir():
        still_needed = _noted_files(folder)
        for path in [p for p in copies.iterdir() if p.name not in still_needed]:
            _move_aside(path, target / "files")
            moved.append(path)
        with contextlib.suppress(OSError):
            copies.rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()
    if moved:
        fsync_dir(target)
    return len(moved)


# --- finished batches ----------------------------------------------------------------------------
# Written into a batch folder right before it moves to done/: which batch it is. A rerun after a
# kill during the move finds its batch by this mark, and a done/ folder without it (or with
# another batch's) is never entered: nothing in done/ is ever replaced.
BATCH_MARK = ".digitize-batch.json"


def batch_mark(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / BATCH_MARK).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_batch(folder: Path, batch_pk: int) -> bool:
    mark = batch_mark(folder)
    return mark is not None and mark.get("batch_pk") == batch_pk


def _done_targets(done_dir: Path, agency_code: str, batch_id: str, batch_pk: int) -> list[Path]:
    """Where the batch may go in ``done/``: its id, else (a folder of that name is there, made by
    hand or by a batch from before versioned names) its id with its warehouse key."""
    agency = done_dir / check_component(agency_code, "Mã cơ quan")
    return [agency / check_component(batch_id, "Mã lô"), agency / f"{batch_id}~{batch_pk}"]


def moved_batch(done_dir: Path, agency_code: str, batch_id: str, batch_pk: int) -> Path | None:
    """The batch's folder in ``done/``, if it has been moved there."""
    return next((t for t in _done_targets(done_dir, agency_code, batch_id, batch_pk)
                 if _is_batch(t, batch_pk)), None)


def finish_batch(batch_dir: Path, inbox_dir: Path, done_dir: Path, agency_code: str,
                 batch_id: str, batch_pk: int) -> Path | None:
    """Move a fully archived batch out of the inbox to ``done/<agency>/<batch id>``.

    Folders outside the inbox (``digitize run`` on any path) are the user's and stay where they
    are; a batch already in ``done/`` stays there. The folder is renamed in one step, so a kill
    leaves it wholly in the inbox or wholly in ``done/``, and only onto a name that is free:
    an existing ``done/`` folder (an earlier batch with the same folder name) is never entered.
    """
    if not batch_dir.resolve().is_relative_to(inbox_dir.resolve()):
        return batch_dir if batch_dir.resolve().is_relative_to(done_dir.resolve()) else None
    already = moved_batch(done_dir, agency_code, batch_id, batch_pk)
    if already is not None and not batch_dir.is_dir():
        return already  # a second run of the same batch, or a rerun after a kill, moved it
    target = next((t for t in _done_targets(done_dir, agency_code, batch_id, batch_pk)
                   if not t.exists()), None)
    if target is None:
        raise BatchError(
            f"{batch_dir}: không chuyển được lô sang done/ vì đã có thư mục "
            f"{done_dir / agency_code / batch_id} của lô khác. Báo quản trị hệ thống kiểm tra thư "
            "mục done/ (lô không bị thay đổi, vẫn nằm trong inbox).")
    try:
        # into the folder as it is: a second run of the same batch that moved it a moment ago
        # must not find an empty folder of that name made again by this write
        atomic_write_bytes(batch_dir / BATCH_MARK, json.dumps(
            {"agency_code": agency_code, "batch_id": batch_id, "batch_pk": batch_pk},
            ensure_ascii=False).encode("utf-8"), make_parents=False)
    except FileNotFoundError:
        moved = moved_batch(done_dir, agency_code, batch_id, batch_pk)
        if moved is None:
            raise
        return moved
    make_dirs(target.parent)
    try:
        # onto a free name only: rename would replace an empty folder (nothing lost) but fails on
        # a folder with files (ENOTEMPTY), which is left as it is
        os.rename(batch_dir, target)
    except FileNotFoundError:
        moved = moved_batch(done_dir, agency_code, batch_id, batch_pk)
        if moved is None:
            raise
        return moved  # a second run of the same batch finishing at the same moment
    fsync_dir(target.parent)
    fsync_dir(batch_dir.parent)
    return target
