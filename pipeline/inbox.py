"""The inboxes: which batch folders are ready, and the runs that process them.

A batch ``DATA/inbox/<agency>/<batch>/`` is ready when its manifest exists (a scanned stack with
cover sheets needs none: some scan is enough) and nothing in the folder has changed for the
scanner profile's settle time (scanners write slowly, clerks copy files in several goes).
Each ready batch gets runs with names derived from the batch alone (:func:`run_name`), so
the orchestrator's unique run names make a second start impossible: a watcher that overlaps
itself, or runs again after a restart, finds the runs already there. Two different batches
never share a name, however alike their folder names look once folded to Airflow's characters.

A big batch is split into parts of at most ``RECORDS_PER_RUN`` records, one run each: a run then
maps a bounded number of record tasks, under Airflow's ``max_map_length`` (1024) and small
enough for the grid view to stay quick.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import pages
from pipeline.errors import BatchError
from pipeline.ingest import MANIFEST, read_manifest

if TYPE_CHECKING:
    from pipeline.config import Settings

log = logging.getLogger(__name__)

RECORDS_PER_RUN = 500
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


def last_change(folder: Path) -> float:
    """The latest modification time of the folder or anything in it (now, when something
    vanishes while it is looked at)."""
    try:
        return max([folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.rglob("*"))])
    except FileNotFoundError:
        # a scanner renaming its temporary file, or the batch moved to done/: not settled, and
        # never a reason to stop looking at the other batches
        return time.time()


def _complete(batch: Path, layout: str) -> bool:
    if layout == "separator_sheets":
        return any(p.is_file() and p.suffix.lower() in pages.SUPPORTED_SUFFIXES
                   for p in batch.iterdir())
    return (batch / MANIFEST).is_file()


def ready_batches(inbox: Path, settle_seconds: float, now: float | None = None,
                  layout: str = "manifest") -> list[Path]:
    """Batch folders that are complete and unchanged for ``settle_seconds``, oldest agency
    first; ``layout`` is the scanner profile's ``batch_layout``."""
    now = time.time() if now is None else now
    if not inbox.is_dir():
        return []
    return [batch for agency in sorted(p for p in inbox.iterdir() if p.is_dir())
            for batch in sorted(p for p in agency.iterdir() if p.is_dir())
            if _complete(batch, layout) and now - last_change(batch) >= settle_seconds]


def _readable(text: str) -> str:
    """``text`` in Airflow's run-id characters, accents folded: "Lô 01" -> "Lo-01"."""
    folded = unicodedata.normalize("NFKD", text.replace("đ", "d").replace("Đ", "D"))
    ascii_text = "".join(c for c in folded if not unicodedata.combining(c))
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
    batch, ``<name>~2``, and so gets a new run)."""
    from pipeline import batches, warehouse

    profile = settings.scanner_profile
    ready = ready_batches(settings.dir("inbox"), profile.settle_seconds, layout=profile.batch_layout)
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
