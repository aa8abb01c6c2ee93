"""One batch end to end: register -> each record (:mod:`pipeline.record`) -> finalize.

The three steps are what the Airflow batch DAG runs as tasks (the record step mapped over
records) and what ``digitize run`` calls in a loop; each is idempotent, so any of them can be
re-run: records already archived from the same scans are recognised and left alone.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from sqlalchemy import Connection, select, update

from pipeline.config import Settings
from pipeline.drafting import watch
from pipeline.models import BatchOutcome, BatchSummary, RecordResult, RecordTask
from pipeline.record import process_record, warehouse_outage
from pipeline.registration import record_tasks, register_batch
from pipeline.reporting import progress
from pipeline.signing import renewal
from pipeline.store import archive, warehouse

log = logging.getLogger(__name__)


def bring_batch_up_to_date(settings: Settings, task: RecordTask) -> BatchOutcome:
    """After a record is run again on its own (the archivist's Clear), what depends on it: the
    batch's counts and status, its move to ``done/`` once every record is archived (with the
    leftover quarantine notes), and the progress summary."""
    b = warehouse.batches
    with warehouse.engine_for(settings.warehouse_url).connect() as conn:
        expected = conn.execute(select(b.c.record_count).where(b.c.id == task.batch_pk)).scalar() or 0
        e = warehouse.events
        seen = list(conn.execute(select(e.c.record_id).where(
            e.c.batch_pk == task.batch_pk, e.c.stage.in_(("archive", "quarantine"))).distinct()
        ).scalars())
    # records never tried yet count as pending: the batch is complete only with all of them
    record_ids = seen + [f"\0pending-{n}" for n in range(max(0, expected - len(seen)))]
    outcome = finalize_batch(settings, Path(task.batch_dir), task.agency_code, task.batch_id,
                             task.batch_pk, record_ids, [task.record.record_id])
    progress.write_summary(settings)
    return outcome


def batch_outcome(conn: Connection, batch_pk: int, record_ids: list[str]) -> dict[str, str]:
    """Each record's latest outcome in this batch (archived / quarantine reason / pending).

    Read from the warehouse, not from the tasks' return values: in Airflow a failed record task
    returns nothing, and a record cleared and re-run later must count as archived.
    """
    e = warehouse.events
    latest: dict[str, tuple[str, str]] = {}
    # in the order written: the last attempt of a record says where it stands
    for rid, stage, outcome in conn.execute(
        select(e.c.record_id, e.c.stage, e.c.outcome)
        .where(e.c.batch_pk == batch_pk, e.c.stage.in_(("archive", "quarantine")))
        .order_by(e.c.id)
    ):
        latest[rid] = (stage, outcome)
    return {rid: ("archived" if latest[rid][0] == "archive" else latest[rid][1])
            if rid in latest else "pending" for rid in record_ids}


def finalize_batch(settings: Settings, batch_dir: Path, agency_code: str, batch_id: str,
                   batch_pk: int, record_ids: list[str], part_ids: list[str] | None = None
                   ) -> BatchOutcome:
    """Record the outcome of ``part_ids`` (default: every record); move the inbox batch to
    ``done/`` once every one of its ``record_ids`` is archived.

    A big batch runs as several parts, one Airflow run each: every part reports on its own
    records, and whichever part finishes the batch moves it. Then the batch's records signed
    B-T are brought to B-LTA when the agency's records are kept long term (``renewal``): in
    bulk, out of each record's path.
    """
    engine = warehouse.engine_for(settings.warehouse_url)
    with engine.connect() as conn:
        outcomes = batch_outcome(conn, batch_pk, record_ids)
    mine = [outcomes[rid] for rid in (part_ids or record_ids)]
    archived = sum(o == "archived" for o in mine)
    complete = all(o == "archived" for o in outcomes.values())
    moved = None
    if complete:
        moved = archive.finish_batch(batch_dir, settings.dir("inbox"), settings.dir("done"),
                                     agency_code, batch_id, batch_pk)
        # what is left of the batch's quarantine folder (scan copies) goes with its notes
        archive.resolve_notes(settings.dir("quarantine"), settings.dir("resolved"), agency_code,
                              batch_id)
        # the draft is kept by the inbox folder's name: a folder elsewhere, or in done/, of
        # that name is another batch, maybe held in the inbox now with its own draft
        if batch_dir.resolve().is_relative_to(settings.dir("inbox")):
            watch.forget(settings, agency_code, batch_dir.name)
    held = sum(o not in ("archived", "pending") for o in outcomes.values())
    b = warehouse.batches
    with engine.begin() as conn:
        conn.execute(update(b).where(b.c.id == batch_pk).values(
            status="done" if complete else "review" if held else "running",
            archived_count=sum(o == "archived" for o in outcomes.values()),
            quarantined_count=held, finished_at=warehouse.now() if complete or held else None,
            source_dir=str(moved or batch_dir)))
    if archived < len(mine):
        log.warning("Lô %s/%s được giữ lại trong inbox để xử lý: %d/%d hồ sơ chưa được lưu trữ "
                    "(xem %s) / batch left in the inbox for review", agency_code, batch_id,
                    len(mine) - archived, len(mine), settings.dir("quarantine") / agency_code / batch_id)
    renewal.after_batch(settings, agency_code, batch_id)
    return BatchOutcome(archived=archived, not_archived=len(mine) - archived,
                        moved_to=str(moved) if moved else None)


def _start_worker(log_level: int, environ: dict[str, str]) -> None:
    """Process-pool initializer: the worker logs as the batch does, and runs one record at a time.

    It is forked from the forkserver with the environment the server started with, which may
    be older than the batch's (a second batch in one process, a test's settings): it takes the
    batch's, as a worker started afresh would have.
    """
    os.environ.clear()
    os.environ.update(environ)
    logging.basicConfig(level=log_level,
                        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")


def _worker_pool(jobs: int) -> ProcessPoolExecutor:
    """``jobs`` OCR worker processes, forked from a server that imported every stage a record
    needs (OpenCV, pikepdf's PDF/A module with fontTools, the warehouse) once.

    Not forked from this process, which may hold threads and warehouse connections; and not
    each started afresh ("spawn"), which made every worker import all of it again: two workers
    cost 5.2 CPU s a batch in the benchmark, now 2.2 for a process's first batch and 0.3 for a
    later one (issue 15). The server starts with the first batch of this process, while it
    registers the batch, and serves every later one.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker,
                               initargs=(logging.getLogger().getEffectiveLevel(), dict(os.environ)))


def run_batch(settings: Settings, batch_dir: Path, agency_code: str | None = None,
              batch_id: str | None = None,
              on_start: Callable[[int], None] | None = None,
              on_record: Callable[[RecordResult], None] | None = None) -> BatchSummary:
    """The whole batch, records in parallel over ``settings.jobs`` worker processes.

    One record per worker with single-threaded Tesseract keeps both cores busy through the
    whole record (cleanup and PDF assembly included), where reading a record's pages in
    parallel idles on one-page records.
    """
    with contextlib.ExitStack() as stack:
        pool = None
        if settings.jobs > 1:
            pool = stack.enter_context(_worker_pool(settings.jobs))
            # Workers start (the first batch: the server's imports) while the batch registers.
            for _ in range(settings.jobs):
                pool.submit(int)
        with warehouse_outage(settings.warehouse_url):
            plan, batch_pk, docs = register_batch(settings, batch_dir, agency_code, batch_id)
        tasks = record_tasks(plan, batch_pk, docs)
        if on_start:
            on_start(len(tasks))
        results: list[RecordResult] = []
        if pool and len(tasks) < 2:
            pool.shutdown()  # one record: its OCR uses every core itself, idle workers only hold memory
            pool = None
        if pool:
            worker_settings = settings.model_copy(update={"ocr_jobs": 1})
            futures = [pool.submit(process_record, worker_settings, t) for t in tasks]
            for future in as_completed(futures):
                if on_record:
                    on_record(future.result())
            results = [f.result() for f in futures]
        else:
            for task in tasks:
                results.append(process_record(settings, task))
                if on_record:
                    on_record(results[-1])
    with warehouse_outage(settings.warehouse_url):
        outcome = finalize_batch(settings, plan.batch_dir, plan.agency_code, plan.batch_id,
                                 batch_pk, [t.record.record_id for t in tasks])
    progress.write_summary(settings)
    return BatchSummary(agency_code=plan.agency_code, batch_id=plan.batch_id, records=results,
                        moved_to=outcome.moved_to)
