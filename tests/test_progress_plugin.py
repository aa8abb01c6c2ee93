"""The progress page in the Airflow UI (plugins/digitize_progress.py, pipeline/dashboard.py).

Fast tests call the plugin's FastAPI app through FastAPI's TestClient (no Airflow server): the
filters, the Vietnamese 400 messages, the downloads and the login requirement. The slow test starts
a real ``airflow api-server`` with the project's plugins folder and drives the page in headless
Chromium (Debian's ``chromium`` and ``chromium-driver``, through Selenium): log in, filter to one
agency with the form, check that agency's figures against the hand-worked ``EXPECTED_2023Q2``,
download the XLSX and open the page from the Airflow UI's menu entry. The screenshot is written to
``var/test-artifacts/progress_plugin.png`` (var/ is not committed).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zoneinfo
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote, urlsplit

import openpyxl
import pytest
from conftest import skip_or_fail
from progress_fixtures import EXPECTED_2023Q2, HOLDER_ID, HOLDER_NAME, NAMES, H, T, X, fill, write_plan

from pipeline import dashboard, progress, report
from pipeline.cli import airflow_env
from pipeline.config import PROJECT_DIR, load_settings

PLUGIN_FILE = PROJECT_DIR / "plugins" / "digitize_progress.py"
ARTIFACTS = PROJECT_DIR / "var" / "test-artifacts"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
USER, PASSWORD = "sotttt", "mat-khau-thu-nghiem"
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
    """plugins/digitize_progress.py as Airflow loads it: a module from the plugins folder."""
    spec = importlib.util.spec_from_file_location("digitize_progress", PLUGIN_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    assert view == {"name": "Tiến độ số hóa", "href": "digitize/", "destination": "nav",
                    "url_route": "tien-do-so-hoa", "nav_top_level": True}
    (entry,) = plugin.DigitizeProgressPlugin().fastapi_apps
    assert entry["url_prefix"] == "/digitize" and entry["name"] == "Tiến độ số hóa"


def test_without_a_login_nothing_is_served(plugin: ModuleType, app_env: dict[str, str]) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    root = FastAPI()
    root.mount("/digitize", plugin.dashboard_app())
    anonymous = TestClient(root)
    for path in ("/digitize/", "/digitize/bao-cao.xlsx?quarter=2023Q2", "/digitize/bao-cao.json"):
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


def test_without_a_quarter_the_last_finished_one(client: Any, app_env: dict[str, str]) -> None:
    plan = load_settings().plan
    page = client.get("/digitize/").text
    today = dt.datetime.now(zoneinfo.ZoneInfo(plan.timezone)).date()
    assert f'name="quarter" value="{progress.previous_quarter(today)}"' in page
    assert dashboard.default_quarter(plan, dt.date(2023, 7, 1)) == "2023Q2"
    assert dashboard.default_quarter(plan, dt.date(2024, 3, 31)) == "2023Q4"


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
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 80) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"({exc})"


class ApiServer:
    """``airflow api-server`` as a process group of its own, with its log in a file."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = str(Path(sys.executable).with_name("airflow"))
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([exe, "api-server", "--host", "127.0.0.1", "--port", str(self.port)],
                                         env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"the API server exited ({self.proc.returncode}):\n{tail(self.log)}")
            with contextlib.suppress(OSError), urllib.request.urlopen(
                    f"{self.base}/api/v2/monitor/health", timeout=5) as response:
                if response.status == 200:
                    return
            if time.monotonic() > deadline:
                pytest.fail(f"the API server was not up after {timeout:.0f} s:\n{tail(self.log)}")
            time.sleep(1)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


def http(url: str, *, headers: dict[str, str] | None = None,
         data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Debian Chromium through Debian's chromedriver; downloads go to tmp_path/downloads."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        skip_or_fail(f"{CHROMIUM} or {CHROMEDRIVER} missing (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        skip_or_fail("selenium is not installed (pip install -e '.[test]')")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--lang=vi-VN", "--no-first-run"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_until(what: str, check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if result := check():
                return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


@pytest.mark.slow
@pytest.mark.airflow
def test_the_page_in_the_airflow_ui_filters_to_one_agency(filled: dict[str, str], tmp_path: Path,
                                                         browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    started = time.monotonic()
    settings = load_settings(data_dir=Path(filled["data"]), db_url=filled["url"])
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}), encoding="utf-8")
    port = free_port()
    home = Path(airflow_env(settings)["AIRFLOW_HOME"])
    env = {
        **airflow_env(settings),  # the project's airflow.cfg, dags/ and plugins/
        # whatever the surrounding environment says: a fresh metadata database, this warehouse
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW_CONN_DIGITIZE_WAREHOUSE": json.dumps(
            {"conn_type": "generic", "extra": {"sqlalchemy_url": filled["url"]}}),
        "DIGITIZE_PHASE_PLAN": filled["plan"],
        # Not the warehouse: the page must read the digitize_warehouse connection, as the DAGs do.
        "DIGITIZE_DB_URL": f"sqlite:///{Path(filled['data']) / 'not-the-warehouse.sqlite'}",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": "test-secret-" + "x" * 40,
        # Simple auth manager with one real user (documented [core] options): the page must ask
        # for a login, and the test logs in through Airflow's own login form.
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
    }
    migrate = subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], env=env,
                             capture_output=True, text=True, timeout=600)
    assert migrate.returncode == 0, (migrate.stdout + migrate.stderr)[-4000:]
    print(f"[{time.monotonic() - started:.0f} s] metadata database migrated")

    server = ApiServer(env, port, tmp_path / "api-server.log")
    try:
        server.start()
        server.wait_healthy(timeout=180)
        base = server.base
        print(f"[{time.monotonic() - started:.0f} s] API server up on {base}")

        # the plugin is registered, with its menu entry; the page is not served without a login
        status, _, body = http(f"{base}/auth/token", headers={"content-type": "application/json"},
                               data=json.dumps({"username": USER, "password": PASSWORD}).encode())
        assert status == 201, body
        token = json.loads(body)["access_token"]
        status, _, body = http(f"{base}/api/v2/plugins", headers={"authorization": f"Bearer {token}"})
        assert status == 200, body
        (ours,) = [p for p in json.loads(body)["plugins"] if p["name"] == "digitize_progress"]
        assert [v["name"] for v in ours["external_views"]] == ["Tiến độ số hóa"]
        assert [a["url_prefix"] for a in ours["fastapi_apps"]] == ["/digitize"]
        status, _, body = http(f"{base}/digitize/?quarter=2023Q2", headers={"accept": "application/json"})
        assert status == 401 and b"Not authenticated" in body

        # 1. a browser asking for the page is sent to Airflow's login form, then back to the page
        browser.get(f"{base}/digitize/")
        user_box = wait_until("Airflow's login form", lambda: browser.find_element(By.NAME, "username"))
        assert urlsplit(browser.current_url).path == "/auth/login"
        user_box.send_keys(USER)
        browser.find_element(By.NAME, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_until("the dashboard after the login",
                   lambda: browser.find_element(By.CSS_SELECTOR, "form.filters"))
        assert urlsplit(browser.current_url).path == "/digitize/"
        today = dt.datetime.now(zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh")).date()
        quarter_box = browser.find_element(By.NAME, "quarter")
        assert quarter_box.get_attribute("value") == progress.previous_quarter(today)  # the default
        print(f"[{time.monotonic() - started:.0f} s] logged in; the page shows "
              f"{quarter_box.get_attribute('value')} by default")

        # 2. the user types the quarter, picks one agency and presses Xem
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
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1400, min(int(height) + 40, 8000))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "progress_plugin.png"
        assert browser.save_screenshot(str(shot))
        print(f"[{time.monotonic() - started:.0f} s] {H}'s figures as worked out by hand; screenshot: {shot}")

        # 3. the XLSX link downloads that agency's report under its own name
        browser.find_element(By.LINK_TEXT, "XLSX").click()
        path = tmp_path / "downloads" / f"bao-cao-tien-do-2023Q2-{H}.xlsx"  # the name it was sent with
        wait_until(f"the download {path.name}", path.is_file)
        book = openpyxl.load_workbook(path)
        assert book.sheetnames == ["Tổng hợp", "GD2 Giai đoạn 2", "GD3 Giai đoạn 3", "Tất cả giai đoạn"]
        codes = {c.value for ws in book.worksheets[1:] for row in ws.iter_rows() for c in row
                 if isinstance(c.value, str) and c.value.startswith("000.")}
        assert codes == {H}

        # 4. the menu entry's page: the dashboard inside the Airflow UI
        browser.set_window_size(1400, 1000)
        browser.get(f"{base}/plugin/tien-do-so-hoa")
        frame = wait_until("the dashboard's frame in the UI",
                           lambda: browser.find_element(By.CSS_SELECTOR, 'iframe[title="Tiến độ số hóa"]'))
        browser.switch_to.frame(frame)
        title = wait_until("the page in the frame", lambda: browser.find_element(By.TAG_NAME, "h1").text)
        assert title.startswith("BÁO CÁO TIẾN ĐỘ SỐ HÓA")
        browser.switch_to.default_content()
        in_ui = ARTIFACTS / "progress_plugin_in_ui.png"
        assert browser.save_screenshot(str(in_ui))
        print(f"[{time.monotonic() - started:.0f} s] the menu entry's page shows the dashboard: {in_ui}")
    except BaseException:
        print(f"\n===== API server log ({server.log}) =====\n{tail(server.log)}")
        raise
    finally:
        server.stop()
