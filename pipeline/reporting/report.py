"""The quarterly progress report for Sở TT&TT: XLSX, CSV, JSON and HTML from a QuarterReport.

API (the figures themselves are :mod:`pipeline.reporting.progress`)::

    render(report, fmt) -> bytes                   # fmt: "xlsx" | "csv" | "json" | "html"
    render_html(report, *, form_action=None, download_links=None) -> str
    write_quarter_report(settings, quarter, formats=FORMATS, folder=None) -> dict[str, str]

``render_html`` is what the Airflow UI plugin wraps: with ``form_action`` the page starts with a
GET form (``quarter``, ``level``, ``agency``, ``phase``, choices from ``report.choices``) posting
to that URL; ``download_links`` maps a format to the URL of the same report in that format.

The four formats hold the same figures (no personal data: the report never reads holder names or
ids). Rendering the same report gives the same bytes: nothing in a file depends on when or where
it was made (the XLSX's document dates and its zip entries' times are the quarter's last day), so
a report rerun for a past quarter is byte-identical.

- **XLSX** (openpyxl): sheet *Tổng hợp* (the plan, the figures per level and phase, the province
  totals, the main quarantine reasons, a chart per level and phase, the definitions), one sheet
  per phase (one row per agency, a bar chart of the percentage against the level due by the
  quarter's end) and *Tất cả giai đoạn* (agencies over all phases, with its chart).
- **CSV** (UTF-8 with BOM, for Excel): one table, one line per row of every kind, the kind in
  *Loại dòng*; decimals with a point.
- **JSON**: the QuarterReport itself (``QuarterReport.model_validate_json`` reads it back).
- **HTML**: one self-contained page (inline CSS and SVG charts, no script, nothing fetched),
  ``lang="vi"``, printable (A4 landscape, one phase per page).
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pipeline.config import Settings
from pipeline.reporting.cells import csv_text, xlsx_text
from pipeline.reporting.progress import (
    ProgressRow,
    QuarterReport,
    level_name,
    quarter_report,
)
from pipeline.store.archive import atomic_write_bytes

Format = Literal["xlsx", "csv", "json", "html"]
FORMATS: tuple[Format, ...] = ("xlsx", "csv", "json", "html")
FILE_STEM = "bao-cao-tien-do"

TITLE = "BÁO CÁO TIẾN ĐỘ SỐ HÓA KẾT QUẢ GIẢI QUYẾT THỦ TỤC HÀNH CHÍNH"
KIND_NAMES = {
    "agency_phase": "Cơ quan – giai đoạn", "agency": "Cơ quan – tất cả giai đoạn",
    "level_phase": "Cấp – giai đoạn", "level": "Cấp – tất cả giai đoạn",
    "province_phase": "Toàn tỉnh – giai đoạn", "province": "Toàn tỉnh – tất cả giai đoạn",
}
FORECAST_TEXT = {
    "done": "Đã hoàn thành", "no_pace": "Chưa có tiến độ trong quý", "too_slow": "Quá 100 năm",
    "not_started": "Chưa bắt đầu", "no_inventory": "Chưa có số kiểm đếm",
}
ALL_PHASES = "Tất cả giai đoạn"
PROVINCE = "Toàn tỉnh"


# --- columns: one definition for every format -----------------------------------------------------
class Column:
    """A report column: its Vietnamese header, its value for machines (CSV, XLSX cells) and
    its text for people (HTML)."""

    def __init__(self, header: str, value: Callable[[QuarterReport, ProgressRow], Any],
                 kind: str = "text", width: int = 12) -> None:
        self.header, self.value, self.kind, self.width = header, value, kind, width


def _yes(flag: bool | None, yes: str, no: str) -> str:
    return "" if flag is None else yes if flag else no


def _forecast(row: ProgressRow) -> dt.date | str:
    return row.forecast if row.forecast else FORECAST_TEXT.get(row.forecast_status, "")


def _reasons(row: ProgressRow) -> str:
    return "; ".join(f"{c.label} ({c.count})" for c in row.top_reasons)


def _group_name(row: ProgressRow) -> str:
    return PROVINCE if row.kind.startswith("province") else level_name(row.level)


COLUMN_SET: dict[str, Column] = {
    "kind": Column("Loại dòng", lambda r, x: KIND_NAMES[x.kind], width=26),
    "agency_code": Column("Mã cơ quan", lambda r, x: x.agency_code or "", width=15),
    "agency_name": Column("Cơ quan", lambda r, x: x.agency_name or "", width=36),
    "level": Column("Cấp", lambda r, x: _group_name(x), width=10),
    "pilot": Column("Thí điểm", lambda r, x: "x" if x.pilot else "", width=8),
    "phase": Column("Giai đoạn", lambda r, x: r.phase_name(x.phase), width=16),
    "agencies": Column("Số cơ quan", lambda r, x: x.agencies, "int", 10),
    "inventoried": Column("Đã kiểm đếm", lambda r, x: x.inventoried, "int"),
    "digitized": Column("Đã số hóa", lambda r, x: x.digitized, "int"),
    "percent": Column("Tỷ lệ (%)", lambda r, x: x.percent, "pct", 10),
    "target": Column("Chỉ tiêu năm (%)", lambda r, x: x.target, "pct"),
    "expected": Column("Mức cần đạt (%)", lambda r, x: x.expected, "pct"),
    "on_track": Column("Đạt/Chưa đạt", lambda r, x: _yes(x.on_track, "Đạt", "Chưa đạt")),
    # for levels and the province; an agency's own row says Đạt/Chưa đạt
    "agencies_on_track": Column("Cơ quan đạt", lambda r, x: f"{x.agencies_on_track}/{x.agencies_judged}"
                                if x.agencies_judged and not x.kind.startswith("agency") else "",
                                width=11),
    "remaining": Column("Còn lại", lambda r, x: x.remaining, "int"),
    "pages": Column("Số trang", lambda r, x: x.pages, "int"),
    "quarantined": Column("Cần xử lý", lambda r, x: x.quarantined, "int", 10),
    "reasons": Column("Lý do chính", lambda r, x: _reasons(x), width=40),
    "digitized_in_quarter": Column("Số hóa trong quý", lambda r, x: x.digitized_in_quarter, "int"),
    "pages_in_quarter": Column("Trang trong quý", lambda r, x: x.pages_in_quarter, "int"),
    "records_per_day": Column("Hồ sơ/ngày", lambda r, x: x.records_per_day, "float", 10),
    "pages_per_day": Column("Trang/ngày", lambda r, x: x.pages_per_day, "float", 10),
    "forecast": Column("Dự kiến hoàn thành", lambda r, x: _forecast(x), "date", 20),
    "deadline": Column("Hạn", lambda r, x: x.deadline, "date", 11),
    "meets_deadline": Column("Kịp hạn", lambda r, x: _yes(x.meets_deadline, "Kịp", "Không kịp"),
                             width=10),
}
_FIGURES = ["inventoried", "digitized", "percent", "target", "expected", "on_track", "remaining",
            "pages", "quarantined", "reasons", "digitized_in_quarter", "pages_in_quarter",
            "records_per_day", "pages_per_day", "forecast", "deadline", "meets_deadline"]
AGENCY_COLUMNS = ["agency_code", "agency_name", "level", "pilot", "phase", *_FIGURES]
GROUP_COLUMNS = ["level", "phase", "agencies", *_FIGURES[:6], "agencies_on_track", *_FIGURES[6:]]
CSV_COLUMNS = ["kind", "level", "agency_code", "agency_name", "pilot", "phase", "agencies",
               *_FIGURES[:6], "agencies_on_track", *_FIGURES[6:]]


def definitions(report: QuarterReport) -> list[tuple[str, str]]:
    """What each figure means, in the words of the report (XLSX notes, HTML footer)."""
    days = "thứ Hai đến thứ Sáu" + (", trừ ngày nghỉ lễ trong kế hoạch" if report.holidays else "")
    return [
        ("Đã kiểm đếm", "số kết quả giải quyết TTHC còn hiệu lực (bản giấy) theo số liệu kiểm đếm; "
                        "kết quả thuộc giai đoạn theo năm ban hành."),
        ("Đã số hóa", f"số hồ sơ đã lưu vào Kho đến hết ngày {report.end:%d/%m/%Y}; Số trang: số "
                      "trang của các hồ sơ đó."),
        ("Tỷ lệ", "Đã số hóa / Đã kiểm đếm."),
        ("Chỉ tiêu năm", f"tỷ lệ lũy kế phải đạt đến 31/12/{report.end.year} theo cấp của cơ quan."),
        ("Mức cần đạt", "phần chỉ tiêu năm phải đạt đến hết quý: tăng đều qua bốn quý từ chỉ tiêu "
                        "năm trước (từ 0 trong năm giai đoạn bắt đầu); giai đoạn chưa bắt đầu "
                        "không có chỉ tiêu."),
        ("Đạt/Chưa đạt", "Tỷ lệ so với Mức cần đạt; Cơ quan đạt: số cơ quan đạt / số cơ quan có "
                         "chỉ tiêu."),
        ("Cần xử lý", "hồ sơ đang bị giữ lại (cách ly) vào cuối quý; Lý do chính: các lý do nhiều "
                      "nhất."),
        ("Hồ sơ/ngày, Trang/ngày", f"hồ sơ, trang số hóa trong quý chia cho {report.working_days} "
                                   f"ngày làm việc của quý ({days})."),
        ("Dự kiến hoàn thành", "ngày làm việc số hóa xong phần Còn lại nếu giữ nhịp độ của quý; "
                               "Kịp hạn: không muộn hơn hạn của giai đoạn (tất cả giai đoạn: hạn "
                               f"cuối {report.final_deadline:%d/%m/%Y})."),
        ("Dữ liệu cá nhân", "báo cáo không chứa tên, số định danh của chủ hồ sơ."),
    ]


def _subtitle(report: QuarterReport) -> str:
    return f"{report.province + ' — ' if report.province else ''}{report.quarter_label} ({report.as_of})"


def _filter_text(report: QuarterReport) -> str:
    parts = []
    if "level" in report.filters:
        parts.append(f"cấp {level_name(report.filters['level'])}")
    if "agency" in report.filters:
        names = {a.code: a.name for a in report.choices.agencies}
        parts.append(f"cơ quan {report.filters['agency']} {names.get(report.filters['agency'], '')}".strip())
    if "phase" in report.filters:
        parts.append(report.phase_name(report.filters["phase"]))
    return ("Lọc theo: " + ", ".join(parts)) if parts else ""


def _plan_rows(report: QuarterReport) -> list[list[str]]:
    rows = []
    for p in sorted([*report.pilot_phases, *report.phases], key=lambda p: p.work_start):
        issued = (f"{p.issued_start:%d/%m/%Y} – {p.issued_end:%d/%m/%Y}" if p.issued_start and p.issued_end
                  else "thí điểm (tính vào giai đoạn theo năm ban hành)")
        rows.append([p.name, p.description, f"{p.work_start:%d/%m/%Y} – {p.work_end:%d/%m/%Y}",
                     issued, f"{p.work_end:%d/%m/%Y}"])
    return rows


PLAN_HEADERS = ["Giai đoạn", "Nội dung", "Thời gian thực hiện", "Kết quả ban hành", "Hạn"]


# --- CSV and JSON ---------------------------------------------------------------------------------
def _csv_value(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return f"{value:%d/%m/%Y}"
    if isinstance(value, float):
        return repr(value)  # shortest exact form: 45.5, 0.49, 70.0
    if isinstance(value, str):
        return csv_text(value)
    return str(value)


def render_csv(report: QuarterReport) -> bytes:
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\r\n")
    columns = [COLUMN_SET[k] for k in CSV_COLUMNS]
    out.writerow(["Quý", *(c.header for c in columns)])
    for row in [*report.rows, *report.agency_totals, *report.summary, *report.totals]:
        out.writerow([report.quarter, *(_csv_value(c.value(report, row), c.kind) for c in columns)])
    return buffer.getvalue().encode("utf-8-sig")  # the BOM makes Excel read UTF-8


def render_json(report: QuarterReport) -> bytes:
    return (json.dumps(report.model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n").encode()


# --- XLSX -----------------------------------------------------------------------------------------
def _sheet_title(text: str, taken: set[str]) -> str:
    clean = "".join(" " if c in "[]:*?/\\" else c for c in text)[:31].strip()
    title, n = clean, 2
    while title.lower() in taken:
        title = f"{clean[:28]} {n}"
        n += 1
    taken.add(title.lower())
    return title


def _deterministic_zip(data: bytes, when: dt.datetime) -> bytes:
    """The same zip with every entry dated ``when``: zipfile stamps entries with the clock."""
    out = io.BytesIO()
    stamp = (when.year, when.month, when.day, when.hour, when.minute, when.second)
    with zipfile.ZipFile(io.BytesIO(data)) as src, \
            zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=stamp)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o600 << 16
            dst.writestr(entry, src.read(info.filename))
    return out.getvalue()


def render_xlsx(report: QuarterReport) -> bytes:
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, Reference
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter
    from openpyxl.writer.excel import ExcelWriter

    bold = Font(bold=True)
    header_fill = PatternFill("solid", fgColor="DDE6F0")
    total_fill = PatternFill("solid", fgColor="F2F2F2")
    thin = Side(style="thin", color="A0A0A0")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    wrap = Alignment(wrap_text=True, vertical="top")
    formats = {"int": "#,##0", "pct": '0.0"%"', "float": "0.00", "date": "DD/MM/YYYY"}

    def heading(ws: Any, row: int, text: str, size: int = 12) -> int:
        ws.cell(row=row, column=1, value=text).font = Font(bold=True, size=size)
        return row + 1

    def header_block(ws: Any, subtitle: bool = True) -> int:
        r = heading(ws, 1, TITLE, 14)
        if subtitle:
            ws.cell(row=r, column=1, value=_subtitle(report))
            r += 1
        if report.filters:
            ws.cell(row=r, column=1, value=_filter_text(report))
            r += 1
        return r + 1

    def table(ws: Any, top: int, keys: Sequence[str], rows: Sequence[ProgressRow],
              totals: Sequence[ProgressRow] = ()) -> tuple[int, int]:
        """Header at ``top``, one line per row; returns (first data row, last data row)."""
        columns = [COLUMN_SET[k] for k in keys]
        for c, column in enumerate(columns, start=1):
            cell = ws.cell(row=top, column=c, value=column.header)
            cell.font, cell.fill, cell.border, cell.alignment = bold, header_fill, border, wrap
            width = ws.column_dimensions[get_column_letter(c)].width or 0
            ws.column_dimensions[get_column_letter(c)].width = max(width, column.width)
        r = top
        for is_total, row in [*((False, x) for x in rows), *((True, x) for x in totals)]:
            r += 1
            for c, column in enumerate(columns, start=1):
                value = column.value(report, row)
                cell = ws.cell(row=r, column=c, value=value)
                xlsx_text(cell)
                cell.border = border
                if column.kind in formats and not isinstance(value, str):
                    cell.number_format = formats[column.kind]
                if is_total or not row.kind.startswith("agency"):
                    cell.fill = total_fill
                if is_total:
                    cell.font = bold
        return top + 1, r

    def chart(ws: Any, title: str, label_col: int, pct_col: int, expected_col: int,
              first: int, last: int, anchor: str) -> None:
        if last < first:
            return
        bars = BarChart()
        bars.type = "bar"  # horizontal: agency names stay readable
        bars.style = 10
        bars.title = title
        bars.y_axis.title = "%"
        bars.y_axis.scaling.min = 0
        bars.y_axis.scaling.max = 100
        bars.x_axis.scaling.orientation = "maxMin"  # first agency on top, as in the table
        # openpyxl 3.1 leaves <c:delete> unset, which recent Excel reads as "hide the axis"
        bars.x_axis.delete = bars.y_axis.delete = False
        for col in (pct_col, expected_col):
            bars.add_data(Reference(ws, min_col=col, min_row=first - 1, max_row=last), titles_from_data=True)
        bars.set_categories(Reference(ws, min_col=label_col, min_row=first, max_row=last))
        bars.height = max(7.5, 0.55 * (last - first + 1) + 3)
        bars.width = 18
        ws.add_chart(bars, anchor)

    book = Workbook()
    when = dt.datetime.combine(report.end, dt.time(0))
    book.properties.creator = "digitize"
    book.properties.title = f"{TITLE} — {report.quarter_label}"
    book.properties.created = book.properties.modified = when  # not the clock: reruns are identical
    taken: set[str] = set()

    # Tổng hợp
    ws = book.active
    ws.title = _sheet_title("Tổng hợp", taken)
    r = header_block(ws)
    r = heading(ws, r, "Kế hoạch")
    for c, text in enumerate(PLAN_HEADERS, start=1):
        cell = ws.cell(row=r, column=c, value=text)
        cell.font, cell.fill, cell.border = bold, header_fill, border
    for values in _plan_rows(report):
        r += 1
        for c, value in enumerate(values, start=1):
            cell = ws.cell(row=r, column=c, value=value)
            cell.border, cell.alignment = border, wrap
    r = heading(ws, r + 2, "Theo cấp và giai đoạn; toàn tỉnh")
    first, last = table(ws, r, GROUP_COLUMNS, report.summary, report.totals)
    r = heading(ws, last + 2, "Lý do cần xử lý chính (toàn tỉnh)")
    for c, text in enumerate(("Lý do", "Mã lý do", "Số hồ sơ"), start=1):
        cell = ws.cell(row=r, column=c, value=text)
        cell.font, cell.fill, cell.border = bold, header_fill, border
    for reason in report.top_reasons:
        r += 1
        for c, value in enumerate((reason.label, reason.reason, reason.count), start=1):
            ws.cell(row=r, column=c, value=value).border = border
    # chart data: one label per level and phase (a chart needs its categories in one column)
    r = heading(ws, r + 2, "Số liệu biểu đồ")
    for c, text in enumerate(("Cấp – giai đoạn", "Tỷ lệ (%)", "Mức cần đạt (%)"), start=1):
        cell = ws.cell(row=r, column=c, value=text)
        cell.font, cell.fill, cell.border = bold, header_fill, border
    chart_first = r + 1
    for row in report.summary:
        r += 1
        ws.cell(row=r, column=1, value=f"{level_name(row.level)} – {report.phase_name(row.phase)}")
        for c, value in ((2, row.percent), (3, row.expected)):
            ws.cell(row=r, column=c, value=value).number_format = formats["pct"]
    chart(ws, "Tỷ lệ số hóa so với mức cần đạt, theo cấp", 1, 2, 3, chart_first, r,
          f"{get_column_letter(len(GROUP_COLUMNS) + 2)}{first}")
    r = heading(ws, r + 2, "Giải thích")
    for term, text in definitions(report):
        ws.cell(row=r, column=1, value=term).font = bold
        ws.cell(row=r, column=2, value=text)
        r += 1
    ws.freeze_panes = None

    # one sheet per phase, then all phases
    agency_label = AGENCY_COLUMNS.index("agency_name") + 1
    pct, expected = AGENCY_COLUMNS.index("percent") + 1, AGENCY_COLUMNS.index("expected") + 1
    for phase in report.phases:
        ws = book.create_sheet(_sheet_title(f"{phase.id} {phase.name}", taken))
        r = header_block(ws)
        ws.cell(row=r - 1, column=1, value=(
            f"{phase.description}. Thực hiện {phase.work_start:%d/%m/%Y} – {phase.work_end:%d/%m/%Y}"
            + ("" if phase.started else " (chưa bắt đầu)")))
        rows = [x for x in report.rows if x.phase == phase.id]
        totals = [x for x in report.totals if x.phase == phase.id]
        first, last = table(ws, r + 1, AGENCY_COLUMNS, rows, totals)
        ws.freeze_panes = ws.cell(row=first, column=3)
        ws.auto_filter.ref = f"A{first - 1}:{get_column_letter(len(AGENCY_COLUMNS))}{last}"
        chart(ws, f"{phase.name}: tỷ lệ số hóa so với mức cần đạt", agency_label, pct, expected,
              first, first + len(rows) - 1, f"{get_column_letter(len(AGENCY_COLUMNS) + 2)}{first}")
    if report.agency_totals:
        ws = book.create_sheet(_sheet_title(ALL_PHASES, taken))
        r = header_block(ws)
        totals = [x for x in report.totals if x.phase is None]
        first, last = table(ws, r, AGENCY_COLUMNS, report.agency_totals, totals)
        ws.freeze_panes = ws.cell(row=first, column=3)
        ws.auto_filter.ref = f"A{first - 1}:{get_column_letter(len(AGENCY_COLUMNS))}{last}"
        chart(ws, "Tất cả giai đoạn: tỷ lệ số hóa so với mức cần đạt", agency_label, pct, expected,
              first, first + len(report.agency_totals) - 1,
              f"{get_column_letter(len(AGENCY_COLUMNS) + 2)}{first}")

    # ExcelWriter rather than Workbook.save, which stamps the document with the clock
    buffer = io.BytesIO()
    ExcelWriter(book, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED)).save()
    return _deterministic_zip(buffer.getvalue(), when)


# --- HTML -----------------------------------------------------------------------------------------
def _vi_number(value: float | int, decimals: int = 0) -> str:
    """1.234.567 and 45,5: Vietnamese separators."""
    text = f"{value:,.{decimals}f}"
    return text.replace(",", " ").replace(".", ",").replace(" ", ".")


def _html_value(value: Any, kind: str) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, dt.date):
        return f"{value:%d/%m/%Y}"
    if kind == "int" and isinstance(value, int):
        return _vi_number(value)
    if kind == "pct" and isinstance(value, int | float):
        return _vi_number(value, 1)
    if kind == "float" and isinstance(value, int | float):
        return _vi_number(value, 2)
    return str(value)


# Literal colours in the SVG: presentation attributes do not take CSS variables everywhere.
OK, LATE, NO_TARGET = "#2e7d32", "#c62828", "#78909c"
CSS = """
:root { --ok: #2e7d32; --late: #c62828; --line: #b0bec5; }
* { box-sizing: border-box; }
body { font-family: "Noto Sans", "DejaVu Sans", Arial, sans-serif; font-size: 13px; color: #1a1a1a;
       margin: 16px 24px; line-height: 1.35; }
h1 { font-size: 18px; margin: 0 0 4px; }
h2 { font-size: 15px; margin: 22px 0 6px; border-bottom: 2px solid #37474f; padding-bottom: 2px; }
p.meta { margin: 0 0 8px; color: #37474f; }
table { border-collapse: collapse; margin: 6px 0 10px; }
th, td { border: 1px solid var(--line); padding: 3px 5px; vertical-align: top; }
th { background: #dde6f0; font-weight: 600; text-align: center; }
td.n { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
tr.total td { background: #f2f2f2; font-weight: 600; }
tr.group td { background: #f7f9fb; }
td.ok { color: var(--ok); font-weight: 600; } td.late { color: var(--late); font-weight: 600; }
.scroll { overflow-x: auto; }
form.filters, nav.downloads { margin: 8px 0; padding: 8px; background: #f5f7f9;
                              border: 1px solid var(--line); }
form.filters label { margin-right: 10px; }
nav.downloads a { margin-right: 12px; }
svg { display: block; margin: 6px 0 12px; max-width: 100%; height: auto; }
svg text { font-family: inherit; font-size: 11px; }
dl.defs dt { font-weight: 600; margin-top: 4px; } dl.defs dd { margin: 0 0 0 16px; }
@page { size: A4 landscape; margin: 10mm; }
@media print {
  body { margin: 0; font-size: 9pt; }
  form.filters, nav.downloads { display: none; }
  section.phase, section.all-phases { break-before: page; }
  .scroll { overflow: visible; }
  thead { display: table-header-group; }
  tr, svg { break-inside: avoid; }
  th { background: #dde6f0 !important; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def _bar_chart(title: str, items: Sequence[tuple[str, float | None, float | None, bool | None]]) -> str:
    """Horizontal bars: percentage per item, a tick at the level due; inline SVG, no script."""
    label_w, bar_w, row_h, top = 270, 430, 18, 40
    width, height = label_w + bar_w + 70, top + row_h * max(len(items), 1) + 26
    esc = html.escape
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" aria-label="{esc(title)}">', f"<title>{esc(title)}</title>"]
    legend = [(OK, "Đạt"), (LATE, "Chưa đạt"), (NO_TARGET, "Không có chỉ tiêu")]
    x = label_w
    for colour, text in legend:
        out.append(f'<rect x="{x}" y="6" width="12" height="12" fill="{colour}"/>'
                   f'<text x="{x + 16}" y="16">{esc(text)}</text>')
        x += 26 + 7 * len(text)
    out.append(f'<line x1="{x}" y1="5" x2="{x}" y2="19" stroke="#111" stroke-width="2"/>'
               f'<text x="{x + 6}" y="16">Mức cần đạt</text>')
    bottom = top + row_h * len(items)
    for tick in range(0, 101, 25):
        tx = label_w + bar_w * tick / 100
        out.append(f'<line x1="{tx:.1f}" y1="{top - 4}" x2="{tx:.1f}" y2="{bottom}" stroke="#cfd8dc"/>'
                   f'<text x="{tx:.1f}" y="{bottom + 14}" text-anchor="middle">{tick}%</text>')
    for i, (label, percent, expected, on_track) in enumerate(items):
        y = top + i * row_h
        colour = NO_TARGET if on_track is None else OK if on_track else LATE
        shown = label if len(label) <= 42 else label[:41] + "…"
        value = "—" if percent is None else f"{_vi_number(percent, 1)}%"
        tip = f"{label}: {value}" + ("" if expected is None else f", cần đạt {_vi_number(expected, 1)}%")
        out.append(f"<g><title>{esc(tip)}</title>"
                   f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{esc(shown)}</text>')
        length = bar_w * min(percent or 0.0, 100.0) / 100
        out.append(f'<rect x="{label_w}" y="{y + 3}" width="{length:.1f}" height="{row_h - 6}" '
                   f'fill="{colour}"/>')
        out.append(f'<text x="{label_w + length + 4:.1f}" y="{y + 13}">{esc(value)}</text>')
        if expected is not None:
            ex = label_w + bar_w * min(expected, 100.0) / 100
            out.append(f'<line x1="{ex:.1f}" y1="{y + 1}" x2="{ex:.1f}" y2="{y + row_h - 1}" '
                       'stroke="#111" stroke-width="2"/>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def _html_table(report: QuarterReport, keys: Sequence[str], rows: Sequence[ProgressRow],
                totals: Sequence[ProgressRow] = (), caption: str = "") -> str:
    columns = [COLUMN_SET[k] for k in keys]
    out = ['<div class="scroll"><table>']
    if caption:
        out.append(f"<caption>{html.escape(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f'<th scope="col">{html.escape(c.header)}</th>' for c in columns)
               + "</tr></thead><tbody>")
    for is_total, row in [*((False, x) for x in rows), *((True, x) for x in totals)]:
        css = "total" if is_total else "" if row.kind.startswith("agency") else "group"
        cells = []
        for c in columns:
            value = c.value(report, row)
            klass = "n" if c.kind in ("int", "pct", "float") else ""
            if c.header == "Đạt/Chưa đạt" and value:
                klass = "ok" if row.on_track else "late"
            if c.header == "Kịp hạn" and value:
                klass = "ok" if row.meets_deadline else "late"
            attr = f' class="{klass}"' if klass else ""
            cells.append(f"<td{attr}>{html.escape(_html_value(value, c.kind))}</td>")
        out.append((f'<tr class="{css}">' if css else "<tr>") + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _select(name: str, label: str, options: Sequence[tuple[str, str]], chosen: str) -> str:
    opts = ['<option value="">(tất cả)</option>'] + [
        f'<option value="{html.escape(v)}"{" selected" if v == chosen else ""}>{html.escape(t)}</option>'
        for v, t in options]
    return f'<label>{html.escape(label)} <select name="{name}">{"".join(opts)}</select></label>'


def _form(report: QuarterReport, action: str) -> str:
    c, f = report.choices, report.filters
    names = {p.id: p.name for p in report.phases}
    return "\n".join([
        f'<form class="filters" method="get" action="{html.escape(action)}">',
        f'<label>Quý <input name="quarter" value="{html.escape(report.quarter)}" size="7" '
        'pattern="[0-9]{4}Q[1-4]" title="dạng 2023Q2"></label>',
        _select("level", "Cấp", [(lv, level_name(lv)) for lv in c.levels], f.get("level", "")),
        _select("agency", "Cơ quan", [(a.code, f"{a.code} {a.name}") for a in c.agencies],
                f.get("agency", "")),
        _select("phase", "Giai đoạn", [(p, names.get(p, p)) for p in c.phases], f.get("phase", "")),
        '<button type="submit">Xem</button>', "</form>"])


def render_html(report: QuarterReport, *, form_action: str | None = None,
                download_links: dict[str, str] | None = None) -> str:
    """The report as one HTML page (same tables and charts as the XLSX); see the module doc."""
    esc = html.escape
    title = f"Báo cáo tiến độ số hóa — {report.quarter_label}"
    out = ["<!DOCTYPE html>", '<html lang="vi">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{esc(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
           f"<header><h1>{esc(TITLE)}</h1><p class=\"meta\">{esc(_subtitle(report))}</p>"]
    if report.filters:
        out.append(f'<p class="meta">{esc(_filter_text(report))}</p>')
    out.append("</header>")
    if form_action is not None:
        out.append(_form(report, form_action))
    if download_links:
        links = " ".join(f'<a href="{esc(url)}" download>{esc(fmt.upper())}</a>'
                         for fmt, url in download_links.items())
        out.append(f'<nav class="downloads">Tải về: {links}</nav>')

    out.append('<section id="ke-hoach"><h2>Kế hoạch</h2><table><thead><tr>'
               + "".join(f"<th>{esc(h)}</th>" for h in PLAN_HEADERS) + "</tr></thead><tbody>")
    for values in _plan_rows(report):
        out.append("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in values) + "</tr>")
    out.append("</tbody></table></section>")

    out.append('<section id="tong-hop"><h2>Theo cấp và giai đoạn; toàn tỉnh</h2>')
    out.append(_bar_chart("Tỷ lệ số hóa so với mức cần đạt, theo cấp", [
        (f"{level_name(r.level)} – {report.phase_name(r.phase)}", r.percent, r.expected, r.on_track)
        for r in report.summary]))
    out.append(_html_table(report, GROUP_COLUMNS, report.summary, report.totals))
    out.append("<h2>Lý do cần xử lý chính (toàn tỉnh)</h2>")
    if report.top_reasons:
        out.append("<table><thead><tr><th>Lý do</th><th>Mã lý do</th><th>Số hồ sơ</th></tr></thead><tbody>"
                   + "".join(f'<tr><td>{esc(c.label)}</td><td>{esc(c.reason)}</td>'
                             f'<td class="n">{_vi_number(c.count)}</td></tr>' for c in report.top_reasons)
                   + "</tbody></table>")
    else:
        out.append("<p>Không có hồ sơ cần xử lý.</p>")
    out.append("</section>")

    for phase in report.phases:
        rows = [x for x in report.rows if x.phase == phase.id]
        totals = [x for x in report.totals if x.phase == phase.id]
        out.append(f'<section class="phase" id="{esc(phase.id)}"><h2>{esc(phase.name)}</h2>'
                   f'<p class="meta">{esc(phase.description)}. Thực hiện {phase.work_start:%d/%m/%Y} – '
                   f'{phase.work_end:%d/%m/%Y}{"" if phase.started else " (chưa bắt đầu)"}.</p>')
        out.append(_bar_chart(f"{phase.name}: tỷ lệ số hóa so với mức cần đạt", [
            (x.agency_name or x.agency_code or "", x.percent, x.expected, x.on_track) for x in rows]))
        out.append(_html_table(report, AGENCY_COLUMNS, rows, totals))
        out.append("</section>")
    if report.agency_totals:
        totals = [x for x in report.totals if x.phase is None]
        out.append(f'<section class="all-phases" id="tat-ca"><h2>{ALL_PHASES}</h2>')
        out.append(_bar_chart("Tất cả giai đoạn: tỷ lệ số hóa so với mức cần đạt", [
            (x.agency_name or x.agency_code or "", x.percent, x.expected, x.on_track)
            for x in report.agency_totals]))
        out.append(_html_table(report, AGENCY_COLUMNS, report.agency_totals, totals))
        out.append("</section>")

    out.append('<section id="giai-thich"><h2>Giải thích</h2><dl class="defs">')
    for term, text in definitions(report):
        out.append(f"<dt>{esc(term)}</dt><dd>{esc(text)}</dd>")
    out.append("</dl></section>", )
    out.append("</body>\n</html>\n")
    return "\n".join(out)


# --- one entry point ------------------------------------------------------------------------------
def render(report: QuarterReport, fmt: str) -> bytes:
    """The report as the bytes of one file: ``xlsx``, ``csv``, ``json`` or ``html``."""
    if fmt == "xlsx":
        return render_xlsx(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "json":
        return render_json(report)
    if fmt == "html":
        return render_html(report).encode("utf-8")
    raise ValueError(f"unknown report format {fmt!r}; one of {', '.join(FORMATS)}")


def report_path(folder: Path, quarter: str, fmt: str) -> Path:
    return folder / f"{FILE_STEM}-{quarter}.{fmt}"


def write_quarter_report(settings: Settings, quarter: str, formats: Sequence[str] = FORMATS,
                         folder: Path | None = None) -> dict[str, str]:
    """The quarter's report in every format under ``folder`` (default ``DATA/reports``), each
    written atomically; returns the paths by format. What the ``digitize_report`` DAG runs."""
    from pipeline.reporting.progress import parse_quarter
    from pipeline.store import warehouse

    label = parse_quarter(quarter).label
    warehouse.migrate(settings.warehouse_url)  # the views of migration 0005
    report = quarter_report(settings.warehouse_url, label, settings.plan)
    folder = folder or settings.dir("reports")
    paths = {}
    for fmt in formats:
        path = report_path(folder, label, fmt)
        atomic_write_bytes(path, render(report, fmt))
        paths[fmt] = str(path)
    return paths
