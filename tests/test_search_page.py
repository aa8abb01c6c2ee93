"""The archivists' search page in the Airflow UI (plugins/digitize_search.py, pipeline/access/page.py).

The warehouse is filled as a run fills it (tests/test_search.py's ``load``: the sample
generator's Vietnamese texts) and its records point at real PDF files with their SHA-256
(tests/test_api.py's ``write_pdfs``). Fast tests call the plugin's app through FastAPI's
TestClient with an Airflow user of a given role (the simple auth manager's user, as Airflow's
login would give it): the login requirement, accentless search with marked snippets, the filters,
paging, the Vietnamese 400s, masked holder data for a Viewer and an access log row for an Admin
who sees it, the PDF's bytes and its access log row. One slow test drives a real
``airflow api-server`` with the project's plugins folder in headless Chromium: log in, open the
page from its menu entry inside the UI, type a query without tone marks, see the marked snippet,
download the PDF from inside the UI (its frame is sandboxed: no new tab, no PDF viewer) and
compare it with the archived file, then open the page on its own, where the PDF opens in a tab.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest
from airflow_server import PASSWORD, USER, http, server_env, serving, wait_until
from airflow_server import load_plugin as load_plugin_file
from conftest import (
    CHROMEDRIVER,
    CHROMIUM,
    free_port,
    skip_or_fail,
    start_chromium,
    update_docs_screenshot,
)
from sqlalchemy import select
from test_api import write_pdfs
from test_search import CITIZEN_ID, DEPARTMENT, DISTRICT, load

from pipeline.access import page as search_page
from pipeline.config import PROJECT_DIR, load_settings
from pipeline.store import warehouse

PLUGINS = PROJECT_DIR / "plugins"
PLUGIN_FILE = PLUGINS / "digitize_search.py"
PREFIX = "/digitize-search"
GPXD = {(DEPARTMENT, "HS-GPXD-2004"), (DISTRICT, "HS-GPXD-2016"), (DISTRICT, "HS-GPXD-2019")}
# HS-GPXD-2019's holder (CITIZEN_ID in the warehouse) as the generated text prints them
HOLDER_NAME, PRINTED_ID = "Vũ Thành Dũng", "001075779078"


def load_plugin() -> ModuleType:
    """plugins/digitize_search.py as Airflow loads it."""
    return load_plugin_file(PLUGIN_FILE)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A SQLite warehouse of archived records (and one quarantined) with their PDF files."""
    folder = tmp_path_factory.mktemp("search-page")
    data = folder / "DATA"
    url = f"sqlite:///{folder / 'warehouse.sqlite'}"
    load(url)
    return {"data": data, "url": url, "pdfs": write_pdfs(url, data)}


def airflow_user(name: str, role: str) -> Any:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return SimpleAuthManagerUser(username=name, role=role)


@pytest.fixture(scope="module")
def plugin(archive: dict[str, Any]) -> Iterator[ModuleType]:
    """The plugin with the environment an API server would have: the DAGs' warehouse connection
    (and a DIGITIZE_DB_URL that is NOT the warehouse), the plugins folder on sys.path."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIGITIZE_DATA_DIR", str(archive["data"]))
        mp.setenv("DIGITIZE_DB_URL", f"sqlite:///{archive['data'] / 'not-the-warehouse.sqlite'}")
        mp.setenv("AIRFLOW_CONN_DIGITIZE_WAREHOUSE", json.dumps(
            {"conn_type": "generic", "extra": {"sqlalchemy_url": archive["url"]}}))
        mp.syspath_prepend(str(PLUGINS))  # as Airflow does (settings.prepare_syspath_for_config_and_plugins)
        yield load_plugin()


@pytest.fixture(scope="module")
def root(plugin: ModuleType) -> Iterator[Any]:
    """An app with the plugin's app mounted where Airflow mounts it."""
    from fastapi import FastAPI

    (entry,) = plugin.DigitizeSearchPlugin().fastapi_apps
    app = FastAPI()
    app.mount(entry["url_prefix"], entry["app"])
    yield app
    entry["app"].dependency_overrides.clear()


def client_as(plugin: ModuleType, root: Any, name: str, role: str) -> Any:
    """A TestClient logged in to Airflow as ``name`` with ``role``."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    plugin.search_app().dependency_overrides[get_user] = lambda: airflow_user(name, role)
    return TestClient(root)


@pytest.fixture
def viewer(plugin: ModuleType, root: Any) -> Any:
    return client_as(plugin, root, USER, "viewer")


def found(page: str) -> list[tuple[str, str]]:
    """(agency, record id) of each hit of a page, in order, from its PDF links."""
    links = re.findall(r'<a class="pdf download" href="([^"]+)" download>Tải tệp PDF</a>', page)
    out = []
    for link in links:
        parts = urlsplit(html.unescape(link)).path.removeprefix(f"{PREFIX}/pdf/").split("/")
        out.append((unquote(parts[0]), unquote(parts[1])))
    return out


def error_of(page: str) -> str:
    match = re.search(r'<p class="error" role="alert">(.*?)</p>', page, re.S)
    return html.unescape(match[1]) if match else ""


def access_rows(url: str) -> list[tuple[str, str, str | None, str | None, str]]:
    a = warehouse.access_log
    with warehouse.engine_for(url).connect() as conn:
        return [tuple(r) for r in conn.execute(  # type: ignore[misc]
            select(a.c.caller, a.c.action, a.c.agency_code, a.c.record_id, a.c.purpose).order_by(a.c.id))]


def test_the_plugin_module_imports_nothing_heavy_and_has_its_own_menu_entry_and_mount() -> None:
    """Airflow imports plugins in every component: only AirflowPlugin, no FastAPI, no pipeline."""
    code = ("import sys, importlib.util, json\nimport airflow.plugins_manager\nbefore = set(sys.modules)\n"
            f"spec = importlib.util.spec_from_file_location('digitize_search', {str(PLUGIN_FILE)!r})\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "p = m.DigitizeSearchPlugin()\n"
            "print(json.dumps([sorted(n for n in set(sys.modules) - before if n.split('.')[0] in "
            "('pipeline', 'fastapi', 'starlette', 'sqlalchemy', 'jinja2', 'digitize_progress')), "
            "p.external_views]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    imported, views = json.loads(done.stdout.strip().splitlines()[-1])
    assert imported == []
    # beside the progress page's "Tiến độ" (/digitize/, /plugin/tien-do-so-hoa)
    assert views == [{"name": "Tra cứu", "href": "digitize-search/", "destination": "nav",
                      "url_route": "tra-cuu-ho-so", "nav_top_level": True}]


def test_the_airflow_role_decides_who_reads_personal_data(plugin: ModuleType) -> None:
    from types import SimpleNamespace

    allowed = {role: plugin.may_read_personal_data(airflow_user("u", role))
               for role in ("admin", "ADMIN", "op", "user", "viewer")}
    assert allowed == {"admin": True, "ADMIN": True, "op": True, "user": False, "viewer": False}
    assert not plugin.may_read_personal_data(SimpleNamespace(role=None))  # no role: no permission
    fab = SimpleNamespace(roles=[SimpleNamespace(name="Viewer"), SimpleNamespace(name="Op")])
    assert plugin.may_read_personal_data(fab)  # FAB's users carry a list of roles


def test_without_a_login_nothing_is_served(plugin: ModuleType, root: Any, archive: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    plugin.search_app().dependency_overrides.clear()
    anonymous = TestClient(root)
    logged = len(access_rows(archive["url"]))
    for path in (f"{PREFIX}/", f"{PREFIX}/?q=giay+phep+xay+dung", f"{PREFIX}/pdf/{DISTRICT}/HS-GPXD-2019"):
        response = anonymous.get(path, headers={"accept": "application/json"})
        assert response.status_code == 401, path
        assert "Cốt nền" not in response.text and b"%PDF" not in response.content
    page = anonymous.get(f"{PREFIX}/?q=giay", headers={"accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303
    login, _, query = page.headers["location"].partition("?")
    assert login == "/api/v2/auth/login"
    assert unquote(query) == f"next=http://testserver{PREFIX}/?q=giay"
    assert len(access_rows(archive["url"])) == logged


def test_words_without_tone_marks_find_the_records_with_marked_snippets(viewer: Any) -> None:
    opened = viewer.get(f"{PREFIX}/")  # the page as the menu opens it: the form, no search yet
    assert opened.status_code == 200 and opened.headers["cache-control"] == "private, no-cache"
    assert f'<form class="filters search" method="get" action="{PREFIX}/" role="search">' in opened.text
    assert '<section class="results"' not in opened.text and not error_of(opened.text)
    assert f'<option value="{DISTRICT}">{DISTRICT} UBND huyện Đông Anh</option>' in opened.text
    assert '<option value="GD2">Giai đoạn 2 (ban hành 2006–2021)</option>' in opened.text

    response = viewer.get(f"{PREFIX}/", params={"q": "giay phep xay dung"})
    assert response.status_code == 200
    page = response.text
    assert set(found(page)) == GPXD  # the quarantined building permit is never found
    assert "Tìm thấy 3 hồ sơ, phù hợp nhất trước; đang hiện 1–3." in page
    assert 'value="giay phep xay dung"' in page  # the form keeps the query
    marks = {m.lower() for m in re.findall(r"<mark>([^<]+)</mark>", page)}
    assert {"xây", "dựng"} <= marks  # the original words, with their tone marks
    assert "Cốt nền <mark>xây</mark> <mark>dựng</mark> công trình" in page
    assert "Cấp giấy phép xây dựng đối với nhà ở riêng lẻ" in page  # the procedure's name
    assert "<mark>" not in page.split('<section class="results"')[0]  # marks in snippets only

    # markup and SQL in the query are only words: echoed as text, searched as words
    for query in ("<script>alert(1)</script>", "'; DROP TABLE records; --"):
        response = viewer.get(f"{PREFIX}/", params={"q": query})
        assert response.status_code == 200 and not found(response.text)
        assert "<script>alert" not in response.text  # escaped: shown as text, never run
        assert f"Không tìm thấy hồ sơ nào có đủ các từ “{query}”" in html.unescape(response.text)
    assert set(found(viewer.get(f"{PREFIX}/", params={"q": "giay phep"}).text)) >= GPXD  # still there


@pytest.mark.parametrize(("params", "expected"), [
    ({"agency": DISTRICT}, {(DISTRICT, "HS-GPXD-2016"), (DISTRICT, "HS-GPXD-2019")}),
    ({"level": "tinh"}, {(DEPARTMENT, "HS-GPXD-2004")}),
    ({"level": "Huyện"}, {(DISTRICT, "HS-GPXD-2016"), (DISTRICT, "HS-GPXD-2019")}),
    ({"year_from": "2010", "year_to": "2017"}, {(DISTRICT, "HS-GPXD-2016")}),
    ({"phase": "GD3"}, {(DEPARTMENT, "HS-GPXD-2004")}),  # issued 2005 and before
    ({"procedure": "1.004227", "agency": DEPARTMENT}, {(DEPARTMENT, "HS-GPXD-2004")}),
    ({"procedure": "1.001612"}, set()),
    ({"agency": "", "procedure": "", "level": "", "year_from": "", "year_to": "", "phase": "",
      "still_valid": "", "purpose": "", "page": ""}, GPXD),  # an untouched form filters nothing
])
def test_filters_narrow_the_results(viewer: Any, params: dict[str, str],
                                    expected: set[tuple[str, str]]) -> None:
    response = viewer.get(f"{PREFIX}/", params={"q": "giay phep xay dung", **params})
    assert response.status_code == 200, error_of(response.text)
    assert set(found(response.text)) == expected
    if not expected:
        assert "Không tìm thấy hồ sơ nào có đủ các từ “giay phep xay dung”" in response.text


def test_still_valid_and_the_form_keeps_the_choices(viewer: Any) -> None:
    query = {"q": "dang ky thanh lap ho kinh doanh"}
    assert set(found(viewer.get(f"{PREFIX}/", params=query).text)) == {
        (DISTRICT, "HS-HKD-2010"), (DISTRICT, "HS-HET-HIEU-LUC")}
    page = viewer.get(f"{PREFIX}/", params={**query, "still_valid": "false", "level": "Huyện",
                                            "phase": "GD2", "agency": DISTRICT}).text
    assert found(page) == [(DISTRICT, "HS-HET-HIEU-LUC")]
    assert "hết hiệu lực" in page
    for chosen in ('<option value="false" selected>', '<option value="huyen" selected>',
                   '<option value="GD2" selected>', f'<option value="{DISTRICT}" selected>'):
        assert chosen in page


def test_pages_of_results(viewer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search_page, "PAGE_SIZE", 3)
    query = {"q": "cong hoa xa hoi chu nghia", "level": "", "agency": DISTRICT}
    first = viewer.get(f"{PREFIX}/", params=query).text
    assert "Tìm thấy 5 hồ sơ, phù hợp nhất trước; đang hiện 1–3." in first
    links = re.findall(r'<a class="(\w+)" href="([^"]+)">([^<]+)</a>', first.split('<nav class="pages"')[1])
    assert [(css, text) for css, _, text in links] == [("page", "2"), ("next", "Trang sau »")]
    following = html.unescape(links[-1][1])
    assert parse_qs(urlsplit(following).query) == {"q": ["cong hoa xa hoi chu nghia"],
                                                   "agency": [DISTRICT], "page": ["2"]}
    second = viewer.get(following).text
    assert "đang hiện 4–5." in second and '<ol class="hits" start="4">' in second
    assert '<span class="current">2</span>' in second and "« Trang trước" in second
    assert len(set(found(first)) | set(found(second))) == 5  # every hit once
    beyond = viewer.get(f"{PREFIX}/", params={**query, "page": "9"}).text
    assert "Có 5 hồ sơ; trang 9 không còn hồ sơ nào (có 2 trang)." in beyond and not found(beyond)
    back = re.findall(r'<a class="(\w+)" href="[^"]+page=(\d+)">', beyond)
    assert back == [("previous", "2"), ("page", "1"), ("page", "2")]


@pytest.mark.parametrize(("params", "message"), [
    ({"q": ""}, "Câu tìm kiếm cần ít nhất 2 chữ cái hoặc chữ số"),
    ({"q": "   "}, "Câu tìm kiếm cần ít nhất 2 chữ cái hoặc chữ số"),
    ({"q": "x" * 2000}, "Câu tìm kiếm dài 2000 ký tự, quá 500"),
    ({"q": "giay phep", "agency": "000.99.99.H99"}, "Không có cơ quan mã '000.99.99.H99' trong kho dữ liệu"),
    ({"q": "giay phep", "level": "thôn"}, "Cấp 'thôn' không có: dùng tinh, huyen hoặc xa."),
    ({"q": "giay phep", "year_from": "20x5"}, "Năm ban hành từ “20x5” không hợp lệ: ghi năm bốn chữ số"),
    ({"q": "giay phep", "year_from": "2020", "year_to": "2010"}, "Khoảng năm ban hành 2020–2010 bị ngược"),
    ({"q": "giay phep", "phase": "GD9"}, "Kế hoạch không có giai đoạn 'GD9'; các giai đoạn: GD1, GD2, GD3."),
    ({"q": "giay phep", "phase": "GD1"}, "Giai đoạn GD1 không số hóa kết quả nào"),
    ({"q": "giay phep", "still_valid": "maybe"}, "Hiệu lực “maybe” không có"),
    ({"q": "giay phep", "page": "0"}, "Trang “0” không hợp lệ: ghi số trang, từ 1."),
    ({"q": "giay phep", "page": "1e9"}, "Trang “1e9” không hợp lệ"),
    ({"q": "giay phep", "purpose": "x" * 300}, "Mục đích khai thác dài 300 ký tự, quá 255"),
])
def test_a_search_that_cannot_run_is_a_clear_400_with_the_form(viewer: Any, params: dict[str, str],
                                                              message: str) -> None:
    response = viewer.get(f"{PREFIX}/", params=params)
    assert response.status_code == 400
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert message in error_of(response.text)
    assert '<form class="filters search"' in response.text and not found(response.text)
    assert "Traceback" not in response.text and "Error" not in response.text


def test_a_viewer_sees_holder_data_masked_an_admin_sees_it_and_is_logged(
        plugin: ModuleType, root: Any, archive: dict[str, Any]) -> None:
    query = {"q": "vu thanh dung"}
    before = len(access_rows(archive["url"]))
    masked = client_as(plugin, root, USER, "viewer").get(f"{PREFIX}/", params=query).text
    assert found(masked) == [(DISTRICT, "HS-GPXD-2019")]
    for secret in (HOLDER_NAME, PRINTED_ID, CITIZEN_ID, "Dũng</mark>"):
        assert secret not in masked
    assert "Cấp cho: Ông ***, số định danh cá nhân *********078." in masked
    assert "được che: vai trò của tài khoản này không được" in masked
    assert len(access_rows(archive["url"])) == before  # nothing personal was read

    shown = client_as(plugin, root, "quantri", "admin").get(
        f"{PREFIX}/", params={**query, "purpose": "  Hồ sơ một cửa  000.12.34 "}).text
    assert found(shown) == [(DISTRICT, "HS-GPXD-2019")]
    assert f"Người được cấp: {HOLDER_NAME} — mã định danh {CITIZEN_ID}" in shown
    assert "<mark>Vũ</mark> <mark>Thành</mark> <mark>Dũng</mark>" in shown
    assert access_rows(archive["url"])[before:] == [
        ("airflow:quantri", "record", DISTRICT, "HS-GPXD-2019", "Hồ sơ một cửa 000.12.34")]
    # the purpose goes with the PDF link
    (link,) = re.findall(r'<a class="pdf download" href="([^"]+)"', shown)
    assert parse_qs(urlsplit(html.unescape(link)).query) == {"purpose": ["Hồ sơ một cửa 000.12.34"]}


def test_the_pdf_is_the_archived_file_and_is_logged(viewer: Any, archive: dict[str, Any]) -> None:
    page = viewer.get(f"{PREFIX}/", params={"q": "giay phep xay dung", "agency": DEPARTMENT}).text
    (link,) = re.findall(r'<a class="pdf download" href="([^"]+)" download>', page)
    # the same file behind the link that shows it in a new tab (the page opened on its own)
    assert f'<a class="pdf view" href="{link}" target="_blank" rel="noopener">' in page
    before = len(access_rows(archive["url"]))
    response = viewer.get(html.unescape(link))
    assert response.status_code == 200
    expected = archive["pdfs"]["HS-GPXD-2004"].read_bytes()
    assert response.content == expected
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["etag"].strip('"') == warehouse_sha(archive["url"], "HS-GPXD-2004")
    assert response.headers["content-disposition"].startswith("inline")
    assert access_rows(archive["url"])[before:] == [
        (f"airflow:{USER}", "pdf", DEPARTMENT, "HS-GPXD-2004", "tra cứu lưu trữ")]
    # a range, as a PDF viewer asks for one
    part = viewer.get(html.unescape(link), headers={"range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == expected[:100]

    # no such archived record (quarantined, or none at all): a page saying so, nothing logged
    logged = len(access_rows(archive["url"]))
    for agency, record in ((DISTRICT, "HS-CACH-LY"), (DISTRICT, "HS/KHONG-CO")):
        missing = viewer.get(f"{PREFIX}/pdf/{agency}/{quote(record, safe='')}",
                             headers={"accept": "text/html"})
        assert missing.status_code == 404
        assert f"Không có hồ sơ {record} đã lưu trữ của cơ quan {agency}." in missing.text
        assert "Về trang tra cứu hồ sơ" in missing.text
    assert len(access_rows(archive["url"])) == logged


def warehouse_sha(url: str, record_id: str) -> str:
    r = warehouse.records
    with warehouse.engine_for(url).connect() as conn:
        return conn.execute(select(r.c.pdf_sha256).where(r.c.record_id == record_id)).scalar_one()


def test_an_unmigrated_warehouse_is_a_503_not_a_traceback(viewer: Any, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DIGITIZE_WAREHOUSE", json.dumps(
        {"conn_type": "sqlite", "host": str(tmp_path / "empty.sqlite")}))
    response = viewer.get(f"{PREFIX}/", params={"q": "giay phep"})
    assert response.status_code == 503
    assert "Chưa tra cứu được" in response.text and "Traceback" not in response.text


# --- a real Airflow API server and headless Chromium ----------------------------------------------
@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, archive: dict[str, Any],
         migrated_airflow_db: Path) -> Iterator[dict[str, Any]]:
    """One ``airflow api-server`` with the project's plugins, a copy of the session's migrated
    metadata database, the archive above as its ``digitize_warehouse``, one Viewer."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        skip_or_fail(f"{CHROMIUM} or {CHROMEDRIVER} missing (apt-get install chromium chromium-driver)")
    started = time.monotonic()
    tmp = tmp_path_factory.mktemp("live-search")
    port = free_port()
    settings = load_settings(data_dir=archive["data"], db_url=archive["url"],
                             ui_base_url=f"http://127.0.0.1:{port}")
    with serving(server_env(settings, tmp, migrated_airflow_db, archive["url"]), port,
                 tmp / "api-server.log") as server:
        server.wait_healthy(timeout=180)
        print(f"[{time.monotonic() - started:.0f} s] API server up on {server.base}")
        downloads = tmp / "downloads"
        downloads.mkdir()
        yield {"base": server.base, "url": archive["url"], "pdfs": archive["pdfs"], "started": started,
               "downloads": downloads}


@pytest.fixture(scope="module")
def chromium(live: dict[str, Any]) -> Iterator[Any]:
    """Headless Chromium for the module's live test; downloads go to live["downloads"]."""
    driver = start_chromium(downloads=live["downloads"])
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.slow
@pytest.mark.airflow
def test_an_archivist_finds_a_record_in_the_airflow_ui_and_opens_its_pdf(
        live: dict[str, Any], chromium: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base, browser = live["base"], chromium

    def since() -> str:
        return f"[{time.monotonic() - live['started']:.0f} s]"

    # registered beside the progress page; nothing without a login
    status, _, body = http(f"{base}/auth/token", headers={"content-type": "application/json"},
                           data=json.dumps({"username": USER, "password": PASSWORD}).encode())
    assert status == 201, body
    status, _, body = http(f"{base}/api/v2/plugins",
                           headers={"authorization": f"Bearer {json.loads(body)['access_token']}"})
    plugins = {p["name"]: p for p in json.loads(body)["plugins"]}
    assert {"digitize_progress", "digitize_search"} <= set(plugins)
    assert [(a["url_prefix"], a["name"]) for a in plugins["digitize_search"]["fastapi_apps"]] == [
        (PREFIX, "Tra cứu hồ sơ số hóa")]
    status, _, body = http(f"{base}{PREFIX}/?q=giay+phep", headers={"accept": "application/json"})
    assert status == 401 and b"Not authenticated" in body

    # the page asked for without a login: Airflow's login form, then back to the page
    browser.get(f"{base}{PREFIX}/")
    user_box = wait_until("Airflow's login form", lambda: browser.find_element(By.NAME, "username"))
    user_box.send_keys(USER)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until("the search page after the login",
               lambda: browser.find_element(By.CSS_SELECTOR, "form.search"))
    assert urlsplit(browser.current_url).path == f"{PREFIX}/"
    print(f"{since()} logged in")

    # the menu entry, beside "Tiến độ", opens the page inside the UI
    browser.get(f"{base}/")
    entry = wait_until("the menu entry",
                       lambda: browser.find_element(By.CSS_SELECTOR, 'a[href$="plugin/tra-cuu-ho-so"]'))
    assert browser.find_element(By.CSS_SELECTOR, 'a[href$="plugin/tien-do-so-hoa"]')
    # the label's own element is not cut by the 56 px bar (text-overflow: ellipsis)
    fit = browser.execute_script("""
        const el = [...arguments[0].querySelectorAll('*')].find(
            e => e.children.length === 0 && e.textContent.trim() !== '');
        return {shown: el.innerText, scroll: el.scrollWidth, client: el.clientWidth};""", entry)
    assert fit["shown"] == "Tra cứu" and fit["scroll"] <= fit["client"], fit
    entry.click()
    frame = wait_until("the search page's frame",
                       lambda: browser.find_element(By.CSS_SELECTOR, 'iframe[title="Tra cứu"]'))
    assert urlsplit(browser.current_url).path.startswith("/plugin/tra-cuu-ho-so")
    browser.switch_to.frame(frame)
    box = wait_until("the search box", lambda: browser.find_element(By.NAME, "q"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "TRA CỨU HỒ SƠ SỐ HÓA"

    # a query typed without tone marks finds the building permits, the words marked in the snippets
    box.send_keys("giay phep xay dung", Keys.ENTER)
    hits = wait_until("the results", lambda: browser.find_elements(By.CSS_SELECTOR, "ol.hits li.hit"))
    assert len(hits) == 3
    assert browser.find_element(By.CSS_SELECTOR, "p.summary").text == (
        "Tìm thấy 3 hồ sơ, phù hợp nhất trước; đang hiện 1–3.")
    snippet = hits[0].find_element(By.CSS_SELECTOR, "p.snippet")
    assert "Cốt nền xây dựng công trình" in snippet.text
    marked = {m.text.lower() for m in snippet.find_elements(By.TAG_NAME, "mark")}
    assert {"xây", "dựng"} <= marked
    background = snippet.find_element(By.TAG_NAME, "mark").value_of_css_property("background-color")
    assert background == "rgba(255, 241, 118, 1)"  # drawn highlighted, not only tagged
    assert HOLDER_NAME not in browser.page_source  # a Viewer: masked
    print(f"{since()} 3 hits for 'giay phep xay dung', marked: {sorted(marked)}")
    browser.switch_to.default_content()
    shot = tmp_path / "tra-cuu.png"
    assert browser.save_screenshot(str(shot))
    update_docs_screenshot(shot, "tra-cuu.png")
    browser.switch_to.frame(frame)

    # the first hit's PDF, as the archivist gets it inside the UI: downloaded (the UI's frame is
    # sandboxed: no new tab, and Chromium shows no PDF in it), the archived bytes, logged
    framed = browser.find_element(By.CSS_SELECTOR, "p.framed-only")
    assert framed.is_displayed() and "mở trang tra cứu ở thẻ riêng" in framed.text
    assert not hits[0].find_element(By.CSS_SELECTOR, "a.pdf.view").is_displayed()
    link = hits[0].find_element(By.LINK_TEXT, "Tải tệp PDF")
    href = link.get_attribute("href")
    agency, record_id = (unquote(p) for p in urlsplit(href).path.removeprefix(f"{PREFIX}/pdf/").split("/"))
    archived = live["pdfs"][record_id]
    link.click()
    downloaded = live["downloads"] / archived.name  # the name the server sends
    wait_until(f"the download {downloaded.name}", downloaded.is_file)
    assert downloaded.read_bytes() == archived.read_bytes()
    assert (f"airflow:{USER}", "pdf", agency, record_id, "tra cứu lưu trữ") in access_rows(live["url"])
    print(f"{since()} PDF of {agency}/{record_id} downloaded in the UI: the archived bytes, logged")

    # the page opened on its own (the address the framed page gives): the PDF also opens in a tab
    own = framed.find_element(By.TAG_NAME, "code").text
    assert own == f"{base}{PREFIX}/?q=giay+phep+xay+dung"  # the filled-in fields only
    browser.get(own)
    view = wait_until("the page on its own", lambda: browser.find_element(By.CSS_SELECTOR, "a.pdf.view"))
    assert view.is_displayed() and view.get_attribute("target") == "_blank"
    assert not browser.find_element(By.CSS_SELECTOR, "p.framed-only").is_displayed()
    assert len(browser.find_elements(By.CSS_SELECTOR, "ol.hits li.hit")) == 3
