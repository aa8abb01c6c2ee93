"""The search benchmark, small: 2,000 records on real PostgreSQL and on SQLite, the API served by a
real uvicorn; its figures written, and its searches finding the records they were made from."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pipeline.access import search as access
from pipeline.access import tokens
from pipeline.demo import bench_search, benchdb
from pipeline.demo.content import PROCEDURES
from pipeline.store import search_index, warehouse

RECORDS = 2000


@pytest.fixture(scope="module")
def report(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """(database URL, output folder, figures) of one small run, in a database of its own."""
    name = f"digitize_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_server).set(database=name).render_as_string(hide_password=False)
    out = tmp_path_factory.mktemp("bench-search")
    try:
        assert bench_search.main(["--pg-url", url, "--pg-records", str(RECORDS), "--sqlite-records",
                                  str(RECORDS), "--out", str(out)]) == 0
        yield url, out, json.loads((out / "bench-search.json").read_text())
    finally:
        warehouse.dispose(url)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.postgres
def test_the_figures_are_written_with_the_goals(report: Any) -> None:
    _, out, figures = report
    for name in ("postgresql", "sqlite"):
        part = figures[name]
        assert part["records"] == RECORDS
        selective = part["selective"]
        assert len(selective["queries"]) == bench_search.SELECTIVE_QUERIES
        assert selective["n"] == bench_search.SELECTIVE_QUERIES * bench_search.REPEAT
        # each query is words of one planted record: it finds it, on the first page
        assert selective["on_first_page"] == bench_search.SELECTIVE_QUERIES
        assert all(q["total"] >= 1 for q in selective["queries"])
        assert [q["query"] for q in part["common"]] == list(bench_search.COMMON_QUERIES)
        assert all(q["total"] > 100 and q["hits"] == 20 for q in part["common"])
        assert part["holder_lookup"]["n"] == bench_search.HOLDER_LOOKUPS
        assert part["holder_lookup"]["holders_found"] == bench_search.HOLDER_LOOKUPS
        assert all(s["bytes"] > 0 and s["indexed_bytes"] > 0 for s in part["sizes"])
    part = figures["postgresql"]
    for api in (part["api"], part["api_aiohttp"]):
        assert api["errors"] == 0 and api["records_per_answer"] == 10
        assert api["server_cpu_ms_per_request"] > 0 and api["client_cpu_ms_per_request"] > 0
    assert part["api_aiohttp"]["n"] == bench_search.API_CLIENTS * bench_search.API_REQUESTS_PER_CLIENT
    # wrk's clients asked for as long as they were told, every answer checked by its script
    assert part["api"]["client"] == "wrk" and part["api"]["n"] > bench_search.API_CLIENTS
    assert part["api"]["seconds"] >= bench_search.API_WRK_SECONDS
    assert {g["goal"] for g in figures["goals"]} == {g[0] for g in bench_search.GOALS}
    assert all(g["value"] is not None and g["met"] in (True, False) for g in figures["goals"])
    table = (out / "bench-search.md").read_text()
    assert "## Goals" in table and "ix_search_documents (GIN)" in table


@pytest.mark.postgres
def test_the_corpus_is_indexed_as_archiving_would_index_it(report: Any) -> None:
    """Each record's document is what search_index.document makes of its metadata and text, and
    the words table holds exactly the words of the documents."""
    url, _, _ = report
    names = {p.code: p.name for p in PROCEDURES}
    for record in benchdb.SearchCorpus(0).records(300, seed=7):
        assert record.document == search_index.document(
            names[record.procedure_code], record.result_number, record.holder.name, record.text)
    with warehouse.engine_for(url).connect() as conn:
        missing = conn.exec_driver_sql(
            "SELECT count(*) FROM (SELECT DISTINCT unnest(tsvector_to_array(document)) AS w "
            "FROM search_documents) d WHERE w NOT IN (SELECT word FROM search_words)").scalar()
        extra = conn.exec_driver_sql(
            "SELECT count(*) FROM search_words WHERE word NOT IN (SELECT DISTINCT "
            "unnest(tsvector_to_array(document)) FROM search_documents)").scalar()
        archived = conn.exec_driver_sql(
            "SELECT count(*) FROM records WHERE status = 'archived'").scalar()
        indexed = conn.exec_driver_sql("SELECT count(*) FROM search_documents").scalar()
    assert (missing, extra, indexed) == (0, 0, archived)


@pytest.mark.postgres
def test_a_common_query_is_ranked_in_tiers_that_page_consistently(report: Any) -> None:
    """More matches than search.RANKED: pages across a tier's end follow one order, each record
    once; a tier holds the records archived after those of the next one (the benchmark's record
    ids grow with their warehouse keys), best first."""
    url, _, _ = report
    query = "uy ban nhan dan"
    start = access.RANKED - 30
    whole = access.search(url, query, limit=60, offset=start)
    assert whole.total > access.RANKED + 30
    paged = [h for offset in range(start, start + 60, 20)
             for h in access.search(url, query, limit=20, offset=offset).hits]
    assert [h.record_id for h in paged] == [h.record_id for h in whole.hits]
    assert len({h.record_id for h in whole.hits}) == 60
    first_tier, second_tier = whole.hits[:30], whole.hits[30:]
    assert min(h.record_id for h in first_tier) > max(h.record_id for h in second_tier)
    for tier in (first_tier, second_tier):
        assert [h.score for h in tier] == sorted((h.score for h in tier), reverse=True)


@pytest.mark.postgres
def test_wrk_counts_an_answer_without_the_records_expected_as_an_error(report: Any,
                                                                          tmp_path: Path) -> None:
    url, _, _ = report
    zero = benchdb.holder(0)
    token = tokens.create_token(url, "bench-wrong-count", personal_data=True)
    with bench_search.running_api(url, tmp_path) as (base, _):
        figures, _ = bench_search.wrk(base, token, f"/api/v1/holders/{zero.citizen_id}/records",
                                   {"also": zero.old_id, "purpose": "test", "limit": 100}, 9,
                                   tmp_path, seconds=1)
    assert figures["n"] > 0 and figures["errors"] == figures["n"]
