"""The inboxes: which batch folders are ready, and the runs that process them.

A batch ``DATA/inbox/<agency>/<batch>/`` is ready when its manifest exists (a scanned stack with
cover sheets needs none: some scan is enough) and nothing in the folder has changed for the
scanner profile's settle time (scanners write slowly, clerks copy files in several goes).
Each ready batch gets runs with names derived from the batch alone, so
the orchestrator's unique run names make a second start impossible: a watcher that overlaps
itself, or runs again after a restart, finds the runs already there.

A big batch is split into parts of at most ``RECORDS_PER_RUN`` records, one run each: a run then
maps a bounded number of record tasks, under Airflow's ``max_map_length`` (1024) and small
enough for the grid view to stay quick.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import pages
from pipeline.ingest import MANIFEST, read_manifest

RECORDS_PER_RUN = 500
_RUN_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.~:+-]")  # Airflow's allowed_run_id_pattern


@dataclass(frozen=True)
class BatchRun:
    """One run of the batch DAG: its name and its configuration."""

    run_id: str
    conf: dict[str, Any]


def last_change(folder: Path) -> float:
    """The latest modification time of the folder or anything in it."""
    return max([folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.rglob("*"))])


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


def batch_runs(batch_dir: Path, records_per_run: int = RECORDS_PER_RUN,
               layout: str = "manifest") -> list[BatchRun]:
    """The runs that process a batch: one, or one per part of ``records_per_run`` records.

    A scanned stack is one run: its records are known only once every page is decoded, which
    registration does once (README: keep a stack under ``records_per_run`` records)."""
    records = len(read_manifest(batch_dir)) if layout == "manifest" else 0
    parts = max(1, math.ceil(records / records_per_run))
    name = _RUN_ID_UNSAFE.sub("-", f"inbox__{batch_dir.parent.name}__{batch_dir.name}")
    return [
        BatchRun(run_id=name if parts == 1 else f"{name}__part{part + 1}of{parts}",
                 conf={"batch_dir": str(batch_dir), "part": part, "parts": parts,
                       "records_per_run": records_per_run})
        for part in range(parts)
    ]


def part_of(items: list[Any], part: int, records_per_run: int) -> list[Any]:
    """The records of one part, in manifest order."""
    return items[part * records_per_run:(part + 1) * records_per_run]
