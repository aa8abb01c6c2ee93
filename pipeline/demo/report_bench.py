"""Quarterly report benchmark: the report over a warehouse of a real province's size.

``python -m pipeline.demo.report_bench --db-url postgresql+psycopg2://postgres@127.0.0.1:5432/reportbench
--records 1000000`` fills an EMPTY warehouse with synthetic agencies (a province: 1 UBND, 20
departments, 15 districts, 300 communes), procedures, inventory, batches, records and their
events (COPY on PostgreSQL, executemany in big chunks on SQLite), then times
:func:`pipeline.reporting.progress.quarter_report` and the rendering of each format, and writes the
figures to ``var/bench/report-<timestamp>.json``. Not part of the test suite. The goal: the
report of a quarter over 1,000,000 records on PostgreSQL in under 5 s.

A database given with ``--db-url`` must hold no agencies, inventory or records yet, so a
production warehouse is never filled with synthetic rows; without it, a temporary SQLite file.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import sys
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, insert, text

from pipeline.config import load_settings
from pipeline.demo import benchdb
from pipeline.reporting import progress, report
from pipeline.store import warehouse

REASONS = ("catalogue_mismatch", "file_missing", "manifest_row_invalid", "ocr_low_confidence",
           "probable_duplicate", "pages_blank", "image_unreadable")
RECORDS_PER_BATCH = 500
CHUNK = 100_000
FIRST_ARCHIVED = dt.datetime(2021, 3, 1)
LAST_ARCHIVED = dt.datetime(2024, 9, 30)


def _agencies() -> list[dict[str, Any]]:
    rows = [{"code": "000.00.00.H12", "name": "Ủy ban nhân dân tỉnh (thử nghiệm)", "level": "tinh"}]
    rows += [{"code": f"000.00.{i:02d}.H12", "name": f"Sở thử nghiệm số {i}", "level": "tinh"}
             for i in range(1, 21)]
    rows += [{"code": f"000.00.{i:02d}.H12", "name": f"UBND huyện thử nghiệm số {i - 20}",
              "level": "huyen"} for i in range(21, 36)]
    rows += [{"code": f"000.{1 + i % 20:02d}.{21 + i // 20:02d}.H12",
              "name": f"UBND xã thử nghiệm số {i + 1}", "level": "xa"} for i in range(300)]
    return rows


def _weights(agencies: list[dict[str, Any]]) -> list[float]:
    # departments and districts issue far more results than a commune
    return [{"tinh": 12.0, "huyen": 8.0, "xa": 1.0}[a["level"]] for a in agencies]


def _csv_chunks(rows: Iterator[tuple[Any, ...]], size: int = CHUNK) -> Iterator[str]:
    buffer, n = io.StringIO(), 0
    out = csv.writer(buffer)  # None -> empty unquoted field, which COPY reads as NULL
    for row in rows:
        out.writerow(row)
        n += 1
        if n == size:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            n = 0
    if n:
        yield buffer.getvalue()


def _load(conn: Connection, table: str, columns: list[str], rows: Iterator[tuple[Any, ...]]) -> None:
    """COPY on PostgreSQL (the fastest way in); executemany in chunks elsewhere."""
    if conn.dialect.name == "postgresql":
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        for chunk in _csv_chunks(rows):
            cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)",
                               io.StringIO(chunk))
        return
    target = warehouse.metadata.tables[table]
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(dict(zip(columns, row, strict=True)))
        if len(batch) == CHUNK:
            conn.execute(insert(target), batch)
            batch = []
    if batch:
        conn.execute(insert(target), batch)


def fill(url: str, n_records: int, seed: int = 0) -> dict[str, int]:
    """Synthetic reference data, batches, records and events; returns the row counts."""
    rng = random.Random(seed)
    agencies = _agencies()
    weights = _weights(agencies)
    procedures = [f"1.{i:06d}" for i in range(200)]
    engine = warehouse.engine_for(url)
    with engine.begin() as conn:
        conn.execute(insert(warehouse.agencies), agencies)
        conn.execute(insert(warehouse.procedures),
                     [{"code": c, "name": f"Thủ tục thử nghiệm {c}", "levels": "tinh,huyen,xa"}
                      for c in procedures])
        # 20 procedures per agency and year; counts scaled so the inventory is ~1.4x the records
        total_weight = sum(weights)
        inventory = []
        for agency, weight in zip(agencies, weights, strict=True):
            mine = rng.sample(procedures, 20)
            per_year = 1.4 * n_records * weight / total_weight / (27 * 20)
            for year in range(1995, 2022):
                for code in mine:
                    count = max(0, round(rng.gauss(per_year, per_year / 4)))
                    inventory.append((agency["code"], year, code, count))
        _load(conn, "inventory", ["agency_code", "issue_year", "procedure_code", "still_valid_count"],
              iter(inventory))

        # records, in batches of one agency each
        codes = rng.choices([a["code"] for a in agencies], weights=weights,
                            k=n_records // RECORDS_PER_BATCH + 1)
        n_batches = len(codes)
        _load(conn, "batches", ["id", "agency_code", "batch_id", "source_dir", "manifest_sha256", "status",
                                "record_count", "archived_count", "quarantined_count", "registered_at"],
              ((i + 1, code, f"B{i + 1:06d}", f"/data/inbox/{code}/B{i + 1:06d}", "0" * 64, "done",
                RECORDS_PER_BATCH, RECORDS_PER_BATCH, 0, FIRST_ARCHIVED) for i, code in enumerate(codes)))
        span = (LAST_ARCHIVED - FIRST_ARCHIVED).total_seconds()
        records: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        for i in range(n_records):
            batch = i // RECORDS_PER_BATCH
            agency = codes[batch]
            # about 15 % of the results were issued before 2006 (phase 3)
            year = rng.randint(1995, 2005) if rng.random() < 0.15 else rng.randint(2006, 2021)
            issued = dt.date(year, rng.randint(1, 12), rng.randint(1, 28))
            at = FIRST_ARCHIVED + dt.timedelta(seconds=rng.random() * span)
            held = rng.random() < 0.03
            pages = rng.randint(1, 12)
            record_id = f"R{i:07d}"
            reason = rng.choice(REASONS) if held else None
            records.append((
                agency, record_id, batch + 1, i % RECORDS_PER_BATCH + 2, rng.choice(procedures),
                f"{i}/GCN", issued, "Nguyễn Văn Thử", f"{rng.randrange(10**12):012d}", True,
                "quarantined" if held else "archived", reason, pages, at))
            events.append((batch + 1, record_id, "quarantine" if held else "archive",
                           reason or "archived", "-", at))
            if not held and rng.random() < 0.005:  # archived after a quarantine that was fixed
                events.append((batch + 1, record_id, "quarantine", rng.choice(REASONS), "-",
                               at - dt.timedelta(days=rng.randint(1, 60))))
        _load(conn, "records", ["agency_code", "record_id", "batch_pk", "manifest_line", "procedure_code",
                                "result_number", "issued_on", "holder_name", "holder_id", "still_valid",
                                "status", "reason", "page_count", "updated_at"], iter(records))
        _load(conn, "events", ["batch_pk", "record_id", "stage", "outcome", "detail", "at"], iter(events))
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT setval('batches_id_seq', :n)"), {"n": n_batches})
    if engine.dialect.name == "postgresql":
        # what autovacuum does after a bulk load: statistics and the visibility map, without
        # which an index-only scan still visits the table
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in ("records", "events", "inventory", "batches", "agencies"):
                conn.execute(text(f"VACUUM ANALYZE {table}"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return {"agencies": len(agencies), "procedures": len(procedures), "inventory": len(inventory),
            "batches": n_batches, "records": n_records, "events": len(events)}


def run(url: str, n_records: int, quarter: str, repeat: int = 3) -> dict[str, Any]:
    warehouse.migrate(url)
    warehouse.require_empty(url, (warehouse.agencies, warehouse.inventory, warehouse.records), "rows")
    started = time.perf_counter()
    counts = fill(url, n_records)
    fill_seconds = time.perf_counter() - started
    plan = load_settings().plan
    report_seconds = []
    for _ in range(repeat):
        t = time.perf_counter()
        data = progress.quarter_report(url, quarter, plan)
        report_seconds.append(time.perf_counter() - t)
    render_seconds, sizes = {}, {}
    for fmt in report.FORMATS:
        t = time.perf_counter()
        body = report.render(data, fmt)
        render_seconds[fmt] = time.perf_counter() - t
        sizes[fmt] = len(body)
    total = data.totals[-1]
    first_and_all = report_seconds[0] + sum(render_seconds.values())
    return {
        "rows": counts,
        "fill_seconds": round(fill_seconds, 2),
        "quarter": data.quarter,
        "quarter_report_seconds": [round(s, 3) for s in report_seconds],
        "render_seconds": {k: round(v, 3) for k, v in render_seconds.items()},
        "bytes": sizes,
        "report_and_all_formats_seconds": round(first_and_all, 3),
        "goal_seconds": 5.0,
        "goal_met": first_and_all < 5.0,
        "figures": {"agencies": len(data.choices.agencies), "inventoried": total.inventoried,
                    "digitized": total.digitized, "percent": total.percent,
                    "quarantined": total.quarantined,
                    "digitized_in_quarter": total.digitized_in_quarter},
    }


def main(argv: list[str] | None = None) -> int:
    parser = benchdb.parser("python -m pipeline.demo.report_bench", __doc__, "report")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--quarter", default="2024Q2", help="the quarter to report (default 2024Q2)")
    args = parser.parse_args(argv)
    quarter = progress.parse_quarter(args.quarter).label
    figures, out = benchdb.run_on_warehouse(args, "report",
                                            lambda url, _: run(url, args.records, quarter))
    print(f"{figures['database']}: {figures['rows']['records']:,} records, "
          f"{figures['rows']['inventory']:,} inventory rows, filled in {figures['fill_seconds']} s")
    print(f"quarter_report({figures['quarter']}): "
          + ", ".join(f"{s:.3f} s" for s in figures["quarter_report_seconds"]))
    print("render: " + ", ".join(f"{k} {v:.3f} s ({figures['bytes'][k]:,} B)"
                                 for k, v in figures["render_seconds"].items()))
    print(f"report + all four formats: {figures['report_and_all_formats_seconds']} s "
          f"(goal < 5 s: {'met' if figures['goal_met'] else 'NOT met'}) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
