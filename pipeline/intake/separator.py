"""Split a scanned stack into records at its printed cover sheets (scanner profile
``batch_layout: separator_sheets``).

The clerk scans a whole stack at once: one long file (multi-page PDF or TIFF) or many single-page
files in scan order, with a cover sheet from `digitize cover-sheets` before each record. Each page
is read once at low resolution: a page with our QR code starts a record and gives its metadata,
a blank page (the back of a sheet or of a one-sided paper, from duplex scanning) belongs to no
record, and every other page belongs to the record of the sheet before it. The sheets themselves
are never archived.

Nothing is merged or dropped silently: pages before the first sheet, the pages after a sheet whose
code cannot be read, and a sheet followed by no page become records of their own that go to
quarantine with a message saying which pages and what to do. A manifest, when the batch has one,
is checked against the sheets and adds what a sheet does not carry (holder, validity).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np
import zxingcpp

from pipeline.imaging import cleanup
from pipeline.intake import pages, sheetcode
from pipeline.models import ManifestRow, PageRef, Problem, RecordPlan, SourceFile

log = logging.getLogger(__name__)

# QR modules of a cover sheet are about 0.6 mm: 3.5 px at this resolution, enough for zxing and
# a fraction of the decoding time of a 300 dpi page
READ_DPI = 150


# problems of the split itself, as opposed to those a manifest row or the rules give
SPLIT_RULES = frozenset({"pages_before_first_sheet", "sheet_unreadable", "sheet_without_pages",
                         "sheet_other_agency"})


class Kind(StrEnum):
    sheet = "sheet"
    bad_sheet = "bad_sheet"  # one of our QR codes, found but not readable or not trustworthy
    blank = "blank"
    page = "page"


@dataclass(frozen=True)
class StackPage:
    """One page of the stack, in scan order."""

    file: str
    page_in_file: int
    kind: Kind
    code: str = ""  # the QR text of a sheet
    error: str = ""  # why a bad sheet could not be used

    @property
    def ref(self) -> PageRef:
        return PageRef(file=self.file, page_in_file=self.page_in_file)

    @property
    def label(self) -> str:
        return _sheet_label(self.ref)


def _natural_key(name: str) -> list[object]:
    # scanners number files scan_1 ... scan_10: "10" sorts after "9", not after "1"
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def scan_order(files: dict[str, SourceFile]) -> list[SourceFile]:
    """The stack's files in scan order (natural sort of their names)."""
    return sorted(files.values(), key=lambda f: _natural_key(f.name))


def classify(image: np.ndarray, dpi: int) -> tuple[Kind, str, str]:
    """What one scanned page is: (kind, QR text of a sheet, error of a bad sheet)."""
    grey = cleanup.to_gray(image)
    if dpi > READ_DPI:
        grey = cleanup.scaled(grey, dpi, READ_DPI)
    found = zxingcpp.read_barcodes(grey, formats=zxingcpp.BarcodeFormat.QRCode,
                                   return_errors=True)
    readable = [b.text for b in found if b.valid and sheetcode.is_sheet_code(b.text)]
    errors: list[str] = []
    for text in readable:
        try:
            sheetcode.decode(text)
        except sheetcode.SheetCodeError as exc:
            errors.append(exc.vi)
        else:
            return Kind.sheet, text, ""
    # A symbol found but not decoded may be a result's own QR code; with no readable code of
    # ours beside it, the page is taken for a damaged sheet rather than merged into a record.
    if any(not b.valid for b in found):
        log.info("QR symbol found but not decoded: %s", "; ".join(str(b.error) for b in found))
        errors.append("mã QR bị hỏng hoặc bị che, không giải mã được")
    if errors:
        return Kind.bad_sheet, "", "; ".join(dict.fromkeys(errors))
    cleaned, _ = cleanup.remove_dark_border(image)
    if cleanup.Flag.blank in cleanup.assess(cleaned, dpi):
        return Kind.blank, "", ""
    return Kind.page, "", ""


def read_stack(batch_dir: Path, files: dict[str, SourceFile], fallback_dpi: int) -> list[StackPage]:
    """Every page of the readable files, classified, in scan order; one page in memory at a time."""
    stack = []
    for source in scan_order(files):
        if not source.readable:
            continue
        for n in range(1, source.page_count + 1):
            try:
                image, dpi = pages.load_page(batch_dir / source.name, n, fallback_dpi)
            except pages.PageReadError:
                # kept in its record, whose processing then names the page it cannot read
                stack.append(StackPage(source.name, n, Kind.page))
                continue
            stack.append(StackPage(source.name, n, *classify(image, dpi)))
    log.info("stack of %d pages: %d sheets, %d unreadable sheets, %d blank", len(stack),
             sum(p.kind == Kind.sheet for p in stack), sum(p.kind == Kind.bad_sheet for p in stack),
             sum(p.kind == Kind.blank for p in stack))
    return stack


def files_field(refs: Iterable[PageRef]) -> str:
    """The manifest's ``Tệp`` syntax for pages, runs of one file joined: ``a.pdf[3-5];a.pdf[7]``."""
    runs: list[list[object]] = []
    for ref in refs:
        last = runs[-1] if runs else None
        if last and last[0] == ref.file and last[2] == ref.page_in_file - 1:
            last[2] = ref.page_in_file
        else:
            runs.append([ref.file, ref.page_in_file, ref.page_in_file])
    return ";".join(f"{name}[{first}-{end}]" if first != end else f"{name}[{first}]"
                    for name, first, end in runs)


@dataclass
class _Group:
    """A sheet (or its absence) and the pages after it."""

    head: StackPage | None  # None: the pages before the first sheet
    position: int  # 1-based place of the group's first page in the stack
    pages: list[StackPage] = field(default_factory=list)
    blanks: int = 0


def _groups(stack: Sequence[StackPage]) -> list[_Group]:
    groups: list[_Group] = []
    current: _Group | None = None
    for position, page in enumerate(stack, start=1):
        if page.kind in (Kind.sheet, Kind.bad_sheet):
            current = _Group(page, position)
            groups.append(current)
        elif page.kind == Kind.blank:
            if current is not None:
                current.blanks += 1
        else:
            if current is None:
                current = _Group(None, position)
                groups.append(current)
            current.pages.append(page)
    return groups


def _problem(rule: str, message: str) -> Problem:
    return Problem(rule=rule, field="files", message=message)


def placeholder_id(prefix: str, name: str, page: int | None = None) -> str:
    """The record id under which pages no sheet names are held: ``chua-ro-xap-01-5``."""
    stem = re.sub(r"[^0-9A-Za-z]+", "-", name).strip("-") or "tep"
    return f"{prefix}-{stem}" + (f"-{page}" if page is not None else "")


def _unsplit(group: _Group, rule: str, message: str) -> RecordPlan:
    """Pages no sheet ties to a record: quarantined under a name that says where they are."""
    first = group.head or group.pages[0]
    row = ManifestRow(line=group.position,
                      record_id=placeholder_id("chua-ro", Path(first.file).stem, first.page_in_file),
                      files_raw=files_field(p.ref for p in group.pages),
                      source=f"Xấp quét, {first.label}")
    return RecordPlan(row=row, pages=[p.ref for p in group.pages], unsplit=True,
                      problems=[_problem(rule, message)])


def _pages_text(group: _Group) -> str:
    if not group.pages:
        return "không có trang nào"
    first, last = group.pages[0], group.pages[-1]
    return (f"{len(group.pages)} trang, từ {first.label} đến {last.label}" if len(group.pages) > 1
            else f"1 trang ({first.label})")


_MISMATCHED = (("procedure_code", "Mã TTHC"), ("result_number", "Số ký hiệu"),
               ("issued_on", "Ngày ban hành"))


def _sheet_label(ref: PageRef) -> str:
    return f"trang {ref.page_in_file} của tệp {ref.file}"


def row_of_sheet(code: str, sheet: PageRef, line: int, refs: Sequence[PageRef],
                 manifest: Sequence[ManifestRow] = ()) -> tuple[ManifestRow, list[Problem]]:
    """A record's row: the facts of its sheet (QR text ``code``, scanned at ``sheet``) over its
    pages ``refs``, and from the manifest row of its record id, if any, what a sheet does not
    carry (holder, validity); a fact both give differently is a problem."""
    facts = sheetcode.decode(code)
    where = f"Tờ bìa hồ sơ {facts.record_id} ({_sheet_label(sheet)})"
    row = ManifestRow(
        line=line, record_id=facts.record_id, procedure_code=facts.procedure_code,
        result_number=facts.result_number, issued_on_raw=facts.issued_on.isoformat(),
        issued_on=facts.issued_on, still_valid_raw="có", still_valid=True,
        files_raw=files_field(refs), source=where)
    extra = next((r for r in manifest if r.record_id == facts.record_id), None)
    if extra is None:
        return row, []
    row = row.model_copy(update={
        "holder_name": extra.holder_name, "holder_id": extra.holder_id,
        "procedure_name": extra.procedure_name, "not_duplicate_of": extra.not_duplicate_of,
        "replace_archived_raw": extra.replace_archived_raw,
        "replace_archived": extra.replace_archived,
        "still_valid_raw": extra.still_valid_raw or row.still_valid_raw,
        "still_valid": extra.still_valid, "page_count_raw": extra.page_count_raw,
        "page_count": extra.page_count, "source": f"{where}, dòng {extra.line} của manifest.csv"})
    problems = []
    for name, header in _MISMATCHED:
        written, printed = getattr(extra, name), getattr(row, name)
        if written in ("", None) or written == printed:
            continue
        shown = [v.strftime("%d/%m/%Y") if hasattr(v, "strftime") else v for v in (written, printed)]
        problems.append(Problem(
            rule="sheet_manifest_mismatch", field=name,
            message=f"{where}: cột {header} ở dòng {extra.line} của manifest.csv ghi '{shown[0]}', "
                    f"tờ bìa ghi '{shown[1]}'. Kiểm tra giấy tờ: sửa manifest, hoặc in lại tờ bìa "
                    "đúng rồi quét lại hồ sơ."))
    return row, problems


def split(stack: Sequence[StackPage], agency_code: str,
          manifest: Sequence[ManifestRow] | None = None) -> list[RecordPlan]:
    """The stack's records, in scan order, with the problems of the split; with a manifest,
    one more (page-less) record per manifest row that no sheet names."""
    seen: set[str] = set()
    records = []
    for group in _groups(stack):
        head = group.head
        if head is None:
            records.append(_unsplit(group, "pages_before_first_sheet", (
                f"Xấp quét có {_pages_text(group)} nằm trước tờ bìa đầu tiên, không biết thuộc "
                "hồ sơ nào; chưa lưu trữ. Đặt tờ bìa của hồ sơ trước các trang đó rồi quét lại, "
                "hoặc bỏ các trang thừa.")))
            continue
        if head.kind == Kind.bad_sheet:
            records.append(_unsplit(group, "sheet_unreadable", (
                f"Không đọc được mã QR của tờ bìa ở {head.label} ({head.error}); {_pages_text(group)}"
                " sau tờ bìa đó chưa được lưu trữ. In lại tờ bìa (digitize cover-sheets), thay tờ "
                "hỏng rồi quét lại hồ sơ này.")))
            continue
        facts = sheetcode.decode(head.code)
        refs, unsplit = [p.ref for p in group.pages], False
        row, problems = row_of_sheet(head.code, head.ref, group.position, refs, manifest or ())
        seen.add(facts.record_id)
        if facts.agency_code != agency_code:
            problems.append(_problem("sheet_other_agency", (
                f"{row.where}: tờ bìa in cho cơ quan {facts.agency_code}, nhưng lô thuộc cơ quan "
                f"{agency_code}. Chuyển hồ sơ sang lô của đúng cơ quan.")))
        if not group.pages:
            # no pages: nothing for the manifest rules to check, the record is held as it is
            unsplit = True
            problems.append(_problem("sheet_without_pages", (
                f"{row.where}: sau tờ bìa không có trang nào (hai tờ bìa liền nhau hoặc chỉ có "
                "trang trắng). Quét lại hồ sơ ngay sau tờ bìa của nó, hoặc bỏ tờ bìa thừa.")))
        records.append(RecordPlan(row=row, pages=refs, problems=problems, sheet=head.code,
                                  sheet_page=head.ref, unsplit=unsplit))
    for row in manifest or []:
        if row.record_id not in seen:
            records.append(RecordPlan(row=row, unsplit=True, problems=[_problem(
                "manifest_row_without_sheet",
                f"{row.where}: hồ sơ {row.record_id or '(không mã)'} không có tờ bìa trong xấp "
                "quét. Quét hồ sơ cùng tờ bìa của nó (digitize cover-sheets) trong một lô mới, "
                "hoặc bỏ dòng này khỏi manifest.")]))
    return records
