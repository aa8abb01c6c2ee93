"""Search and the holder's store (pipeline.access) on SQLite and on real PostgreSQL.

Records are loaded the way a run loads them (``warehouse.load_archived``, which keeps the index
up to date), with the sample generator's Vietnamese text; what a query should find is worked out
from those texts independently of the index (``pipeline.text.tokens``).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import random
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, create_engine, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from pipeline import cli
from pipeline.access import search as access
from pipeline.access.search import Filters, QueryError, snippet_html, snippet_text
from pipeline.config import Settings
from pipeline.demo.content import PROCEDURES, record_content
from pipeline.demo.layout import fit, page_text
from pipeline.models import ManifestRow, RecordPlan, RecordResult, RecordStatus, RecordTask
from pipeline.store import roles, search_index, warehouse
from pipeline.text import tokens

DISTRICT, DEPARTMENT = "000.00.12.H12", "000.00.02.H12"  # huyen, tinh
HKD, GPXD, CMD, TCXH = PROCEDURES  # household business, building permit, land use, social aid
CITIZEN_ID, OLD_ID = "001072375441", "012345678"  # one person: the 12-digit and the 9-digit id
TAX_CODE = "0101234567-001"


@dataclass(frozen=True)
class Spec:
    record_id: str
    agency: str
    procedure_index: int
    issued_on: dt.date
    holder_id: str = ""
    still_valid: bool = True
    archived: bool = True


SPECS = (
    Spec("HS-GPXD-2019", DISTRICT, 1, dt.date(2019, 3, 5), CITIZEN_ID),
    Spec("HS-HKD-2010", DISTRICT, 0, dt.date(2010, 6, 1), OLD_ID),
    Spec("HS-CMD-2014", DISTRICT, 2, dt.date(2014, 9, 12), "001063263804"),
    Spec("HS-TCXH-2020", DEPARTMENT, 3, dt.date(2020, 11, 20), TAX_CODE),
    Spec("HS-GPXD-2004", DEPARTMENT, 1, dt.date(2004, 2, 10), CITIZEN_ID),  # phase GD3
    Spec("HS-CMD-2021", DEPARTMENT, 2, dt.date(2021, 5, 4), CITIZEN_ID),
    Spec("HS-HET-HIEU-LUC", DISTRICT, 0, dt.date(2021, 1, 8), CITIZEN_ID, still_valid=False),
    Spec("HS-CACH-LY", DISTRICT, 1, dt.date(2021, 12, 1), CITIZEN_ID, archived=False),
    Spec("HS-GPXD-2016", DISTRICT, 1, dt.date(2016, 7, 30), "001171827036"),
)


@dataclass(frozen=True)
class Loaded:
    url: str
    texts: dict[str, str]  # record id -> everything indexed about it (name, number, holder, text)


def _text(spec: Spec, seed: int) -> tuple[str, str, str]:
    """(result number, holder name, OCR text) of a generated record."""
    rng = random.Random(f"search:{seed}")
    content = record_content(rng, spec.agency, PROCEDURES[spec.procedure_index], True,
                             spec.issued_on)
    body = "\n".join(page_text(page) for page in fit(content.doc, "serif", 1, rng))
    return content.result_number, content.holder.person.name, body


def _task(spec: Spec, line: int, batch_pk: int, number: str, holder: str) -> RecordTask:
    row = ManifestRow(line=line, record_id=spec.record_id,
                      procedure_code=PROCEDURES[spec.procedure_index].code, result_number=number,
                      issued_on=spec.issued_on, holder_name=holder, holder_id=spec.holder_id,
                      still_valid=spec.still_valid)
    return RecordTask(agency_code=spec.agency, batch_id="B-SEARCH", batch_dir="/scans/B-SEARCH",
                      batch_pk=batch_pk, record=RecordPlan(row=row), sources={})


def _reference(url: str) -> int:
    """Agencies, the sample procedures and one batch; returns the batch's key."""
    with warehouse.engine_for(url).begin() as conn:
        warehouse.upsert(conn, warehouse.agencies, [
            {"code": DISTRICT, "name": "UBND huyện Đông Anh", "level": "huyen"},
            {"code": DEPARTMENT, "name": "Sở Xây dựng", "level": "tinh"}], ("code",))
        warehouse.upsert(conn, warehouse.procedures,
                         [{"code": p.code, "name": p.name} for p in PROCEDURES], ("code",))
        return conn.execute(warehouse.batches.insert().values(
            agency_code=DISTRICT, batch_id="B-SEARCH", source_dir="/scans/B-SEARCH",
            manifest_sha256="0" * 64, status="done", registered_at=warehouse.now())
        ).inserted_primary_key[0]


def archive_as_a_run(conn: Connection, task: RecordTask, result: RecordResult, text: str) -> None:
    """What ``record._load`` writes for an archived record: its rows and its search index entry."""
    warehouse.load_archived(conn, task, result, text)
    search_index.index_record(conn, warehouse.pk_of(conn, warehouse.records, agency_code=task.agency_code,
                                                    record_id=result.record_id))


def load(url: str, specs: tuple[Spec, ...] = SPECS, extra: dict[str, str] | None = None) -> Loaded:
    """The records of ``specs`` (and ``extra``: record id -> own text, a district GPXD result)
    archived or quarantined as a run would load them."""
    warehouse.migrate(url)
    batch_pk = _reference(url)
    texts: dict[str, str] = {}
    everything = [(s, *_text(s, i)) for i, s in enumerate(specs)] + [
        (Spec(rid, DISTRICT, 1, dt.date(2018, 1, 1)), "", "", body)
        for rid, body in (extra or {}).items()]
    with warehouse.engine_for(url).begin() as conn:
        for line, (spec, number, holder, body) in enumerate(everything, start=2):
            task = _task(spec, line, batch_pk, number, holder)
            if not spec.archived:
                warehouse.load_quarantined(conn, task, "ocr_low_confidence")
                continue
            result = RecordResult(record_id=spec.record_id, line=line, status=RecordStatus.archived,
                                  pdf_path=f"/archive/{spec.record_id}_v1.pdf",
                                  pdf_sha256=uuid.uuid4().hex * 2, version=1, page_count=1)
            archive_as_a_run(conn, task, result, body)
            texts[spec.record_id] = "\n".join(
                (PROCEDURES[spec.procedure_index].name, number, holder, body))
    return Loaded(url, texts)


def expected(loaded: Loaded, query: str) -> set[str]:
    """The records whose indexed text holds every folded word of ``query``."""
    wanted = set(tokens(query))
    return {rid for rid, body in loaded.texts.items() if wanted <= set(tokens(body))}


def found(url: str, query: str, filters: Filters | None = None, **kw: object) -> set[str]:
    page = access.search(url, query, filters or Filters(), limit=100, **kw)  # type: ignore[arg-type]
    assert page.total == len(page.hits)
    return {h.record_id for h in page.hits}


@pytest.mark.parametrize(("query", "same_as"), [
    ("giay phep xay dung", "Giấy phép xây dựng"),
    ("GIẤY PHÉP XÂY DỰNG", "giấy phép xây dựng"),
    ("dat dai", "đất đai"),
    ("Dat Dai", "ĐẤT ĐAI"),
    ("quyet dinh tro cap xa hoi", "Quyết định trợ cấp xã hội"),
])
def test_accentless_and_d_queries_find_the_same_records(warehouse_url: str, query: str,
                                                        same_as: str) -> None:
    loaded = load(warehouse_url)
    want = expected(loaded, same_as)
    assert want and want != set(loaded.texts)  # the query tells records apart
    assert found(warehouse_url, query) == found(warehouse_url, same_as) == want
    assert "HS-CACH-LY" not in found(warehouse_url, query)  # quarantined: never found


def test_ranking_snippets_pagination_and_filters(warehouse_url: str) -> None:
    url = warehouse_url
    loaded = load(url, extra={
        "HS-KENH-NHIEU": "Dự án nạo vét kênh mương nội đồng. Kênh mương được kiên cố hóa; kênh "
                         "mương cấp nước tưới cho cánh đồng.",
        "HS-KENH-MOT": "Giấy phép xây dựng nhà ở riêng lẻ. " + "Công trình nhà ở hai tầng. " * 20
                       + "Ranh giới phía bắc giáp kênh mương.",
    })
    # ranking: the text about canals first, the one that mentions a canal once after it
    page = access.search(url, "kenh muong")
    assert [h.record_id for h in page.hits] == ["HS-KENH-NHIEU", "HS-KENH-MOT"]
    assert page.hits[0].score > page.hits[1].score
    # the snippet: original text, the matched words marked, whatever the query's accents
    snippet = page.hits[0].snippet
    assert "\x02kênh\x03 \x02mương\x03" in snippet and "\x02Kênh\x03" in snippet
    assert snippet_text(snippet).startswith("Dự án nạo vét «kênh» «mương» nội đồng.")
    assert "<mark>kênh</mark> <mark>mương</mark>" in snippet_html(snippet)
    assert snippet_html("a < \x02b\x03 & c") == "a &lt; <mark>b</mark> &amp; c"
    assert page.hits[0].holder_name is None and page.hits[0].holder_id is None  # not personal
    personal = access.search(url, "giay phep xay dung", Filters(agency=DEPARTMENT), personal=True)
    assert [(h.record_id, h.holder_id) for h in personal.hits] == [("HS-GPXD-2004", CITIZEN_ID)]
    # the holder's id and name in the text: shown to a caller allowed personal data only
    name = personal.hits[0].holder_name
    printed = re.search(r"định danh cá nhân (\d{12})", loaded.texts["HS-GPXD-2004"])
    assert name and printed
    query = f"dinh danh {printed[1]} {name}"
    shown = access.search(url, query, personal=True).hits[0].snippet
    assert printed[1] in shown and name.split()[-1] in shown
    hidden = access.search(url, query).hits[0]
    assert hidden.record_id == "HS-GPXD-2004" and printed[1] not in hidden.snippet
    assert "*" * 9 + printed[1][-3:] in hidden.snippet and name.split()[-1] not in hidden.snippet

    # pagination: pages of 2 cover every hit once, in the order of one big page
    everything = [h.record_id for h in access.search(url, "giay phep xay dung", limit=100).hits]
    assert len(everything) == len(expected(loaded, "giay phep xay dung")) >= 4
    paged = []
    for offset in range(0, len(everything) + 2, 2):
        page = access.search(url, "giay phep xay dung", limit=2, offset=offset)
        assert page.total == len(everything) and (page.limit, page.offset) == (2, offset)
        paged += [h.record_id for h in page.hits]
    assert paged == everything

    # filters, each on its own, against the same query
    q = "giay phep xay dung"
    gpxd = expected(loaded, q)
    district = {r for r in gpxd if r not in {"HS-GPXD-2004"}}
    assert found(url, q, Filters(agency=DISTRICT)) == district
    assert found(url, q, Filters(level="tinh")) == {"HS-GPXD-2004"}
    assert found(url, q, Filters(level="huyen")) == district
    assert found(url, q, Filters(agencies=frozenset({DEPARTMENT}))) == {"HS-GPXD-2004"}
    assert found(url, q, Filters(agencies=frozenset({DEPARTMENT}), agency=DISTRICT)) == set()
    assert found(url, q, Filters(procedure_code=HKD.code)) == gpxd & {"HS-HKD-2010"}
    assert found(url, q, Filters(procedure_code=GPXD.code)) == {
        "HS-GPXD-2019", "HS-GPXD-2004", "HS-GPXD-2016", "HS-KENH-MOT", "HS-KENH-NHIEU"}
    assert found(url, q, Filters(year_from=2016, year_to=2018)) == {
        "HS-GPXD-2016", "HS-KENH-MOT", "HS-KENH-NHIEU"}
    assert found(url, q, Filters(year_to=2005)) == {"HS-GPXD-2004"}
    assert found(url, q, Filters(phase="GD3")) == {"HS-GPXD-2004"}
    assert found(url, q, Filters(phase="GD2")) == gpxd - {"HS-GPXD-2004"}
    assert found(url, "dat dai", Filters(still_valid=True)) == expected(loaded, "dat dai") - {
        "HS-HET-HIEU-LUC"}
    assert found(url, "ho kinh doanh", Filters(still_valid=False)) == {"HS-HET-HIEU-LUC"}
    for bad, message in ((Filters(agency="000.00.99.H12"), "Không có cơ quan"),
                         (Filters(level="quan"), "Cấp"), (Filters(phase="GD9"), "giai đoạn"),
                         (Filters(phase="GD1"), "không số hóa"),
                         (Filters(year_from=2020, year_to=2010), "bị ngược")):
        with pytest.raises(QueryError, match=message):
            access.search(url, q, bad)

    # one record by its key
    hit = access.get_record(url, DISTRICT, "HS-GPXD-2019")
    assert hit is not None and hit.pdf_path == "/archive/HS-GPXD-2019_v1.pdf" and hit.version == 1
    assert hit.snippet.startswith("ỦY BAN NHÂN DÂN") and hit.holder_id is None
    assert access.get_record(url, DISTRICT, "HS-CACH-LY") is None  # quarantined


def test_a_record_archived_again_is_searched_by_its_new_text_only(warehouse_url: str) -> None:
    url = warehouse_url
    load(url, specs=(), extra={"HS-LAI": "Giấy phép xây dựng nhà ở tại thôn Đoài."})
    assert found(url, "thon doai") == {"HS-LAI"}
    with warehouse.engine_for(url).connect() as conn:
        batch_pk = conn.execute(select(warehouse.batches.c.id)).scalar_one()
    task = _task(Spec("HS-LAI", DISTRICT, 1, dt.date(2018, 1, 1)), 2, batch_pk, "", "")
    result = RecordResult(record_id="HS-LAI", line=2, status=RecordStatus.archived,
                          pdf_path="/archive/HS-LAI_v2.pdf", pdf_sha256="b" * 64, version=2,
                          page_count=1)
    with warehouse.engine_for(url).begin() as conn:
        archive_as_a_run(conn, task, result, "Giấy phép xây dựng nhà ở tại thôn Đông.")
    assert found(url, "thon doai") == set()
    page = access.search(url, "thon dong")
    assert [(h.record_id, h.version, h.pdf_path) for h in page.hits] == [
        ("HS-LAI", 2, "/archive/HS-LAI_v2.pdf")]


@pytest.mark.parametrize("query", ["", "   ", "a", "đ", "x" * 2000, "-- ;"])
def test_queries_that_cannot_be_searched_are_refused(tmp_path: Path, query: str) -> None:
    url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    warehouse.migrate(url)
    with pytest.raises(QueryError) as caught:
        access.search(url, query)
    assert caught.value.exit_code == 2


def test_sql_looking_text_only_searches(warehouse_url: str) -> None:
    loaded = load(warehouse_url)
    for query in ("'; DROP TABLE records; --", 'giay" OR "phep', "xay) | (dung", "dung:* & !x",
                  "NEAR(giay phep)", "giay*"):
        # PostgreSQL may find more: a word no text has (drop, x) stands for similar words
        hits = found(warehouse_url, query)
        assert hits == expected(loaded, query) if warehouse_url.startswith("sqlite") \
            else hits >= expected(loaded, query)
    assert warehouse.row_counts(warehouse_url)["records"] == len(SPECS)


def test_holder_lookup_by_several_ids_of_one_person(warehouse_url: str) -> None:
    url = warehouse_url
    load(url)
    hits = access.holder_records(url, [CITIZEN_ID, f" {OLD_ID[:3]} {OLD_ID[3:]} "], personal=True).hits
    # only theirs, only archived and still valid (not HS-HET-HIEU-LUC, not HS-CACH-LY), newest first
    assert [h.record_id for h in hits] == ["HS-CMD-2021", "HS-GPXD-2019", "HS-HKD-2010",
                                           "HS-GPXD-2004"]
    assert {h.holder_id for h in hits} == {CITIZEN_ID, OLD_ID}
    assert all(h.holder_name for h in hits)
    assert all(h.holder_id is None for h in access.holder_records(url, [CITIZEN_ID]).hits)
    assert [h.record_id for h in access.holder_records(url, [CITIZEN_ID], Filters(
        agencies=frozenset({DISTRICT}))).hits] == ["HS-GPXD-2019"]
    for written in (TAX_CODE, "0101234567001"):
        assert [h.record_id for h in access.holder_records(url, [written]).hits] == ["HS-TCXH-2020"]
    nobody = access.holder_records(url, ["0101234567"])
    assert (nobody.total, nobody.hits) == (0, [])
    # the page is cut in SQL, and the total counts them all
    pages = [access.holder_records(url, [CITIZEN_ID, OLD_ID], limit=3, offset=at) for at in (0, 3, 9)]
    assert [p.total for p in pages] == [4, 4, 4]
    assert [h.record_id for p in pages for h in p.hits] == [h.record_id for h in hits]
    with pytest.raises(QueryError):
        access.holder_records(url, [CITIZEN_ID], limit=0)
    for wrong in ("98765", "00107237544X", "0101234567-01", "001072375441; DROP TABLE records"):
        with pytest.raises(QueryError, match="12 chữ số") as caught:
            access.holder_records(url, [CITIZEN_ID, wrong])
        assert wrong not in str(caught.value)
    with pytest.raises(QueryError):
        access.holder_records(url, [])
    assert access.normalize_holder_id("0101234567-001") == "0101234567001"


def test_an_ocr_slip_in_the_query_is_found_by_trigrams_on_postgresql(pg_url: str) -> None:
    loaded = load(pg_url)
    want = expected(loaded, "giay phep xay dung")
    assert found(pg_url, "giay phep xay dumg") == want
    assert found(pg_url, "giấy phép xây dụng") == want  # a wrong tone mark folds away anyway
    assert found(pg_url, "giay phep xay dumg zzqqxx") == set()  # nothing like the last word


def test_the_schema_comparison_leaves_out_exactly_the_search_index(warehouse_url: str) -> None:
    """What ``warehouse.include_name`` hides from a schema comparison is the dialect's search
    index and nothing else: without it, those tables are all the comparison reports."""
    warehouse.migrate(warehouse_url)
    with warehouse.engine_for(warehouse_url).connect() as conn:
        unfiltered = compare_metadata(MigrationContext.configure(conn), warehouse.metadata)
        filtered = compare_metadata(MigrationContext.configure(
            conn, opts={"include_name": warehouse.include_name}), warehouse.metadata)
    assert filtered == []
    hidden = {d[1].name for d in unfiltered if d[0] == "remove_table"}
    assert hidden == ({n for n in warehouse.SEARCH_INDEX_TABLES if n.startswith("records_fts")}
                      if warehouse_url.startswith("sqlite") else {"search_documents", "search_words"})
    # the indexes of those tables, reported with them, are all the rest
    assert {d[0] for d in unfiltered} <= {"remove_table", "remove_index"}
    assert {d[1].table.name for d in unfiltered if d[0] == "remove_index"} <= hidden


def _alembic(url: str, step: Callable[[Config, str], None], revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(warehouse.MIGRATIONS))
    with warehouse.engine_for(url).begin() as conn:
        cfg.attributes["connection"] = conn
        step(cfg, revision)


def test_the_migration_indexes_records_archived_before(warehouse_url: str) -> None:
    url = warehouse_url
    _alembic(url, command.upgrade, "0009")
    batch_pk = _reference(url)
    number, holder, body = _text(SPECS[0], 0)
    with warehouse.engine_for(url).begin() as conn:  # as the code before 0010 wrote them
        conn.execute(text(
            "INSERT INTO records (agency_code, record_id, batch_pk, manifest_line, procedure_code, "
            "result_number, issued_on, holder_name, holder_id, still_valid, status, pdf_path, "
            "pdf_sha256, version, page_count, text, updated_at) VALUES (:a, :r, :b, 2, :p, :n, "
            ":d, :h, :i, :v, :s, '/archive/x.pdf', :sha, 1, 1, :t, CURRENT_TIMESTAMP)"), [
            {"a": DISTRICT, "r": "HS-CU", "b": batch_pk, "p": GPXD.code, "n": number,
             "d": dt.date(2012, 4, 1), "h": holder, "i": TAX_CODE, "v": True, "s": "archived",
             "sha": "a" * 64, "t": body},
            {"a": DISTRICT, "r": "HS-CU-CACH-LY", "b": batch_pk, "p": GPXD.code, "n": number,
             "d": dt.date(2012, 4, 1), "h": holder, "i": "sai", "v": True, "s": "quarantined",
             "sha": None, "t": None}])
    warehouse.migrate(url)
    assert found(url, "giay phep xay dung") == {"HS-CU"}
    assert [h.record_id for h in access.holder_records(url, ["0101234567001"]).hits] == ["HS-CU"]
    with warehouse.engine_for(url).connect() as conn:
        keys = dict(conn.execute(select(warehouse.records.c.record_id,
                                        warehouse.records.c.holder_key)).all())
    assert keys == {"HS-CU": "0101234567001", "HS-CU-CACH-LY": None}
    _alembic(url, command.downgrade, "0009")  # and back: the downgrade drops what 0010 made
    with warehouse.engine_for(url).connect() as conn:
        left = set(inspect(conn).get_table_names())
        columns = {c["name"] for c in inspect(conn).get_columns("records")}
    assert not left & (warehouse.SEARCH_INDEX_TABLES | {"access_log", "api_tokens"})
    assert "holder_key" not in columns and "text" in columns
    warehouse.migrate(url)
    assert found(url, "giay phep xay dung") == {"HS-CU"}


@pytest.mark.postgres
def test_the_reporting_role_reads_no_log_token_or_word(pg_url: str) -> None:
    load(pg_url)
    tag = uuid.uuid4().hex[:8]
    loader, reporting, user = f"t{tag}_loader", f"t{tag}_reporting", f"t{tag}_bi"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    bi_url = make_url(pg_url).set(username=user).render_as_string(hide_password=False)
    try:
        roles.apply_roles(pg_url, loader, reporting)
        with admin.connect() as conn:
            conn.execute(text(f"CREATE ROLE {user} LOGIN IN ROLE {reporting}"))
        bi = create_engine(bi_url)
        for table in ("access_log", "api_tokens", "search_words", "search_documents"):
            with bi.connect() as conn, pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text(f"SELECT * FROM {table}"))
        with bi.connect() as conn, pytest.raises(ProgrammingError, match="permission denied"):
            conn.execute(text("SELECT holder_key FROM records"))
        bi.dispose()
    finally:
        warehouse.dispose(bi_url)
        with admin.connect() as conn:
            for name in (user, reporting, loader):
                if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": name}).first():
                    conn.execute(text(f"DROP OWNED BY {name}"))
                    conn.execute(text(f"DROP ROLE {name}"))
        admin.dispose()


@pytest.fixture
def cli_warehouse(settings: Settings) -> Iterator[Loaded]:
    yield load(settings.warehouse_url)


def _log_rows(url: str) -> list[tuple[str, str, str | None, str | None, str]]:
    a = warehouse.access_log
    with warehouse.engine_for(url).connect() as conn:
        return [tuple(r) for r in conn.execute(  # type: ignore[misc]
            select(a.c.caller, a.c.action, a.c.agency_code, a.c.record_id, a.c.purpose)
            .order_by(a.c.id))]


def test_cli_search_exit_codes_json_and_the_access_log(
        cli_warehouse: Loaded, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    url = cli_warehouse.url
    assert cli.main(["search", "giay phep xay dung", "--json", "--limit", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total"] == len(expected(cli_warehouse, "giay phep xay dung"))
    assert len(out["hits"]) == 2 and {"agency_code", "record_id", "pdf_path", "snippet"} <= set(
        out["hits"][0])
    assert "«" in out["hits"][0]["snippet"]
    assert cli.main(["search", "zzqqxx wwkk", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"total": 0, "limit": 20, "offset": 0, "hits": []}
    assert cli.main(["search", "dat dai", "--agency", DISTRICT]) == 0
    assert "HS-CMD-2014" in capsys.readouterr().out
    for bad in (["search", ""], ["search", "x" * 2000], ["search", "dat", "--agency", "000.00.99.H12"],
                ["search", "--holder-id", "98765"], ["search", "dat", "--holder-id", CITIZEN_ID]):
        assert cli.main(bad) == 2
    assert _log_rows(url) == []  # searches by words are not holder lookups

    caller = f"cli:{getpass.getuser()}"
    caplog.clear()
    assert cli.main(["search", "--holder-id", CITIZEN_ID, "--holder-id", OLD_ID, "--json",
                     "--purpose", "Hồ sơ một cửa 000.12.34"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [h["record_id"] for h in out["hits"]] == ["HS-CMD-2021", "HS-GPXD-2019", "HS-HKD-2010",
                                                     "HS-GPXD-2004"]
    assert out["hits"][0]["holder_id"] == CITIZEN_ID and out["hits"][0]["holder_name"]
    assert _log_rows(url) == [(caller, "holder_lookup", h["agency_code"], h["record_id"],
                               "Hồ sơ một cửa 000.12.34") for h in out["hits"]]
    assert cli.main(["search", "--holder-id", "079203009999"]) == 0
    assert "Không tìm thấy" in capsys.readouterr().out
    assert _log_rows(url)[-1] == (caller, "holder_lookup", None, None, "")
    logged = caplog.text + "".join(str(r) for r in _log_rows(url))
    assert CITIZEN_ID not in logged and OLD_ID not in logged and "079203009999" not in logged
