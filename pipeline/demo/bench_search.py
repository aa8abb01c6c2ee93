"""Search benchmark: search, the holder's store and the read API over a province-sized warehouse.

    python -m pipeline.demo.bench_search --pg-url postgresql://postgres@127.0.0.1:5432/bench_search
        [--pg-records 1000000] [--sqlite-records 100000] [--seed 0] [--out DIR]

``--pg-url`` names an EMPTY PostgreSQL database (a production warehouse is never filled with
synthetic rows); ``--pg-records 0`` or ``--sqlite-records 0`` leaves that back end out. Each back
end is migrated and filled by :func:`pipeline.demo.benchdb.fill_search_warehouse`: records with
the sample generator's Vietnamese text (a page or two each, spliced from a few hundred laid-out
sample documents), their holder keys and the search index, by COPY on PostgreSQL. Then, warm
(every query run once untimed before it is timed):

- **selective searches**: 20 queries of 2–4 words of one record's indexed text (the holder's id
  and words of the holder's name; every other one without tone marks), each timed ``REPEAT``
  times through :func:`pipeline.access.search.search` (first page of 20), and whether the record
  is on that page;
- **common searches**: the first page of 5 queries that most records match;
- **holder lookups**: :func:`pipeline.access.search.holder_records` for 200 holders;
- PostgreSQL only: **the read API** (``digitize serve``, uvicorn on 127.0.0.1) asked for holder 0's
  records (one in every tenth of the corpus, by both of their ids) by 50 clients at once, and
  **the size of each index** beside the size of what it indexes. The clients are ``wrk``'s (the
  goal's figure) and then aiohttp's in this process: the one-stop system calls from machines of
  its own, and here the load generator shares the server's two cores; aiohttp's clients took
  0.3–1.1 ms of CPU a call (a quarter to a half of the server's), wrk's 0.07–0.09 ms.

It writes ``DIR/bench-search.json`` and ``DIR/bench-search.md`` (the figures against the issue's
goals) and prints the table. Not part of the test suite (tests/test_bench_search.py runs a small
one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import platform
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import httpx
import psutil
from sqlalchemy import text
from sqlalchemy.engine import make_url

from pipeline._exec import cpu_seconds
from pipeline.access import search as access
from pipeline.access.tokens import create_token
from pipeline.demo import benchdb
from pipeline.demo.bench import start_logging
from pipeline.demo.bench_phases import report_main
from pipeline.store import search_index, warehouse
from pipeline.text import strip_marks

log = logging.getLogger("pipeline.demo.bench_search")

SELECTIVE_QUERIES = 20
COMMON_QUERIES = ("uy ban nhan dan", "giay phep xay dung", "quyết định", "ho kinh doanh",
                  "tro cap xa hoi hang thang")
REPEAT = 3
HOLDER_LOOKUPS = 200
API_CLIENTS = 50
# 2,000 answers, a few seconds: 500 (a second) let one busy moment of the machine set the p95
API_REQUESTS_PER_CLIENT = 40
API_WRK_SECONDS = 5  # about 4,000 answers
API_WARM_REQUESTS_PER_CLIENT = 5  # the connections opened, the statements prepared
API_PURPOSE = "bench-search"
SERVER_START_SECONDS = 60.0
# the goals: (key, what, at most)
GOALS: tuple[tuple[str, str, float], ...] = (
    ("pg_selective_p95_ms", "PostgreSQL: search p95, 20 selective queries (ms)", 300),
    ("pg_common_first_page_ms", "PostgreSQL: first page of the 5 common queries, slowest (ms)", 1000),
    ("pg_holder_p95_ms", "PostgreSQL: holder lookup p95 (ms)", 20),
    ("api_holder_p95_ms", f"API: one holder's records, {API_CLIENTS} concurrent, p95 (ms)", 100),
    ("api_errors", f"API: errors among the {API_CLIENTS} concurrent clients' requests (both clients)", 0),
    ("sqlite_selective_p95_ms", "SQLite: search p95, 20 selective queries (ms)", 200),
)


class Planted:
    """The records the benchmark asks for, caught while the warehouse is filled."""

    def __init__(self, n_records: int, seed: int) -> None:
        rng = random.Random(f"bench-search:{seed}")
        # more than the queries' worth: some records are not searched for
        self.wanted = set(rng.sample(range(1, n_records + 1), min(n_records, 4 * SELECTIVE_QUERIES)))
        self.holder_pks = set(rng.sample(range(1, n_records + 1), min(n_records, 2 * HOLDER_LOOKUPS)))
        self.records: list[benchdb.BenchRecord] = []
        self.holders: list[benchdb.Holder] = []
        self.holder_zero: list[str] = []  # record ids of holder 0, archived and still valid

    def keep(self, record: benchdb.BenchRecord) -> None:
        # a record whose text shows its holder's name and its number (the part of a template
        # that does may be spliced away)
        if record.pk in self.wanted and record.archived \
                and set(search_index.document(_words(record)).split()) <= set(record.document.split()):
            self.records.append(record)
        # a lookup finds archived, still-valid records only
        if record.pk in self.holder_pks and record.archived and record.still_valid \
                and len(self.holders) < HOLDER_LOOKUPS:
            self.holders.append(record.holder)
        if record.holder.index == 0 and record.archived and record.still_valid:
            self.holder_zero.append(record.record_id)

    def queries(self) -> list[tuple[str, benchdb.BenchRecord]]:
        """2–4 words of each record's indexed text, as a clerk types them from the paper: the end
        of the holder's name and the result's number (without the procedure code after its
        slash; neither alone picks one record out of a million); every other one without tone
        marks."""
        out = []
        for i, record in enumerate(self.records[:SELECTIVE_QUERIES]):
            query = _words(record, 1 + i % 3)
            out.append((strip_marks(query) if i % 2 else query, record))
        return out


def _words(record: benchdb.BenchRecord, name_words: int = 3) -> str:
    names = record.holder.name.split()
    return " ".join([*names[max(0, len(names) - name_words):], record.result_number.split("/")[0]])


def _timed_search(url: str, query: str) -> tuple[float, access.Page]:
    started = time.perf_counter()
    page = access.search(url, query, limit=20)
    return time.perf_counter() - started, page


def measure_searches(url: str, planted: Planted) -> dict[str, Any]:
    selective, seconds = [], []
    for query, record in planted.queries():
        _timed_search(url, query)
        runs = [_timed_search(url, query) for _ in range(REPEAT)]
        seconds += [s for s, _ in runs]
        page = runs[0][1]
        selective.append({"query": query, "record_id": record.record_id, "total": page.total,
                          "on_first_page": any(h.record_id == record.record_id for h in page.hits),
                          **benchdb.stats([s for s, _ in runs])})
    common = []
    for query in COMMON_QUERIES:
        _timed_search(url, query)
        runs = [_timed_search(url, query) for _ in range(REPEAT)]
        common.append({"query": query, "total": runs[0][1].total, "hits": len(runs[0][1].hits),
                       **benchdb.stats([s for s, _ in runs])})
    lookups = []
    # both ids of each holder: results issued before 2016 carry the old one
    ids = [[h.citizen_id, h.old_id] for h in planted.holders]
    for both in ids:  # warm
        access.holder_records(url, both, personal=True, limit=access.MAX_LIMIT)
    found = 0
    for both in ids:
        started = time.perf_counter()
        found += bool(access.holder_records(url, both, personal=True, limit=access.MAX_LIMIT).hits)
        lookups.append(time.perf_counter() - started)
    return {"selective": {**benchdb.stats(seconds),
                          "on_first_page": sum(q["on_first_page"] for q in selective),
                          "queries": selective},
            "common": common,
            "holder_lookup": {**benchdb.stats(lookups), "holders_found": found}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_api(url: str, folder: Path) -> Iterator[tuple[str, psutil.Process]]:
    """``digitize serve`` on a free port of 127.0.0.1 over ``url``; yields its base URL and its
    process (whose children are its workers)."""
    port = _free_port()
    env = {**os.environ, "DIGITIZE_DB_URL": url, "DIGITIZE_DATA_DIR": str(folder / "data")}
    base = f"http://127.0.0.1:{port}"
    with (folder / "serve.log").open("wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "serve", "--host",
                                   "127.0.0.1", "--port", str(port)], env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + SERVER_START_SECONDS
            while True:
                try:
                    httpx.get(f"{base}/api/v1/openapi.json", timeout=1.0)
                    break
                except httpx.TransportError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"digitize serve did not start: see {folder / 'serve.log'}") \
                            from None
                    time.sleep(0.2)
            yield base, psutil.Process(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)


async def _clients(base: str, token: str, path: str, params: dict[str, Any], expected: int,
                   requests: int = API_REQUESTS_PER_CLIENT) -> tuple[list[float], int]:
    """``API_CLIENTS`` clients, each with its own kept-alive connection, asking ``requests``
    times in a row. aiohttp, not httpx: httpx's client took 9 ms of CPU per request, more than
    the server, on the cores the server shares with it."""
    seconds: list[float] = []
    errors = 0

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal errors
        for _ in range(requests):
            started = time.perf_counter()
            try:
                async with http.get(base + path, params=params) as response:
                    body = await response.json()
                ok = response.status == 200 and len(body["records"]) == expected
            except (aiohttp.ClientError, ValueError, KeyError, TypeError):
                ok = False
            seconds.append(time.perf_counter() - started)
            errors += not ok

    async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=API_CLIENTS),
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=30.0)) as http:
        await asyncio.gather(*(client(http) for _ in range(API_CLIENTS)))
    return seconds, errors


# wrk's script: the token from the environment, every answer checked (200 and the records
# expected), the figures printed as one JSON line after WRK_MARK
WRK_MARK = "BENCH-SEARCH "
WRK_SCRIPT = """
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
local expected = tonumber(os.getenv("BENCH_EXPECTED"))
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) wrong = 0 end
function response(status, headers, body)
  local _, records = body:gsub('"record_id":', '')
  if status ~= 200 or records ~= expected then wrong = wrong + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("wrong") end
  local e = summary.errors
  io.write(string.format('%s{"n": %d, "seconds": %.3f, "errors": %d, "median_ms": %.2f, '
    .. '"p95_ms": %.2f, "max_ms": %.2f}\\n', os.getenv("BENCH_MARK"), summary.requests,
    summary.duration / 1e6, bad + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(95) / 1e3, latency.max / 1e3))
end
"""


def wrk(base: str, token: str, path: str, params: dict[str, Any], expected: int, folder: Path,
        seconds: int = API_WRK_SECONDS) -> tuple[dict[str, Any], float]:
    """``API_CLIENTS`` kept-alive connections of wrk for ``seconds``, each answer expected to hold
    ``expected`` records: its figures, and its own CPU seconds."""
    program = shutil.which("wrk")
    if program is None:
        raise RuntimeError("wrk not found: run scripts/setup.sh (it installs Debian's wrk), or "
                           "apt-get install wrk")
    script = folder / "holder-lookups.lua"
    script.write_text(WRK_SCRIPT, encoding="utf-8")
    url = f"{base}{path}?{urlencode(params)}"
    before = cpu_seconds(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([program, "--threads", "1", "--connections", str(API_CLIENTS),
                           "--duration", f"{seconds}s", "--timeout", "30s",
                           "--script", str(script), url],
                          env={**os.environ, "BENCH_TOKEN": token, "BENCH_EXPECTED": str(expected),
                               "BENCH_MARK": WRK_MARK},
                          capture_output=True, text=True, check=False, timeout=seconds + 60)
    after = cpu_seconds(resource.RUSAGE_CHILDREN)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(WRK_MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk (exit code {proc.returncode}) gave no figures for {base}: "
                           f"{(proc.stderr or proc.stdout).strip()[-500:]}")
    cpu = after - before
    return json.loads(lines[-1].removeprefix(WRK_MARK)), cpu


def _per_call(n: int, wall: float, server_cpu: float, client_cpu: float) -> dict[str, float]:
    """Calls a second, and the server's and the client's CPU a call (ms), over ``n`` calls."""
    return {"requests_per_second": round(n / wall, 1),
            "server_cpu_ms_per_request": round(server_cpu / n * 1000, 2),
            "client_cpu_ms_per_request": round(client_cpu / n * 1000, 3)}


def _cpu_seconds(process: psutil.Process) -> float:
    """CPU time of a process and its children (a server's workers), user and system."""
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = p.cpu_times()
            total += times.user + times.system
    return total


def measure_api(url: str, planted: Planted, folder: Path) -> dict[str, Any]:
    """Holder 0's records asked for by ``API_CLIENTS`` clients at once: wrk's (``api``), then
    aiohttp's in this process (``api_aiohttp``), each with the server's CPU a call."""
    token = create_token(url, "bench-search", personal_data=True)
    zero = benchdb.holder(0)
    path = f"/api/v1/holders/{zero.citizen_id}/records"
    params = {"also": zero.old_id, "purpose": API_PURPOSE, "limit": 100}
    expected = min(100, len(planted.holder_zero))
    shared = {"clients": API_CLIENTS, "records_per_answer": expected}
    with running_api(url, folder) as (base, server):
        asyncio.run(_clients(base, token, path, params, expected, API_WARM_REQUESTS_PER_CLIENT))
        cpu_before = _cpu_seconds(server)
        by_wrk, wrk_cpu = wrk(base, token, path, params, expected, folder)
        wrk_server_cpu = _cpu_seconds(server) - cpu_before
        cpu_before, client_before, started = _cpu_seconds(server), time.process_time(), time.perf_counter()
        seconds, errors = asyncio.run(_clients(base, token, path, params, expected))
        wall, cpu = time.perf_counter() - started, _cpu_seconds(server) - cpu_before
        client_cpu = time.process_time() - client_before
    return {"api": {**shared, "client": "wrk", **by_wrk,
                    **_per_call(by_wrk["n"], by_wrk["seconds"], wrk_server_cpu, wrk_cpu)},
            "api_aiohttp": {**shared, "client": "aiohttp", "errors": errors, **benchdb.stats(seconds),
                            **_per_call(len(seconds), wall, cpu, client_cpu)}}


SIZES_SQL = """
SELECT 'records (text in its TOAST)', pg_table_size('records'), pg_total_relation_size('records'),
       (SELECT sum(octet_length(text)) FROM records WHERE status = 'archived')
UNION ALL SELECT 'search_documents (tsvector)', pg_table_size('search_documents'),
       pg_total_relation_size('search_documents'),
       (SELECT sum(octet_length(text)) FROM records WHERE status = 'archived')
UNION ALL SELECT 'ix_search_documents (GIN)', pg_relation_size('ix_search_documents'),
       pg_relation_size('ix_search_documents'),
       (SELECT sum(octet_length(text)) FROM records WHERE status = 'archived')
UNION ALL SELECT 'search_words', pg_table_size('search_words'), pg_total_relation_size('search_words'),
       (SELECT sum(octet_length(word)) FROM search_words)
UNION ALL SELECT 'ix_search_words_trgm (GIN)', pg_relation_size('ix_search_words_trgm'),
       pg_relation_size('ix_search_words_trgm'), (SELECT sum(octet_length(word)) FROM search_words)
UNION ALL SELECT 'ix_records_holder (btree)', pg_relation_size('ix_records_holder'),
       pg_relation_size('ix_records_holder'),
       (SELECT sum(octet_length(holder_key) + octet_length(agency_code)) FROM records)
"""


def pg_sizes(url: str) -> list[dict[str, Any]]:
    """Each relation's own bytes (pg_relation_size of an index, pg_table_size of a table: heap and
    TOAST), with its indexes (pg_total_relation_size), and the bytes of what it indexes."""
    with warehouse.engine_for(url).connect() as conn:
        rows = conn.execute(text(SIZES_SQL)).all()
    return [{"relation": name, "bytes": int(own), "total_bytes": int(total),
             "indexed_bytes": int(indexed or 0)} for name, own, total, indexed in rows]


def sqlite_sizes(url: str) -> list[dict[str, Any]]:
    with warehouse.engine_for(url).connect() as conn:
        fts = conn.execute(text("SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'records_fts%'")).scalar()
        records = conn.execute(text("SELECT sum(pgsize) FROM dbstat WHERE name = 'records'")).scalar()
        indexed = conn.execute(text("SELECT sum(length(CAST(text AS BLOB))) FROM records")).scalar()
    return [{"relation": "records", "bytes": int(records or 0), "total_bytes": int(records or 0),
             "indexed_bytes": int(indexed or 0)},
            {"relation": "records_fts (FTS5, all its tables)", "bytes": int(fts or 0),
             "total_bytes": int(fts or 0), "indexed_bytes": int(indexed or 0)}]


def run_backend(url: str, n_records: int, corpus: benchdb.SearchCorpus, seed: int,
                folder: Path) -> dict[str, Any]:
    warehouse.migrate(url)
    warehouse.require_empty(url, (warehouse.agencies, warehouse.records), "rows")
    planted = Planted(n_records, seed)
    log.info("%s: filling %d records", make_url(url).get_backend_name(), n_records)
    started = time.perf_counter()
    steps = benchdb.fill_search_warehouse(url, n_records, corpus, seed, keep=planted.keep)
    fill_seconds = time.perf_counter() - started
    log.info("filled in %.0f s; searching", fill_seconds)
    figures: dict[str, Any] = {
        "database": make_url(url).render_as_string(hide_password=True), "records": n_records,
        "fill_seconds": round(fill_seconds, 1), "fill_steps": {k: round(v, 1) for k, v in steps.items()},
        **measure_searches(url, planted)}
    if url.startswith("sqlite"):
        figures["sizes"] = sqlite_sizes(url)
    else:
        log.info("API: %d clients", API_CLIENTS)
        figures.update(measure_api(url, planted, folder))
        figures["sizes"] = pg_sizes(url)
    return figures


def goals(report: dict[str, Any]) -> list[dict[str, Any]]:
    pg, lite = report.get("postgresql"), report.get("sqlite")
    values: dict[str, float | None] = {
        "pg_selective_p95_ms": pg["selective"]["p95_ms"] if pg else None,
        "pg_common_first_page_ms": max(q["median_ms"] for q in pg["common"]) if pg else None,
        "pg_holder_p95_ms": pg["holder_lookup"]["p95_ms"] if pg else None,
        "api_holder_p95_ms": pg["api"]["p95_ms"] if pg else None,
        "api_errors": pg["api"]["errors"] + pg["api_aiohttp"]["errors"] if pg else None,
        "sqlite_selective_p95_ms": lite["selective"]["p95_ms"] if lite else None,
    }
    return [{"goal": key, "label": label, "target": f"{'<=' if key == 'api_errors' else '<'} {at:g}",
             "value": values[key],
             "met": None if values[key] is None else (
                 values[key] <= at if key == "api_errors" else values[key] < at)}  # type: ignore[operator]
            for key, label, at in GOALS]


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f}"


def render_table(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [f"# Search benchmark {report['started_at']}", "",
             f"{env['cpus']} CPUs, load average {env['load_average'][0]:.2f} at the start, "
             f"{env['load_average_end'][0]:.2f} at the end. Warm: each query run once untimed, "
             f"then {REPEAT} times; first page = 20 hits.", ""]
    for name in ("postgresql", "sqlite"):
        part = report.get(name)
        if not part:
            continue
        lines += [f"## {name}: {part['records']:,} records, filled in {part['fill_seconds']:.0f} s "
                  f"({', '.join(f'{k} {v:.0f} s' for k, v in part['fill_steps'].items())})", "",
                  "| measure | n | median ms | p95 ms | max ms | note |", "|---|---|---|---|---|---|"]
        sel = part["selective"]
        rows = [("selective searches (2–4 words)", sel,
                 f"planted record on the first page: {sel['on_first_page']}/{len(sel['queries'])}")]
        rows += [(f"common: {q['query']}", q, f"{q['total']:,} matches") for q in part["common"]]
        rows.append(("holder lookup", part["holder_lookup"],
                     f"{part['holder_lookup']['holders_found']} holders found"))
        for api in (part[key] for key in ("api", "api_aiohttp") if key in part):
            rows.append((f"API holder records, {api['clients']} concurrent, {api['client']}", api,
                         f"{api['n']} requests, {api['errors']} errors, "
                         f"{api['records_per_answer']} records each, "
                         f"{api['requests_per_second']:g} per second, CPU a call: server "
                         f"{api['server_cpu_ms_per_request']:g} ms, client "
                         f"{api['client_cpu_ms_per_request']:g} ms"))
        lines += [f"| {label} | {s['n']} | {s['median_ms']:.1f} | {s['p95_ms']:.1f} | "
                  f"{s['max_ms']:.1f} | {note} |" for label, s, note in rows]
        lines += ["", "| relation | own MB | with its indexes MB | what it indexes MB |",
                  "|---|---|---|---|"]
        lines += [f"| {s['relation']} | {_mb(s['bytes'])} | {_mb(s['total_bytes'])} | "
                  f"{_mb(s['indexed_bytes'])} |" for s in part["sizes"]]
        lines.append("")
    lines += ["## Goals", "", "| goal | value | target | met |", "|---|---|---|---|"]
    for g in report["goals"]:
        value = "-" if g["value"] is None else f"{g['value']:.1f}"
        met = "-" if g["met"] is None else "yes" if g["met"] else "NO"
        lines.append(f"| {g['label']} | {value} | {g['target']} | {met} |")
    return "\n".join(lines) + "\n"


def run_benchmark(out: Path, pg_url: str | None, pg_records: int, sqlite_records: int, seed: int,
                  argv: Sequence[str]) -> dict[str, Any]:
    started_at = dt.datetime.now().isoformat(timespec="seconds")
    environment: dict[str, Any] = {
        "cpus": len(os.sched_getaffinity(0)), "load_average": os.getloadavg(),
        "python": platform.python_version(), "platform": platform.platform(),
        "command": [sys.executable, "-m", "pipeline.demo.bench_search", *argv]}
    corpus = benchdb.SearchCorpus(seed)
    report: dict[str, Any] = {"benchmark": "pipeline.demo.bench_search", "started_at": started_at,
                              "environment": environment}
    with tempfile.TemporaryDirectory(prefix="search-bench-") as tmp:
        folder = Path(tmp)
        try:
            if pg_url and pg_records:
                with warehouse.engine_for(pg_url).connect() as conn:
                    environment["postgresql"] = conn.execute(text("SHOW server_version")).scalar()
                report["postgresql"] = run_backend(pg_url, pg_records, corpus, seed, folder)
            if sqlite_records:
                lite = f"sqlite:///{folder / 'warehouse.sqlite'}"
                try:
                    report["sqlite"] = run_backend(lite, sqlite_records, corpus, seed, folder)
                finally:
                    warehouse.dispose(lite)
        finally:
            if pg_url:
                warehouse.dispose(pg_url)
    environment["load_average_end"] = os.getloadavg()
    report["finished_at"] = dt.datetime.now().isoformat(timespec="seconds")
    report["goals"] = goals(report)
    return report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline.demo.bench_search",
                                description="Search, holder lookups and the read API over a "
                                            "province-sized warehouse.")
    p.add_argument("--pg-url", help="an EMPTY PostgreSQL database (without it: SQLite only)")
    p.add_argument("--pg-records", type=int, default=1_000_000, help="default 1,000,000")
    p.add_argument("--sqlite-records", type=int, default=100_000, help="default 100,000")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None,
                   help="folder for bench-search.json and .md (default var/bench/search-<timestamp>)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    start_logging()
    if args.pg_records < 0 or args.sqlite_records < 0:
        print("--pg-records and --sqlite-records must not be negative", file=sys.stderr)
        return 2
    return report_main("search", args.out, lambda out: run_benchmark(
        out, args.pg_url, args.pg_records, args.sqlite_records, args.seed, argv), render_table)


if __name__ == "__main__":
    sys.exit(main())
