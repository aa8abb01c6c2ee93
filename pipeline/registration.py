"""Registration: a batch read, fingerprinted and checked, and recorded in the warehouse; its
records as tasks, each checked again when its manifest row has changed since (the archivist's
fix before a Clear).

What the Airflow batch DAG's first task runs and what ``digitize run`` starts with.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from sqlalchemy import Connection, select

from pipeline._exec import poppler, tesseract
from pipeline.checks import validate as validation
from pipeline.config import Settings
from pipeline.drafting import watch
from pipeline.errors import BatchError
from pipeline.intake import batches, separator
from pipeline.intake.ingest import (
    MANIFEST,
    STACK_REQUIRED_COLUMNS,
    fingerprint_files,
    parse_files_field,
    plan_batch,
    read_manifest,
    resolve_pages,
)
from pipeline.models import BatchPlan, Problem, RecordPlan, RecordStatus, RecordTask, SourceFile
from pipeline.signing import policy
from pipeline.store import archive, warehouse

log = logging.getLogger(__name__)


def check_tools(settings: Settings) -> dict[str, str]:
    return {"tesseract": tesseract.probe(settings.scanner_profile.languages),
            "poppler": poppler.probe()}


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


def reference_for(conn: Connection, agency_code: str, batch_id: str, batch_dir: Path,
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
    # what the watcher's draft read off each first page, to tell read fields from typed ones
    watch.attach_readings(settings.dir("work"), plan)
    folder_name = archive.check_component(plan.batch_id, "Mã lô")
    archive.check_component(plan.agency_code, "Mã cơ quan")
    # a key that cannot sign stops the batch before any page is touched
    policy.check_key(settings, plan.agency_code)
    content = batches.content_sha256(plan)
    with engine.connect() as conn:
        plan.batch_id = batches.resolve_batch_id(conn, plan.agency_code, folder_name,
                                                 plan.batch_dir, content)
        reference = reference_for(conn, plan.agency_code, plan.batch_id, plan.batch_dir,
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
        reference = reference_for(conn, task.agency_code, task.batch_id, batch_dir, [row.record_id])
    # the rows sharing its id are checked with it, so a duplicate id is still caught
    together = [r for r in rows if r.record_id == row.record_id] if row.record_id else [row]
    checked = validation.validate_manifest(together, settings.issued_range, reference,
                                           {row.line: len(refs)} if refs else {})
    problems.extend(checked.problems.get(row.line, []))
    # the draft's readings are of the first page: another first page has none
    read = task.record.read if refs[:1] == task.record.pages[:1] else {}
    record = RecordPlan(row=row, pages=refs, problems=problems, read=read)
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
        reference = reference_for(conn, task.agency_code, task.batch_id, Path(task.batch_dir),
                               [row.record_id])
    checked = validation.validate_manifest([row], settings.issued_range, reference,
                                           {row.line: len(rec.pages)} if rec.pages else {})
    # what the split found (another agency's sheet, no pages) does not depend on the manifest
    kept = [p for p in rec.problems if p.rule in separator.SPLIT_RULES]
    record = rec.model_copy(update={
        "row": row, "problems": kept + problems + checked.problems.get(row.line, [])})
    return _rechecked(settings, task, record, task.sources)
