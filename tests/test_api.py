"""The read API (pipeline.access.api) over a real HTTP server: ``digitize serve`` started as a
process and called with httpx, on a warehouse filled as a run fills it (tests/test_search.py's
``load``) whose records point at real PDF files on disk with their SHA-256."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pikepdf
import psutil
import pytest
from conftest import digitize as run_digitize
from conftest import free_port, tail
from sqlalchemy import text
from test_search import CITIZEN_ID, DEPARTMENT, DISTRICT, OLD_ID, Spec, load

from pipeline.access import api, tokens
from pipeline.store import archive, warehouse

OTHER_ID = "001063263804"  # another person
# One person (CITIZEN_ID, and OLD_ID on a paper from before 2016) with results at the district
# and at the department, one of them no longer valid; another person at the district.
SPECS = (
    Spec("HS/001", DISTRICT, 1, dt.date(2019, 3, 5), CITIZEN_ID),
    Spec("HS/002", DISTRICT, 0, dt.date(2010, 6, 1), OLD_ID),
    Spec("HS/003", DEPARTMENT, 2, dt.date(2021, 5, 4), CITIZEN_ID),
    Spec("HS/004", DISTRICT, 2, dt.date(2014, 9, 12), OTHER_ID),
    Spec("HS/005", DISTRICT, 0, dt.date(2021, 1, 8), CITIZEN_ID, still_valid=False),
)
PURPOSE = "giải quyết hồ sơ 000.00.12.H12-240501-0001"
HOLDER_IDS = (CITIZEN_ID, OLD_ID, OTHER_ID)


@dataclass(frozen=True)
class Served:
    base: str
    url: str  # the warehouse
    data_dir: Path
    log: Path  # the server's stdout and stderr
    pdfs: dict[str, Path]  # record id -> its archived file


def write_pdfs(url: str, data_dir: Path) -> dict[str, Path]:
    """A real PDF for each archived record where a run puts it, and the warehouse row pointing at
    it with its SHA-256 (``load`` gives made-up paths)."""
    r = warehouse.records
    pdfs: dict[str, Path] = {}
    with warehouse.engine_for(url).begin() as conn:
        rows = conn.execute(r.select().where(r.c.status == "archived")).all()
        for row in rows:
            path = archive.archive_path(data_dir / "archive", row.agency_code, row.issued_on.year,
                                        row.record_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            with pikepdf.new() as pdf:
                pdf.add_blank_page()
                pdf.docinfo["/Title"] = row.record_id
                # some kilobytes, so that a range is a part of the file
                pdf.pages[0].obj.Contents = pdf.make_stream(b"% padding\n" * 400)
                pdf.save(path, compress_streams=False)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            conn.execute(r.update().where(r.c.id == row.id).values(pdf_path=str(path), pdf_sha256=digest))
            pdfs[row.record_id] = path
    return pdfs


def start_server(data_dir: Path, url: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "DIGITIZE_DATA_DIR": str(data_dir), "DIGITIZE_DB_URL": url}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "serve", "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail(f"digitize serve exited ({proc.returncode}):\n{tail(log)}")
        try:
            if httpx.get(f"{base}/api/v1/openapi.json", timeout=5).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"digitize serve did not answer within 60 s:\n{tail(log)}")
        time.sleep(0.3)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


@contextlib.contextmanager
def serving(folder: Path, url: str) -> Iterator[Served]:
    data_dir = folder / "var"
    load(url, SPECS)
    pdfs = write_pdfs(url, data_dir)
    log = folder / "serve.log"
    proc, base = start_server(data_dir, url, log)
    try:
        yield Served(base, url, data_dir, log, pdfs)
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server on a SQLite warehouse for the tests of this module that only read."""
    folder = tmp_path_factory.mktemp("api")
    with serving(folder, f"sqlite:///{folder / 'warehouse.sqlite'}") as served:
        yield served


_names = iter(range(10**6))


def token(served: Served, agencies: list[str] | None = None,
          personal: bool = False) -> tuple[str, dict[str, str]]:
    """A new token's caller name and its Authorization header."""
    name = f"he-thong-{next(_names)}"
    value = tokens.create_token(served.url, name, agencies, personal_data=personal)
    return name, {"Authorization": f"Bearer {value}"}


def get(served: Served, path: str, headers: dict[str, str] | None = None, **params: object) -> httpx.Response:
    return httpx.get(f"{served.base}/api/v1{path}", headers=headers, params=params, timeout=60)


def access_rows(url: str, caller: str) -> list[tuple[str, str | None, str | None, str]]:
    with warehouse.engine_for(url).connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT action, agency_code, record_id, purpose FROM access_log WHERE caller = :c "
            "ORDER BY id"), {"c": caller})]


def holder_path(holder_id: str = CITIZEN_ID) -> str:
    return f"/holders/{holder_id}/records"


def cli(served: Served, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DIGITIZE_DATA_DIR": str(served.data_dir), "DIGITIZE_DB_URL": served.url}
    return run_digitize(*args, env=env)


# --- tokens ----------------------------------------------------------------------------------------

def test_no_token_unknown_token_and_revoked_token_are_refused(server: Served) -> None:
    missing = get(server, holder_path(), purpose=PURPOSE)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "mã truy cập" in missing.json()["error"]
    assert get(server, "/search", {"Authorization": "Bearer " + "x" * 43}, q="giay phep").status_code == 401
    assert get(server, "/search", {"Authorization": "Basic dXNlcjpwYXNz"}, q="giay phep").status_code == 401

    created = cli(server, "tokens", "create", "motcua-tinh", "--personal-data")
    assert created.returncode == 0, created.stderr
    value = created.stdout.strip()
    assert len(value) == 43 and "chỉ hiện lần này" in created.stderr
    bearer = {"Authorization": f"Bearer {value}"}
    assert get(server, "/records/" + DISTRICT + "/HS/001", bearer).status_code == 200
    with warehouse.engine_for(server.url).connect() as conn:  # only the hash is kept
        stored = conn.execute(text("SELECT token_sha256 FROM api_tokens WHERE name = 'motcua-tinh'")).scalar()
    assert stored == hashlib.sha256(value.encode()).hexdigest()

    revoked = cli(server, "tokens", "revoke", "motcua-tinh")
    assert revoked.returncode == 0, revoked.stderr
    refused = get(server, "/records/" + DISTRICT + "/HS/001", bearer)
    assert refused.status_code == 401 and refused.json()["error"]
    listed = json.loads(cli(server, "tokens", "list", "--json").stdout)
    mine = next(t for t in listed if t["name"] == "motcua-tinh")
    assert mine["revoked_at"] and mine["personal_data"] and mine["agencies"] is None
    assert value not in json.dumps(listed)
    again = cli(server, "tokens", "create", "motcua-tinh")  # a name is never reused
    assert again.returncode == 2 and "Đã có mã truy cập" in again.stderr
    unknown = cli(server, "tokens", "create", "motcua-x", "--agency", "999.99.99.H99")
    assert unknown.returncode == 2 and "999.99.99.H99" in unknown.stderr


def test_other_agencies_are_forbidden(server: Served) -> None:
    _, district = token(server, [DISTRICT])
    assert get(server, f"/records/{DISTRICT}/HS/001", district).status_code == 200
    outside = get(server, f"/records/{DEPARTMENT}/HS/003", district)
    assert outside.status_code == 403 and DEPARTMENT in outside.json()["error"]
    assert get(server, f"/records/{DEPARTMENT}/HS/003/pdf", district, purpose=PURPOSE).status_code == 403
    assert get(server, "/search", district, q="giay", agency=DEPARTMENT).status_code == 403
    # the holder's results at the department are not shown to the district's token
    found = get(server, holder_path(), district, purpose=PURPOSE).json()
    assert {r["agency_code"] for r in found["records"]} == {DISTRICT}


# --- the holder's records ----------------------------------------------------------------------------

def test_holder_lookup_needs_a_purpose_and_a_well_formed_id(server: Served) -> None:
    name, bearer = token(server)
    without = get(server, holder_path(), bearer)
    assert without.status_code == 400 and "purpose" in without.json()["error"]
    blank = get(server, holder_path(), bearer, purpose="   ")
    assert blank.status_code == 400 and "purpose" in blank.json()["error"]
    wrong = get(server, holder_path("12345"), bearer, purpose=PURPOSE)
    assert wrong.status_code == 400 and "12 chữ số" in wrong.json()["error"]
    wrong_also = get(server, holder_path(), bearer, purpose=PURPOSE, also="abc")
    assert wrong_also.status_code == 400
    assert get(server, holder_path(), bearer, purpose=PURPOSE, limit=0).status_code == 400
    # the lookup reads its parameters itself (pipeline.access.api.HolderQuery): the same answers
    # as FastAPI's for the other routes, every bad one named
    both = get(server, holder_path(), bearer, purpose="x" * 256, limit="abc", offset=-1)
    assert both.status_code == 400
    assert [part.split()[2] for part in both.json()["error"].split("; ")] == ["purpose", "limit", "offset"]
    too_many = get(server, holder_path(), bearer, purpose=PURPOSE, also=[OLD_ID] * 5)
    assert too_many.status_code == 400 and "tối đa 5" in too_many.json()["error"]
    assert get(server, holder_path(), {"Authorization": "Basic dXNlcjpwYXNz"},
               purpose=PURPOSE).status_code == 401
    assert access_rows(server.url, name) == []  # nothing was looked up


def test_holder_lookup_newest_first_logged_and_personal_data_only_when_allowed(server: Served) -> None:
    personal_name, personal = token(server, personal=True)
    plain_name, plain = token(server)
    page = get(server, holder_path(), personal, purpose=PURPOSE, also=OLD_ID).json()
    # still-valid results of both ids, newest first; HS/005 is no longer valid
    assert [r["record_id"] for r in page["records"]] == ["HS/003", "HS/001", "HS/002"]
    assert (page["total"], page["limit"], page["offset"], page["next"]) == (3, 20, 0, None)
    with warehouse.engine_for(server.url).connect() as conn:
        holder_name = conn.execute(
            text("SELECT holder_name FROM records WHERE record_id = 'HS/001'")).scalar()
    first = page["records"][1]
    assert (first["holder_id"], first["holder_name"]) == (CITIZEN_ID, holder_name)
    assert first["issued_on"] == "2019-03-05" and first["procedure_name"]
    assert first["pdf_url"] == f"{server.base}/api/v1/records/{DISTRICT}/HS/001/pdf"

    hidden = get(server, holder_path(), plain, purpose=PURPOSE, also=OLD_ID)
    assert [r["record_id"] for r in hidden.json()["records"]] == ["HS/003", "HS/001", "HS/002"]
    assert all("holder_id" not in r and "holder_name" not in r for r in hidden.json()["records"])
    assert CITIZEN_ID not in hidden.text and OLD_ID not in hidden.text and holder_name not in hidden.text

    # one access-log row per record handed out, with the caller and the purpose
    assert access_rows(server.url, personal_name) == [
        ("holder_lookup", DEPARTMENT, "HS/003", PURPOSE), ("holder_lookup", DISTRICT, "HS/001", PURPOSE),
        ("holder_lookup", DISTRICT, "HS/002", PURPOSE)]
    assert len(access_rows(server.url, plain_name)) == 3

    # pages: only the records of the page are handed out, so only they are logged
    first_page = get(server, holder_path(), plain, purpose="trang", also=OLD_ID, limit=2).json()
    assert [r["record_id"] for r in first_page["records"]] == ["HS/003", "HS/001"]
    assert first_page["total"] == 3 and first_page["next"]
    second = httpx.get(first_page["next"], headers=plain, timeout=60).json()
    assert [r["record_id"] for r in second["records"]] == ["HS/002"] and second["next"] is None
    assert [row[2] for row in access_rows(server.url, plain_name)[3:]] == ["HS/003", "HS/001", "HS/002"]

    nobody = get(server, holder_path("079203000111"), plain, purpose="không có ai").json()
    assert nobody["total"] == 0 and nobody["records"] == []
    assert access_rows(server.url, plain_name)[-1] == ("holder_lookup", None, None, "không có ai")


# --- one record and its PDF ------------------------------------------------------------------------

def test_one_record_with_a_slash_in_its_id(server: Served) -> None:
    name, bearer = token(server)
    got = get(server, f"/records/{DISTRICT}/HS/001", bearer, purpose="kiểm tra")
    assert got.status_code == 200
    record = got.json()
    assert (record["agency_code"], record["record_id"], record["version"]) == (DISTRICT, "HS/001", 1)
    assert record["pdf_sha256"] == hashlib.sha256(server.pdfs["HS/001"].read_bytes()).hexdigest()
    assert "holder_id" not in record
    assert access_rows(server.url, name) == [("record", DISTRICT, "HS/001", "kiểm tra")]
    missing = get(server, f"/records/{DISTRICT}/HS/999", bearer)
    assert missing.status_code == 404 and "HS/999" in missing.json()["error"]


def test_pdf_bytes_etag_304_range_and_a_changed_file_never_served(server: Served) -> None:
    name, bearer = token(server)
    archived = server.pdfs["HS/001"].read_bytes()
    sha = hashlib.sha256(archived).hexdigest()
    assert len(archived) > 2000
    path = f"/records/{DISTRICT}/HS/001/pdf"

    assert get(server, path, bearer).status_code == 400  # no purpose

    whole = get(server, path, bearer, purpose=PURPOSE)
    assert whole.status_code == 200 and whole.content == archived
    assert whole.headers["etag"] == f'"{sha}"' and whole.headers["content-type"] == "application/pdf"
    assert whole.headers["accept-ranges"] == "bytes"

    same = get(server, path, {**bearer, "If-None-Match": f'"{sha}"'}, purpose=PURPOSE)
    assert same.status_code == 304 and same.content == b""
    assert get(server, path, {**bearer, "If-None-Match": '"0000"'}, purpose=PURPOSE).status_code == 200

    part = get(server, path, {**bearer, "Range": "bytes=100-1099"}, purpose=PURPOSE)
    assert part.status_code == 206
    assert part.content == archived[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(archived)}"
    assert access_rows(server.url, name) == [("pdf", DISTRICT, "HS/001", PURPOSE)] * 4

    # a file changed on disk (same size, one byte) is refused, and not logged as handed out
    changed = server.pdfs["HS/004"]
    data = bytearray(changed.read_bytes())
    data[-20] ^= 1
    changed.write_bytes(bytes(data))
    refused = get(server, f"/records/{DISTRICT}/HS/004/pdf", bearer, purpose=PURPOSE)
    assert refused.status_code == 409
    assert refused.json()["error"].startswith("Tệp PDF của hồ sơ HS/004") and b"%PDF" not in refused.content
    refused_part = get(server, f"/records/{DISTRICT}/HS/004/pdf", {**bearer, "Range": "bytes=0-99"},
                       purpose=PURPOSE)
    assert refused_part.status_code == 409
    server.pdfs["HS/005"].unlink()
    gone = get(server, f"/records/{DISTRICT}/HS/005/pdf", bearer, purpose=PURPOSE)
    assert gone.status_code == 409 and "không còn trong kho" in gone.json()["error"]
    assert len(access_rows(server.url, name)) == 4
    assert "HS/004" in tail(server.log, 40)  # the operator is told which file


def test_search_pages_with_snippets_within_the_tokens_agencies(server: Served) -> None:
    _, district = token(server, [DISTRICT])
    _, province = token(server, personal=True)
    everywhere = get(server, "/search", province, q="cong hoa xa hoi chu nghia viet nam", limit=2).json()
    assert everywhere["total"] == 5 and len(everywhere["hits"]) == 2 and everywhere["next"]
    hit = everywhere["hits"][0]
    assert "<mark>" in hit["snippet_html"] and hit["score"] > 0
    assert "holder_id" not in hit and "holder_name" not in hit  # search never hands out the holder
    rest = httpx.get(everywhere["next"], headers=province, timeout=60).json()
    assert rest["offset"] == 2 and len(rest["hits"]) == 2
    scoped = get(server, "/search", district, q="cong hoa xa hoi chu nghia viet nam", limit=100).json()
    assert {h["agency_code"] for h in scoped["hits"]} == {DISTRICT} and scoped["total"] == 4
    dated = get(server, "/search", province, q="viet nam", year_from=2019, year_to=2021).json()
    assert {h["record_id"] for h in dated["hits"]} == {"HS/001", "HS/003", "HS/005"}
    for bad in ({"q": ""}, {"q": "x" * 2000}, {"q": "viet nam", "agency": "999"},
                {"q": "viet nam", "year_from": "hai nghìn"}, {"q": "viet nam", "level": "tỉnh"}):
        refused = get(server, "/search", province, **bad)
        assert refused.status_code == 400, bad
        assert refused.json()["error"], bad


def test_openapi_and_docs(server: Served) -> None:
    spec = get(server, "/openapi.json").json()
    assert {"/api/v1/holders/{holder_id}/records", "/api/v1/records/{agency_code}/{record_id}",
            "/api/v1/records/{agency_code}/{record_id}/pdf", "/api/v1/search"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    # the holder lookup's parameters, which the route reads itself, are described as FastAPI
    # describes the others'
    lookup = spec["paths"]["/api/v1/holders/{holder_id}/records"]["get"]
    described = {p["name"]: p for p in lookup["parameters"]}
    assert [(p["name"], p["in"], p["required"]) for p in lookup["parameters"]] == [
        ("holder_id", "path", True), ("purpose", "query", True), ("also", "query", False),
        ("limit", "query", False), ("offset", "query", False)]
    assert described["purpose"]["schema"]["maxLength"] == 255
    assert described["also"]["schema"]["items"]["type"] == "string"
    assert (described["limit"]["schema"]["minimum"], described["limit"]["schema"]["maximum"]) == (1, 100)
    assert lookup["security"] == [{"HTTPBearer": []}]
    assert lookup["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("RecordPage")
    assert "swagger" in get(server, "/docs").text.lower()


# --- load and privacy --------------------------------------------------------------------------------

def test_fifty_concurrent_lookups_of_one_holder(server: Served) -> None:
    name, bearer = token(server, personal=True)
    start = threading.Barrier(50)

    def lookup(_: int) -> tuple[int, list[str]]:
        start.wait()
        response = get(server, holder_path(), bearer, purpose="tải thử", also=OLD_ID)
        return response.status_code, [r["record_id"] for r in response.json().get("records", [])]

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lookup, range(50)))
    assert results == [(200, ["HS/003", "HS/001", "HS/002"])] * 50
    assert len(access_rows(server.url, name)) == 150


def test_server_output_never_holds_a_holder_id(server: Served) -> None:
    _, bearer = token(server, personal=True)
    get(server, holder_path(), bearer, purpose=PURPOSE, also=[OLD_ID, OTHER_ID])
    get(server, holder_path(OLD_ID), bearer)  # refused: no purpose
    get(server, holder_path(CITIZEN_ID + "99"), bearer, purpose=PURPOSE)  # refused: bad shape
    get(server, f"/holders/{quote(OLD_ID)}/records", bearer, purpose=PURPOSE, also="0101234567-001")
    masked = "/api/v1/holders/*********441/records"
    deadline = time.monotonic() + 10
    while masked not in server.log.read_text(encoding="utf-8") and time.monotonic() < deadline:
        time.sleep(0.2)
    output = server.log.read_text(encoding="utf-8")
    assert f'"GET {masked}" 200' in output and "caller=he-thong-" in output
    for holder_id in (*HOLDER_IDS, CITIZEN_ID + "99", "0101234567", "0101234567-001"):
        assert holder_id not in output


# --- the server's processes ------------------------------------------------------------------------

def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_each_worker_listens_on_its_own_socket_and_none_outlives_the_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    proc, base = start_server(tmp_path / "var", url, tmp_path / "serve.log")
    port = int(base.rsplit(":", 1)[1])
    try:
        # one listening socket per worker (SO_REUSEPORT): the kernel spreads connections over
        # them. The first worker up answered start_server; the second may still be starting.
        deadline = time.monotonic() + 60
        while True:
            listening = {c.pid for c in psutil.net_connections("tcp")
                         if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
            if len(listening) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        workers = {p.pid for p in psutil.Process(proc.pid).children()}
        assert len(listening) == 2 and listening <= workers and proc.pid not in listening
        assert httpx.get(f"{base}/api/v1/openapi.json").status_code == 200

        # a second server on the same port is refused, not let in beside the first
        env = {**os.environ, "DIGITIZE_DATA_DIR": str(tmp_path / "var"), "DIGITIZE_DB_URL": url}
        second = subprocess.run([sys.executable, "-m", "pipeline.cli", "serve", "--port", str(port)],
                                env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and f"cổng {port}" in second.stderr

        # the command killed outright: its workers stop too, and nothing answers on the port
        proc.kill()
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(map(running, listening)) and time.monotonic() < deadline:
            time.sleep(0.2)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/api/v1/openapi.json", timeout=5)
    finally:
        stop_server(proc)


# --- PostgreSQL ------------------------------------------------------------------------------------

@pytest.mark.postgres
def test_the_api_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    with serving(tmp_path, pg_url) as served:
        name, bearer = token(served, [DISTRICT], personal=True)
        page = get(served, holder_path(), bearer, purpose=PURPOSE, also=OLD_ID).json()
        assert [r["record_id"] for r in page["records"]] == ["HS/001", "HS/002"]
        assert page["records"][0]["holder_id"] == CITIZEN_ID
        pdf = get(served, f"/records/{DISTRICT}/HS/002/pdf", bearer, purpose=PURPOSE)
        assert pdf.status_code == 200 and pdf.content == served.pdfs["HS/002"].read_bytes()
        found = get(served, "/search", bearer, q="cong hoa xa hoi").json()
        assert found["total"] == 4 and {h["agency_code"] for h in found["hits"]} == {DISTRICT}
        assert get(served, f"/records/{DEPARTMENT}/HS/003", bearer).status_code == 403
        nobody = get(served, holder_path("079203000111"), bearer, purpose="không có ai").json()
        assert nobody["records"] == []
        # the rows of a lookup go in as one statement of arrays on PostgreSQL: in their order,
        # and a lookup that found nothing as its row of NULLs
        assert access_rows(pg_url, name) == [
            ("holder_lookup", DISTRICT, "HS/001", PURPOSE), ("holder_lookup", DISTRICT, "HS/002", PURPOSE),
            ("pdf", DISTRICT, "HS/002", PURPOSE), ("holder_lookup", None, None, "không có ai")]

        # PostgreSQL ends every connection of the server (a restart, an administrator): the
        # API takes connections from its pool without a ping, and a lookup on a dropped one is
        # asked again on a new one, not refused
        with warehouse.engine_for(pg_url).connect() as conn:
            ended = conn.execute(text(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar_one()
        assert ended >= 1
        for _ in range(4):  # whichever worker answers, its pooled connection was ended
            again = get(served, holder_path(), bearer, purpose=PURPOSE, also=OLD_ID)
            assert again.status_code == 200, again.text
            assert [r["record_id"] for r in again.json()["records"]] == ["HS/001", "HS/002"]

        # an error no one foresaw, whose message quotes the SQL parameters (the holder's ids):
        # 500 with a message, and the server's log names the error, never the ids
        with warehouse.engine_for(pg_url).begin() as conn:
            conn.execute(text("ALTER TABLE records RENAME COLUMN holder_key TO holder_key_gone"))
        broken = get(served, holder_path(), bearer, purpose=PURPOSE, also=OLD_ID)
        assert broken.status_code == 500 and "digitize serve" in broken.json()["error"]
        output = served.log.read_text(encoding="utf-8")
        assert "ProgrammingError on GET /api/v1/holders/*********441/records" in output
        assert CITIZEN_ID not in output and OLD_ID not in output


@pytest.mark.parametrize("part", ["HS/001", "000.00.12.H12", "BS-0020000", "a_b~c", "", "..", "../x",
                                  "HS 001", "Hồ sơ/1", "a%2Fb", "a?b#c", "a+b&c=d", "x/../../etc"])
def test_pdf_urls_quote_record_ids_as_quote_does(part: str) -> None:
    # the shortcut for ids with nothing to quote gives what urllib's quote gives, for both uses
    assert api._quoted(part, safe="") == quote(part, safe="")
    assert api._quoted(part, safe="/") == quote(part, safe="/")
