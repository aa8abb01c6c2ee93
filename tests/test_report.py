"""The quarterly report files: XLSX, CSV, JSON and HTML hold the same figures as worked out by hand,
never personal data, and are the same bytes whenever the quarter is rendered again."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import time
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from progress_fixtures import (
    EXPECTED_2023Q2,
    HOLDER_ID,
    HOLDER_NAME,
    H,
    T,
    X,
    add_after_quarter,
    fill,
    write_plan,
)

from pipeline.reporting import progress, report
from pipeline.reporting.plan import PhasePlan

PHASES = {"GD2": "Giai đoạn 2", "GD3": "Giai đoạn 3", None: "Tất cả giai đoạn"}
LEVELS = {"tinh": "Tỉnh", "huyen": "Huyện", "xa": "Xã"}
KINDS = {"agency_phase": "Cơ quan – giai đoạn", "agency": "Cơ quan – tất cả giai đoạn",
         "level_phase": "Cấp – giai đoạn", "level": "Cấp – tất cả giai đoạn",
         "province_phase": "Toàn tỉnh – giai đoạn", "province": "Toàn tỉnh – tất cả giai đoạn"}
FORECASTS = {"no_pace": "Chưa có tiến độ trong quý", "not_started": "Chưa bắt đầu",
             "no_inventory": "Chưa có số kiểm đếm", "done": "Đã hoàn thành"}
ALL_EXPECTED = [*EXPECTED_2023Q2["rows"], *EXPECTED_2023Q2["agency_totals"], *EXPECTED_2023Q2["summary"],
                *EXPECTED_2023Q2["totals"]]




@pytest.fixture
def quarter(warehouse_url: str, plan: PhasePlan) -> progress.QuarterReport:
    fill(warehouse_url)
    return progress.quarter_report(warehouse_url, "2023Q2", plan)


def expected_cells(e: dict[str, Any]) -> dict[str, Any]:
    """Header -> the value a spreadsheet cell holds, from a row worked out by hand."""
    province = e["kind"].startswith("province")
    agency = e["kind"].startswith("agency")
    return {
        "Loại dòng": KINDS[e["kind"]],
        "Mã cơ quan": e["agency_code"] or "",
        "Cơ quan": e["agency_name"] or "",
        "Cấp": "Toàn tỉnh" if province else LEVELS[e["level"]],
        "Thí điểm": "x" if e["pilot"] else "",
        "Giai đoạn": PHASES[e["phase"]],
        "Số cơ quan": e["agencies"],
        "Đã kiểm đếm": e["inventoried"],
        "Đã số hóa": e["digitized"],
        "Tỷ lệ (%)": e["percent"],
        "Chỉ tiêu năm (%)": e["target"],
        "Mức cần đạt (%)": e["expected"],
        "Đạt/Chưa đạt": {True: "Đạt", False: "Chưa đạt", None: ""}[e["on_track"]],
        "Cơ quan đạt": "" if agency or not e["agencies_judged"]
        else f"{e['agencies_on_track']}/{e['agencies_judged']}",
        "Còn lại": e["remaining"],
        "Số trang": e["pages"],
        "Đã ký số": e["signed"],
        "Tỷ lệ đã ký số (%)": e["signed_percent"],
        "Cần xử lý": e["quarantined"],
        "Lý do chính": "; ".join(f"{r['label']} ({r['count']})" for r in e["reasons"][:3]),
        "Số hóa trong quý": e["digitized_in_quarter"],
        "Trang trong quý": e["pages_in_quarter"],
        "Hồ sơ/ngày": e["records_per_day"],
        "Trang/ngày": e["pages_per_day"],
        "Dự kiến hoàn thành": e["forecast"] or FORECASTS[e["forecast_status"]],
        "Hạn": e["deadline"],
        "Kịp hạn": {True: "Kịp", False: "Không kịp", None: ""}[e["meets_deadline"]],
    }


def _xlsx_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.date()
    return "" if value is None else value


def _sheet_rows(ws: Any, first_header: str) -> list[dict[str, Any]]:
    """The table whose header row starts with ``first_header``, as dicts, up to the blank row."""
    rows = list(ws.iter_rows(values_only=True))
    top = next(i for i, r in enumerate(rows) if r[0] == first_header)
    headers = [h for h in rows[top] if h is not None]
    out = []
    for values in rows[top + 1:]:
        if all(v is None for v in values):
            break
        out.append({h: _xlsx_value(v) for h, v in zip(headers, values, strict=False)})
    return out


def test_xlsx_sheets_charts_and_every_cell(quarter: progress.QuarterReport, tmp_path: Path) -> None:
    path = tmp_path / "r.xlsx"
    path.write_bytes(report.render(quarter, "xlsx"))
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["Tổng hợp", "GD2 Giai đoạn 2", "GD3 Giai đoạn 3", "Tất cả giai đoạn"]
    for ws in book.worksheets:
        assert len(ws._charts) == 1, ws.title
    phase_chart = book["GD2 Giai đoạn 2"]._charts[0]
    assert phase_chart.type == "bar" and len(phase_chart.series) == 2  # percentage, level due

    summary = book["Tổng hợp"]
    assert summary["A1"].value.startswith("BÁO CÁO TIẾN ĐỘ SỐ HÓA")
    assert "số liệu đến hết ngày 30/06/2023" in summary["A2"].value
    groups = _sheet_rows(summary, "Cấp")
    expected = [*EXPECTED_2023Q2["summary"], *EXPECTED_2023Q2["totals"]]
    assert len(groups) == len(expected)
    for got, e in zip(groups, expected, strict=True):
        cells = expected_cells(e)
        assert got == {h: _xlsx_value(cells[h]) for h in got}, (e["kind"], e["level"], e["phase"])
    assert set(groups[0]) >= {"Cấp", "Giai đoạn", "Đã kiểm đếm", "Đã số hóa", "Tỷ lệ (%)",
                              "Chỉ tiêu năm (%)", "Đạt/Chưa đạt", "Số trang", "Cần xử lý", "Lý do chính",
                              "Hồ sơ/ngày", "Trang/ngày", "Dự kiến hoàn thành"}
    reasons = _sheet_rows(summary, "Lý do")
    assert [(r["Mã lý do"], r["Số hồ sơ"]) for r in reasons] == [
        ("catalogue_mismatch", 5), ("file_missing", 3), ("manifest_row_invalid", 2),
        ("ocr_low_confidence", 1)]

    for sheet, phase in (("GD2 Giai đoạn 2", "GD2"), ("GD3 Giai đoạn 3", "GD3"),
                         ("Tất cả giai đoạn", None)):
        rows = _sheet_rows(book[sheet], "Mã cơ quan")
        expected = [e for e in [*EXPECTED_2023Q2["rows"], *EXPECTED_2023Q2["agency_totals"]]
                    if e["phase"] == phase] + [e for e in EXPECTED_2023Q2["totals"] if e["phase"] == phase]
        assert [r["Mã cơ quan"] for r in rows] == [T, H, X, ""]
        for got, e in zip(rows, expected, strict=True):
            cells = expected_cells(e)
            assert len(got) == 24, sheet
            assert got == {h: _xlsx_value(cells[h]) for h in got}, (sheet, e["agency_code"])
    # numbers are numbers, dates are dates: Sở TT&TT sums and filters them in Excel
    gd2 = book["GD2 Giai đoạn 2"]
    header = next(r for r in gd2.iter_rows() if r[0].value == "Mã cơ quan")
    first = {c.value: gd2.cell(row=c.row + 1, column=c.column) for c in header}
    assert first["Tỷ lệ (%)"].number_format == '0.0"%"'
    assert first["Dự kiến hoàn thành"].is_date and first["Hạn"].is_date


def test_csv_holds_every_row_and_column(quarter: progress.QuarterReport) -> None:
    body = report.render(quarter, "csv")
    assert body.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads the Vietnamese right
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert len(rows) == len(ALL_EXPECTED)
    for got, e in zip(rows, ALL_EXPECTED, strict=True):
        cells = expected_cells(e)
        want = {"Quý": "2023Q2"} | {
            h: (f"{v:%d/%m/%Y}" if isinstance(v, dt.date) else "" if v is None else str(v))
            for h, v in cells.items()}
        assert got == want, (e["kind"], e["agency_code"] or e["level"], e["phase"])


def test_json_is_the_report_itself(quarter: progress.QuarterReport) -> None:
    body = report.render(quarter, "json")
    assert progress.QuarterReport.model_validate_json(body) == quarter
    data = json.loads(body)
    assert data["quarter"] == "2023Q2" and data["working_days"] == 63
    for part in ("rows", "agency_totals", "summary", "totals"):
        assert data[part] == [progress.ProgressRow.model_validate(e).model_dump(mode="json")
                              for e in EXPECTED_2023Q2[part]]


class _Tables(HTMLParser):
    """Every <table> of a page as rows of cell texts; and what the page loads or runs."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs += attrs
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def _vi(value: Any, header: str) -> str:
    """A figure as the HTML shows it: 1.234 and 45,5; dates dd/mm/yyyy; — for nothing."""
    if value is None or value == "":
        return "—"
    if isinstance(value, dt.date):
        return f"{value:%d/%m/%Y}"
    if isinstance(value, float):
        decimals = 2 if header in ("Hồ sơ/ngày", "Trang/ngày") else 1
        return f"{value:,.{decimals}f}".replace(",", " ").replace(".", ",").replace(" ", ".")
    if isinstance(value, int):
        return f"{value:,}".replace(",", ".")
    return str(value)


def test_html_same_tables_and_charts_printable_self_contained(quarter: progress.QuarterReport) -> None:
    page = report.render(quarter, "html").decode("utf-8")
    assert page.startswith("<!DOCTYPE html>") and '<html lang="vi">' in page
    assert "@media print" in page and "@page" in page
    assert "số liệu đến hết ngày 30/06/2023" in page
    parsed = _Tables()
    parsed.feed(page)
    # nothing to run, nothing fetched: no script, no external file, inline SVG charts only
    assert not parsed.tags & {"script", "link", "img", "iframe", "object"}
    assert not [v for k, v in parsed.attrs if k in ("src", "href") and v]
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert page.count("<svg") == 4  # levels and phases, GD2, GD3, all phases
    # the plan, levels and province, reasons, then one table per phase and all phases
    assert [t[0][0] for t in parsed.tables] == ["Giai đoạn", "Cấp", "Lý do", *["Mã cơ quan"] * 3]
    group = [t for t in parsed.tables if t[0][0] == "Cấp"][0]
    for got, e in zip(group[1:], [*EXPECTED_2023Q2["summary"], *EXPECTED_2023Q2["totals"]], strict=True):
        cells = expected_cells(e)
        assert got == [_vi(cells[h], h) for h in group[0]], (e["kind"], e["level"], e["phase"])
    agency_tables = [t for t in parsed.tables if t[0][0] == "Mã cơ quan"]
    assert len(agency_tables) == 3
    for table, phase in zip(agency_tables, ("GD2", "GD3", None), strict=True):
        expected = [e for e in [*EXPECTED_2023Q2["rows"], *EXPECTED_2023Q2["agency_totals"]]
                    if e["phase"] == phase] + [e for e in EXPECTED_2023Q2["totals"] if e["phase"] == phase]
        for got, e in zip(table[1:], expected, strict=True):
            cells = expected_cells(e)
            assert got == [_vi(cells[h], h) for h in table[0]], (phase, e["agency_code"])


def test_the_signed_column_in_every_format(quarter: progress.QuarterReport) -> None:
    """Đã ký số per agency: a record signed after the quarter's end or held in quarantine is not
    counted, and the xã without a key shows 0, never a blank cell (tests/progress_fixtures.py)."""
    data = json.loads(report.render(quarter, "json"))
    signed = {r["agency_code"]: (r["signed"], r["signed_percent"]) for r in data["agency_totals"]}
    assert signed == {T: (104, 77.0), H: (46, 30.5), X: (0, 0.0)}
    assert [(r["signed"], r["signed_percent"]) for r in data["totals"]] == [
        (145, 49.8), (5, 100.0), (150, 50.7)]

    rows = list(csv.DictReader(io.StringIO(report.render(quarter, "csv").decode("utf-8-sig"))))
    agencies = {(r["Mã cơ quan"], r["Giai đoạn"]): (r["Đã ký số"], r["Tỷ lệ đã ký số (%)"])
                for r in rows if r["Loại dòng"].startswith("Cơ quan")}
    assert agencies == {
        (T, "Giai đoạn 2"): ("99", "76.2"), (T, "Giai đoạn 3"): ("5", "100.0"),
        (T, "Tất cả giai đoạn"): ("104", "77.0"),
        (H, "Giai đoạn 2"): ("46", "30.5"), (H, "Giai đoạn 3"): ("0", ""),  # nothing digitized
        (H, "Tất cả giai đoạn"): ("46", "30.5"),
        (X, "Giai đoạn 2"): ("0", "0.0"), (X, "Giai đoạn 3"): ("0", ""),
        (X, "Tất cả giai đoạn"): ("0", "0.0")}

    parsed = _Tables()
    parsed.feed(report.render(quarter, "html").decode("utf-8"))
    figures = [t for t in parsed.tables if t[0][0] in ("Cấp", "Mã cơ quan")]
    assert len(figures) == 4
    for table in figures:
        header = table[0]
        assert header[header.index("Số trang") + 1:][:2] == ["Đã ký số", "Tỷ lệ đã ký số (%)"]
    column = figures[1][0].index("Đã ký số")  # GD2's agencies, then the province
    assert {row[0]: row[column] for row in figures[1][1:]} == {T: "99", H: "46", X: "0", "—": "145"}
    assert dict(report.definitions(quarter))["Đã ký số"].startswith(
        "số hồ sơ trong Đã số hóa đã được cơ quan ký số đến hết ngày 30/06/2023")


def test_html_for_the_plugin_has_a_filter_form_and_download_links(quarter: progress.QuarterReport) -> None:
    filtered = progress.filter_report(quarter, level="huyen")
    page = report.render_html(filtered, form_action="/digitize/progress",
                              download_links={"xlsx": "/digitize/progress.xlsx?quarter=2023Q2",
                                              "csv": "/digitize/progress.csv?quarter=2023Q2"})
    assert '<form class="filters" method="get" action="/digitize/progress">' in page
    assert '<option value="huyen" selected>Huyện</option>' in page
    assert f'<option value="{T}">{T} Sở Tư pháp</option>' in page  # every agency stays on offer
    assert '<option value="GD3">Giai đoạn 3</option>' in page
    assert 'name="quarter" value="2023Q2"' in page
    assert 'href="/digitize/progress.xlsx?quarter=2023Q2"' in page
    assert "Lọc theo: cấp Huyện" in page
    assert "Sở Tư pháp</td>" not in page  # the tables hold the filtered agencies only
    assert "<script" not in page


def _everything(body: bytes) -> str:
    """A file's text; an XLSX's text is inside its zip entries, as XML character references."""
    if body.startswith(b"PK"):
        with zipfile.ZipFile(io.BytesIO(body)) as z:
            return html.unescape("\n".join(z.read(n).decode("utf-8") for n in z.namelist()))
    return body.decode("utf-8-sig")


def test_no_personal_data_in_any_format(quarter: progress.QuarterReport) -> None:
    for fmt in report.FORMATS:
        content = _everything(report.render(quarter, fmt))
        assert "Sở Tư pháp" in content, fmt  # the check reads the text it should
        for secret in (HOLDER_NAME, HOLDER_ID, HOLDER_ID[-3:] + "<", "Bí Mật"):
            assert secret not in content, (fmt, secret)


def test_the_same_quarter_is_the_same_bytes(warehouse_url: str, plan: PhasePlan, tmp_path: Path) -> None:
    filler = fill(warehouse_url)
    first = {fmt: report.render(progress.quarter_report(warehouse_url, "2023Q2", plan), fmt)
             for fmt in report.FORMATS}
    time.sleep(2.1)  # zip entries keep the time to 2 s: a clock-stamped file would differ now
    again = {fmt: report.render(progress.quarter_report(warehouse_url, "2023Q2", plan), fmt)
             for fmt in report.FORMATS}
    assert again == first
    add_after_quarter(filler)
    later = progress.quarter_report(warehouse_url, "2023Q2", plan)
    assert {fmt: report.render(later, fmt) for fmt in report.FORMATS} == first
    # ... while the next quarter does see the new work
    q3 = progress.quarter_report(warehouse_url, "2023Q3", plan)
    assert "000.02.12.H12" in {a.code for a in q3.choices.agencies}
    assert q3.totals[-1].digitized > later.totals[-1].digitized


def test_write_quarter_report_writes_every_format_atomically(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.config import load_settings

    monkeypatch.setenv("DIGITIZE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("DIGITIZE_PHASE_PLAN", str(write_plan(tmp_path)))
    monkeypatch.delenv("DIGITIZE_DB_URL", raising=False)
    settings = load_settings()
    fill(settings.warehouse_url)
    paths = report.write_quarter_report(settings, "2023q2")
    folder = settings.dir("reports")
    assert paths == {fmt: str(folder / f"bao-cao-tien-do-2023Q2.{fmt}") for fmt in report.FORMATS}
    data = progress.quarter_report(settings.warehouse_url, "2023Q2", settings.plan)
    for fmt, path in paths.items():
        assert Path(path).read_bytes() == report.render(data, fmt)
    assert sorted(p.name for p in folder.iterdir()) == sorted(Path(p).name for p in paths.values())


def test_an_unknown_format_is_refused(quarter: progress.QuarterReport) -> None:
    with pytest.raises(ValueError, match="xlsx, csv, json, html"):
        report.render(quarter, "pdf")


def test_an_empty_warehouse_gives_an_empty_report(tmp_path: Path, plan: PhasePlan) -> None:
    from pipeline.store import warehouse
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    warehouse.migrate(url)
    empty = progress.quarter_report(url, "2023Q2", plan)
    assert empty.rows == empty.totals == empty.top_reasons == []
    for fmt in report.FORMATS:
        assert report.render(empty, fmt)
    book = openpyxl.load_workbook(io.BytesIO(report.render(empty, "xlsx")))
    assert book.sheetnames == ["Tổng hợp", "GD2 Giai đoạn 2", "GD3 Giai đoạn 3"]
    assert "Không có hồ sơ cần xử lý" in report.render_html(empty)


def test_formula_text_comes_out_inert(warehouse_url: str, plan: PhasePlan) -> None:
    """An agency name that reads as a formula stays text: quoted in CSV, a string cell in XLSX."""
    from sqlalchemy import update

    from pipeline.reporting.cells import csv_text
    from pipeline.store import warehouse

    formula = '=HYPERLINK("http://example.com/x","Bấm vào đây")'
    fill(warehouse_url)
    with warehouse.engine_for(warehouse_url).begin() as conn:
        conn.execute(update(warehouse.agencies).where(warehouse.agencies.c.code == T)
                     .values(name=formula))
    quarter = progress.quarter_report(warehouse_url, "2023Q2", plan)
    rows = list(csv.DictReader(io.StringIO(report.render(quarter, "csv").decode("utf-8-sig"))))
    names = {r["Cơ quan"] for r in rows if r["Mã cơ quan"] == T}
    assert names == {"'" + formula}
    book = openpyxl.load_workbook(io.BytesIO(report.render(quarter, "xlsx")))
    cells = [c for ws in book.worksheets for row in ws.iter_rows() for c in row
             if isinstance(c.value, str) and "HYPERLINK" in c.value]
    assert cells and all(c.data_type == "s" and c.value == formula and c.quotePrefix for c in cells)
    assert not any(c.data_type == "f" for ws in book.worksheets for row in ws.iter_rows() for c in row)
    assert [csv_text(v) for v in ("+1", "-2", "@SUM(A1)", "\tx", "\rx", "Sở Tư pháp", "")] == [
        "'+1", "'-2", "'@SUM(A1)", "'\tx", "'\rx", "Sở Tư pháp", ""]


class _Text(HTMLParser):
    """A page's text as a reader sees it (entities decoded), and its tags."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_names_from_the_warehouse_are_text_on_the_report_and_the_dashboard(tmp_path: Path,
                                                                          plan: PhasePlan) -> None:
    """An agency name (or a filter value) that looks like markup is shown as it is, never run."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from sqlalchemy import update

    from pipeline.config import load_settings
    from pipeline.reporting import dashboard
    from pipeline.store import warehouse

    evil = '<script>alert(1)</script> & "x"'
    url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    fill(url)
    with warehouse.engine_for(url).begin() as conn:
        conn.execute(update(warehouse.agencies).where(warehouse.agencies.c.code == T).values(name=evil))
    quarter = progress.quarter_report(url, "2023Q2", plan)
    settings = load_settings(data_dir=tmp_path / "var", db_url=url, phase_plan=write_plan(tmp_path))
    root = FastAPI()
    root.mount("/digitize", dashboard.create_app(lambda: settings))
    client = TestClient(root)
    bad_filter = client.get("/digitize/", params={"quarter": "2023Q2", "agency": evil})
    assert bad_filter.status_code == 400
    pages = {
        "report": report.render(quarter, "html").decode("utf-8"),
        "report for the plugin": report.render_html(quarter, form_action="/digitize/?a=1&b=2",
                                                    download_links={"csv": '/x.csv?q="1"&r=2'}),
        "dashboard": client.get("/digitize/", params={"quarter": "2023Q2"}).text,
        "dashboard's message": bad_filter.text,
    }
    for name, page in pages.items():
        parsed = _Text()
        parsed.feed(page)
        assert "script" not in parsed.tags and "<script" not in page, name
        assert evil in "".join(parsed.text), name
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; " in page, name
    for name in ("report for the plugin", "dashboard"):
        assert f'<option value="{T}">{T} &lt;script&gt;alert(1)&lt;/script&gt; &amp; ' in pages[name]
    assert 'action="/digitize/?a=1&amp;b=2"' in pages["report for the plugin"]
    assert 'href="/x.csv?q=&#34;1&#34;&amp;r=2"' in pages["report for the plugin"]
