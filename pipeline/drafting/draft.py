"""A batch's draft manifest: one row per record, each field proposed from the record's first
page with its confidence and the words it was read from, and ``needs_review`` naming the fields
a person must check.

A batch is either files of one record each (a single page, or a multi-page TIFF or PDF) or, under
a scanner profile with ``batch_layout: separator_sheets``, one stack split at its cover sheets,
whose record ids and codes come from the sheets. The draft has the manifest's own columns, so
that, checked and saved as ``manifest.csv``, it is the batch's manifest: the manifest reader
ignores the columns it does not know (confidences, sources, ``needs_review``, ``ghi_chu``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.checks.validate import Procedure
from pipeline.config import ScannerProfile
from pipeline.drafting import fields as found
from pipeline.drafting.reading import Layout, read_layout
from pipeline.intake import pages, separator
from pipeline.intake.ingest import FILE_PROBLEMS, fingerprint_files
from pipeline.reporting.cells import csv_text, xlsx_text
from pipeline.store.archive import atomic_write_bytes
from pipeline.text import tokens

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("record_id", "procedure_code", "result_number", "issued_on", "holder_name",
                    "holder_id", "files")
NOTE = "ghi_chu"  # why a row could not be read, in Vietnamese
REVIEW_FILL = "FFF2CC"  # light yellow: a cell the clerk must check
FAILED_FILL = "F8CBAD"  # light red: a record whose first page could not be read


@dataclass
class DraftRow:
    files: str
    first_file: str
    fields: found.PageFields = field(default_factory=found.PageFields)
    record_id: found.Field = found.EMPTY
    note: str = ""
    typed: dict[str, str] = field(default_factory=dict)  # values a cover sheet gives
    sha256: str = ""  # of the record's file, for files of one record each
    pending: bool = False  # not read yet: this look's pages were spent (draft_batch's budget)

    def value(self, name: str) -> str:
        if name in self.typed:
            return self.typed[name]
        if name == "record_id":
            return self.record_id.value
        return self.fields.get(name).value

    def confidence(self, name: str) -> float:
        if name in self.typed:
            return 1.0
        return (self.record_id if name == "record_id" else self.fields.get(name)).confidence

    def source(self, name: str) -> str:
        if name in self.typed:
            return "tờ bìa hồ sơ"  # printed on the cover sheet, not read from the page
        got = self.record_id if name == "record_id" else self.fields.get(name)
        if got.candidates:
            return f"{got.source} | ứng viên: {', '.join(got.candidates)}"
        return got.source

    @property
    def needs_review(self) -> list[str]:
        names = ["record_id", *found.FIELDS]
        return [n for n in names if n not in self.typed
                and not (self.record_id if n == "record_id" else self.fields.get(n)).sure]


@dataclass(frozen=True)
class PageReading:
    """What a record's first page gave: its fields, and why it could not be read."""

    fields: found.PageFields
    note: str = ""


@dataclass(frozen=True)
class Catalogue:
    """What a title is matched against: the catalogue and the agency's level."""

    agency_code: str
    level: str
    procedures: Mapping[str, Procedure]


Reader = Callable[[Path, int], Layout]


def _slug(text: str) -> str:
    return "-".join(tokens(text)).upper()


def propose_record_id(agency_code: str, fields: found.PageFields) -> found.Field:
    """``<agency>-<yyyymmdd>-<number>`` (``000.00.12.H12-20051119-712-GPXD``) from the date and
    number read; nothing when either is missing. Made unique within the batch by
    :func:`_unique_ids`."""
    date, number = fields.issued_on, fields.result_number
    if not date.value or not number.value:
        return found.EMPTY
    day = dt.datetime.strptime(date.value, "%d/%m/%Y").date()
    return found.Field(f"{agency_code}-{day:%Y%m%d}-{_slug(number.value)}",
                       min(date.confidence, number.confidence), "ngày ban hành + số, ký hiệu")


def _unique_ids(rows: Sequence[DraftRow]) -> None:
    """Two records proposing one id (the same paper scanned twice, or a misread) both keep it
    with a suffix and are marked for review; a record with no id gets one from its file name."""
    seen: dict[str, int] = {}
    for row in rows:
        if "record_id" in row.typed:
            continue
        if not row.record_id.value:
            row.record_id = found.Field(f"TEP-{_slug(Path(row.first_file).stem) or 'HS'}", 0.0,
                                        "tên tệp")
        seen[row.record_id.value] = seen.get(row.record_id.value, 0) + 1
    repeated = {rid for rid, n in seen.items() if n > 1}
    count: dict[str, int] = {}
    for row in rows:
        rid = row.record_id.value
        if rid in repeated and "record_id" not in row.typed:
            count[rid] = count.get(rid, 0) + 1
            row.record_id = found.Field(f"{rid}~{count[rid]}", 0.0,
                                        f"{row.record_id.source} (trùng trong lô)")


def _read(row: DraftRow, page_in_file: int, batch_dir: Path, reader: Reader,
          catalogue: Catalogue, today: dt.date | None) -> None:
    try:
        layout = reader(batch_dir / row.first_file, page_in_file)
    except pages.PageReadError as exc:
        row.note = " ".join(filter(None, (row.note, FILE_PROBLEMS["file_readable"].format(
            name=row.first_file, error=exc))))
        return
    row.fields = found.read_fields(layout.page, catalogue.procedures, catalogue.level, today,
                                   layout.reread)
    if not any(row.fields.get(n).value for n in found.FIELDS):
        row.note = " ".join(filter(None, (row.note, (
            f"Trang đầu của '{row.first_file}' không đọc ra được trường nào (trang trắng, ảnh, "
            "hay không phải kết quả TTHC?). Kiểm tra bản quét rồi điền tay."))))


def draft_batch(batch_dir: Path, catalogue: Catalogue, profile: ScannerProfile,
                reader: Reader | None = None, today: dt.date | None = None,
                known: Mapping[str, PageReading] | None = None,
                budget: int | None = None, store: Path | None = None) -> list[DraftRow]:
    """Every record of the batch with its fields read from its first page.

    For files of one record each, ``known`` (a file's SHA-256 -> what its first page gave
    before) spares reading those pages again, and at most ``budget`` pages are read: the rows of
    the others are left ``pending``, for a later call (the watcher drafts a big batch over
    several looks, :mod:`pipeline.drafting.watch`). Tesseract's readings of the pages are kept
    in ``store`` for the archive to take (:func:`pipeline.drafting.reading.read_layout`)."""
    read = reader or (lambda path, n: read_layout(path, n, profile, store))
    known = known or {}
    files = fingerprint_files(batch_dir)
    rows: list[DraftRow] = []
    if profile.batch_layout == "separator_sheets":
        stack = separator.read_stack(batch_dir, files, profile.fallback_dpi)
        for plan in separator.split(stack, catalogue.agency_code, None):
            if not plan.pages:
                continue
            first = plan.pages[0]
            row = DraftRow(separator.files_field(plan.pages), first.file)
            sheet = plan.row.model_dump()
            row.typed = {n: str(sheet.get(n) or "") for n in ("record_id", "procedure_code",
                                                               "result_number")
                         if sheet.get(n) and not plan.unsplit}
            row.typed.update({"issued_on": f"{plan.row.issued_on:%d/%m/%Y}"}
                             if plan.row.issued_on and not plan.unsplit else {})
            # pages before the first sheet, or after one that cannot be read: the split's reason
            row.note = " ".join(p.message for p in plan.problems
                                if p.rule in separator.SPLIT_RULES)
            _read(row, first.page_in_file, batch_dir, read, catalogue, today)
            rows.append(row)
    else:
        for source in separator.scan_order(files):
            name = source.name
            row = DraftRow(name, name, sha256=source.sha256)
            before = known.get(source.sha256)
            if not source.readable:
                rule = source.error_rule if source.error_rule in FILE_PROBLEMS else "file_readable"
                row.note = FILE_PROBLEMS[rule].format(name=name, error=source.error)
            elif before is not None:
                row.fields, row.note = before.fields, before.note
            elif budget is not None and budget <= 0:
                row.pending = True
            else:
                _read(row, 1, batch_dir, read, catalogue, today)
                budget = None if budget is None else budget - 1
            rows.append(row)
    for row in rows:
        if "record_id" not in row.typed:
            row.record_id = propose_record_id(catalogue.agency_code, row.fields)
    _unique_ids(rows)
    return rows


# --- writing -------------------------------------------------------------------------------------
def columns() -> list[str]:
    out = list(MANIFEST_COLUMNS)
    for name in ("record_id", *found.FIELDS):
        out += [f"{name}_confidence", f"{name}_source"]
    return [*out, "needs_review", NOTE]


def table(rows: Sequence[DraftRow]) -> list[dict[str, str]]:
    """The draft's rows as the columns say, every value a string."""
    out = []
    for row in rows:
        values = {name: row.value(name) for name in MANIFEST_COLUMNS if name != "files"}
        values["files"] = row.files
        for name in ("record_id", *found.FIELDS):
            values[f"{name}_confidence"] = f"{row.confidence(name):.2f}"
            values[f"{name}_source"] = row.source(name)
        values["needs_review"] = ";".join(row.needs_review)
        values[NOTE] = row.note
        out.append(values)
    return out


def to_csv(rows: Sequence[DraftRow]) -> bytes:
    """UTF-8 with a BOM, so that Excel opens the Vietnamese text as it is."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns(), lineterminator="\r\n")
    writer.writeheader()
    # text read off a page (a name, the words a field came from) is shown, never run as a formula
    writer.writerows({k: csv_text(v) for k, v in values.items()} for values in table(rows))
    return buffer.getvalue().encode("utf-8-sig")


def to_xlsx(rows: Sequence[DraftRow]) -> bytes:
    """One sheet; the cells to review in yellow, a row that could not be read in red."""
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill

    book = Workbook()
    sheet = book.active
    sheet.title = "manifest"
    names = columns()
    sheet.append(names)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    review = PatternFill("solid", fgColor=REVIEW_FILL)
    failed = PatternFill("solid", fgColor=FAILED_FILL)
    for r, (row, values) in enumerate(zip(rows, table(rows), strict=True), start=2):
        sheet.append([values[n] for n in names])
        for cell in sheet[r]:
            xlsx_text(cell)
        for name in row.needs_review:
            sheet.cell(r, names.index(name) + 1).fill = failed if row.note else review
    sheet.freeze_panes = "B2"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def write_draft(rows: Sequence[DraftRow], out: Path) -> None:
    """The draft to ``out``: XLSX by a ``.xlsx`` suffix, else CSV; written whole or not at all."""
    data = to_xlsx(rows) if out.suffix.lower() == ".xlsx" else to_csv(rows)
    atomic_write_bytes(out, data)


def default_out(batch_dir: Path) -> Path:
    return batch_dir / "manifest.draft.csv"


def review_count(rows: Sequence[DraftRow]) -> int:
    return sum(bool(row.needs_review) for row in rows)

