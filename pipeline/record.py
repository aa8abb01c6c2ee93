"""One record's journey: its pages cleaned, read by OCR, checked, archived and loaded.

:func:`archive_record` reads as the record goes, one call per step over a small context
(:class:`RecordContext`). :func:`process_record` runs it under the record's claim and turns
whatever this record cannot pass into a quarantine with the reason, never a stopped batch. It is
what the Airflow batch DAG maps over the records and what ``digitize run`` does for each; it can
be re-run: a record already archived from the same scans is recognised and left alone.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import resource
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection, select, tuple_
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError

from pipeline._exec import cpu_seconds
from pipeline.checks import crosscheck, duplicates
from pipeline.config import Settings
from pipeline.errors import (
    ArchiveConflictError,
    ArchiveStorageError,
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
from pipeline.intake import pages
from pipeline.intake.ingest import sha256_file
from pipeline.models import PageRef, PageResult, RecordResult, RecordStatus, RecordTask
from pipeline.privacy import mask_personal_id
from pipeline.signing import policy
from pipeline.signing.sign import SignatureInfo
from pipeline.store import archive, claims, search_index, warehouse

log = logging.getLogger(__name__)


@dataclass
class RecordContext:
    """One attempt at one record: what it works on, and what it gathers on the way."""

    settings: Settings
    task: RecordTask
    work: Path  # the record's own work folder (archive.work_folder), emptied before and after
    started: float  # time.perf_counter() at the attempt's start, for its events' durations
    # the agency's signing key (pipeline.signing.policy); None: archived unsigned
    key: policy.AgencyKey | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage (metrics)
    notes: list[str] = field(default_factory=list)  # for the archivist, found reading the pages

    @classmethod
    def begin(cls, settings: Settings, task: RecordTask, started: float) -> RecordContext:
        rid = task.record.record_id
        return cls(settings, task, archive.work_folder(settings.dir("work"), task.agency_code, rid),
                   started, policy.key_for(settings, task.agency_code))

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the time spent in the block to ``timings[stage]``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - started


class CleanedPages(NamedTuple):
    """The record's pages made ready for OCR, in order."""

    parts: list[Path]  # one composed PDF per page
    results: list[PageResult]
    kept: dict[int, str]  # born-digital pages archived as issued -> their file


class Placement(NamedTuple):
    path: Path
    sha256: str
    version: int


class Signed(NamedTuple):
    """The file to archive: the PDF/A signed by the agency, or as made when it has no key."""

    pdf: Path
    info: SignatureInfo | None


def process_record(settings: Settings, task: RecordTask) -> RecordResult:
    """Cleanup, OCR, archive and load one record; a bad record is quarantined, never raised.

    The record's claim (:mod:`pipeline.store.claims`) is held throughout: two runs of one batch never
    work on the same record at once, and the second finds it archived. A lost warehouse raises
    WarehouseUnavailableError, to be retried.
    """
    # the programs a record runs (Tesseract, Poppler) are waited for before it ends
    own, programs = cpu_seconds(), cpu_seconds(resource.RUSAGE_CHILDREN)
    with warehouse_outage(settings.warehouse_url), \
            claims.claim(settings.warehouse_url, task.agency_code, task.record.record_id):
        result = _guarded(settings, task)
    programs = cpu_seconds(resource.RUSAGE_CHILDREN) - programs
    own = cpu_seconds() - own
    return result.model_copy(update={"cpu_seconds": round(own + programs, 3),
                                     "programs_cpu_seconds": round(programs, 3)})


def _guarded(settings: Settings, task: RecordTask) -> RecordResult:
    """The record guard: whatever goes wrong with this record holds it, never the batch."""
    started = time.perf_counter()
    try:
        return archive_record(RecordContext.begin(settings, task, started))
    except RecordError as error:
        return quarantine(settings, task, error, started)
    except (TransientError, OperationalError, InterfaceError):
        raise  # the warehouse's outage, not the record's fault: retried (warehouse_outage)
    except Exception as exc:
        log.exception("record %s: unexpected error", task.record.record_id)
        return quarantine(settings, task, _unexpected(task, exc), started)


def archive_record(ctx: RecordContext) -> RecordResult:
    """The record's journey: found archived already, or its pages cleaned, read by OCR into the
    PDF/A-2b, checked, placed in the archive and loaded into the warehouse.

    A step that finds the record cannot be archived raises its RecordError (a quarantine).
    """
    done = _archived_before(ctx)
    if done:
        return _confirm_archived(ctx, done)
    _raise_first_problem(ctx.task)
    version = _next_version(ctx)
    with _work_folder(ctx.work):
        cleaned = _clean_pages(ctx)
        output = _ocr(ctx, cleaned)
        warnings = _check(ctx, cleaned.results, output)
        signed = _sign(ctx, output.pdf)
        placed = _place(ctx, signed.pdf, version, warnings)
    result = _archived_result(ctx, cleaned.results, placed, warnings, signed.info)
    _load(ctx, result, output.text)
    return result


def _unexpected(task: RecordTask, exc: Exception) -> UnexpectedRecordError:
    rec = task.record
    where = "".join(f" ở {note}" for note in getattr(exc, "__notes__", []))
    text = " ".join(str(exc).split())[:500]  # one line of the note, however the library wrote it
    return UnexpectedRecordError(rec.record_id, (
        f"Hồ sơ {rec.record_id} ({rec.row.where_inline}): lỗi không lường trước{where} — "
        f"{type(exc).__name__}: {text}. Hồ sơ chưa được lưu trữ; các hồ sơ khác của lô vẫn được "
        "xử lý. Kiểm tra tệp quét (mở được không, khổ trang bình thường không), quét lại nếu cần "
        "rồi Clear để chạy lại; nếu lỗi lặp lại, gửi nhật ký cho bộ phận kỹ thuật."))


def _archived_before(ctx: RecordContext) -> RecordResult | None:
    """The record as archived from these very scans, if so.

    An archived record stays archived: a row edited afterwards does not undo it. Its own
    problem, when it has one, explains a refusal better than the scans' history.
    """
    try:
        with warehouse.engine_for(ctx.settings.warehouse_url).connect() as conn:
            return _already_archived(conn, ctx.task)
    except DuplicateSourceError:
        _raise_first_problem(ctx.task)
        raise


def _confirm_archived(ctx: RecordContext, done: RecordResult) -> RecordResult:
    with warehouse.engine_for(ctx.settings.warehouse_url).begin() as conn:
        warehouse.add_event(conn, ctx.task, "archive", "already_archived", f"{done.pdf_path}",
                            ctx.elapsed())
        _resolve_notes(ctx.settings, conn, ctx.task)
    log.info("record %s already archived at %s; nothing to do", done.record_id, done.pdf_path)
    return done


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
                already_archived=True, signature_level=existing["signature_level"],
                signed_by=existing["signed_by"], signed_at=existing["signed_at"],
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
    row = warehouse.record_row(task)
    return all(existing[f] == row[f] for f in _FIELDS)


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


def _next_version(ctx: RecordContext) -> int:
    with warehouse.engine_for(ctx.settings.warehouse_url).connect() as conn:
        return warehouse.next_version(conn, ctx.task)


@contextlib.contextmanager
def _work_folder(work: Path) -> Iterator[None]:
    """``work`` empty for the block, removed after it. Under the record's claim nobody else uses
    it, so what is there before is a killed run's leftover, removed now rather than kept forever."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        yield
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _clean_pages(ctx: RecordContext) -> CleanedPages:
    cleaned = CleanedPages([], [], {})
    for n, ref in enumerate(ctx.task.record.pages, start=1):
        with _noted(f"trang {ref.page_in_file} của tệp '{ref.file}'"):
            part, page, as_issued = _clean_page(ctx, n, ref)
        cleaned.parts.append(part)
        cleaned.results.append(page)
        if as_issued:
            cleaned.kept[n] = ref.file
    return cleaned


@contextlib.contextmanager
def _noted(where: str) -> Iterator[None]:
    """Tell an unexpected failure inside the block where it happened (the page and file), for
    the quarantine note that the record guard writes."""
    try:
        yield
    except Exception as exc:
        exc.add_note(where)
        raise


def _clean_page(ctx: RecordContext, n: int, ref: PageRef) -> tuple[Path, PageResult, bool]:
    """Page ``n`` of the record read, cleaned and composed into its one-page PDF; whether it is
    archived as issued."""
    task, profile = ctx.task, ctx.settings.scanner_profile
    rec = task.record
    source = Path(task.batch_dir) / ref.file
    part = ctx.work / f"page-{n:04d}.pdf"
    with ctx.timed("cleanup"):
        try:
            keep = _kept_as_issued(ctx, source, ref.page_in_file)
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
            view = cleanup.quality_view(image, dpi)
        else:
            cleaned = cleanup.clean_page(image, dpi, profile.cleanup)
            image, rotation, skew = cleaned.image, cleaned.rotation, cleaned.skew
            view = cleanup.quality_view(image, dpi)
            flags = cleanup.assess(image, dpi, view)
            ocr.write_view(image, dpi, profile.ocr.colour_dropout, ctx.work, n)
        fingerprint = duplicates.phash(view)
    with ctx.timed("compose"):
        if keep:
            kind = compose.original_page_pdf(source, ref.page_in_file, part)
        else:
            kind = compose.page_pdf(image, dpi, part)
    h, w = image.shape[:2]
    return part, PageResult(
        page_no=n, file=ref.file, page_in_file=ref.page_in_file,
        source_sha256=task.sources[ref.file].sha256, width=w, height=h, dpi=dpi,
        rotation=rotation, skew=skew, encoding=kind.value, flags=flags, phash=fingerprint), keep


def _kept_as_issued(ctx: RecordContext, source: Path, page_in_file: int) -> bool:
    """Whether the page is archived as it is: a PDF page with its own visible text (born digital)
    under the profile's ``ocr.born_digital: keep``.

    Such a page whose fonts are not embedded cannot be PDF/A-2b as it is (PDF/A embeds every
    font, and a substitute would change the page): it is taken as a scan, with a note for the
    archivist.
    """
    if ctx.settings.scanner_profile.ocr.born_digital != "keep" or source.suffix.lower() != ".pdf":
        return False
    layer = pages.pdf_text_layer(source, page_in_file)
    if not layer.born_digital:
        return False
    rec = ctx.task.record
    if not layer.fonts_embedded:
        ctx.notes.append(
            f"Hồ sơ {rec.record_id} ({rec.row.where_inline}): trang {page_in_file} của tệp "
            f"'{source.name}' là văn bản điện tử nhưng không nhúng phông chữ, nên không lưu "
            "nguyên dạng theo PDF/A-2b được: trang đã được chuyển thành ảnh và nhận dạng chữ như "
            "bản quét. Nếu cần giữ đúng chữ gốc, xin cơ quan ban hành bản PDF có nhúng phông chữ "
            "(hoặc PDF/A) rồi Clear để chạy lại.")
        return False
    log.info("record %s: page %d of %s is born digital, archived as issued with its own text",
             rec.record_id, page_in_file, source.name)
    return True


def _ocr(ctx: RecordContext, cleaned: CleanedPages) -> ocr.OcrOutput:
    """The record's PDF/A-2b with its text; each page's word confidences go onto its result."""
    task, profile = ctx.task, ctx.settings.scanner_profile
    rec = task.record
    text_pages = [p.page_no for p in cleaned.results if Flag.blank not in p.flags]
    if not text_pages:
        raise BlankRecordError(rec.record_id, (
            f"Hồ sơ {rec.record_id} ({rec.row.where_inline}): mọi trang đều trắng. Kiểm tra tệp "
            f"{', '.join(sorted(task.sources))} có đúng là bản quét của hồ sơ không, quét lại rồi "
            "Clear để chạy lại."))
    with ctx.timed("ocr"):
        output = ocr.ocr_record(ocr.OcrRequest(
            parts=cleaned.parts, out_pdf=ctx.work / "record.pdf",
            work_dir=ctx.work, row=rec.row, agency_code=task.agency_code, batch_id=task.batch_id,
            ocr_pages=text_pages, kept=cleaned.kept, readings=ctx.settings.readings_dir),
            profile, ctx.settings.jobs)
    for page, stats in zip(cleaned.results, output.pages, strict=True):
        if stats is None:
            continue
        page.confidence = stats.mean_confidence
        page.low_confidence_words = stats.low_confidence_words
        page.low_confidence_with_diacritics = stats.low_confidence_with_diacritics
        if (stats.mean_confidence or 0) < profile.ocr.min_mean_confidence:
            page.flags.append(Flag.low_ocr_confidence)
    return output


def _check(ctx: RecordContext, page_results: list[PageResult], output: ocr.OcrOutput) -> list[str]:
    """The gates a record passes before it is archived; what the archivist should look at."""
    with ctx.timed("checks"):
        _gate_on_ocr_quality(ctx, page_results, output.pdf)
        _hold_probable_duplicate(ctx, page_results[0].phash, output.text, output.pdf)
        return ctx.notes + crosscheck.check_first_page(ctx.task.record.row,
                                                       output.text.split("\f", 1)[0],
                                                       ctx.task.record.read)


def _gate_on_ocr_quality(ctx: RecordContext, page_results: list[PageResult], pdf: Path) -> None:
    """Hold a record whose text reads poorly for the archivist instead of archiving it silently.

    The PDF made goes to the quarantine folder beside the reason, for the archivist to judge.
    """
    poor = [p for p in page_results if Flag.low_ocr_confidence in p.flags]
    if not poor:
        return
    task = ctx.task
    rec = task.record
    archive.quarantine_pdf(ctx.settings.dir("quarantine"), task.agency_code, task.batch_id,
                           rec.record_id, pdf)
    minimum = ctx.settings.scanner_profile.ocr.min_mean_confidence
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


def _hold_probable_duplicate(ctx: RecordContext, first_page_hash: str, text: str, pdf: Path) -> None:
    """Hold a record whose pages resemble an archived record's for the archivist: the same paper
    scanned again must never be archived twice silently."""
    task = ctx.task
    rec = task.record
    r, p = warehouse.records, warehouse.pages
    confirmed_other = {v.strip() for v in rec.row.not_duplicate_of.split(";") if v.strip()}
    with warehouse.engine_for(ctx.settings.warehouse_url).connect() as conn:
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
    archive.quarantine_pdf(ctx.settings.dir("quarantine"), task.agency_code, task.batch_id,
                           rec.record_id, pdf)
    raise ProbableDuplicateError(rec.record_id, (
        f"Hồ sơ {rec.record_id} ({rec.row.where_inline}): có thể là bản quét lại của hồ sơ "
        f"{other.record_id} (cơ quan {other.agency_code}) đã lưu trữ tại {other.pdf_path} — văn "
        f"bản giống {found.text_similarity:.0f}%, {found.shared_numbers:.0%} số liệu trùng. Chưa "
        "lưu trữ. So sánh hai bản PDF: nếu trùng, bỏ dòng này khỏi lô; nếu là giấy tờ khác, ghi "
        f"'{other.record_id}' vào cột 'Không trùng với' của dòng này rồi Clear để chạy lại."))


def _sign(ctx: RecordContext, pdf: Path) -> Signed:
    """The checked PDF/A signed with the agency's key and verified; unsigned without a key."""
    if ctx.key is None:
        return Signed(pdf, None)
    task = ctx.task
    with ctx.timed("sign"):
        with warehouse.engine_for(ctx.settings.warehouse_url).connect() as conn:
            location = warehouse.agency_name(conn, task.agency_code)
        out = ctx.work / "signed.pdf"
        info = policy.sign_and_verify(ctx.settings, ctx.key, task.record.record_id, location,
                                      pdf, out)
    return Signed(out, info)


# Versions tried past the first free-looking one before the record is held: each is a file left
# by an interrupted run with other content, which is never replaced.
_MAX_VERSION_TRIES = 20


def _place(ctx: RecordContext, pdf: Path, version: int, warnings: list[str]) -> Placement:
    """Archive ``pdf`` as ``version`` of the record, or the next version whose name is free. A
    file found in the way, which only an interrupted attempt at this very record can have left
    (the name holds the record's key), is kept as it is and named in ``warnings``."""
    task, archive_dir = ctx.task, ctx.settings.dir("archive")
    rec = task.record
    year = rec.row.issued_on.year if rec.row.issued_on else None
    with ctx.timed("archive"):
        for candidate in range(version, version + _MAX_VERSION_TRIES):
            target = archive.archive_path(archive_dir, task.agency_code, year, rec.record_id,
                                          candidate)
            try:
                return Placement(target, archive.place_new(pdf, target), candidate)
            except FileExistsError:
                warnings.append(
                    f"Hồ sơ {rec.record_id}: tệp {target} do một lần chạy bị gián đoạn để lại (chưa "
                    "được ghi vào kho dữ liệu) được giữ nguyên, không ghi đè; bản lưu trữ hiện hành "
                    "là phiên bản sau nó. Kiểm tra rồi có thể chuyển tệp đó ra khỏi kho lưu trữ "
                    "('digitize fixity' báo nó là tệp lạ).")
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                raise ArchiveStorageError(rec.record_id, (
                    f"Hồ sơ {rec.record_id} ({rec.row.where_inline}): ổ lưu trữ đã đầy, không ghi "
                    f"được {target} ({exc.strerror}). Chưa lưu trữ, bản quét vẫn ở nguyên chỗ. Giải "
                    f"phóng dung lượng hoặc mở rộng ổ chứa {archive_dir} (free space on "
                    f"{target.parent}), rồi Clear để chạy lại.")) from exc
    raise ArchiveConflictError(rec.record_id, (
        f"Hồ sơ {rec.record_id} ({rec.row.where_inline}): đã có {_MAX_VERSION_TRIES} tệp khác nằm "
        f"ở chỗ các phiên bản {version}..{version + _MAX_VERSION_TRIES - 1} của hồ sơ trong kho lưu "
        "trữ; không ghi đè tệp nào nên chưa lưu trữ. Báo quản trị hệ thống kiểm tra thư mục "
        f"{target.parent} bằng 'digitize fixity', rồi Clear để chạy lại."))


def _archived_result(ctx: RecordContext, page_results: list[PageResult], placed: Placement,
                     warnings: list[str], signature: SignatureInfo | None) -> RecordResult:
    rec = ctx.task.record
    known = [p.confidence for p in page_results if p.confidence is not None]
    return RecordResult(
        record_id=rec.record_id, line=rec.row.line, status=RecordStatus.archived,
        pdf_path=str(placed.path), pdf_sha256=placed.sha256, version=placed.version,
        page_count=len(page_results), pages=page_results,
        mean_confidence=round(sum(known) / len(known), 1) if known else None, warnings=warnings,
        timings={stage: round(seconds, 3) for stage, seconds in ctx.timings.items()},
        **warehouse.signature_fields(signature),
    )


def _load(ctx: RecordContext, result: RecordResult, text: str) -> None:
    """The archived record into the warehouse, once its PDF and folder are synced
    (archive.place_new): the warehouse never says archived before the file is safe."""
    task = ctx.task
    with warehouse.engine_for(ctx.settings.warehouse_url).begin() as conn:
        warehouse.load_archived(conn, task, result, text)
        # in the same transaction: a record is never archived yet unfindable
        search_index.index_record(conn, warehouse.pk_of(
            conn, warehouse.records, agency_code=task.agency_code, record_id=result.record_id))
        warehouse.add_event(conn, task, "archive", "archived",
                            f"{result.pdf_path} sha256={result.pdf_sha256} v{result.version}",
                            ctx.elapsed())
        warehouse.add_event(conn, task, "sign", *_signing_event(ctx, result),
                            ctx.timings.get("sign", 0.0))
        if result.warnings:
            warehouse.add_event(conn, task, "crosscheck", "warning", "\n".join(result.warnings))
        _resolve_notes(ctx.settings, conn, task)
    log.info("record %s archived: %d pages, mean confidence %s -> %s", result.record_id,
             result.page_count, result.mean_confidence, result.pdf_path)


def _signing_event(ctx: RecordContext, result: RecordResult) -> tuple[str, str]:
    """The sign stage's outcome and detail: unsigned is said, never left silent."""
    if result.signature_level:
        return "signed", (f"PAdES {result.signature_level}, {result.signed_by}, "
                          f"{result.signed_at:%Y-%m-%dT%H:%M:%SZ}")
    return "unsigned", (
        f"Chưa ký số: cơ quan {ctx.task.agency_code} chưa có khóa ký (DIGITIZE_SIGN_KEY hoặc bảng "
        "DIGITIZE_SIGN_KEYS). Khi có khóa, 'digitize sign --agency "
        f"{ctx.task.agency_code}' ký các hồ sơ đã lưu trữ chưa ký.")


def _resolve_notes(settings: Settings, conn: Connection, task: RecordTask) -> None:
    """An archived record's quarantine notes, from any batch it was held in, go to resolved/."""
    e, b = warehouse.events, warehouse.batches
    held_in = conn.execute(select(b.c.batch_id).join(e, e.c.batch_pk == b.c.id).where(
        e.c.record_id == task.record.record_id, b.c.agency_code == task.agency_code,
        e.c.stage == "quarantine").distinct()).scalars().all()
    for batch_id in held_in:
        archive.resolve_notes(settings.dir("quarantine"), settings.dir("resolved"),
                              task.agency_code, batch_id, task.record.record_id)


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
        warehouse.load_quarantined(conn, task, error.reason)
        warehouse.add_event(conn, task, "quarantine", error.reason, error.message,
                            time.perf_counter() - started if started is not None else None)
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


@contextlib.contextmanager
def warehouse_outage(url: str) -> Iterator[None]:
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
