"""Cover sheets: one printed A4 page per record, put in front of its paper so that a whole stack
is scanned at once and split again at the sheets (pipeline.intake.separator).

Each sheet carries the record's facts as a QR code (pipeline.intake.sheetcode), printed twice (top right
and bottom left) so that a fold, a staple or a stain over one leaves the other readable, and the
same facts in Vietnamese for the clerk who sorts the stack. The list of records comes from a
per-record file (CSV or XLSX) with the manifest's columns; a record the warehouse already holds
as archived gets no sheet, so printing the same list again only prints what is still to scan.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import img2pdf
import zxingcpp
from PIL import Image, ImageDraw, ImageFont
from pydantic import BaseModel, Field
from sqlalchemy import select

from pipeline.checks.reference import RowProblem, SheetRow, cell_text, read_sheet
from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.intake import sheetcode, typeset
from pipeline.intake.ingest import HEADER_ALIASES, parse_bool
from pipeline.intake.sheetcode import SheetFacts
from pipeline.intake.tables import header_key
from pipeline.models import RecordStatus
from pipeline.store import warehouse
from pipeline.store.archive import atomic_write_bytes

PAGE_MM = (210.0, 297.0)  # A4
MARGIN_MM = 15.0
# Side of each QR code with its quiet zone, at most (whole pixels per module make it 38-44 mm):
# modules of 0.5-0.7 mm stay 3 px and more at the 150 dpi the separator reads pages at, and the
# text still has room beside the codes.
QR_MAX_MM = 45.0
QR_EC_LEVEL = "H"  # 30 % of the symbol may be lost: a punch hole or a ballpoint mark
ROWS_PER_STRIP = 278  # TIFF tag
FONT_STYLE = "serif"
TITLE = "TỜ BÌA TÁCH HỒ SƠ SỐ HÓA"
INSTRUCTION = ("Đặt tờ này ngay trước trang đầu của hồ sơ khi quét; không đóng dấu, không ghi đè "
               "lên mã QR. Tờ bìa không được lưu trữ.")

# The manifest's headers (English and Vietnamese) name the columns of the list; field names
# without the manifest's ``_raw`` suffix, as a message shows them beside the Vietnamese header.
_ALIASES = {header_key(header): name.removesuffix("_raw") for header, name in HEADER_ALIASES.items()}
_REQUIRED = ("record_id", "procedure_code", "result_number", "issued_on")
_LABELS = {"record_id": "Mã hồ sơ", "procedure_code": "Mã TTHC", "result_number": "Số ký hiệu",
           "issued_on": "Ngày ban hành", "still_valid": "Còn hiệu lực"}


class CoverSheetReport(BaseModel):
    """What ``digitize cover-sheets`` did with a list of records."""

    agency_code: str
    inventory: str
    out: str | None = None  # the PDF written; None when no sheet was to be printed
    rows: int = 0  # data rows read (blank rows are not counted)
    printed: list[str] = Field(default_factory=list)  # record ids, in the order of the list
    archived: list[str] = Field(default_factory=list)  # already archived: no sheet again
    not_valid: list[str] = Field(default_factory=list)  # marked no longer valid: not digitized
    rejected: int = 0  # rows with at least one problem
    problems: list[RowProblem] = Field(default_factory=list)


# --- drawing -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Pen:
    """Draws on one page in millimetres and points, whatever its resolution."""

    draw: ImageDraw.ImageDraw
    dpi: int

    def px(self, mm: float) -> int:
        return round(mm / 25.4 * self.dpi)

    def font(self, pt: float, bold: bool) -> ImageFont.FreeTypeFont:
        return typeset.font(FONT_STYLE, bold, False, round(pt / 72 * self.dpi))

    def fitting(self, text: str, width_mm: float, pt: float, bold: bool) -> float:
        """``pt``, or the smaller size at which ``text`` (one word, such as a long record id that
        cannot be wrapped) fits into ``width_mm``."""
        length_mm = self.font(pt, bold).getlength(text) / self.dpi * 25.4
        return pt if length_mm <= width_mm else pt * width_mm / length_mm * 0.98

    def text(self, x_mm: float, y_mm: float, width_mm: float, text: str, pt: float,
             bold: bool = False) -> float:
        """Draw ``text`` wrapped into ``width_mm`` from its top at ``y_mm``; the y below it."""
        font = self.font(pt, bold)
        line_mm = pt * 1.3 * 25.4 / 72
        lines = typeset.wrap_words(text, width_mm * 72 / 25.4, style=FONT_STYLE, size=pt, bold=bold)
        for n, line in enumerate(lines):
            self.draw.text((self.px(x_mm), self.px(y_mm + n * line_mm)), line, font=font, fill=0,
                           anchor="la")
        return y_mm + len(lines) * line_mm


def qr_image(text: str, dpi: int) -> Image.Image:
    """The QR code of ``text`` with its quiet zone, enlarged by a whole number of pixels per
    module (nearest neighbour keeps the edges sharp) to at most :data:`QR_MAX_MM` square."""
    code = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level=QR_EC_LEVEL)
    symbol = Image.fromarray(zxingcpp.write_barcode_to_image(code))  # with its quiet zone
    scale = max(1, math.floor(QR_MAX_MM / 25.4 * dpi / symbol.width))
    return symbol.resize((symbol.width * scale, symbol.height * scale), Image.Resampling.NEAREST)


def _joined(code: str, name: str) -> str:
    return f"{code} — {name}" if name else code


def render_sheet(facts: SheetFacts, procedure_name: str = "", agency_name: str = "",
                 dpi: int = 300) -> Image.Image:
    """One A4 cover sheet (mode ``1``, ``dpi`` in its info) for the record of ``facts``."""
    width, height = (round(mm / 25.4 * dpi) for mm in PAGE_MM)
    page = Image.new("L", (width, height), 255)
    pen = _Pen(ImageDraw.Draw(page), dpi)
    qr = qr_image(sheetcode.encode(facts), dpi)
    qr_mm = qr.width / dpi * 25.4
    page.paste(qr, (width - pen.px(MARGIN_MM) - qr.width, pen.px(MARGIN_MM)))
    page.paste(qr, (pen.px(MARGIN_MM), height - pen.px(MARGIN_MM) - qr.height))

    left, text_w = MARGIN_MM, PAGE_MM[0] - 2 * MARGIN_MM
    y = pen.text(left, MARGIN_MM + 4, text_w - qr_mm - 6, TITLE, 20, bold=True)
    pen.text(left, y + 3, text_w - qr_mm - 6,
             "Dùng để tách hồ sơ khi quét cả chồng giấy một lần.", 12)
    y = MARGIN_MM + qr_mm + 8
    pen.draw.rectangle((pen.px(left), pen.px(y), pen.px(left + text_w), pen.px(y + 0.5)), fill=0)
    y = pen.text(left, y + 6, text_w, "Mã hồ sơ", 13)
    y = pen.text(left, y + 1, text_w, facts.record_id,
                 pen.fitting(facts.record_id, text_w, 30, bold=True), bold=True) + 6
    label_w = 42.0
    for label, value in (("Cơ quan", _joined(facts.agency_code, agency_name)),
                         ("Mã TTHC", _joined(facts.procedure_code, procedure_name)),
                         ("Số ký hiệu", facts.result_number),
                         ("Ngày ban hành", f"{facts.issued_on:%d/%m/%Y}")):
        pen.text(left, y, label_w, f"{label}:", 14)
        y = pen.text(left + label_w, y, text_w - label_w, value, 14, bold=True) + 3
    y += 5
    box_top = y
    y = pen.text(left + 5, y + 5, text_w - 10, INSTRUCTION, 13, bold=True) + 4
    pen.draw.rectangle((pen.px(left), pen.px(box_top), pen.px(left + text_w), pen.px(y)),
                       outline=0, width=max(1, pen.px(0.5)))

    # beside the lower code: who the sheet is for, should the top of the page be torn or folded
    foot_x = MARGIN_MM + qr_mm + 6
    foot_y = PAGE_MM[1] - MARGIN_MM - qr_mm + 4
    foot_y = pen.text(foot_x, foot_y, PAGE_MM[0] - MARGIN_MM - foot_x,
                      f"Mã hồ sơ: {facts.record_id}", 11, bold=True)
    pen.text(foot_x, foot_y + 2, PAGE_MM[0] - MARGIN_MM - foot_x,
             f"Mã QR định dạng {sheetcode.PREFIX}{sheetcode.VERSION} (phiên bản "
             f"{sheetcode.VERSION}), tạo bởi digitize cover-sheets.", 8)
    # a hard threshold, not dithering: anti-aliased edges would become speckle on the scan
    sheet = page.point(lambda v: 255 if v >= 128 else 0).convert("1", dither=Image.Dither.NONE)
    sheet.info["dpi"] = (dpi, dpi)
    return sheet


def sheets_pdf(sheets: Iterable[Image.Image]) -> bytes:
    """A PDF of bitonal pages (CCITT G4, a few tens of KB each), every page exactly A4.

    Each sheet is encoded as it comes: a generator keeps one 1 MB page image in memory, not the
    whole stack's."""
    pages = []
    for sheet in sheets:
        buffer = io.BytesIO()
        # one strip for the whole page: img2pdf embeds such a G4 stream as it is, while several
        # strips it decodes and encodes again (twenty times slower)
        sheet.save(buffer, "TIFF", compression="group4", dpi=sheet.info["dpi"],
                   tiffinfo={ROWS_PER_STRIP: sheet.height})
        pages.append(buffer.getvalue())
    a4 = img2pdf.get_layout_fun((img2pdf.mm_to_pt(PAGE_MM[0]), img2pdf.mm_to_pt(PAGE_MM[1])))
    return img2pdf.convert(pages, layout_fun=a4, title="Tờ bìa tách hồ sơ số hóa", nodate=True)


# --- the list of records -------------------------------------------------------------------------
@dataclass(frozen=True)
class _Entry:
    facts: SheetFacts
    still_valid: bool


def _still_valid(row: SheetRow) -> bool | None:
    """The row's ``still_valid`` cell; an empty or missing cell means valid (as in a manifest)."""
    value = row.get("still_valid")
    if value == "":
        return True
    valid = value if isinstance(value, bool) else parse_bool(cell_text(value))
    if valid is None:
        row.reject("still_valid", value, f"'{cell_text(value)}' không rõ còn hay hết hiệu lực; ghi "
                                         "'Có' (còn hiệu lực) hoặc 'Không', hoặc để trống.")
    return valid


def _entry(row: SheetRow, agency_code: str) -> _Entry | None:
    record_id = row.text("record_id", "mã hồ sơ")
    procedure = row.procedure_code("procedure_code")
    number = row.text("result_number", "số, ký hiệu của kết quả, ví dụ 12/QĐ-UBND")
    issued = None
    if row.required("issued_on", "ngày ban hành dạng dd/mm/yyyy (ví dụ 01/07/2015)") is not None:
        issued = row.date("issued_on")[1]
    valid = _still_valid(row)
    if row.problems or not (record_id and procedure and number and issued) or valid is None:
        return None
    return _Entry(SheetFacts(agency_code, record_id, procedure, number, issued), valid)


def _read_records(path: Path, agency_code: str) -> tuple[int, list[_Entry], list[SheetRow]]:
    """(data rows, the good rows in file order, the checked rows) of a per-record list.

    :class:`pipeline.errors.ReferenceFileError` when the file cannot be used at all.
    """
    sheet = read_sheet(path, _ALIASES, _REQUIRED, _LABELS)
    entries: list[_Entry] = []
    checked: list[SheetRow] = []
    first_line: dict[str, int] = {}
    for line, cells in sheet.rows:
        row = SheetRow(sheet, _LABELS, line, cells)
        checked.append(row)
        entry = _entry(row, agency_code)
        if entry is None:
            continue
        record_id = entry.facts.record_id
        if record_id in first_line:
            # two sheets with one id would split two papers into one record
            row.reject("record_id", record_id,
                       f"mã hồ sơ '{record_id}' đã có ở dòng {first_line[record_id]}; mỗi hồ sơ chỉ "
                       "một tờ bìa. Xóa dòng trùng hoặc sửa mã.")
            continue
        first_line[record_id] = line
        entries.append(entry)
    return len(sheet.rows), entries, checked


# --- the command ---------------------------------------------------------------------------------
def _registry(url: str, agency_code: str, procedure_codes: set[str]
              ) -> tuple[str, dict[str, str], set[str]]:
    """(the agency's name, procedure names by code, record ids archived for the agency)."""
    with warehouse.engine_for(url).connect() as conn:
        agency_name = conn.execute(select(warehouse.agencies.c.name).where(
            warehouse.agencies.c.code == agency_code)).scalar()
        if agency_name is None:  # a bare code a batch inserted is not a registered agency
            raise ConfigError(
                f"Cơ quan '{agency_code}' chưa có trong danh sách cơ quan của kho. Nhập danh sách "
                "cơ quan trước (digitize agencies import <tệp>) hoặc sửa mã cơ quan (--agency).")
        procedures = conn.execute(select(warehouse.procedures.c.code, warehouse.procedures.c.name)
                                  .where(warehouse.procedures.c.code.in_(procedure_codes))).all()
        archived = set(conn.execute(select(warehouse.records.c.record_id).where(
            warehouse.records.c.agency_code == agency_code,
            warehouse.records.c.status == RecordStatus.archived.value)).scalars())
    return agency_name, {code: name for code, name in procedures if name}, archived


def write_cover_sheets(settings: Settings, agency_code: str, inventory: Path, out: Path
                       ) -> CoverSheetReport:
    """Print (to ``out``, atomically) one cover sheet per record of ``inventory`` still to scan.

    Rows with a problem, records marked no longer valid and records already archived for the
    agency get no sheet and are listed in the report. When no sheet is left, ``out`` is not
    written. :class:`ConfigError` (or its ReferenceFileError) when the agency is not registered
    or the file cannot be used at all.
    """
    warehouse.migrate(settings.warehouse_url)
    rows, entries, checked = _read_records(inventory, agency_code)
    agency_name, procedure_names, archived = _registry(
        settings.warehouse_url, agency_code, {e.facts.procedure_code for e in entries})
    report = CoverSheetReport(agency_code=agency_code, inventory=str(inventory), rows=rows,
                              problems=[p for row in checked for p in row.problems],
                              rejected=sum(bool(row.problems) for row in checked))
    to_print: list[SheetFacts] = []
    for entry in entries:
        facts = entry.facts
        if not entry.still_valid:
            report.not_valid.append(facts.record_id)
        elif facts.record_id in archived:
            report.archived.append(facts.record_id)
        else:
            report.printed.append(facts.record_id)
            to_print.append(facts)
    if to_print:
        atomic_write_bytes(out, sheets_pdf(
            render_sheet(f, procedure_names.get(f.procedure_code, ""), agency_name) for f in to_print))
        report.out = str(out)
    return report


def summary_lines(report: CoverSheetReport) -> list[str]:
    """The report for the clerk, in Vietnamese: what was printed, skipped and rejected."""
    lines = [f"Đã in {len(report.printed)} tờ bìa"
             + (f" vào {report.out}" if report.out else "")
             + f", bỏ qua {len(report.archived)} hồ sơ đã lưu trữ, {report.rejected} dòng bị từ chối."]
    if not report.printed:
        lines.append(f"Không có tờ bìa nào cần in từ {report.inventory}; chưa ghi tệp PDF nào.")
    if report.archived:
        lines.append("Đã lưu trữ, không in lại: " + ", ".join(report.archived))
    if report.not_valid:
        lines.append("Hết hiệu lực, không số hóa: " + ", ".join(report.not_valid))
    lines += [p.message for p in report.problems]
    return lines
