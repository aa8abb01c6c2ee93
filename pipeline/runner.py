"""One batch end to end: register -> per record (cleanup, OCR, archive, load) -> finalize.

The three steps are what the Airflow batch DAG runs as tasks (the record step mapped over
records) and what ``digitize run`` calls in a loop; each is idempotent, so any of them can be
re-run: records already archived from the same scans are recognised and left alone.
"""

from __future__ import annotations

import logging
import multiprocessing
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import Connection, select, update

from pipeline import archive, cleanup, compose, ocr, pages, progress, warehouse
from pipeline import validate as validation
from pipeline._exec import ocrmypdf as ocrmypdf_exec
from pipeline._exec import tesseract
from pipeline.cleanup import Flag
from pipeline.config import Settings
from pipeline.errors import (
    BlankRecordError,
    DuplicateSourceError,
    ManifestRowError,
    MissingFileError,
    OcrQualityError,
    PageRangeError,
    RecordError,
    UnreadableImageError,
)
from pipeline.ingest import plan_batch, sha256_file
from pipeline.models import (
    BatchOutcome,
    BatchPlan,
    BatchSummary,
    PageResult,
    Problem,
    RecordPlan,
    RecordResult,
    RecordStatus,
    SourceFile,
)
from pipeline.privacy import mask_personal_id

log = logging.getLogger(__name__)

# Which typed error a manifest problem becomes; the error class carries the quarantine reason.
_PROBLEM_ERRORS: dict[str, type[RecordError]] = {
    "file_exists": MissingFileError,
    "file_readable": UnreadableImageError,
    "page_range": PageRangeError,
    "duplicate_file": DuplicateSourceError,
}


class RecordTask(BaseModel):
    """Everything one record's work needs; small enough to travel through Airflow XCom."""

    agency_code: str
    batch_id: str
    batch_dir: str
    batch_pk: int
    record: RecordPlan
    sources: dict[str, SourceFile]


def check_tools(settings: Settings) -> dict[str, str]:
    return {"tesseract": tesseract.probe(settings.scanner_profile.languages),
            "ocrmypdf": ocrmypdf_exec.version()}


def _mark_duplicate_files(plan: BatchPlan) -> None:
    first_by_hash: dict[str, str] = {}
    for name, source in sorted(plan.files.items()):
        first_by_hash.setdefault(source.sha256, name)
    for rec in plan.records:
        for name in sorted({p.file for p in rec.pages}):
            original = first_by_hash[plan.files[name].sha256]
            if original != name:
                rec.problems.append(Problem(
                    rule="duplicate_file", field="files",
                    message=f"Dòng {rec.row.line} của manifest.csv: tệp '{name}' trùng nội dung "
                            f"với tệp '{original}' trong cùng lô (quét hai lần?). Bỏ tệp trùng "
                            "hoặc sửa cột Tệp.",
                ))


def register_batch(settings: Settings, batch_dir: Path, agency_code: str | None = None,
                   batch_id: str | None = None) -> tuple[BatchPlan, int]:
    """Read, fingerprint and validate the batch; record it in the warehouse. Returns plan and key."""
    check_tools(settings)
    plan = plan_batch(batch_dir, agency_code, batch_id)
    url = settings.warehouse_url
    warehouse.migrate(url)
    for line, problems in validation.validate_manifest(
        [r.row for r in plan.records], settings.issued_range
    ).items():
        next(r for r in plan.records if r.row.line == line).problems.extend(problems)
    _mark_duplicate_files(plan)
    with warehouse.engine_for(url).begin() as conn:
        warehouse.upsert(conn, warehouse.agencies, [{"code": plan.agency_code}], ("code",))
        codes = sorted({r.row.procedure_code for r in plan.records if r.row.procedure_code})
        warehouse.upsert(conn, warehouse.procedures, [{"code": c} for c in codes], ("code",))
        warehouse.upsert(conn, warehouse.batches, [{
            "agency_code": plan.agency_code, "batch_id": plan.batch_id,
            "source_dir": str(plan.batch_dir), "manifest_sha256": plan.manifest_sha256,
            "status": "running", "record_count": len(plan.records),
        }], ("agency_code", "batch_id"))
        batch_pk = warehouse.pk_of(conn, warehouse.batches, agency_code=plan.agency_code,
                                   batch_id=plan.batch_id)
        assert batch_pk is not None
        # A file seen before keeps the batch where it was first seen: that is its provenance.
        warehouse.upsert(conn, warehouse.files, [
            {"sha256": f.sha256, "batch_pk": batch_pk, "name": f.name, "size": f.size,
             "page_count": f.page_count} for f in plan.files.values()
        ], ("sha256",), update=False)
        conn.execute(warehouse.validation_results.delete().where(
            warehouse.validation_results.c.batch_pk == batch_pk))
        warehouse.upsert(conn, warehouse.validation_results, [
            {"batch_pk": batch_pk, "record_id": r.record_id, "rule": p.rule, "field": p.field,
             "message": p.message} for r in plan.records for p in r.problems
        ], ("batch_pk", "record_id", "rule", "field"))
    log.info("batch %s/%s registered: %d records, %d files, %d with manifest problems",
             plan.agency_code, plan.batch_id, len(plan.records), len(plan.files),
             sum(bool(r.problems) for r in plan.records))
    return plan, batch_pk


def record_tasks(plan: BatchPlan, batch_pk: int) -> list[RecordTask]:
    return [
        RecordTask(agency_code=plan.agency_code, batch_id=plan.batch_id,
                   batch_dir=str(plan.batch_dir), batch_pk=batch_pk, record=rec,
                   sources={p.file: plan.files[p.file] for p in rec.pages})
        for rec in plan.records
    ]


def _already_archived(conn: Connection, task: RecordTask) -> RecordResult | None:
    """The archived result of this record from these very scans, if it exists and is intact.

    Raises DuplicateSourceError when the record id, or one of its scans, already belongs to a
    different archived record: archiving it again would file the same paper twice.
    """
    rec = task.record
    r, p = warehouse.records, warehouse.pages
    existing = conn.execute(select(r).where(r.c.agency_code == task.agency_code,
                                            r.c.record_id == rec.record_id)).mappings().first()
    wanted = [task.sources[ref.file].sha256 for ref in rec.pages]
    if existing and existing["status"] == RecordStatus.archived:
        stored = list(conn.execute(select(p.c.file_sha256).where(p.c.record_pk == existing["id"])
                                   .order_by(p.c.page_no)).scalars())
        pdf = Path(existing["pdf_path"] or "")
        if stored == wanted and pdf.is_file() and sha256_file(pdf) == existing["pdf_sha256"]:
            return RecordResult(
                record_id=rec.record_id, line=rec.row.line, status=RecordStatus.archived,
                pdf_path=str(pdf), pdf_sha256=existing["pdf_sha256"],
                page_count=existing["page_count"], mean_confidence=existing["mean_confidence"],
                already_archived=True,
            )
        if stored != wanted:
            raise DuplicateSourceError(rec.record_id, (
                f"Dòng {rec.row.line} của manifest.csv: hồ sơ {rec.record_id} đã được lưu trữ "
                f"từ bản quét khác ({existing['pdf_path']}). Nếu đây là bản quét lại, báo lưu "
                "trữ viên để thay thế; nếu nhầm mã hồ sơ, sửa mã rồi Clear để chạy lại."))
    other = conn.execute(
        select(r.c.record_id).join(p, p.c.record_pk == r.c.id)
        .where(p.c.file_sha256.in_(wanted), r.c.status == RecordStatus.archived,
               (r.c.agency_code != task.agency_code) | (r.c.record_id != rec.record_id))
    ).scalars().first()
    if other:
        raise DuplicateSourceError(rec.record_id, (
            f"Dòng {rec.row.line} của manifest.csv: tệp quét của hồ sơ {rec.record_id} giống hệt "
            f"tệp đã lưu của hồ sơ {other}. Kiểm tra có quét trùng hay ghi nhầm dòng."))
    return None


def _raise_first_problem(task: RecordTask) -> None:
    problems = task.record.problems
    if not problems:
        return
    messages = "\n".join(p.message for p in problems)
    error_class = next((_PROBLEM_ERRORS[p.rule] for p in problems if p.rule in _PROBLEM_ERRORS),
                       ManifestRowError)
    raise error_class(task.record.record_id, messages)


def _clean_and_ocr(settings: Settings, task: RecordTask, work: Path) -> tuple[RecordResult, str]:
    rec, profile = task.record, settings.scanner_profile
    batch_dir = Path(task.batch_dir)
    parts: list[Path] = []
    page_results: list[PageResult] = []
    for n, ref in enumerate(rec.pages, start=1):
        try:
            image, dpi = pages.load_page(batch_dir / ref.file, ref.page_in_file, profile.fallback_dpi)
        except pages.PageReadError as exc:
            raise UnreadableImageError(rec.record_id, (
                f"Dòng {rec.row.line} của manifest.csv: không đọc được trang {ref.page_in_file} "
                f"của tệp '{ref.file}' ({exc}). Quét lại trang rồi Clear để chạy lại.")) from exc
        cleaned = cleanup.clean_page(image, dpi, profile.cleanup)
        part = work / f"page-{n:04d}.pdf"
        kind = compose.page_pdf(cleaned.image, dpi, part)
        parts.append(part)
        h, w = cleaned.image.shape[:2]
        page_results.append(PageResult(
            page_no=n, file=ref.file, page_in_file=ref.page_in_file,
            source_sha256=task.sources[ref.file].sha256, width=w, height=h, dpi=dpi,
            rotation=cleaned.rotation, skew=cleaned.skew, encoding=kind.value,
            flags=cleanup.assess(cleaned.image, dpi)))
    text_pages = [p.page_no for p in page_results if Flag.blank not in p.flags]
    if not text_pages:
        raise BlankRecordError(rec.record_id, (
            f"Hồ sơ {rec.record_id} (dòng {rec.row.line}): mọi trang đều trắng. Kiểm tra tệp "
            f"{', '.join(sorted(task.sources))} có đúng là bản quét của hồ sơ không, quét lại rồi "
            "Clear để chạy lại."))
    year = rec.row.issued_on.year if rec.row.issued_on else None
    target = archive.archive_path(settings.dir("archive"), task.agency_code, year, rec.record_id)
    image_pdf = compose.join_pdfs(parts, work / "pages.pdf")
    output = ocr.ocr_record(image_pdf, len(parts), work / "record.pdf", rec.row, task.agency_code,
                            task.batch_id, profile, settings.jobs, work, ocr_pages=text_pages)
    for page, stats in zip(page_results, output.pages, strict=True):
        if stats is None:
            continue
        page.confidence = stats.mean_confidence
        page.low_confidence_words = stats.low_confidence_words
        page.low_confidence_with_diacritics = stats.low_confidence_with_diacritics
        if (stats.mean_confidence or 0) < profile.ocr.min_mean_confidence:
            page.flags.append(Flag.low_ocr_confidence)
    _gate_on_ocr_quality(settings, task, page_results, output.pdf)
    known = [p.confidence for p in page_results if p.confidence is not None]
    digest = archive.archive_pdf(output.pdf, target)
    return RecordResult(
        record_id=rec.record_id, line=rec.row.line, status=RecordStatus.archived,
        pdf_path=str(target), pdf_sha256=digest, page_count=len(page_results), pages=page_results,
        mean_confidence=round(sum(known) / len(known), 1) if known else None,
    ), output.text


def _record_row(task: RecordTask, **outcome: object) -> dict[str, object]:
    """The warehouse row of a record: the manifest's fields plus this run's outcome."""
    row = task.record.row
    return {
        "agency_code": task.agency_code, "record_id": task.record.record_id,
        "batch_pk": task.batch_pk, "manifest_line": row.line,
        "procedure_code": row.procedure_code or None, "result_number": row.result_number or None,
        "issued_on": row.issued_on, "holder_name": row.holder_name or None,
        "holder_id": row.holder_id or None, "still_valid": row.still_valid,
        "updated_at": warehouse.now(), **outcome,
    }


def _gate_on_ocr_quality(settings: Settings, task: RecordTask, page_results: list[PageResult],
                         pdf: Path) -> None:
    """Hold a record whose text reads poorly for the archivist instead of archiving it silently.

    The PDF made goes to the quarantine folder beside the reason, for the archivist to judge.
    """
    poor = [p for p in page_results if Flag.low_ocr_confidence in p.flags]
    if not poor:
        return
    rec = task.record
    archive.atomic_copy(pdf, archive.quarantine_folder(settings.dir("quarantine"), task.agency_code,
                                                       task.batch_id) / f"{rec.record_id}.pdf")
    minimum = settings.scanner_profile.ocr.min_mean_confidence
    details = "; ".join(
        f"trang {p.page_no} ({p.file}): độ tin cậy {p.confidence or 0:.0f} < {minimum:.0f}, "
        f"{p.low_confidence_with_diacritics}/{p.low_confidence_words} từ đọc không chắc có dấu"
        + (f", ảnh {'/'.join(f for f in p.flags if f != Flag.low_ocr_confidence)}"
           if len(p.flags) > 1 else "")
        for p in poor)
    raise OcrQualityError(rec.record_id, (
        f"Hồ sơ {rec.record_id} (dòng {rec.row.line}): chữ đọc được kém, chưa lưu trữ — {details}. "
        "Xem bản PDF trong thư mục cách ly; nếu trang mờ, nhạt hoặc dưới 200 dpi thì quét lại ở "
        "300 dpi rồi Clear để chạy lại."))


def _load_archived(conn: Connection, task: RecordTask, result: RecordResult, text: str) -> None:
    warehouse.upsert(conn, warehouse.records, [_record_row(
        task, status=result.status.value, reason=None, pdf_path=result.pdf_path,
        pdf_sha256=result.pdf_sha256, page_count=result.page_count,
        mean_confidence=result.mean_confidence, text=text,
    )], ("agency_code", "record_id"))
    record_pk = warehouse.pk_of(conn, warehouse.records, agency_code=task.agency_code,
                                record_id=result.record_id)
    conn.execute(warehouse.pages.delete().where(warehouse.pages.c.record_pk == record_pk))
    warehouse.upsert(conn, warehouse.pages, [{
        "record_pk": record_pk, "page_no": p.page_no, "file_sha256": p.source_sha256,
        "page_in_file": p.page_in_file, "width": p.width, "height": p.height, "dpi": p.dpi,
        "rotation": p.rotation, "skew": p.skew, "confidence": p.confidence,
        "encoding": p.encoding, "flags": ",".join(p.flags) or None,
    } for p in result.pages], ("record_pk", "page_no"))


def _load_quarantined(conn: Connection, task: RecordTask, error: RecordError) -> None:
    r = warehouse.records
    status = conn.execute(select(r.c.status).where(
        r.c.agency_code == task.agency_code, r.c.record_id == task.record.record_id)).scalar()
    if status == RecordStatus.archived:
        return  # never let a rejected duplicate overwrite the record that is archived
    warehouse.upsert(conn, r, [_record_row(
        task, status=RecordStatus.quarantined.value, reason=error.reason, pdf_path=None,
        pdf_sha256=None, page_count=len(task.record.pages), mean_confidence=None, text=None,
    )], ("agency_code", "record_id"))


def _event(conn: Connection, task: RecordTask, stage: str, outcome: str, detail: str,
           first_only: bool = False) -> None:
    warehouse.upsert(conn, warehouse.events, [{
        "batch_pk": task.batch_pk, "record_id": task.record.record_id, "stage": stage,
        "outcome": outcome, "detail": detail, "at": warehouse.now(),
    }], ("batch_pk", "record_id", "stage"), update=not first_only)


def process_record(settings: Settings, task: RecordTask) -> RecordResult:
    """Cleanup, OCR, archive and load one record; a bad record is quarantined, never raised."""
    rec = task.record
    engine = warehouse.engine_for(settings.warehouse_url)
    try:
        _raise_first_problem(task)
        with engine.connect() as conn:
            done = _already_archived(conn, task)
        if done:
            with engine.begin() as conn:
                _event(conn, task, "archive", "archived", f"{done.pdf_path} (already archived)",
                       first_only=True)
            log.info("record %s already archived at %s; nothing to do", rec.record_id, done.pdf_path)
            return done
        work_root = settings.dir("work")
        work_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=work_root, prefix=f"{task.batch_id}-") as work:
            result, text = _clean_and_ocr(settings, task, Path(work))
        with engine.begin() as conn:
            _load_archived(conn, task, result, text)
            _event(conn, task, "archive", "archived", f"{result.pdf_path} sha256={result.pdf_sha256}")
        log.info("record %s archived: %d pages, mean confidence %s -> %s", rec.record_id,
                 result.page_count, result.mean_confidence, result.pdf_path)
        return result
    except RecordError as error:
        return quarantine(settings, task, error)


def quarantine(settings: Settings, task: RecordTask, error: RecordError) -> RecordResult:
    rec = task.record
    messages = error.message.splitlines()
    row = rec.row.model_dump(mode="json")
    row["holder_id"] = mask_personal_id(row["holder_id"])
    archive.quarantine_record(
        settings.dir("quarantine"), task.agency_code, task.batch_id, rec.record_id, error.reason,
        messages, Path(task.batch_dir), sorted({p.file for p in rec.pages}), row)
    with warehouse.engine_for(settings.warehouse_url).begin() as conn:
        _load_quarantined(conn, task, error)
        _event(conn, task, "quarantine", error.reason, error.message)
    log.warning("record %s quarantined (%s): %s", rec.record_id, error.reason, " | ".join(messages))
    return RecordResult(record_id=rec.record_id, line=rec.row.line,
                        status=RecordStatus.quarantined, page_count=len(rec.pages),
                        reason=error.reason, errors=messages)


def batch_outcome(conn: Connection, batch_pk: int, record_ids: list[str]) -> dict[str, str]:
    """Each record's latest outcome in this batch (archived / quarantine reason / pending).

    Read from the warehouse, not from the tasks' return values: in Airflow a failed record task
    returns nothing, and a record cleared and re-run later must count as archived.
    """
    e = warehouse.events
    latest: dict[str, tuple[object, str, str]] = {}
    for rid, stage, outcome, at in conn.execute(
        select(e.c.record_id, e.c.stage, e.c.outcome, e.c.at).where(e.c.batch_pk == batch_pk)
    ):
        if rid not in latest or at >= latest[rid][0]:
            latest[rid] = (at, stage, outcome)
    return {rid: ("archived" if latest[rid][1] == "archive" else latest[rid][2])
            if rid in latest else "pending" for rid in record_ids}


def finalize_batch(settings: Settings, batch_dir: Path, agency_code: str, batch_id: str,
                   batch_pk: int, record_ids: list[str]) -> BatchOutcome:
    """Record the batch outcome; a fully archived inbox batch moves to ``done/``."""
    engine = warehouse.engine_for(settings.warehouse_url)
    with engine.connect() as conn:
        outcomes = batch_outcome(conn, batch_pk, record_ids)
    archived = sum(o == "archived" for o in outcomes.values())
    complete = archived == len(outcomes)
    moved = (archive.finish_batch(batch_dir, settings.dir("inbox"), settings.dir("done"))
             if complete else None)
    b = warehouse.batches
    with engine.begin() as conn:
        conn.execute(update(b).where(b.c.id == batch_pk).values(
            status="done" if complete else "review", archived_count=archived,
            quarantined_count=len(outcomes) - archived, finished_at=warehouse.now(),
            source_dir=str(moved or batch_dir)))
    progress.write_summary(settings)
    if not complete:
        log.warning("batch %s/%s left in the inbox for review: %d of %d records not archived "
                    "(see %s)", agency_code, batch_id, len(outcomes) - archived, len(outcomes),
                    settings.dir("quarantine") / agency_code / batch_id)
    return BatchOutcome(archived=archived, not_archived=len(outcomes) - archived,
                        moved_to=str(moved) if moved else None)


def run_batch(settings: Settings, batch_dir: Path, agency_code: str | None = None,
              batch_id: str | None = None,
              on_start: Callable[[int], None] | None = None,
              on_record: Callable[[RecordResult], None] | None = None) -> BatchSummary:
    """The whole batch, records in parallel over ``settings.jobs`` worker processes.

    One record per worker with single-threaded Tesseract keeps both cores busy through the
    whole record (cleanup and PDF assembly included), where OCRmyPDF's own page parallelism
    idles on one-page records.
    """
    plan, batch_pk = register_batch(settings, batch_dir, agency_code, batch_id)
    tasks = record_tasks(plan, batch_pk)
    if on_start:
        on_start(len(tasks))
    results: list[RecordResult] = []
    workers = min(settings.jobs, len(tasks))
    if workers > 1:
        worker_settings = settings.model_copy(update={"ocr_jobs": 1})
        with ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=ocrmypdf_exec.become_worker,
            initargs=(logging.getLogger().getEffectiveLevel(), True),
        ) as pool:
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
    outcome = finalize_batch(settings, plan.batch_dir, plan.agency_code, plan.batch_id, batch_pk,
                             [t.record.record_id for t in tasks])
    return BatchSummary(agency_code=plan.agency_code, batch_id=plan.batch_id, records=results,
                        moved_to=outcome.moved_to)
