"""The quarterly progress report for Sở TT&TT: XLSX, CSV, JSON and HTML from a QuarterReport.

API (the figures themselves are :mod:`pipeline.reporting.progress`)::

    render(report, fmt) -> bytes                   # fmt: "xlsx" | "csv" | "json" | "html"
    render_html(report, *, form_action=None, download_links=None) -> str
    page_context(report, *, form_action=None, download_links=None) -> dict  # report.html.j2's data
    write_quarter_report(settings, quarter, formats=FORMATS, folder=None) -> dict[str, str]

``render_html`` is what the Airflow UI plugin's page shows (its template extends
``report.html.j2`` with ``page_context``): with ``form_action`` the page starts with a
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
  ``lang="vi"``, printable (A4 landscape, one phase per page), from the Jinja2 templates of
  ``templates/`` (``report.html.j2``; :data:`TEMPLATES`, autoescaped: names from the warehouse stay text).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from pipeline.config import Settings
from pipeline.reporting.cells import csv_text, xlsx_text
from pipeline.reporting.progress import (
    PhaseInfo,
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
    "signed": Column("Đã ký số", lambda r, x: x.signed, "int"),
    "signed_percent": Column("Tỷ lệ đã ký số (%)", lambda r, x: x.signed_percent, "pct"),
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
            "pages", "signed", "signed_percent", "quarantined", "reasons", "digitized_in_quarter",
            "pages_in_quarter", "records_per_day", "pages_per_day", "forecast", "deadline",
            "meets_deadline"]
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
        ("Đã ký số", f"số hồ sơ trong Đã số hóa đã được cơ quan ký số đến hết ngày "
                     f"{report.end:%d/%m/%Y}; cơ quan chưa có khóa ký số ghi 0. Hồ sơ lưu trữ trong "
                     "một quý, ký số ở quý sau chỉ được tính là đã ký số từ quý được ký. Tỷ lệ đã "
                     "ký số: Đã ký số / Đã số hóa."),
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


def _vi_date(day: dt.date) -> str:
    return f"{day:%d/%m/%Y}"


# The reporting stage's one template environment (this page and the dashboard's). Autoescaped:
# agency names, codes and URLs come from outside and must stay text. StrictUndefined: a name a
# template expects and the data lacks is an error, not a silently blank cell.
TEMPLATES = Environment(loader=PackageLoader("pipeline.reporting"),
                        autoescape=select_autoescape(["html.j2"]), undefined=StrictUndefined,
                        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
TEMPLATES.filters.update(vi_number=_vi_number, vi_date=_vi_date)


def _html_value(value: Any, kind: str) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, dt.date):
        return _vi_date(value)
    if kind == "int" and isinstance(value, int):
        return _vi_number(value)
    if kind == "pct" and isinstance(value, int | float):
        return _vi_number(value, 1)
    if kind == "float" and isinstance(value, int | float):
        return _vi_number(value, 2)
    return str(value)


class Cell(NamedTuple):
    text: str
    css: str  # "n": a number (right-aligned); "ok" / "late": a judgement; "": text


class TableRow(NamedTuple):
    css: str  # "total", "group" (a level's row) or "" (an agency's row)
    cells: list[Cell]


class FigureTable(NamedTuple):
    headers: list[str]
    rows: list[TableRow]


def _figure_table(report: QuarterReport, keys: Sequence[str], rows: Sequence[ProgressRow],
                  totals: Sequence[ProgressRow] = ()) -> FigureTable:
    columns = [COLUMN_SET[k] for k in keys]
    lines = []
    for is_total, row in [*((False, x) for x in rows), *((True, x) for x in totals)]:
        cells = []
        for c in columns:
            value = c.value(report, row)
            css = "n" if c.kind in ("int", "pct", "float") else ""
            if c.header == "Đạt/Chưa đạt" and value:
                css = "ok" if row.on_track else "late"
            if c.header == "Kịp hạn" and value:
                css = "ok" if row.meets_deadline else "late"
            cells.append(Cell(_html_value(value, c.kind), css))
        css = "total" if is_total else "" if row.kind.startswith("agency") else "group"
        lines.append(TableRow(css, cells))
    return FigureTable([c.header for c in columns], lines)


# Literal colours in the SVG: presentation attributes do not take CSS variables everywhere.
OK, LATE, NO_TARGET = "#2e7d32", "#c62828", "#78909c"
# The charts' layout, in SVG units: labels, then bars up to 100 %, one row per item under the legend.
_LABEL_W, _BAR_W, _ROW_H, _TOP = 270, 430, 18, 40


class LegendKey(NamedTuple):
    x: int
    colour: str
    text: str


class Tick(NamedTuple):
    x: float
    percent: int


class Bar(NamedTuple):
    y: int
    colour: str
    label: str  # cut to fit; the tip has it whole
    value: str
    tip: str
    length: float
    due_x: float | None  # where the level due is marked


class SvgChart(NamedTuple):
    title: str
    width: int
    height: int
    top: int
    bottom: int
    bar_x: int
    row_height: int
    legend: list[LegendKey]
    due_key_x: int
    ticks: list[Tick]
    bars: list[Bar]


def _bar_chart(title: str, items: Sequence[tuple[str, float | None, float | None, bool | None]]) -> SvgChart:
    """Horizontal bars: percentage per item (label, percent, expected, on track), a tick at the
    level due; drawn by the ``bar_chart`` macro of macros.html.j2."""
    legend, x = [], _LABEL_W
    for colour, text in ((OK, "Đạt"), (LATE, "Chưa đạt"), (NO_TARGET, "Không có chỉ tiêu")):
        legend.append(LegendKey(x, colour, text))
        x += 26 + 7 * len(text)
    bars = []
    for i, (label, percent, expected, on_track) in enumerate(items):
        value = "—" if percent is None else f"{_vi_number(percent, 1)}%"
        bars.append(Bar(
            y=_TOP + i * _ROW_H, colour=NO_TARGET if on_track is None else OK if on_track else LATE,
            label=label if len(label) <= 42 else label[:41] + "…", value=value,
            tip=f"{label}: {value}" + ("" if expected is None else f", cần đạt {_vi_number(expected, 1)}%"),
            length=_BAR_W * min(percent or 0.0, 100.0) / 100,
            due_x=None if expected is None else _LABEL_W + _BAR_W * min(expected, 100.0) / 100))
    return SvgChart(title=title, width=_LABEL_W + _BAR_W + 70, height=_TOP + _ROW_H * max(len(items), 1) + 26,
                    top=_TOP, bottom=_TOP + _ROW_H * len(items), bar_x=_LABEL_W, row_height=_ROW_H,
                    legend=legend, due_key_x=x, ticks=[Tick(_LABEL_W + _BAR_W * t / 100, t)
                                                       for t in range(0, 101, 25)], bars=bars)


class Section(NamedTuple):
    """A part of the page with one row per agency: a phase's, or all phases'."""

    css: str
    id: str
    title: str
    phase: PhaseInfo | None
    chart: SvgChart
    table: FigureTable


def _form(report: QuarterReport, action: str) -> dict[str, Any]:
    c = report.choices
    names = {p.id: p.name for p in report.phases}
    return {"action": action, "quarter": report.quarter, "chosen": report.filters,
            "levels": [(lv, level_name(lv)) for lv in c.levels],
            "agencies": [(a.code, f"{a.code} {a.name}") for a in c.agencies],
            "phases": [(p, names.get(p, p)) for p in c.phases]}


def page_context(report: QuarterReport, *, form_action: str | None = None,
                 download_links: dict[str, str] | None = None) -> dict[str, Any]:
    """The data of report.html.j2 (see :func:`render_html`); the dashboard's page extends that
    template and adds its own."""

    def agencies(css: str, id_: str, title: str, phase: PhaseInfo | None, rows: Sequence[ProgressRow],
                 totals: Sequence[ProgressRow]) -> Section:
        chart = _bar_chart(f"{title}: tỷ lệ số hóa so với mức cần đạt", [
            (x.agency_name or x.agency_code or "", x.percent, x.expected, x.on_track) for x in rows])
        return Section(css, id_, title, phase, chart, _figure_table(report, AGENCY_COLUMNS, rows, totals))

    sections = [agencies("phase", p.id, p.name, p, [x for x in report.rows if x.phase == p.id],
                         [x for x in report.totals if x.phase == p.id]) for p in report.phases]
    if report.agency_totals:
        sections.append(agencies("all-phases", "tat-ca", ALL_PHASES, None, report.agency_totals,
                                 [x for x in report.totals if x.phase is None]))
    return {
        "title": f"Báo cáo tiến độ số hóa — {report.quarter_label}", "heading": TITLE,
        "subtitle": _subtitle(report), "filter_text": _filter_text(report),
        "form": None if form_action is None else _form(report, form_action),
        "download_links": download_links or {},
        "plan_headers": PLAN_HEADERS, "plan_rows": _plan_rows(report),
        "summary_chart": _bar_chart("Tỷ lệ số hóa so với mức cần đạt, theo cấp", [
            (f"{level_name(r.level)} – {report.phase_name(r.phase)}", r.percent, r.expected, r.on_track)
            for r in report.summary]),
        "summary_table": _figure_table(report, GROUP_COLUMNS, report.summary, report.totals),
        "top_reasons": report.top_reasons, "sections": sections, "definitions": definitions(report),
    }


def render_html(report: QuarterReport, *, form_action: str | None = None,
                download_links: dict[str, str] | None = None) -> str:
    """The report as one HTML page (same tables and charts as the XLSX; templates/report.html.j2);
    see the module doc."""
    return TEMPLATES.get_template("report.html.j2").render(
        page_context(report, form_action=form_action, download_links=download_links))


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
