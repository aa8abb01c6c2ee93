"""The inboxes: which batch folders are ready, and the runs that process them.

A batch ``DATA/inbox/<agency>/<batch>/`` is ready when its manifest exists (a scanned stack with
cover sheets needs none: some scan is enough) and its listing (names, sizes, mtimes and ctimes
of the folder and everything in it) has not changed across two looks the scanner profile's
settle time apart (scanners write slowly, clerks copy files in several goes). Modification
times alone cannot tell: ``cp -a``, ``rsync -a`` or a file manager keep the source's old mtimes,
so a batch still being copied would look settled. A file's ctime is set by the file system to
the time of the last change and no copy can set it; and the watcher remembers each batch's
listing with the time it first saw it (:func:`ready_batches` with ``looks``), so even a share
whose clock disagrees with ours cannot make a batch look older than the watcher has seen it.
Each ready batch gets runs with names derived from the batch alone (:func:`run_name`), so
the orchestrator's unique run names make a second start impossible: a watcher that overlaps
itself, or runs again after a restart, finds the runs already there. Two different batches
never share a name, however alike their folder names look once folded to Airflow's characters.

Under a scanner profile with ``manifest: draft`` or ``auto`` a batch of files without its
manifest is settled the same way, then drafted (:mod:`pipeline.drafting.watch`): held with
``manifest.draft.csv`` for the clerk, or under ``auto`` released at once with the draft as its
manifest when every field was read surely. The files the watcher writes change the listing, so
a held batch waits its settle time again, and the draft is never redone for the same scans:
renaming the checked draft to ``manifest.csv`` releases the batch one settle time later.

A big batch is split into parts of at most ``RECORDS_PER_RUN`` records, one run each: a run then
maps a bounded number of record tasks, under Airflow's ``max_map_length`` (1024) and small
enough for the grid view to stay quick.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import BatchError
from pipeline.intake import pages
from pipeline.intake.ingest import MANIFEST, read_manifest
from pipeline.text import strip_marks

if TYPE_CHECKING:
    from pipeline.config import Settings

log = logging.getLogger(__name__)

RECORDS_PER_RUN = 500
# the watcher's memory of each batch's listing between its runs, under DATA/work/
LOOKS_FILE = "inbox-looks.json"
_RUN_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.~:+-]+")  # outside Airflow's allowed_run_id_pattern
# Airflow keeps run ids in a 250-character column; the readable part leaves room for the hash
# ("__" + 16) and a part suffix ("__part1000of1000")
_READABLE_MAX = 160
_HASH_CHARS = 16


@dataclass(frozen=True)
class BatchRun:
    """One run of the batch DAG: its name and its configuration."""

    run_id: str
    conf: dict[str, Any]


def _latest_change(folder: Path) -> float | None:
    """The latest mtime or ctime of the folder or anything in it; None when something vanished
    while it was looked at (a scanner renaming its temporary file, the batch moved to done/):
    not settled, and never a reason to stop looking at the other batches."""
    try:
        return max(max(st.st_mtime, st.st_ctime)
                   for st in (p.stat() for p in [folder, *folder.rglob("*")]))
    except FileNotFoundError:
        return None


def last_change(folder: Path) -> float:
    """The latest change of the folder or anything in it: modification (mtime) or status
    change (ctime), whichever is later, as a copy keeping old mtimes still sets each ctime to
    the time of the copy (so does ``os.utime`` into the past). Now, when something vanishes
    while it is looked at."""
    latest = _latest_change(folder)
    return time.time() if latest is None else latest


def scan_files(folder: Path) -> list[Path]:
    """The page files directly in the batch folder (what a record's ``files`` may name)."""
    return [p for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in pages.SUPPORTED_SUFFIXES]


def fingerprint(folder: Path, scans_only: bool = False) -> str | None:
    """A digest of the folder's listing: every name under it (or only its page files,
    :func:`scan_files`: what a person changes, not the notes and drafts written beside them)
    with its type, size, mtime and ctime (nanoseconds). Any file added, removed, renamed, grown,
    rewritten or touched gives another digest. None when something vanished while it was
    looked at."""
    digest = hashlib.sha256()
    try:
        listed = scan_files(folder) if scans_only else [folder, *folder.rglob("*")]
        for path in sorted(listed):
            st = path.stat()
            # a folder name that is not UTF-8 is hashed as it is (surrogates), never refused
            name = str(path.relative_to(folder)).encode("utf-8", "surrogatepass")
            digest.update(b"%s\0%o %d %d %d\n" % (name, st.st_mode, st.st_size, st.st_mtime_ns,
                                                 st.st_ctime_ns))
    except FileNotFoundError:
        return None
    return digest.hexdigest()


def _complete(batch: Path, layout: str, drafting: bool) -> bool:
    """Whether the batch has what it starts with: a manifest, or scans where none is needed (a
    stack with cover sheets) or where the watcher drafts it."""
    if layout == "manifest" and (batch / MANIFEST).is_file():
        return True
    try:
        return (layout == "separator_sheets" or drafting) and bool(scan_files(batch))
    except FileNotFoundError:
        return False  # moved away while looked at


def _read_looks(looks: Path) -> dict[str, dict[str, Any]]:
    """The watcher's memory: batch (``<agency>/<batch>``) -> fingerprint and first seen. A
    missing or unreadable file is an empty memory: every batch waits its settle time again,
    which delays work but never starts a batch too early."""
    try:
        data = json.loads(looks.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("%s cannot be read (%s): every batch in the inbox waits its settle time "
                    "again", looks, exc)
        return {}
    if not isinstance(data, dict):
        return {}
    return {key: entry for key, entry in data.items()
            if isinstance(entry, dict) and isinstance(entry.get("fingerprint"), str)
            and isinstance(entry.get("first_seen"), int | float)}


def _settled_since(batch: Path, key: str, now: float, seen: dict[str, dict[str, Any]],
                   memory: dict[str, dict[str, Any]]) -> float:
    """Since when the batch's listing has looked as it does now (``now`` when it changed since
    the last look, or was never seen); records the look in ``memory``."""
    current = fingerprint(batch)
    if current is None:
        return now  # something vanished mid-look: not settled, and nothing to remember
    before = seen.get(key)
    first = now
    if before is not None and before["fingerprint"] == current and before["first_seen"] <= now:
        first = float(before["first_seen"])  # a clock set back restarts the wait instead
    memory[key] = {"fingerprint": current, "first_seen": first}
    return first


def ready_batches(inbox: Path, settle_seconds: float, now: float | None = None,
                  layout: str = "manifest", looks: Path | None = None,
                  drafting: bool = False) -> list[Path]:
    """Batch folders that are complete and settled for ``settle_seconds``, oldest agency
    first; ``layout`` is the scanner profile's ``batch_layout``; with ``drafting`` (a profile
    whose ``manifest`` is drafted) a batch of files without its manifest is complete too.

    With ``looks`` (a small JSON file: the watcher's memory between its runs), settled means
    the batch's :func:`fingerprint` is the one this look and the earlier looks saw, the first
    of them at least ``settle_seconds`` before ``now``: a batch is never ready at the first
    look (unless ``settle_seconds`` is 0), and any change restarts its wait. The file is
    written atomically; batches no longer in the inbox are forgotten. Without it, settled means
    no mtime or ctime in the folder is younger than ``settle_seconds`` (:func:`last_change`).
    """
    now = time.time() if now is None else now
    if not inbox.is_dir():
        candidates: list[Path] = []
    else:
        candidates = [batch for agency in sorted(p for p in inbox.iterdir() if p.is_dir())
                      for batch in sorted(p for p in agency.iterdir() if p.is_dir())
                      if _complete(batch, layout, drafting)]
    if looks is None:
        return [batch for batch in candidates
                if (latest := _latest_change(batch)) is not None and now - latest >= settle_seconds]
    seen = _read_looks(looks)
    memory: dict[str, dict[str, Any]] = {}
    ready = [batch for batch in candidates
             if now - _settled_since(batch, f"{batch.parent.name}/{batch.name}", now, seen,
                                     memory) >= settle_seconds]
    if memory != seen:
        # imported here: pipeline.store.archive brings the warehouse's modules, which a look at the
        # inbox without memory (tests, the CLI) does not need
        from pipeline.store.archive import atomic_write_bytes

        atomic_write_bytes(looks, json.dumps(memory, indent=1, sort_keys=True).encode("ascii"))
    return ready


def _readable(text: str) -> str:
    """``text`` in Airflow's run-id characters, accents folded: "Lô 01" -> "Lo-01"."""
    ascii_text = strip_marks(text, compatibility=True)
    # Airflow refuses ".." in a run id (path traversal), though its pattern allows dots
    return re.sub(r"\.{2,}", ".", _RUN_ID_UNSAFE.sub("-", ascii_text))[:_READABLE_MAX]


def run_name(agency_code: str, batch_id: str) -> str:
    """The name of a batch's run: readable, and different for any two batches.

    Folding to Airflow's characters merges names ("Lô 01", "Lô-01" and "Lo 01" all read
    ``Lo-01``), and a batch whose name is taken would be skipped forever; the hash of the exact
    names keeps them apart. Surrogates (a folder name that is not UTF-8) are hashed as they are.
    """
    exact = f"{agency_code}\0{batch_id}".encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(exact).hexdigest()[:_HASH_CHARS]
    return f"{_readable(f'inbox__{agency_code}__{batch_id}')}__{digest}"


def batch_runs(batch_dir: Path, records_per_run: int = RECORDS_PER_RUN,
               layout: str = "manifest", batch_id: str | None = None) -> list[BatchRun]:
    """The runs that process a batch: one, or one per part of ``records_per_run`` records.

    A scanned stack is one run: its records are known only once every page is decoded, which
    registration does once (README: keep a stack under ``records_per_run`` records). So is a
    batch whose manifest cannot be read: its run's register task fails with the reason, where
    the archivist looks, and the batches beside it start as usual. ``batch_id`` is the
    warehouse's id for the batch when it differs from the folder name.
    """
    name = run_name(batch_dir.parent.name, batch_id or batch_dir.name)
    parts = 1
    if layout == "manifest":
        try:
            records = len(read_manifest(batch_dir))
        except Exception as exc:  # noqa: BLE001 - whatever it is, register reports it for this batch alone
            # a traceback only for the unforeseen: a BatchError's message says it all
            log.warning("Batch %s: manifest.csv cannot be read, so the batch starts as one run "
                        "whose register task fails with the reason: %s", batch_dir, exc,
                        exc_info=not isinstance(exc, BatchError | OSError))
        else:
            parts = max(1, math.ceil(records / records_per_run))
    return [
        BatchRun(run_id=name if parts == 1 else f"{name}__part{part + 1}of{parts}",
                 conf={"batch_dir": str(batch_dir), "part": part, "parts": parts,
                       "records_per_run": records_per_run})
        for part in range(parts)
    ]


def ready_runs(settings: Settings) -> list[BatchRun]:
    """Every run the watcher starts now: those of each ready batch, named by the batch id the
    warehouse gives its folder (a folder name used again after its first batch was done is a new
    batch, ``<name>~2``, and so gets a new run). A ready batch without its manifest (a profile
    whose manifest is drafted) is drafted and held, or released at once under ``auto``."""
    from pipeline.intake import batches
    from pipeline.store import warehouse
    profile = settings.scanner_profile
    drafting = profile.manifest != "typed"
    ready = ready_batches(settings.dir("inbox"), profile.settle_seconds, layout=profile.batch_layout,
                          looks=settings.dir("work") / LOOKS_FILE, drafting=drafting)
    if drafting:
        from pipeline.imaging import readings

        readings.sweep(settings.readings_dir)
    # a stack needs no manifest, and its profile drafts none (ScannerProfile)
    unmanifested = [batch for batch in ready if not (batch / MANIFEST).is_file()] \
        if drafting else []
    if unmanifested:
        from pipeline.drafting import watch

        released = set(watch.draft_held(settings, unmanifested))
        ready = [batch for batch in ready if batch not in unmanifested or batch in released]
    if not ready:
        return []
    warehouse.migrate(settings.warehouse_url)
    with warehouse.engine_for(settings.warehouse_url).connect() as conn:
        ids = {batch: batches.resolve_batch_id(conn, batch.parent.name, batch.name, batch)
               for batch in ready}
    return [run for batch in ready
            for run in batch_runs(batch, layout=profile.batch_layout, batch_id=ids[batch])]


def part_of(items: list[Any], part: int, records_per_run: int) -> list[Any]:
    """The records of one part, in manifest order."""
    return items[part * records_per_run:(part + 1) * records_per_run]
