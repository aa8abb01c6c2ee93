"""One batch end to end: register -> per record (cleanup, OCR, archive, load) -> finalize.

The three steps are what the Airflow batch DAG runs as tasks (the record step mapped over
records) and what ``digitize run`` calls in a loop; each is idempotent, so any of them can be
re-run: records already archived from the same scans are recognised and left alone.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import multiprocessing
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, func, select, tuple_, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError

from pipeline._exec import ocrmypdf as ocrmypdf_exec
from pipeline._exec import tesseract
from pipeline.checks import crosscheck, duplicates
from pipeline.checks import validate as validation
from pipeline.config import Settings
from pipeline.errors import (
    ArchiveConflictError,
    ArchiveStorageError,
    BatchError,
    BlankRecordError,
    CatalogueMismatchError,
    DuplicateSourceError,
    ExpiredResultError,
    ImageTooLargeError,
    ManifestRowError,
    MissingFileError,
    OcrQualityError,
    PageRangeError,
    PathOutsideBatchError,
    PdfActiveContentError,
    PdfEncryptedError,
    ProbableDuplicateError,
    RecordError,
    SheetMismatchError,
    SheetWithoutPagesError,
    StackPagesUnassignedError,
    TransientError,
    UnexpectedRecordError,
    UnreadableImageError,
    WarehouseUnavailableError,
    WarehouseUnreachableError,
)
from pipeline.imaging import cleanup, compose, ocr
from pipeline.imaging.cleanup import Flag
from pipeline.intake import batches, pages, separator
from pipeline.intake.ingest import (
    MANIFEST,
    STACK_REQUIRED_COLUMNS,
    fingerprint_files,
    parse_files_field,
    plan_batch,
    read_manifest,
    resolve_pages,
    sha256_file,
)
from pipeline.models import (
    BatchOutcome,
    BatchPlan,
    BatchSummary,
    PageRef,
    PageResult,
    Problem,
    RecordPlan,
    RecordResult,
    RecordStatus,
    SourceFile,
)
from pipeline.privacy import mask_personal_id
from pipeline.reporting import progress
from pipeline.store import archive, claims, warehouse

log = logging.getLogger(__name__)

# Which typed error a manifest problem becomes; the error class carries the quarantine reason.
_PROBLEM_ERRORS: dict[str, type[RecordError]] = {
    "file_exists": MissingFileError,
    "file_readable": UnreadableImageError,
    "page_range": PageRangeError,
    "page_count_mismatch": PageRangeError,
    "duplicate_file": DuplicateSourceError,
    "duplicate_record_id": DuplicateSourceError,
    "unknown_procedure": CatalogueMismatchError,
    "level_mismatch": CatalogueMismatchError,
    "procedure_not_in_force": CatalogueMismatchError,
    "not_still_valid": ExpiredResultError,
    "image_too_large": ImageTooLargeError,
    "pdf_encrypted": PdfEncryptedError,
    "pdf_active_content": PdfActiveContentError,
    "path_outside_batch": PathOutsideBatchError,
    "pages_before_first_sheet": StackPagesUnassignedError,
    "sheet_unreadable": StackPagesUnassignedError,
    "sheet_without_pages": SheetWithoutPagesError,
    "sheet_other_agency": SheetMismatchError,
    "sheet_manifest_mismatch": SheetMismatchError,
    "manifest_row_without_sheet": SheetMismatchError,
}


class RecordTask(BaseModel):
    """Everything one record's work needs; small enough to travel through Airflow XCom."""

    agency_code: str
    batch_id: str
    batch_dir: str
    batch_pk: int
    record: RecordPlan
    sources: dict[str, SourceFile]
    validation_docs: str | None = None  # the batch's Data Docs page, linked from quarantine


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
                    message=f"{rec.row.where}: tệp '{name}' trùng nội dung "
                            f"với tệp '{original}' trong cùng lô (quét hai lần?). Bỏ tệp trùng "
                            "hoặc sửa cột Tệp.",
                ))


def _reference(conn: Connection, agency_code: str, batch_id: str, batch_dir: Path,
               record_ids: list[str]) -> validation.Reference:
    """The catalogue, the agency's level and which of ``record_ids`` this agency archived in
    other batches, as the rules need them; a batch cannot be checked before they are imported."""
    a, p, r, b = warehouse.agencies, warehouse.procedures, warehouse.records, warehouse.batches
    level = conn.execute(select(a.c.level).where(a.c.code == agency_code)).scalar()
    if not level:
        raise BatchError(
            f"{batch_dir}: cơ quan {agency_code} chưa có trong danh mục cơ quan (hoặc "
            "chưa ghi Cấp). Nhập danh mục bằng 'digitize agencies import FILE' rồi chạy lại lô; "
            "nếu sai mã, đổi tên thư mục inbox của lô theo mã định danh của cơ quan.")
    procedures = {
        row.code: validation.Procedure(row.code, row.name or "", frozenset(row.levels.split(",")),
                                       row.valid_from, row.valid_to)
        for row in conn.execute(select(p.c.code, p.c.name, p.c.levels, p.c.valid_from, p.c.valid_to)
                                .where(p.c.levels.is_not(None)))
    }
    if not procedures:
        raise BatchError(
            f"{batch_dir}: danh mục thủ tục hành chính trống. Nhập danh mục bằng "
            "'digitize catalogue import FILE' (tệp xuất từ Cơ sở dữ liệu quốc gia) rồi chạy lại lô.")
    elsewhere = {rid: bid for rid, bid in conn.execute(
        select(r.c.record_id, b.c.batch_id).join(b, b.c.id == r.c.batch_pk)
        .where(r.c.agency_code == agency_code, r.c.status == RecordStatus.archived,
               b.c.batch_id != batch_id, r.c.record_id.in_(record_ids)))}
    return validation.Reference(agency_code, level, procedures, elsewhere)


def register_batch(settings: Settings, batch_dir: Path, agency_code: str | None = None,
                   batch_id: str | None = None) -> tuple[BatchPlan, int, str | None]:
    """Read, fingerprint and validate the batch; record it in the warehouse.

    Returns the plan, the batch's key and the address of the validation's Data Docs page.
    """
    check_tools(settings)
    profile = settings.scanner_profile
    # operator arguments are checked before anything is read or written under their names
    for value, what in ((agency_code, "Mã cơ quan"), (batch_id, "Mã lô")):
        if value is not None:
            archive.check_component(value, what)
    url = settings.warehouse_url
    warehouse.migrate(url)
    engine = warehouse.engine_for(url)
    with engine.connect() as conn:
        # a run killed while moving the finished batch to done/ (CLI or DAG): rerun it there
        batch_dir = batches.located(conn, batch_dir, settings.dir("done"))
    plan = plan_batch(batch_dir, agency_code, batch_id, profile.batch_layout, profile.fallback_dpi)
    folder_name = archive.check_component(plan.batch_id, "Mã lô")
    archive.check_component(plan.agency_code, "Mã cơ quan")
    content = batches.content_sha256(plan)
    with engine.connect() as conn:
        plan.batch_id = batches.resolve_batch_id(conn, plan.agency_code, folder_name,
                                                 plan.batch_dir, content)
        reference = _reference(conn, plan.agency_code, plan.batch_id, plan.batch_dir,
                               [rec.row.record_id for rec in plan.records if rec.row.record_id])
    checked_records = [r for r in plan.records if not r.unsplit]
    checked = validation.validate_manifest(
        [r.row for r in checked_records], settings.issued_range, reference,
        {r.row.line: len(r.pages) for r in checked_records if r.pages},
        docs_dir=settings.dir("reports") / "validation" / plan.agency_code / plan.batch_id,
        run_name=plan.batch_id, settings=settings)
    for line, problems in checked.problems.items():
        next(r for r in checked_records if r.row.line == line).problems.extend(problems)
    _mark_duplicate_files(plan)
    with engine.begin() as conn:
        warehouse.upsert(conn, warehouse.batches, [{
            "agency_code": plan.agency_code, "batch_id": plan.batch_id,
            "folder_name": folder_name, "source_dir": str(plan.batch_dir),
            "manifest_sha256": plan.manifest_sha256, "content_sha256": content,
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
        statistics = checked.result.get("statistics", {})
        warehouse.upsert(conn, warehouse.validation_runs, [{
            "batch_pk": batch_pk, "success": bool(checked.result.get("success")),
            "evaluated": statistics.get("evaluated_expectations", 0),
            "unsuccessful": statistics.get("unsuccessful_expectations", 0),
            "result_json": json.dumps(checked.result, ensure_ascii=False, default=str),
            "docs_url": checked.docs, "validated_at": warehouse.now(),
        }], ("batch_pk",))
    log.info("batch %s/%s registered: %d records, %d files, %d with manifest problems",
             plan.agency_code, plan.batch_id, len(plan.records), len(plan.files),
             sum(bool(r.problems) for r in plan.records))
    return plan, batch_pk, checked.docs


def record_tasks(plan: BatchPlan, batch_pk: int, docs: str | None = None) -> list[RecordTask]:
    return [
        RecordTask(agency_code=plan.agency_code, batch_id=plan.batch_id,
                   batch_dir=str(plan.batch_dir), batch_pk=batch_pk, record=rec,
                   sources={p.file: plan.files[p.file] for p in rec.pages}, validation_docs=docs)
        for rec in plan.records
    ]


def refresh_task(settings: Settings, task: RecordTask) -> RecordTask:
    """The record as its manifest row reads now.

    An archivist fixes a row and clears the record's task: the re-run must see the fix, not the
    row registered with the batch. An unchanged row keeps what registration found (the holder
    id, which never travels through Airflow, is taken from the file); a changed row has its
    pages resolved and its rules checked again. A batch already moved to ``done/`` is left as
    registered.
    """
    batch_dir = Path(task.batch_dir)
    if not (batch_dir / MANIFEST).is_file() or task.record.unsplit:
        return task
    if task.record.sheet:
        return _refresh_from_sheet(settings, task)
    old = task.record.row
    rows = read_manifest(batch_dir)
    # Its own line first: a record id written on two rows must not pick up the other row.
    same_id = [r for r in rows if old.record_id and r.record_id == old.record_id]
    row = (next((r for r in same_id if r.line == old.line), None)
           or (same_id[0] if len(same_id) == 1 else None)
           or next((r for r in rows if r.line == old.line), None))
    if row is None:
        return task
    if row.model_copy(update={"holder_id": old.holder_id}) == old:
        return task.model_copy(update={"record": task.record.model_copy(update={"row": row})})
    # by the names on disk, as at registration: a Mac's decomposed (NFD) name still matches
    sources = fingerprint_files(batch_dir, [name for name, _, _ in parse_files_field(row)[0]])
    refs, problems = resolve_pages(row, sources, batch_dir)
    engine = warehouse.engine_for(settings.warehouse_url)
    with engine.connect() as conn:
        reference = _reference(conn, task.agency_code, task.batch_id, batch_dir, [row.record_id])
    # the rows sharing its id are checked with it, so a duplicate id is still caught
    together = [r for r in rows if r.record_id == row.record_id] if row.record_id else [row]
    checked = validation.validate_manifest(together, settings.issued_range, reference,
                                           {row.line: len(refs)} if refs else {})
    problems.extend(checked.problems.get(row.line, []))
    record = RecordPlan(row=row, pages=refs, problems=problems)
    return _rechecked(settings, task, record, sources)


def _rechecked(settings: Settings, task: RecordTask, record: RecordPlan,
               sources: dict[str, SourceFile]) -> RecordTask:
    """The task with its record checked again, whose problems replace the registered ones."""
    vr = warehouse.validation_results
    with warehouse.engine_for(settings.warehouse_url).begin() as conn:
        conn.execute(vr.delete().where(
            vr.c.batch_pk == task.batch_pk,
            vr.c.record_id.in_({task.record.record_id, record.record_id})))
        warehouse.upsert(conn, vr, [
            {"batch_pk": task.batch_pk, "record_id": record.record_id, "rule": p.rule,
             "field": p.field, "message": p.message} for p in record.problems
        ], ("batch_pk", "record_id", "rule", "field"))
    log.info("Hồ sơ %s: dòng manifest đã được sửa sau khi đăng ký lô, đã kiểm tra lại (%d lỗi) / "
             "row changed since registration, checked again", record.record_id, len(record.problems))
    return task.model_copy(update={"record": record, "sources": sources})


def _refresh_from_sheet(settings: Settings, task: RecordTask) -> RecordTask:
    """:func:`refresh_task` for a record split from a stack: its sheet's facts with the
    manifest row of its record id as it reads now."""
    rec, old = task.record, task.record.row
    assert rec.sheet_page is not None
    rows = read_manifest(Path(task.batch_dir), STACK_REQUIRED_COLUMNS)
    row, problems = separator.row_of_sheet(rec.sheet, rec.sheet_page, old.line, rec.pages, rows)
    registered = [p for p in rec.problems if p.rule == "sheet_manifest_mismatch"]
    if row.model_copy(update={"holder_id": old.holder_id}) == old and problems == registered:
        return task.model_copy(update={"record": rec.model_copy(update={"row": row})})
    with warehouse.engine_for(settings.warehouse_url).connect() as conn:
        reference = _reference(conn, task.agency_code, task.batch_id, Path(task.batch_dir),
                               [row.record_id])
    checked = validation.validate_manifest([row], settings.issued_range, reference,
                                           {row.line: len(rec.pages)} if rec.pages else {})
    # what the split found (another agency's sheet, no pages) does not depend on the manifest
    kept = [p for p in rec.problems if p.rule in separator.SPLIT_RULES]
    record = rec.model_copy(update={
        "row": row, "problems": kept + problems + checked.problems.get(row.line, [])})
    return _rechecked(settings, task, record, task.sources)


def _already_archived(conn: Connection, task: RecordTask) -> RecordResult | None:
    """The archived result of this record from these very scans, if it exists and is intact.

    Raises DuplicateSourceError when the record id, or one of its scans, already belongs to a
    different archived record: archiving it again would file the same paper twice. A row marked
    "Thay bản đã lưu" whose scans or fields differ from the archived ones is archived again, as
    the record's next version (None is returned); the same row run again is already archived.
    """
    rec = task.record
    r, p = warehouse.records, warehouse.pages
    existing = conn.execute(select(r).where(r.c.agency_code == task.agency_code,
                                            r.c.record_id == rec.record_id)).mappings().first()
    # pages, not files: one multi-page file (a scanned stack) holds several records
    wanted = [(task.sources[ref.file].sha256, ref.page_in_file) for ref in rec.pages]
    if existing and existing["status"] == RecordStatus.archived:
        stored = [tuple(page) for page in conn.execute(
            select(p.c.file_sha256, p.c.page_in_file).where(p.c.record_pk == existing["id"])
            .order_by(p.c.page_no))]
        pdf = Path(existing["pdf_path"] or "")
        replace = rec.row.replace_archived and not _same_fields(existing, task)
        if stored == wanted and not replace and pdf.is_file() \
                and sha256_file(pdf) == existing["pdf_sha256"]:
            return RecordResult(
                record_id=rec.record_id, line=rec.row.line, status=RecordStatus.archived,
                pdf_path=str(pdf), pdf_sha256=existing["pdf_sha256"], version=existing["version"],
                page_count=existing["page_count"], mean_confidence=existing["mean_confidence"],
                already_archived=True,
            )
        if stored != wanted and not rec.row.replace_archived:
            raise DuplicateSourceError(rec.record_id, (
                f"{rec.row.where}: hồ sơ {rec.record_id} đã được lưu trữ "
                f"từ bản quét khác ({existing['pdf_path']}). Nếu đây là bản quét lại, ghi 'có' "
                "vào cột 'Thay bản đã lưu' của dòng này rồi Clear để chạy lại: bản mới được lưu "
                "thành phiên bản tiếp theo, bản cũ vẫn giữ nguyên; nếu nhầm mã hồ sơ, sửa mã rồi "
                "Clear để chạy lại."))
    other = conn.execute(
        select(r.c.record_id).join(p, p.c.record_pk == r.c.id)
        .where(tuple_(p.c.file_sha256, p.c.page_in_file).in_(wanted),
               r.c.status == RecordStatus.archived,
               (r.c.agency_code != task.agency_code) | (r.c.record_id != rec.record_id))
    ).scalars().first() if wanted else None
    if other:
        raise DuplicateSourceError(rec.record_id, (
            f"{rec.row.where}: trang quét của hồ sơ {rec.record_id} giống hệt "
            f"trang đã lưu của hồ sơ {other}. Kiểm tra có quét trùng hay ghi nhầm dòng."))
    return None


_FIELDS = ("procedure_code", "result_number", "issued_on", "holder_name", "holder_id",
           "still_valid")


def _same_fields(existing: Mapping[str, Any], task: RecordTask) -> bool:
    """Whether the archived record's manifest fields are the row's as it reads now."""
    row = _record_row(task)
    return all(existing[f] == row[f] for f in _FIELDS)


def _raise_first_problem(task: RecordTask) -> None:
    problems = task.record.problems
    if not problems:
        return
    messages = "\n".join(p.message for p in problems)
    if task.validation_docs:
        messages += f"\nChi tiết kết quả kiểm tra dữ liệu của lô: {task.validation_docs}"
    error_class = next((_PROBLEM_ERRORS[p.rule] for p in problems if p.rule in _PROBLEM_ERRORS),
                       ManifestRowError)
    raise error_class(task.record.record_id, messages)


@contextlib.contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Add the time spent in the block to ``timings[stage]`` (reported as metrics per stage)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - started


def _kept_as_issued(settings: Settings, task: RecordTask, source: Path, page_in_file: int,
                    notes: list[str]) -> bool:
    """Whether the page is archived as it is: a PDF page with its own visible text (born digital)
    under the profile's ``ocr.born_digital: keep``.

    Such a page whose fonts are not embedded cannot be PDF/A-2b as it is (PDF/A embeds every
    font, and a substitute would change the page): it is taken as a scan, with a note in
    ``notes`` for the archivist.
    """
    if settings.scanner_profile.ocr.born_digital != "keep" or source.suffix.lower() != ".pdf":
        return False
    layer = pages.pdf_text_layer(source, page_in_file)
    if not layer.born_digital:
        return False
    rec = task.record
    if not layer.fonts_embedded:
        notes.append(
            f"Hồ sơ {rec.record_id} ({rec.row.where_inline}): trang {page_in_file} của tệp "
            f"'{source.name}' là văn bản điện tử nhưng không nhúng phông chữ, nên không lưu "
            "nguyên dạng theo PDF/A-2b được: trang đã được chuyển thành ảnh và nhận dạng chữ như "
            "bản quét. Nếu cần giữ đúng chữ gốc, xin cơ quan ban hành bản PDF có nhúng phông chữ "
            "(hoặc PDF/A) rồi Clear để chạy lại.")
        return False
    log.info("record %s: page %d of %s is born digital, archived as issued with its own text",
             rec.record_id, page_in_file, source.name)
    return True


@contextlib.contextmanager
def _noted(where: str) -> Iterator[None]:
    """Tell an unexpected failure inside the block where it happened (the page and file), for
    the quarantine note that the record guard writes."""
    try:
        yield
    except Exception as exc:
        exc.add_note(where)
        raise


def _clean_page(settings: Settings, task: RecordTask, work: Path, n: int, ref: PageRef,
                timings: dict[str, float], notes: list[str], kept: dict[int, str]
                ) -> tuple[Path, PageResult]:
    """Page ``n`` of the record read, cleaned and composed into its one-page PDF."""
    rec, profile = task.record, settings.scanner_profile
    source = Path(task.batch_dir) / ref.file
    part = work / f"page-{n:04d}.pdf"
    with _timed(timings, "cleanup"):
        try:
            keep = _kept_as_issued(settings, task, source, ref.page_in_file, notes)
            if keep:
                dpi = profile.fallback_dpi
                image = pages.render_pdf_page(source, ref.page_in_file, dpi)
            else:
                image, dpi = pages.load_page(source, ref.page_in_file, profile.fallback_dpi)
        except pages.PageReadError as exc:
            raise UnreadableImageError(rec.record_id, (
                f"{rec.row.where}: không đọc được trang {ref.page_in_file} "
                f"của tệp '{ref.file}' ({exc}). Quét lại trang rồi Clear để chạy lại.")) from exc
        if keep:
            # Nothing to turn or straighten; and the quality flags judge how a page was
            # captured (blur, darkness, dpi), which a page issued electronically never was.
            # The rendering serves the page's fingerprint for probable duplicates.
            rotation, skew, flags = 0, 0.0, []
        else:
            cleaned = cleanup.clean_page(image, dpi, profile.cleanup)
            image, rotation, skew = cleaned.image, cleaned.rotation, cleaned.skew
            flags = cleanup.assess(image, dpi)
            ocr.write_view(image, dpi, profile.ocr.colour_dropout, work, n)
        fingerprint = duplicates.phash(image)
    with _timed(timings, "compose"):
        if keep:
            kind = compose.original_page_pdf(source, ref.page_in_file, part)
            kept[n] = ref.file
        else:
            kind = compose.page_pdf(image, dpi, part)
    h, w = image.shape[:2]
    return part, PageResult(
        page_no=n, file=ref.file, page_in_file=ref.page_in_file,
        source_sha256=task.sources[ref.file].sha256, width=w, height=h, dpi=dpi,
        rotation=rotation, skew=skew, encoding=kind.value, flags=flags, phash=fingerprint)


def _clean_and_ocr(settings: Settings, task: RecordTask, work: Path, version: int
                   ) -> tuple[RecordResult, str]:
    rec, profile = task.record, settings.scanner_profile
    parts: list[Path] = []
    page_results: list[PageResult] = []
    timings: dict[str, float] = {}
    kept: dict[int, str] = {}  # born-digital pages archived as issued -> their file
    notes: list[str] = []  # warnings found while reading the pages
    for n, ref in enumerate(rec.pages, start=1):
        with _noted(f"trang {ref.page_in_file} của tệp '{ref.file}'"):
            part, page = _clean_page(settings, task, work, n, ref, timings, notes, kept)
        parts.append(part)
        page_results.append(page)
    text_pages = [p.page_no for p in page_results if Flag.blank not in p.flags]
    if not text_pages:
        raise BlankRecordError(rec.record_id, (
            f"Hồ sơ {rec.record_id} ({rec.row.where_inline}): mọi trang đều trắng. Kiểm tra tệp "
            f"{', '.join(sorted(task.sources))} có đúng là bản quét của hồ sơ không, quét lại rồi "
            "Clear để chạy lại."))
    with _timed(timings, "ocr"):
        image_pdf = compose.join_pdfs(parts, work / "pages.pdf")
        output = ocr.ocr_record(image_pdf, len(parts), work / "record.pdf", rec.row,
                                task.agency_code, task.batch_id, profile, settings.jobs, work,
                                ocr_pages=text_pages, kept=kept)
    for page, stats in zip(page_results, output.pages, strict=True):
        if stats is None:
            continue
        page.confidence = stats.mean_confidence
        page.low_confidence_words = stats.low_confidence_words
        page.low_confidence_with_diacritics = stats.low_confidence_with_diacritics
        if (stats.mean_confidence or 0) < profile.ocr.min_mean_confidence:
            page.flags.append(Flag.low_ocr_confidence)
    with _timed(timings, "checks"):
        _gate_on_ocr_quality(settings, task, page_results, output.pdf)
        _hold_probable_duplicate(settings, task, page_results[0].phash, output.text, output.pdf)
        warnings = notes + crosscheck.check_first_page(rec.row, output.text.split("\f", 1)[0])
    known = [p.confidence for p in page_results if p.confidence is not None]
    with _timed(timings, "archive"):
        target, digest, version = _place(settings, task, output.pdf, version, warnings)
    return RecordResult(
        record_id=rec.record_id, line=rec.row.line, status=RecordStatus.archived,
        pdf_path=str(target), pdf_sha256=digest, version=version, page_count=len(page_results),
        pages=page_results,
        mean_confidence=round(sum(known) / len(known), 1) if known else None, warnings=warnings,
        timings={stage: round(seconds, 3) for stage, seconds in timings.items()},
    ), output.text


# Versions tried past the first free-looking one before the record is held: each is a file left
# by an interrupted run with other content, which is never replaced.
_MAX_VERSION_TRIES = 20


def _place(settings: Settings, task: RecordTask, pdf: Path, version: int, warnings: list[str]
           ) -> tuple[Path, str, int]:
    """Archive ``pdf`` as ``version`` of the record, or the next version whose name is free;
    returns where, its SHA-256 and the version. A file found in the way, which only an
    interrupted attempt at this very record can have left (the name holds the record's key), is
    kept as it is and named in ``warnings``."""
    rec = task.record
    year = rec.row.issued_on.year if rec.row.issued_on else None
    for candidate in range(version, version + _MAX_VERSION_TRIES):
        target = archive.archive_path(settings.dir("archive"), task.agency_code, year,
                                      rec.record_id, candidate)
        try:
            return target, archive.place_new(pdf, target), candidate
        except FileExistsError:
            warnings.append(
                f"Hồ sơ {rec.record_id}: tệp {target} do một lần chạy bị gián đoạn để lại (chưa "
                "được ghi vào kho dữ liệu) được giữ nguyên, không ghi đè; bản lưu trữ hiện hành là "
                f"phiên bản sau nó. Kiểm tra rồi có thể chuyển tệp đó ra khỏi kho lưu trữ "
                "('digitize fixity' báo nó là tệp lạ).")
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise ArchiveStorageError(rec.record_id, (
                f"Hồ sơ {rec.record_id} ({rec.row.where_inline}): ổ lưu trữ đã đầy, không ghi được "
                f"{target} ({exc.strerror}). Chưa lưu trữ, bản quét vẫn ở nguyên chỗ. Giải phóng "
                f"dung lượng hoặc mở rộng ổ chứa {settings.dir('archive')} (free space on "
                f"{target.parent}), rồi Clear để chạy lại.")) from exc
    raise ArchiveConflictError(rec.record_id, (
        f"Hồ sơ {rec.record_id} ({rec.row.where_inline}): đã có {_MAX_VERSION_TRIES} tệp khác nằm "
        f"ở chỗ các phiên bản {version}..{version + _MAX_VERSION_TRIES - 1} của hồ sơ trong kho lưu "
        "trữ; không ghi đè tệp nào nên chưa lưu trữ. Báo quản trị hệ thống kiểm tra thư mục "
        f"{target.parent} bằng 'digitize fixity', rồi Clear để chạy lại."))


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
    archive.quarantine_pdf(settings.dir("quarantine"), task.agency_code, task.batch_id,
                           rec.record_id, pdf)
    minimum = settings.scanner_profile.ocr.min_mean_confidence
    details = "; ".join(
        f"trang {p.page_no} ({p.file}): độ tin cậy {p.confidence or 0:.0f} < {minimum:.0f}, "
        f"{p.low_confidence_with_diacritics}/{p.low_confidence_words} từ đọc không chắc có dấu"
        + (f", ảnh {'/'.join(f for f in p.flags if f != Flag.low_ocr_confidence)}"
           if len(p.flags) > 1 else "")
        for p in poor)
    raise OcrQualityError(rec.record_id, (
        f"Hồ sơ {rec.record_id} ({rec.row.where_inline}): chữ đọc được kém, chưa lưu trữ — {details}. "
        "Xem bản PDF trong thư mục cách ly; nếu trang mờ, nhạt hoặc dưới 200 dpi thì quét lại ở "
        "300 dpi rồi Clear để chạy lại."))


def _hold_probable_duplicate(settings: Settings, task: RecordTask, first_page_hash: str,
                             text: str, pdf: Path) -> None:
    """Hold a record whose pages resemble an archived record's for the archivist: the same paper
    scanned again must never be archived twice silently."""
    rec = task.record
    r, p = warehouse.records, warehouse.pages
    confirmed_other = {v.strip() for v in rec.row.not_duplicate_of.split(";") if v.strip()}
    with warehouse.engine_for(settings.warehouse_url).connect() as conn:
        hashed = conn.execute(
            select(r.c.id, p.c.phash).join(p, p.c.record_pk == r.c.id)
            .where(p.c.page_no == 1, p.c.phash.is_not(None), r.c.status == RecordStatus.archived,
                   (r.c.agency_code != task.agency_code) | (r.c.record_id != rec.record_id))
        ).all()
        near = [pk for (pk, h), d in zip(hashed, duplicates.hash_distances(
            first_page_hash, [h for _, h in hashed]), strict=True)
            if d <= duplicates.MAX_HASH_DISTANCE]
        candidates = [duplicates.Candidate(*row) for row in conn.execute(
            select(r.c.agency_code, r.c.record_id, r.c.pdf_path, p.c.phash, r.c.text)
            .join(p, p.c.record_pk == r.c.id)
            .where(r.c.id.in_(near), p.c.page_no == 1, r.c.record_id.not_in(confirmed_other)))]
    found = duplicates.find_duplicate(first_page_hash, text, candidates)
    if found is None:
        return
    other = found.candidate
    archive.quarantine_pdf(settings.dir("quarantine"), task.agency_code, task.batch_id,
                           rec.record_id, pdf)
    raise ProbableDuplicateError(rec.record_id, (
        f"Hồ sơ {rec.record_id} ({rec.row.where_inline}): có thể là bản quét lại của hồ sơ "
        f"{other.record_id} (cơ quan {other.agency_code}) đã lưu trữ tại {other.pdf_path} — văn "
        f"bản giống {found.text_similarity:.0f}%, {found.shared_numbers:.0%} số liệu trùng. Chưa "
        "lưu trữ. So sánh hai bản PDF: nếu trùng, bỏ dòng này khỏi lô; nếu là giấy tờ khác, ghi "
        f"'{other.record_id}' vào cột 'Không trùng với' của dòng này rồi Clear để chạy lại."))


def _load_archived(conn: Connection, task: RecordTask, result: RecordResult, text: str) -> None:
    warehouse.upsert(conn, warehouse.records, [_record_row(
        task, status=result.status.value, reason=None, pdf_path=result.pdf_path,
        pdf_sha256=result.pdf_sha256, version=result.version, page_count=result.page_count,
        mean_confidence=result.mean_confidence, text=text,
        warnings="\n".join(result.warnings) or None,
    )], ("agency_code", "record_id"))
    record_pk = warehouse.pk_of(conn, warehouse.records, agency_code=task.agency_code,
                                record_id=result.record_id)
    warehouse.upsert(conn, warehouse.record_versions, [{
        "record_pk": record_pk, "version": result.version, "batch_pk": task.batch_pk,
        "pdf_path": result.pdf_path, "pdf_sha256": result.pdf_sha256,
        "reason": ("archived" if result.version == 1
                   else "replaced" if task.record.row.replace_archived else "rearchived"),
        "created_at": warehouse.now(),
    }], ("record_pk", "version"), update=False)
    conn.execute(warehouse.pages.delete().where(warehouse.pages.c.record_pk == record_pk))
    warehouse.upsert(conn, warehouse.pages, [{
        "record_pk": record_pk, "page_no": p.page_no, "file_sha256": p.source_sha256,
        "page_in_file": p.page_in_file, "width": p.width, "height": p.height, "dpi": p.dpi,
        "rotation": p.rotation, "skew": p.skew, "confidence": p.confidence,
        "encoding": p.encoding, "flags": ",".join(p.flags) or None, "phash": p.phash or None,
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
        warnings=None,
    )], ("agency_code", "record_id"))


def _event(conn: Connection, task: RecordTask, stage: str, outcome: str, detail: str,
           started: float | None = None) -> None:
    """One more row of the record's history (never an update): this attempt of ``stage``."""
    conn.execute(warehouse.events.insert().values(
        batch_pk=task.batch_pk, record_id=task.record.record_id, stage=stage, outcome=outcome,
        detail=detail, at=warehouse.now(),
        duration_s=round(time.perf_counter() - started, 3) if started is not None else None))


def _next_version(conn: Connection, task: RecordTask) -> int:
    r, v = warehouse.records, warehouse.record_versions
    latest = conn.execute(select(func.max(v.c.version)).join(r, r.c.id == v.c.record_pk).where(
        r.c.agency_code == task.agency_code, r.c.record_id == task.record.record_id)).scalar()
    return (latest or 0) + 1


def _resolve_notes(settings: Settings, conn: Connection, task: RecordTask) -> None:
    """An archived record's quarantine notes, from any batch it was held in, go to resolved/."""
    e, b = warehouse.events, warehouse.batches
    held_in = conn.execute(select(b.c.batch_id).join(e, e.c.batch_pk == b.c.id).where(
        e.c.record_id == task.record.record_id, b.c.agency_code == task.agency_code,
        e.c.stage == "quarantine").distinct()).scalars().all()
    for batch_id in held_in:
        archive.resolve_notes(settings.dir("quarantine"), settings.dir("resolved"),
                              task.agency_code, batch_id, task.record.record_id)


@contextlib.contextmanager
def _warehouse_outage(url: str) -> Iterator[None]:
    """A lost database connection is the server's problem, not the record's: never quarantine
    for it, raise the transient error that Airflow retries and ``digitize run`` exits 4 on."""
    try:
        yield
    except (OperationalError, InterfaceError, WarehouseUnreachableError) as exc:
        # the migration check's error is the first contact failing: the same outage
        cause = exc.__cause__ if isinstance(exc, WarehouseUnreachableError) else exc
        raise WarehouseUnavailableError(
            f"Không kết nối được kho dữ liệu {make_url(url).render_as_string()} "
            f"({getattr(cause, 'orig', cause)}). "
            "Không hồ sơ nào bị cách ly vì lỗi này: khi máy chủ cơ sở dữ liệu hoạt động trở lại, "
            "chạy lại lệnh (Airflow tự thử lại); các hồ sơ đã lưu trữ không bị làm lại.") from exc


def process_record(settings: Settings, task: RecordTask) -> RecordResult:
    """Cleanup, OCR, archive and load one record; a bad record is quarantined, never raised.

    The record's claim (:mod:`pipeline.store.claims`) is held throughout: two runs of one batch never
    work on the same record at once, and the second finds it archived. A lost warehouse raises
    WarehouseUnavailableError, to be retried.
    """
    with _warehouse_outage(settings.warehouse_url), \
            claims.claim(settings.warehouse_url, task.agency_code, task.record.record_id):
        return _process_claimed(settings, task)


def _process_claimed(settings: Settings, task: RecordTask) -> RecordResult:
    """The record guard: whatever goes wrong with this record holds it, never the batch."""
    started = time.perf_counter()
    try:
        return _archive_record(settings, task, started)
    except RecordError as error:
        return quarantine(settings, task, error, started)
    except (TransientError, OperationalError, InterfaceError):
        raise  # the warehouse's outage, not the record's fault: retried (_warehouse_outage)
    except Exception as exc:
        log.exception("record %s: unexpected error", task.record.record_id)
        return quarantine(settings, task, _unexpected(task, exc), started)


def _unexpected(task: RecordTask, exc: Exception) -> UnexpectedRecordError:
    rec = task.record
    where = "".join(f" ở {note}" for note in getattr(exc, "__notes__", []))
    text = " ".join(str(exc).split())[:500]  # one line of the note, however the library wrote it
    return UnexpectedRecordError(rec.record_id, (
        f"Hồ sơ {rec.record_id} ({rec.row.where_inline}): lỗi không lường trước{where} — "
        f"{type(exc).__name__}: {text}. Hồ sơ chưa được lưu trữ; các hồ sơ khác của lô vẫn được "
        "xử lý. Kiểm tra tệp quét (mở được không, khổ trang bình thường không), quét lại nếu cần "
        "rồi Clear để chạy lại; nếu lỗi lặp lại, gửi nhật ký cho bộ phận kỹ thuật."))


def _archive_record(settings: Settings, task: RecordTask, started: float) -> RecordResult:
    rec = task.record
    engine = warehouse.engine_for(settings.warehouse_url)
    # An archived record stays archived: a row edited afterwards does not undo it. Its own
    # problem, when it has one, explains a refusal better than the scans' history.
    try:
        with engine.connect() as conn:
            done = _already_archived(conn, task)
    except DuplicateSourceError:
        _raise_first_problem(task)
        raise
    if done:
        with engine.begin() as conn:
            _event(conn, task, "archive", "already_archived", f"{done.pdf_path}", started)
            _resolve_notes(settings, conn, task)
        log.info("record %s already archived at %s; nothing to do", rec.record_id, done.pdf_path)
        return done
    _raise_first_problem(task)
    with engine.connect() as conn:
        version = _next_version(conn, task)
    # One folder per record, not a random one: under the claim nobody else uses it, so what
    # is there is a killed run's leftover, removed now rather than kept forever.
    work = archive.work_folder(settings.dir("work"), task.agency_code, rec.record_id)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        result, text = _clean_and_ocr(settings, task, work, version)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # the PDF and its folder are synced (archive.place_new) before the warehouse says archived
    with engine.begin() as conn:
        _load_archived(conn, task, result, text)
        _event(conn, task, "archive", "archived",
               f"{result.pdf_path} sha256={result.pdf_sha256} v{result.version}", started)
        if result.warnings:
            _event(conn, task, "crosscheck", "warning", "\n".join(result.warnings))
        _resolve_notes(settings, conn, task)
    log.info("record %s archived: %d pages, mean confidence %s -> %s", rec.record_id,
             result.page_count, result.mean_confidence, result.pdf_path)
    return result


def quarantine(settings: Settings, task: RecordTask, error: RecordError,
               started: float | None = None) -> RecordResult:
    rec = task.record
    messages = error.message.splitlines()
    row = rec.row.model_dump(mode="json")
    row["holder_id"] = mask_personal_id(row["holder_id"])
    archive.quarantine_record(
        settings.dir("quarantine"), task.agency_code, task.batch_id, rec.record_id, error.reason,
        messages, Path(task.batch_dir), sorted({p.file for p in rec.pages}), row)
    with warehouse.engine_for(settings.warehouse_url).begin() as conn:
        _load_quarantined(conn, task, error)
        _event(conn, task, "quarantine", error.reason, error.message, started)
    # the reason itself is the archivist's to read, once (verdict); operators get the code
    log.warning("record %s quarantined (%s)", rec.record_id, error.reason)
    return RecordResult(record_id=rec.record_id, line=rec.row.line,
                        status=RecordStatus.quarantined, page_count=len(rec.pages),
                        reason=error.reason, errors=messages)


AFTER_FIX = "Sau khi sửa, bấm Clear ô này để chạy lại; hồ sơ đã lưu trữ không bị ảnh hưởng."


def verdict(result: RecordResult) -> str:
    """What the archivist reads first about one record's run, in Vietnamese: archived where, or
    why not and what to do."""
    rid = result.record_id
    if result.status is not RecordStatus.archived:
        return "\n".join([f"Hồ sơ {rid} chưa được lưu trữ ({result.reason}):", *result.errors,
                          AFTER_FIX])
    if result.already_archived:
        return f"Hồ sơ {rid} đã được lưu trữ từ trước ({result.pdf_path}); không làm lại."
    return "\n".join([f"Hồ sơ {rid} đã được lưu trữ: {result.page_count} trang, phiên bản "
                      f"{result.version}, tệp {result.pdf_path}.",
                      *(f"Cần xem: {w}" for w in result.warnings)])


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
    records, and whichever part finishes the batch moves it.
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
    return BatchOutcome(archived=archived, not_archived=len(mine) - archived,
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
    with contextlib.ExitStack() as stack:
        pool = None
        if settings.jobs > 1:
            pool = stack.enter_context(ProcessPoolExecutor(
                settings.jobs, mp_context=multiprocessing.get_context("spawn"),
                initializer=ocrmypdf_exec.become_worker,
                initargs=(logging.getLogger().getEffectiveLevel(), True),
            ))
            # Workers start (interpreter, OpenCV, OCRmyPDF imports) while the batch registers.
            for _ in range(settings.jobs):
                pool.submit(int)
        with _warehouse_outage(settings.warehouse_url):
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
    with _warehouse_outage(settings.warehouse_url):
        outcome = finalize_batch(settings, plan.batch_dir, plan.agency_code, plan.batch_id,
                                 batch_pk, [t.record.record_id for t in tasks])
    progress.write_summary(settings)
    return BatchSummary(agency_code=plan.agency_code, batch_id=plan.batch_id, records=results,
                        moved_to=outcome.moved_to)
