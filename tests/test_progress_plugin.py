"""The progress page in the Airflow UI (plugins/digitize_progress.py, pipeline/reporting/dashboard.py).

Fast tests call the plugin's FastAPI app through FastAPI's TestClient (no Airflow server): the
filters, the running quarter by default and the links between quarters, the Vietnamese 400
messages, the downloads, the Data Docs route's refusals and the login requirement. The slow tests
share one real ``airflow api-server`` (module fixture ``live``) with the project's plugins folder
and drive it in headless Chromium (Debian's ``chromium`` and ``chromium-driver``, through
Selenium): log in, land on the running quarter with today's work in it, go to the quarter before,
filter to one agency with the form and check its figures against the hand-worked
``EXPECTED_2023Q2``, download the XLSX, check that the menu label is not cut and opens the page
inside the UI, and read a validated batch's Data Docs (and be refused without a login or outside
the batch's folder). The page's screenshot goes to the test's tmp folder and to
``docs/screenshots/tien-do.png`` for the project's documentation.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import subprocess
import sys
import time
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import openpyxl
import pytest
from airflow_server import PASSWORD, USER, http, raw_get, server_env, serving, wait_until
from airflow_server import load_plugin as load_plugin_file
from conftest import (
    CHROMEDRIVER,
    CHROMIUM,
    free_port,
    skip_or_fail,
    start_chromium,
    update_docs_screenshot,
)
from progress_fixtures import EXPECTED_2023Q2, HOLDER_ID, HOLDER_NAME, NAMES, H, T, X, fill, write_plan

from pipeline.checks import validate
from pipeline.config import PROJECT_DIR, Settings, load_settings
from pipeline.models import ManifestRow
from pipeline.reporting import dashboard, progress, report

PLUGIN_FILE = PROJECT_DIR / "plugins" / "digitize_progress.py"
# the page as the team's documentation shows it (README); rewritten by each run of the live test
DOCS_SCREENSHOT = PROJECT_DIR / "docs" / "screenshots" / "tien-do.png"
# The columns the test reads in the page's agency tables, and how the page writes a value.
FIGURES = {"Đã kiểm đếm": "inventoried", "Đã số hóa": "digitized", "Tỷ lệ (%)": "percent",
           "Chỉ tiêu năm (%)": "target", "Đạt/Chưa đạt": "on_track"}


def shown(value: Any) -> str:
    """A figure as the page shows it: 45,5 (one decimal), 1.234, Đạt / Chưa đạt, — for none."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "Đạt" if value else "Chưa đạt"
    if isinstance(value, float):
        return f"{value:.1f}".replace(".", ",")
    return f"{value:,}".replace(",", ".")


def expected_rows(agency: str) -> dict[str | None, dict[str, str]]:
    """Phase (None: all phases) -> header -> text, for one agency, from EXPECTED_2023Q2."""
    rows = [*EXPECTED_2023Q2["rows"], *EXPECTED_2023Q2["agency_totals"]]
    return {e["phase"]: {h: shown(e[key]) for h, key in FIGURES.items()}
            for e in rows if e["agency_code"] == agency}


def load_plugin() -> ModuleType:
    """plugins/digitize_progress.py as Airflow loads it."""
    return load_plugin_file(PLUGIN_FILE)


@pytest.fixture
def filled(tmp_path: Path) -> dict[str, str]:
    """The hand-worked warehouse (SQLite) and its phase plan under a temp DATA folder."""
    data = tmp_path / "DATA"
    data.mkdir()
    url = f"sqlite:///{data / 'warehouse.sqlite'}"
    fill(url)
    return {"data": str(data), "url": url, "plan": str(write_plan(tmp_path))}


# --- the plugin's app without an Airflow server ---------------------------------------------------
@pytest.fixture(scope="module")
def plugin() -> ModuleType:
    return load_plugin()


@pytest.fixture
def app_env(filled: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment an API server would have: the DAGs' warehouse connection, and a
    DIGITIZE_DB_URL that is NOT the warehouse, so the figures prove the connection was used."""
    monkeypatch.setenv("DIGITIZE_DATA_DIR", filled["data"])
    monkeypatch.setenv("DIGITIZE_PHASE_PLAN", filled["plan"])
    monkeypatch.setenv("DIGITIZE_DB_URL", f"sqlite:///{Path(filled['data']) / 'not-the-warehouse.sqlite'}")
    monkeypatch.setenv("AIRFLOW_CONN_DIGITIZE_WAREHOUSE", json.dumps(
        {"conn_type": "generic", "extra": {"sqlalchemy_url": filled["url"]}}))
    return filled


@pytest.fixture
def client(plugin: ModuleType, app_env: dict[str, str]) -> Iterator[Any]:
    """A TestClient on the plugin's app, mounted where Airflow mounts it, as a logged-in user."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    (entry,) = plugin.DigitizeProgressPlugin().fastapi_apps
    app = entry["app"]
    root = FastAPI()
    root.mount(entry["url_prefix"], app)
    app.dependency_overrides[get_user] = lambda: "sotttt"  # what Airflow's login would give
    try:
        yield TestClient(root)
    finally:
        app.dependency_overrides.clear()


def _tables(page: str) -> list[list[list[str]]]:
    """Every table of a page as rows of cell texts (the page is generated: no nesting)."""
    out = []
    for table in re.findall(r"<table>(.*?)</table>", page, re.S):
        rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)
        cells = [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", tr, re.S) for tr in rows]
        out.append([[re.sub(r"<[^>]+>", "", c).strip() for c in row] for row in cells])
    return out


def agency_rows(page: str) -> dict[str | None, dict[str, str]]:
    """Phase (None: all phases) -> header -> text of the agency rows of a filtered page."""
    phases = {"Giai đoạn 2": "GD2", "Giai đoạn 3": "GD3", "Tất cả giai đoạn": None}
    rows = {}
    for table in _tables(page):
        if table[0][0] != "Mã cơ quan":
            continue
        for cells in table[1:]:
            row = dict(zip(table[0], cells, strict=True))
            if row["Mã cơ quan"] != "—":  # not the totals row
                rows[phases[row["Giai đoạn"]]] = {h: row[h] for h in FIGURES} | {"agency": row["Mã cơ quan"]}
    return rows


def agency_table(page: str, agency: str, phase: str = "Tất cả giai đoạn") -> dict[str, str]:
    """Header -> text of one agency's row in the table of one phase (or of all phases)."""
    for table in _tables(page):
        if table[0][0] != "Mã cơ quan":
            continue
        for cells in table[1:]:
            row = dict(zip(table[0], cells, strict=True))
            if row["Mã cơ quan"] == agency and row["Giai đoạn"] == phase:
                return row
    raise AssertionError(f"no row of {agency} for {phase} on the page")


def quarter_links(page: str) -> dict[str, str]:
    """The quarter line's links: class (previous, next, current) -> 'href text'."""
    nav = re.search(r'<nav class="quarters"[^>]*>(.*?)</nav>', page, re.S)
    assert nav, "no quarter line on the page"
    return {css: f"{href} {text}" for css, href, text in
            re.findall(r'<a class="(\w+)" href="([^"]+)">([^<]+)</a>', nav[1])}


def agency_codes(page: str) -> set[str]:
    return {row[0] for table in _tables(page) if table[0][0] == "Mã cơ quan" for row in table[1:]
            if row[0] != "—"}


def test_the_plugin_module_imports_nothing_heavy() -> None:
    """Airflow imports plugins in every component: only AirflowPlugin, no FastAPI, no pipeline."""
    code = ("import sys, importlib.util\nimport airflow.plugins_manager\nbefore = set(sys.modules)\n"
            f"spec = importlib.util.spec_from_file_location('digitize_progress', {str(PLUGIN_FILE)!r})\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "m.DigitizeProgressPlugin()\n"
            "print(sorted(n for n in set(sys.modules) - before if n.split('.')[0] in "
            "('pipeline', 'fastapi', 'starlette', 'sqlalchemy', 'openpyxl')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_menu_entry_and_the_mount(plugin: ModuleType) -> None:
    (view,) = plugin.DigitizeProgressPlugin.external_views
    # short: the UI's left bar cut "Tiến độ số hóa" to "Tiến độ s…" (the live test measures it)
    assert view == {"name": "Tiến độ", "href": "digitize/", "destination": "nav",
                    "url_route": "tien-do-so-hoa", "nav_top_level": True}
    (entry,) = plugin.DigitizeProgressPlugin().fastapi_apps
    assert entry["url_prefix"] == "/digitize" and entry["name"] == "Tiến độ số hóa"
    assert entry["url_prefix"] == dashboard.MOUNT_PATH  # what docs_url writes into quarantine notes


def test_without_a_login_nothing_is_served(plugin: ModuleType, app_env: dict[str, str]) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    root = FastAPI()
    root.mount("/digitize", plugin.dashboard_app())
    anonymous = TestClient(root)
    for path in ("/digitize/", "/digitize/bao-cao.xlsx?quarter=2023Q2", "/digitize/bao-cao.json",
                 f"/digitize/kiem-tra/{H}/B-1/index.html"):
        response = anonymous.get(path, headers={"accept": "application/json"})
        assert response.status_code == 401, path
        assert "Sở Tư pháp" not in response.text
    # a browser goes to Airflow's login, which comes back to the page asked for
    page = anonymous.get("/digitize/?quarter=2023Q2", headers={"accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303
    login, _, query = page.headers["location"].partition("?")
    assert login == "/api/v2/auth/login"
    assert unquote(query) == "next=http://testserver/digitize/?quarter=2023Q2"


def test_one_agency_has_its_hand_worked_figures_and_nobody_else(client: Any) -> None:
    response = client.get("/digitize/", params={"quarter": "2023Q2", "agency": H})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert "Lọc theo: cơ quan 000.00.12.H12 Ủy ban nhân dân huyện Đông Anh" in page
    assert '<form class="filters" method="get" action="/digitize/">' in page
    assert f'<option value="{H}" selected>' in page
    assert agency_rows(page) == {p: {**r, "agency": H} for p, r in expected_rows(H).items()}
    # other agencies are offered in the form, and nowhere else
    tables_and_charts = page.split("</form>", 1)[1]
    for other in (T, X):
        assert other not in tables_and_charts and NAMES[other] not in tables_and_charts
    links = dict(re.findall(r'<a href="([^"]+)" download>(\w+)</a>', page))
    assert links == {f"/digitize/bao-cao.{f}?quarter=2023Q2&amp;agency={H}": f.upper()
                     for f in ("xlsx", "csv", "json", "html")}
    assert HOLDER_NAME not in page and HOLDER_ID not in page


def test_level_and_phase_filters(client: Any) -> None:
    page = client.get("/digitize/", params={"quarter": "2023Q2", "level": "huyện", "phase": "GD2"}).text
    assert "Lọc theo: cấp Huyện, Giai đoạn 2" in page
    assert agency_rows(page) == {"GD2": {**expected_rows(H)["GD2"], "agency": H}}  # one huyện, one phase
    everything = client.get("/digitize/", params={"quarter": "2023Q2", "level": "", "agency": "",
                                                 "phase": ""}).text  # an untouched form
    assert "Lọc theo" not in everything
    assert agency_codes(everything) == {T, H, X}


def test_without_a_quarter_the_running_one_and_the_last_finished_one_a_click_away(
        client: Any, app_env: dict[str, str]) -> None:
    plan = load_settings().plan
    page = client.get("/digitize/", params={"level": "huyện"}).text
    today = dt.datetime.now(zoneinfo.ZoneInfo(plan.timezone)).date()
    running, before = progress.quarter_of(today), progress.previous_quarter(today)
    assert f'name="quarter" value="{running.label}"' in page  # the form still picks any quarter
    assert f"{running.vi_label} (đang thực hiện, số liệu tính đến ngày {today:%d/%m/%Y})" in page
    assert f'<span class="state running">{running.vi_label}: đang thực hiện</span>' in page
    assert quarter_links(page) == {
        "previous": f"/digitize/?quarter={before}&amp;level=huyen Quý trước: {before} (đã kết thúc)"}
    assert dashboard.default_quarter(plan, dt.date(2023, 7, 1)) == "2023Q3"
    assert dashboard.default_quarter(plan, dt.date(2024, 3, 31)) == "2024Q1"


def test_a_finished_quarter_links_to_its_neighbours_and_the_running_one(client: Any) -> None:
    page = client.get("/digitize/", params={"quarter": "2023Q2", "agency": H}).text
    running = progress.quarter_of(dt.datetime.now(zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh")).date()).label
    assert "Quý 2/2023 (số liệu đến hết ngày 30/06/2023)" in page
    assert '<span class="state finished">Quý 2/2023: đã kết thúc</span>' in page
    assert quarter_links(page) == {
        "previous": f"/digitize/?quarter=2023Q1&amp;agency={H} Quý trước: 2023Q1 (đã kết thúc)",
        "next": f"/digitize/?quarter=2023Q3&amp;agency={H} Quý sau: 2023Q3 (đã kết thúc)",
        "current": f"/digitize/?quarter={running}&amp;agency={H} Quý hiện tại: {running} (đang thực hiện)"}
    assert client.get("/digitize/", params={"quarter": "2023Q1", "agency": H}).status_code == 200


def test_the_running_quarter_counts_up_to_today(filled: dict[str, str]) -> None:
    """On 10 May 2023 the running 2023Q2 holds what was archived by the end of that day (Sở Tư
    pháp's 70 of 10 May, not the 5 of 11 May), its pace over the working days passed."""
    plan = load_settings(phase_plan=Path(filled["plan"])).plan
    today = dt.date(2023, 5, 10)
    to_date = dashboard.dashboard_report(filled["url"], plan, today=today)
    whole = progress.quarter_report(filled["url"], "2023Q2", plan)
    assert (to_date.quarter, to_date.start, to_date.end) == ("2023Q2", dt.date(2023, 4, 1), today)
    assert to_date.as_of == "đang thực hiện, số liệu tính đến ngày 10/05/2023"
    days = progress.working_days(dt.date(2023, 4, 1), today, sorted(plan.holidays))
    assert to_date.working_days == days == 26  # 28 weekdays less 28 April and 1 May
    (t_now,) = [r for r in to_date.agency_totals if r.agency_code == T]
    (t_end,) = [r for r in whole.agency_totals if r.agency_code == T]
    assert (t_now.digitized_in_quarter, t_end.digitized_in_quarter) == (70, 75)
    assert t_now.records_per_day == round(70 / days, 2)
    # the same day asked for by name is the same report; a finished quarter is not cut
    assert dashboard.dashboard_report(filled["url"], plan, quarter="2023Q2", today=today) == to_date
    assert dashboard.dashboard_report(filled["url"], plan, quarter="2023Q2",
                                      today=dt.date(2023, 7, 1)) == whole


def test_validation_docs_url_is_the_served_address(settings: Settings) -> None:
    base = settings.model_copy(update={"ui_base_url": "https://airflow.so.example/af/"})
    assert dashboard.docs_url(base, f"{H}/Lô 7~2/validations/manifest/x.html") == (
        f"https://airflow.so.example/af/digitize/kiem-tra/{H}/L%C3%B4%207~2/validations/manifest/x.html")
    assert dashboard.validation_docs_dir(settings) == settings.dir("reports") / "validation"


def test_the_data_docs_route_serves_a_batch_folder_and_nothing_outside(
        client: Any, app_env: dict[str, str], tmp_path: Path) -> None:
    root = Path(app_env["data"]) / "reports" / "validation"
    site = root / H / "Lô 7"
    (site / "static").mkdir(parents=True)
    (site / "index.html").write_text("<h1>Trang kiểm tra lô 7</h1>", encoding="utf-8")
    (site / "static" / "a.css").write_text("h1 {}", encoding="utf-8")
    (root / H / "B-OTHER").mkdir()
    (root / H / "B-OTHER" / "index.html").write_text("lô khác", encoding="utf-8")
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "index.html").write_text("BÍ MẬT", encoding="utf-8")
    (root / "secret.html").write_text("BÍ MẬT", encoding="utf-8")
    (site / "escape.html").symlink_to(secret / "index.html")
    (site / "up").symlink_to(root / H / "B-OTHER")
    (root / H / "B-LINK").symlink_to(secret)
    prefix = f"/digitize/kiem-tra/{H}/{quote('Lô 7')}"
    for path in (f"{prefix}/", f"{prefix}/index.html"):
        response = client.get(path)
        assert response.status_code == 200 and "Trang kiểm tra lô 7" in response.text, path
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["cache-control"] == "private, no-cache"
    assert client.get(f"{prefix}/static/a.css").headers["content-type"].startswith("text/css")
    for path in (f"{prefix}/escape.html", f"{prefix}/up/index.html",
                 f"/digitize/kiem-tra/{H}/B-LINK/index.html", f"{prefix}/static", f"{prefix}/nothing.html"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "BÍ MẬT" not in response.text and "lô khác" not in response.text, path
        assert "Không có trang này" in response.text
    # what a client that does not clean up the path sends (TestClient would resolve "..")
    assert dashboard.docs_file(root, H, "Lô 7", "../B-OTHER/index.html") is None
    assert dashboard.docs_file(root, H, "..", "secret.html") is None
    assert dashboard.docs_file(root, "..", "..", "secret.html") is None
    assert dashboard.docs_file(root, H, "Lô 7", "/etc/passwd") is None
    assert dashboard.docs_file(root, H, "Lô 7", "static\\..\\index.html") is None
    assert dashboard.docs_file(root, H, "Lô 7", "index.html") == (site / "index.html").resolve()
    assert dashboard.docs_file(root, H, "B-OTHER", "") == (root / H / "B-OTHER" / "index.html").resolve()


@pytest.mark.parametrize(("params", "message"), [
    ({"quarter": "2023Q2", "agency": "000.99.99.H12"},
     "Cơ quan “000.99.99.H12” không có trong báo cáo Quý 2/2023 (không có số kiểm đếm hay hồ sơ nào): "
     "chọn cơ quan trong danh sách."),
    ({"quarter": "2023Q5"},
     "Quý “2023Q5” không hợp lệ: nhập theo dạng NNNNQn, ví dụ 2023Q2 (quý 2 năm 2023)."),
    ({"quarter": "quý 2"}, "Quý “quý 2” không hợp lệ"),
    ({"quarter": "2999Q1"}, "Quý 1/2999 chưa bắt đầu: chọn quý hiện tại hoặc một quý đã qua."),
    ({"quarter": "2023Q2", "level": "thôn"}, "Cấp “thôn” không có: chọn Tỉnh, Huyện, Xã hoặc để trống"),
    ({"quarter": "2023Q2", "phase": "GD9"},
     "Giai đoạn “GD9” không có: chọn GD2 (Giai đoạn 2), GD3 (Giai đoạn 3) hoặc để trống"),
])
def test_a_bad_filter_is_a_clear_400(client: Any, params: dict[str, str], message: str) -> None:
    for path in ("/digitize/", "/digitize/bao-cao.xlsx"):
        response = client.get(path, params=params)
        assert response.status_code == 400, path
        assert response.headers["content-type"].startswith("text/html")
        assert message in response.text
        assert '<h1>Bộ lọc không hợp lệ</h1>' in response.text
        assert "Traceback" not in response.text and "ValueError" not in response.text


def test_an_unmigrated_warehouse_is_a_503_not_a_traceback(client: Any, filled: dict[str, str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    empty = Path(filled["data"]) / "empty.sqlite"
    monkeypatch.setenv("AIRFLOW_CONN_DIGITIZE_WAREHOUSE", json.dumps(
        {"conn_type": "sqlite", "host": str(empty)}))
    response = client.get("/digitize/", params={"quarter": "2023Q2"})
    assert response.status_code == 503
    assert "Chưa xem được báo cáo" in response.text and "Traceback" not in response.text


def test_downloads_are_the_report_files_with_a_vietnamese_safe_name(client: Any,
                                                                    filled: dict[str, str]) -> None:
    whole = progress.quarter_report(filled["url"], "2023Q2", Path(filled["plan"]))
    expected = progress.filter_report(whole, level="huyen")
    for fmt, content_type in [("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
                              ("csv", "text/csv; charset=utf-8"), ("json", "application/json"),
                              ("html", "text/html; charset=utf-8")]:
        response = client.get(f"/digitize/bao-cao.{fmt}", params={"quarter": "2023Q2", "level": "huyện"})
        assert response.status_code == 200, fmt
        assert response.headers["content-type"] == content_type
        assert response.headers["content-disposition"] == (
            f"attachment; filename=\"bao-cao-tien-do-2023Q2-huyen.{fmt}\"; "
            f"filename*=UTF-8''bao-cao-tien-do-2023Q2-huy%E1%BB%87n.{fmt}")
        assert response.content == report.render(expected, fmt), fmt  # the report's own bytes
        assert HOLDER_NAME.encode() not in response.content and HOLDER_ID.encode() not in response.content
    book = openpyxl.load_workbook(io.BytesIO(client.get(
        "/digitize/bao-cao.xlsx", params={"quarter": "2023Q2", "agency": X}).content))
    assert book.sheetnames[0] == "Tổng hợp"
    assert client.get("/digitize/bao-cao.pdf").status_code == 404


def test_content_disposition_keeps_vietnamese_names() -> None:
    header = dashboard.content_disposition("Báo cáo tiến độ – Đông Anh.xlsx")
    assert header == ("attachment; filename=\"Bao-cao-tien-do-Dong-Anh.xlsx\"; filename*=UTF-8''"
                      "B%C3%A1o%20c%C3%A1o%20ti%E1%BA%BFn%20%C4%91%E1%BB%99%20%E2%80%93%20%C4%90%C3%B4ng"
                      "%20Anh.xlsx")
    assert unquote(header.split("UTF-8''")[1]) == "Báo cáo tiến độ – Đông Anh.xlsx"


# --- a real Airflow API server and headless Chromium ----------------------------------------------
DOCS_BATCH = "Lô KT-01"  # a batch id as an agency writes it: a space and a tone mark


def validated_batch(settings: Settings) -> validate.Validation:
    """A batch's manifest validated with its Data Docs under DATA/reports/validation, as
    ``registration.register_batch`` does it: one good row, one with a code not in the catalogue."""
    reference = validate.Reference(H, "huyen", {"1.001022": validate.Procedure(
        "1.001022", "Trích lục", frozenset({"huyen"}))})
    rows = [ManifestRow(line=line, record_id=f"HS-KT-{line}", procedure_code=code,
                        result_number=f"{line}/GCN", issued_on_raw="05/03/2019",
                        issued_on=dt.date(2019, 3, 5), files_raw="a.tif", still_valid_raw="có",
                        still_valid=True)
            for line, code in ((2, "1.001022"), (3, "9.999999"))]
    return validate.validate_manifest(
        rows, (dt.date(1945, 9, 2), dt.date(2021, 12, 31)), reference, {2: 1, 3: 1},
        docs_dir=dashboard.validation_docs_dir(settings) / H / DOCS_BATCH, run_name=DOCS_BATCH,
        settings=settings)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory,
         migrated_airflow_db: Path) -> Iterator[dict[str, Any]]:
    """One ``airflow api-server`` for the module's slow tests: the project's plugins, a copy of
    the session's migrated metadata database, the hand-worked warehouse plus 3 records archived
    just now (the running quarter), and a validated batch's Data Docs with traps around them
    (files outside the batch's folder, symbolic links out of it)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        skip_or_fail(f"{CHROMIUM} or {CHROMEDRIVER} missing (apt-get install chromium chromium-driver)")
    started = time.monotonic()
    tmp = tmp_path_factory.mktemp("live")
    data = tmp / "DATA"
    data.mkdir()
    url = f"sqlite:///{data / 'warehouse.sqlite'}"
    filler = fill(url)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=1)
    filler.records(H, 3, issued=dt.date(2012, 1, 1), at=now.isoformat(sep=" ", timespec="seconds"), pages=2)
    plan = write_plan(tmp)
    port = free_port()
    settings = load_settings(data_dir=data, db_url=url, phase_plan=plan, ui_base_url=f"http://127.0.0.1:{port}")
    env = {**server_env(settings, tmp, migrated_airflow_db, url), "DIGITIZE_PHASE_PLAN": str(plan)}
    with serving(env, port, tmp / "api-server.log") as server:
        # great-expectations takes seconds: while the server starts
        checked = validated_batch(settings)
        root = dashboard.validation_docs_dir(settings)
        outside = tmp / "outside"
        outside.mkdir()
        (outside / "index.html").write_text("BÍ MẬT ngoài thư mục", encoding="utf-8")
        (root / "secret.html").write_text("BÍ MẬT trong reports", encoding="utf-8")
        (root / H / DOCS_BATCH / "escape.html").symlink_to(outside / "index.html")
        (root / H / "B-KHAC").mkdir()
        (root / H / "B-KHAC" / "index.html").write_text("trang của lô khác", encoding="utf-8")
        (root / H / "B-LINK").symlink_to(outside)
        server.wait_healthy(timeout=180)
        print(f"[{time.monotonic() - started:.0f} s] API server up on {server.base}")
        status, _, body = http(f"{server.base}/auth/token", headers={"content-type": "application/json"},
                               data=json.dumps({"username": USER, "password": PASSWORD}).encode())
        assert status == 201, body
        yield {"base": server.base, "url": url, "settings": settings, "docs": checked.docs, "tmp": tmp,
               "token": json.loads(body)["access_token"], "started": started}


@pytest.fixture(scope="module")
def browser(live: dict[str, Any]) -> Iterator[Any]:
    """Headless Debian Chromium through Debian's chromedriver, shared by the module's slow tests;
    downloads go to <live tmp>/downloads."""
    downloads = live["tmp"] / "downloads"
    downloads.mkdir()
    driver = start_chromium(downloads=downloads)
    try:
        yield driver
    finally:
        driver.quit()


def log_in(browser: Any, base: str) -> None:
    """Ask for the page without a login: Airflow's login form, then back to the page."""
    from selenium.webdriver.common.by import By

    browser.get(f"{base}/digitize/")
    user_box = wait_until("Airflow's login form", lambda: browser.find_element(By.NAME, "username"))
    assert urlsplit(browser.current_url).path == "/auth/login"
    user_box.send_keys(USER)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until("the dashboard after the login", lambda: browser.find_element(By.CSS_SELECTOR, "form.filters"))
    assert urlsplit(browser.current_url).path == "/digitize/"


@pytest.fixture
def signed_in(live: dict[str, Any], browser: Any) -> Any:
    """The module's browser, logged in (once; the UI's _token cookie then stays)."""
    if browser.get_cookie("_token") is None:
        log_in(browser, live["base"])
    return browser


def since(live: dict[str, Any]) -> str:
    return f"[{time.monotonic() - live['started']:.0f} s]"


@pytest.mark.slow
@pytest.mark.airflow
def test_the_page_opens_on_the_running_quarter_with_todays_work(live: dict[str, Any], browser: Any,
                                                                tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    base, token = live["base"], live["token"]
    # the plugin is registered, with its menu entry; the page is not served without a login
    status, _, body = http(f"{base}/api/v2/plugins", headers={"authorization": f"Bearer {token}"})
    assert status == 200, body
    (ours,) = [p for p in json.loads(body)["plugins"] if p["name"] == "digitize_progress"]
    assert [v["name"] for v in ours["external_views"]] == ["Tiến độ"]
    assert [(a["url_prefix"], a["name"]) for a in ours["fastapi_apps"]] == [("/digitize", "Tiến độ số hóa")]
    status, _, body = http(f"{base}/digitize/?quarter=2023Q2", headers={"accept": "application/json"})
    assert status == 401 and b"Not authenticated" in body

    # a browser asking for the page is sent to Airflow's login form, then back to the page
    browser.get(f"{base}/api/v2/monitor/health")
    browser.delete_all_cookies()
    log_in(browser, base)
    today = dt.datetime.now(zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh")).date()
    running, before = progress.quarter_of(today), progress.previous_quarter(today)
    assert browser.find_element(By.NAME, "quarter").get_attribute("value") == running.label
    header = browser.find_element(By.TAG_NAME, "header").text
    assert f"{running.vi_label} (đang thực hiện, số liệu tính đến ngày {today:%d/%m/%Y})" in header
    line = browser.find_element(By.CSS_SELECTOR, "nav.quarters").text
    assert line == f"{running.vi_label}: đang thực hiện Quý trước: {before} (đã kết thúc)"
    # the 3 records archived a minute ago are this quarter's work
    row = agency_table(browser.page_source, H)
    assert (row["Số hóa trong quý"], row["Trang trong quý"]) == ("3", "6")
    # what opens (1400 x 1000) for the docs; the whole page beside it, in the test's folder only
    shot = tmp_path / "tien-do.png"
    assert browser.save_screenshot(str(shot))
    update_docs_screenshot(shot, DOCS_SCREENSHOT.name)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, min(int(height) + 40, 8000))
    assert browser.save_screenshot(str(tmp_path / "tien-do-full.png"))
    browser.set_window_size(1400, 1000)
    print(f"{since(live)} logged in; {running.label} running by default; screenshot {shot}")

    # one click to the last finished quarter, whose figures end with it
    browser.find_element(By.PARTIAL_LINK_TEXT, f"Quý trước: {before}").click()
    wait_until("the previous quarter", lambda: dict(
        p.split("=", 1) for p in urlsplit(browser.current_url).query.split("&")) == {"quarter": before})
    q = progress.parse_quarter(before)
    header = browser.find_element(By.TAG_NAME, "header").text
    assert f"{q.vi_label} (số liệu đến hết ngày {q.end:%d/%m/%Y})" in header
    assert browser.find_element(By.CSS_SELECTOR, "nav.quarters .state").text == f"{q.vi_label}: đã kết thúc"
    assert agency_table(browser.page_source, H)["Số hóa trong quý"] == "0"
    browser.find_element(By.PARTIAL_LINK_TEXT, "Quý hiện tại").click()
    wait_until("back to the running quarter",
               lambda: browser.find_element(By.CSS_SELECTOR, "nav.quarters .state.running"))


@pytest.mark.slow
@pytest.mark.airflow
def test_the_page_filters_to_one_agency(live: dict[str, Any], signed_in: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser = signed_in
    browser.get(f"{live['base']}/digitize/")
    # the user types the quarter, picks one agency and presses Xem
    quarter_box = wait_until("the filter form", lambda: browser.find_element(By.NAME, "quarter"))
    quarter_box.clear()
    quarter_box.send_keys("2023Q2")
    Select(browser.find_element(By.NAME, "agency")).select_by_value(H)
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait_until("the filtered page",
               lambda: "Lọc theo" in browser.find_element(By.TAG_NAME, "header").text)
    query = dict(p.split("=", 1) for p in urlsplit(browser.current_url).query.split("&"))
    assert query == {"quarter": "2023Q2", "level": "", "agency": H, "phase": ""}
    header = browser.find_element(By.TAG_NAME, "header").text
    assert "Quý 2/2023 (số liệu đến hết ngày 30/06/2023)" in header
    assert f"Lọc theo: cơ quan {H} {NAMES[H]}" in header
    page = browser.page_source
    assert agency_rows(page) == {p: {**r, "agency": H} for p, r in expected_rows(H).items()}
    sections = " ".join(s.text for s in browser.find_elements(By.TAG_NAME, "section"))
    for other in (T, X):  # offered in the form, shown nowhere else
        assert other not in sections and NAMES[other] not in sections
    assert HOLDER_NAME not in page and HOLDER_ID not in page

    # the XLSX link downloads that agency's report under its own name
    browser.find_element(By.LINK_TEXT, "XLSX").click()
    path = live["tmp"] / "downloads" / f"bao-cao-tien-do-2023Q2-{H}.xlsx"  # the name it was sent with
    wait_until(f"the download {path.name}", path.is_file)
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["Tổng hợp", "GD2 Giai đoạn 2", "GD3 Giai đoạn 3", "Tất cả giai đoạn"]
    codes = {c.value for ws in book.worksheets[1:] for row in ws.iter_rows() for c in row
             if isinstance(c.value, str) and c.value.startswith("000.")}
    assert codes == {H}
    print(f"{since(live)} {H}'s figures as worked out by hand; XLSX downloaded")


@pytest.mark.slow
@pytest.mark.airflow
def test_the_menu_label_fits_the_sidebar_and_opens_the_page(live: dict[str, Any], signed_in: Any,
                                                            tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser = signed_in
    browser.get(f"{live['base']}/")
    link = wait_until("the menu entry", lambda: browser.find_element(
        By.CSS_SELECTOR, 'a[href$="plugin/tien-do-so-hoa"]'))
    # the label's own element (the UI cuts it with text-overflow: ellipsis): the text's width
    # against the box's, and what is drawn
    fit = browser.execute_script("""
        const el = [...arguments[0].querySelectorAll('*')].find(
            e => e.children.length === 0 && e.textContent.trim() !== '');
        const range = document.createRange();
        range.selectNodeContents(el);
        return {text: el.textContent, scroll: el.scrollWidth, client: el.clientWidth,
                drawn: range.getBoundingClientRect().width, shown: el.innerText};""", link)
    assert fit["text"] == fit["shown"] == "Tiến độ"
    assert fit["scroll"] <= fit["client"] and fit["drawn"] <= fit["client"], fit
    assert link.screenshot(str(tmp_path / "menu-entry.png"))
    # the menu entry's page: the dashboard inside the Airflow UI, its title in full
    link.click()
    frame = wait_until("the dashboard's frame in the UI",
                       lambda: browser.find_element(By.CSS_SELECTOR, 'iframe[title="Tiến độ"]'))
    # the UI keeps the frame's own path after its route (/plugin/tien-do-so-hoa/digitize/)
    assert urlsplit(browser.current_url).path.startswith("/plugin/tien-do-so-hoa")
    browser.switch_to.frame(frame)
    title = wait_until("the page in the frame", lambda: browser.find_element(By.TAG_NAME, "h1").text)
    assert title.startswith("BÁO CÁO TIẾN ĐỘ SỐ HÓA")
    assert "đang thực hiện" in browser.find_element(By.CSS_SELECTOR, "nav.quarters").text
    browser.switch_to.default_content()
    assert browser.save_screenshot(str(tmp_path / "tien-do-in-ui.png"))
    print(f"{since(live)} menu label 'Tiến độ' {fit['drawn']:.0f}/{fit['client']} px; page in the UI")


@pytest.mark.slow
@pytest.mark.airflow
def test_data_docs_are_served_behind_the_login_and_nowhere_outside_the_batch(
        live: dict[str, Any], signed_in: Any) -> None:
    base, auth = live["base"], {"authorization": f"Bearer {live['token']}"}
    prefix = f"/digitize/kiem-tra/{H}/{quote(DOCS_BATCH)}"
    # the address validation gives the quarantine notes: the API server's, not a file:// path
    docs = live["docs"]
    assert docs.startswith(f"{base}{prefix}/validations/manifest/{quote(DOCS_BATCH)}/"), docs
    status, headers, body = http(docs, headers=auth)
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert all(text in body.decode() for text in ("procedure_code", "9.999999"))
    status, headers, body = http(f"{base}{prefix}/", headers=auth)
    assert status == 200 and b"<title>Data Docs created by Great Expectations</title>" in body
    status, headers, _ = http(f"{base}{prefix}/static/styles/data_docs_default_styles.css", headers=auth)
    assert status == 200 and headers["content-type"].startswith("text/css")

    # no login: 401 for a script, Airflow's login (coming back here) for a browser
    path = urlsplit(docs).path
    status, _, body = raw_get(base, path, {"accept": "application/json"})
    assert status == 401 and b"procedure_code" not in body
    status, headers, _ = raw_get(base, path, {"accept": "text/html"})
    assert status == 303 and headers["location"].startswith("/api/v2/auth/login?next=")
    (back,) = parse_qs(urlsplit(headers["location"]).query)["next"]  # where the login returns to
    assert unquote(back) == unquote(docs)

    # outside the batch's folder: refused like a missing file, whatever the spelling
    assert raw_get(base, f"/digitize/kiem-tra/{H}/B-KHAC/index.html", auth)[0] == 200  # it is there
    for attempt in (f"{prefix}/../B-KHAC/index.html", f"{prefix}/%2e%2e/B-KHAC/index.html",
                    f"{prefix}/%2E%2E%2FB-KHAC%2Findex.html", f"{prefix}/..%2f..%2fsecret.html",
                    "/digitize/kiem-tra/%2e%2e/%2e%2e/secret.html",
                    f"/digitize/kiem-tra/{H}/%2e%2e/secret.html",
                    f"{prefix}//etc/passwd", f"{prefix}/%2Fetc%2Fpasswd", f"{prefix}/escape.html",
                    f"/digitize/kiem-tra/{H}/B-LINK/index.html", f"{prefix}/validations"):
        status, _, body = raw_get(base, attempt, auth)
        assert status == 404, (attempt, status)
        assert "Không có trang này".encode() in body, attempt  # refused by the route, not missed
        assert all(leak not in body for leak in ("BÍ MẬT".encode(), "lô khác".encode(), b"root:")), attempt

    # the link from a quarantine note, followed with the logged-in browser's own cookie (fetched,
    # not opened: the page waits seconds for its CDN scripts, which a test machine may not reach)
    signed_in.get(f"{base}/digitize/?quarter=2023Q2")
    status, found = signed_in.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(arguments[0], {headers: {accept: 'text/html'}, redirect: 'manual'})
            .then(r => r.text().then(t => done([r.status, t.includes('procedure_code')])))
            .catch(e => done([String(e), false]));""", docs)
    assert (status, found) == (200, True)
    print(f"{since(live)} Data Docs served at {docs}; traversal refused")
