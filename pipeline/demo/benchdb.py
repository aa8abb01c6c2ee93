"""What the warehouse benchmarks (reference import, quarterly report, search) share: their command
line, an empty temporary SQLite unless a database is named, the figures written as JSON, timing
statistics, COPY, and a warehouse of records with their text, holder keys and search index."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import io
import json
import platform
import random
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, insert
from sqlalchemy.engine import make_url

from pipeline.config import load_settings
from pipeline.demo.content import DEFAULT_AGENCY, PROCEDURES, record_content
from pipeline.demo.layout import fit, page_text
from pipeline.privacy import holder_key
from pipeline.store import search_index, warehouse
from pipeline.store.archive import atomic_write_bytes


def parser(prog: str, doc: str | None, kind: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0] if doc else None)
    p.add_argument("--db-url", help="an EMPTY warehouse database (default: a temporary SQLite)")
    p.add_argument("--out", type=Path, help=f"JSON file (default var/bench/{kind}-<timestamp>.json)")
    return p


def run_on_warehouse(args: argparse.Namespace, kind: str,
                     run: Callable[[str, Path], dict[str, Any]]) -> tuple[dict[str, Any], Path]:
    """``run(url, scratch_dir)`` on the named database or a temporary SQLite; its figures, with
    where and on what they were measured, go to ``--out``. Returns them and the file."""
    out = args.out or load_settings().dir("bench") / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    with tempfile.TemporaryDirectory(prefix=f"{kind}bench-") as tmp:
        url = args.db_url or f"sqlite:///{Path(tmp) / 'warehouse.sqlite'}"
        try:
            figures = {
                "when": dt.datetime.now().isoformat(timespec="seconds"),
                "database": make_url(url).render_as_string(hide_password=True),
                "dialect": make_url(url).get_backend_name(),
                "python": platform.python_version(),
                "machine": platform.machine(),
                **run(url, Path(tmp)),
            }
        finally:
            warehouse.dispose(url)
    atomic_write_bytes(out, (json.dumps(figures, ensure_ascii=False, indent=2) + "\n").encode())
    return figures, out


# --- records with their text, holder keys and search index (pipeline.demo.bench_search) -----------
# A warehouse of a province's size filled in minutes, not rendered page by page: a few hundred
# documents of the sample generator (pipeline.demo.content) are laid out once, their holder's
# name, id and result number made placeholders, and every record is two of them spliced at a line
# and filled with its own holder and number. Each record's folded document is assembled from the
# folded pieces (what pipeline.store.search_index.document makes of the whole text, since a
# placeholder never touches a letter or digit), so that the index is what archiving would write.

TEMPLATES_PER_KIND = 40  # per procedure and id kind (12-digit id, or the 9-digit one before 2016)
RECORDS_PER_BENCH_BATCH = 1000
COPY_RECORDS = 5000  # records generated and sent per COPY
NEW_IDS_FROM = 2016  # results issued before carry the 9-digit identity card number
_FIELDS = ("name", "id", "number")
_FIELD = re.compile("\x00(" + "|".join(_FIELDS) + ")\x00")
_SURNAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ",
             "Hồ", "Ngô", "Dương", "Lý", "Đinh", "Trịnh", "Lương", "Mai", "Tạ")
_MIDDLE = ("Văn", "Thị", "Đức", "Minh", "Quang", "Hữu", "Thành", "Công", "Xuân", "Đình", "Mạnh",
           "Thị Hồng", "Thị Thu", "Ngọc", "Thanh", "Kim", "Bảo", "Gia", "Hải", "Trung")
_GIVEN = ("Hùng", "Dũng", "Tuấn", "Thắng", "Cường", "Việt", "Hưng", "Lộc", "Trường", "Nghĩa",
          "Nhung", "Hương", "Lan", "Huệ", "Thủy", "Hằng", "Ngọc", "Trang", "Yến", "Liễu", "Oanh",
          "Sơn", "Long", "Phúc", "Khánh", "Quyên", "Thảo", "Vinh", "Hiếu", "Nam", "Bình", "An")
BENCH_AGENCIES: tuple[tuple[str, str, str], ...] = (
    *((f"000.00.{i:02d}.H12", f"UBND huyện thử nghiệm số {i - 10}", "huyen") for i in range(11, 26)),
    *((f"000.00.{i:02d}.H12", f"Sở thử nghiệm số {i}", "tinh") for i in range(1, 6)),
)
RECORD_COLUMNS = ("id", "agency_code", "record_id", "batch_pk", "manifest_line", "procedure_code",
                  "result_number", "issued_on", "holder_name", "holder_id", "holder_key",
                  "still_valid", "status", "pdf_path", "pdf_sha256", "version", "page_count", "text",
                  "updated_at")


@dataclass(frozen=True)
class Template:
    """A laid-out sample document: its lines, each cut into literal pieces and fields."""

    pages: int
    lines: tuple[tuple[str | None, ...], ...]  # a piece, or None where ``fields`` says
    fields: tuple[tuple[str, ...], ...]  # per line, the field of each None in order
    folded: tuple[tuple[str, ...], ...]  # per line, each literal piece's folded words


@dataclass(frozen=True)
class Holder:
    index: int
    name: str
    citizen_id: str  # 12 digits
    old_id: str  # 9 digits


@dataclass(frozen=True)
class BenchRecord:
    pk: int
    agency_code: str
    record_id: str
    procedure_code: str
    result_number: str
    issued_on: dt.date
    holder: Holder
    holder_id: str  # the id its paper carries
    still_valid: bool
    archived: bool
    pages: int
    text: str
    document: str  # pipeline.store.search_index.document of it


def holder(index: int) -> Holder:
    """Holder ``index``: its name and ids follow from the number, so any record can be asked for."""
    name = (f"{_SURNAMES[index % 20]} {_MIDDLE[index // 20 % 20]} "
            f"{_GIVEN[index // 400 % len(_GIVEN)]}")
    # province, sex, year of birth, six digits (index < 10**9 keeps them apart)
    return Holder(index, name,
                  f"{1 + index // 10**6:03d}{index % 2}{index * 7 % 100:02d}{index % 10**6:06d}",
                  f"{10 + index // 10**7 % 90:02d}{index % 10**7:07d}")


def _template(body: str, content: Any, with_id: bool, pages: int) -> Template | None:
    """The body with the holder's name, id and number as fields; None when the id or the number
    is missing or a field touches a letter or digit (the pieces would not fold apart)."""
    person = content.holder.person.name
    own_id = content.holder.citizen_id if with_id else content.holder.old_id
    # a household business's papers print the owner's name in capitals
    marked = re.sub(r"\s+".join(map(re.escape, person.split())), "\x00name\x00", body,
                    flags=re.IGNORECASE)
    marked = marked.replace(own_id, "\x00id\x00").replace(content.result_number, "\x00number\x00")
    if any(f"\x00{f}\x00" not in marked for f in ("id", "number")) \
            or re.search(r"\w" + _FIELD.pattern + "|" + _FIELD.pattern + r"\w", marked):
        return None
    lines, fields, folded = [], [], []
    for line in marked.split("\n"):
        parts = _FIELD.split(line)  # literal, field, literal, field, ...
        lines.append(tuple(p if i % 2 == 0 else None for i, p in enumerate(parts)))
        fields.append(tuple(parts[1::2]))
        folded.append(tuple(search_index.document(p) for p in parts[::2]))
    return Template(pages, tuple(lines), tuple(fields), tuple(folded))


class SearchCorpus:
    """Records with the sample generator's text, made fast and the same for the same seed."""

    def __init__(self, seed: int = 0, per_kind: int = TEMPLATES_PER_KIND) -> None:
        rng = random.Random(f"search-corpus:{seed}")
        self.templates: dict[tuple[str, bool], list[Template]] = {}
        self._symbols: dict[str, str] = {}  # procedure -> its result numbers' symbol (GPXD...)
        for procedure in PROCEDURES:
            for with_id in (True, False):
                made: list[Template] = []
                while len(made) < per_kind:
                    content = record_content(rng, DEFAULT_AGENCY, procedure, with_id)
                    self._symbols[procedure.code] = content.result_number.split("/", 1)[1]
                    pages = 1 + len(made) % 2
                    body = "\n".join(page_text(p) for p in fit(content.doc, "serif", pages, rng))
                    if (template := _template(body, content, with_id, pages)) is not None:
                        made.append(template)
                self.templates[procedure.code, with_id] = made
        self._folded_names = {p.code: search_index.document(p.name) for p in PROCEDURES}
        # what the archived records made so far hold, for words(): the fields' words, and per
        # template the longest head and tail of its lines used (a record is a head and a tail)
        self._field_words: set[str] = set()
        self._heads: dict[int, tuple[Template, int]] = {}
        self._tails: dict[int, tuple[Template, int]] = {}

    def words(self) -> set[str]:
        """Every distinct word of the archived records made so far: what ``search_words`` holds
        once they are indexed."""
        found = set(self._field_words)
        for template, lines in [*((t, range(n)) for t, n in self._heads.values()),
                                *((t, range(n, len(t.lines))) for t, n in self._tails.values())]:
            found.update(w for n in lines for piece in template.folded[n] for w in piece.split())
        return found

    def records(self, n_records: int, seed: int = 0, *, first_pk: int = 1,
                holders: int | None = None) -> Iterator[BenchRecord]:
        """``n_records`` records; about 2 in 3 holders have one record, the rest several. Holder 0
        has one archived, still-valid record in every tenth of the corpus: the API benchmark asks
        for them."""
        rng = random.Random(f"search-records:{seed}")
        n_holders = holders or max(1, n_records * 2 // 3)
        agencies = [a[0] for a in BENCH_AGENCIES]
        planted_every = max(1, n_records // 10)
        for i in range(n_records):
            pk = first_pk + i
            procedure = PROCEDURES[rng.randrange(len(PROCEDURES))]
            year = rng.randint(1995, 2005) if rng.random() < 0.15 else rng.randint(2006, 2021)
            issued = dt.date(year, rng.randint(1, 12), rng.randint(1, 28))
            planted = i % planted_every == 0
            who = holder(0 if planted else 1 + rng.randrange(n_holders))
            with_id = year >= NEW_IDS_FROM
            holder_id = who.citizen_id if with_id else who.old_id
            kind = self.templates[procedure.code, with_id]
            first, second = kind[rng.randrange(len(kind))], kind[rng.randrange(len(kind))]
            cut = rng.randrange(len(first.lines) // 3, 2 * len(first.lines) // 3 + 1)
            start = cut * len(second.lines) // len(first.lines)  # the tail of the second one
            number = f"{rng.randint(1, 2999)}/{self._symbols[procedure.code]}"
            values = {"name": who.name, "id": holder_id, "number": number}
            folded_values = {k: search_index.document(v) for k, v in values.items()}
            text_lines, doc = [], [self._folded_names[procedure.code], folded_values["number"],
                                   folded_values["name"]]
            for template, chosen in ((first, range(cut)), (second, range(start, len(second.lines)))):
                for n in chosen:
                    fields = iter(template.fields[n])
                    folded = iter(template.folded[n])
                    out = []
                    for piece in template.lines[n]:
                        if piece is None:
                            field = next(fields)
                            out.append(values[field])
                            doc.append(folded_values[field])
                        else:
                            out.append(piece)
                            doc.append(next(folded))
                    text_lines.append("".join(out))
            archived = (rng.random() < 0.98) or planted
            if archived:
                # the name and number are in the document as metadata; the id only as text
                self._field_words.update(w for k, v in folded_values.items()
                                         if k != "id" or v in doc for w in v.split())
                if self._heads.get(id(first), (first, 0))[1] < cut:
                    self._heads[id(first)] = first, cut
                if self._tails.get(id(second), (second, len(second.lines)))[1] > start:
                    self._tails[id(second)] = second, start
            yield BenchRecord(
                pk=pk, agency_code=agencies[rng.randrange(len(agencies))], record_id=f"BS-{i:07d}",
                procedure_code=procedure.code, result_number=number, issued_on=issued,
                holder=who, holder_id=holder_id, still_valid=(rng.random() < 0.95) or planted,
                archived=archived, pages=first.pages, text="\n".join(text_lines),
                document=" ".join(d for d in doc if d))


def _record_row(r: BenchRecord, batch_pk: int, at: dt.datetime) -> tuple[Any, ...]:
    return (r.pk, r.agency_code, r.record_id, batch_pk, (r.pk - 1) % RECORDS_PER_BENCH_BATCH + 2,
            r.procedure_code, r.result_number, r.issued_on, r.holder.name, r.holder_id,
            holder_key(r.holder_id), r.still_valid, "archived" if r.archived else "quarantined",
            f"/archive/{r.agency_code}/{r.issued_on.year}/{r.record_id}.pdf" if r.archived else None,
            hashlib.sha256(r.record_id.encode()).hexdigest() if r.archived else None,
            1 if r.archived else None, r.pages, r.text if r.archived else None, at)


def copy_rows(conn: Connection, table: str, columns: Sequence[str],
              rows: Iterable[Sequence[Any]]) -> None:
    """COPY ``rows`` into ``table`` on PostgreSQL (psycopg2 or psycopg 3), CSV in one stream."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)  # None -> an empty unquoted field: NULL for COPY
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)"
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    if hasattr(cursor, "copy_expert"):
        buffer.seek(0)
        cursor.copy_expert(sql, buffer)
    else:
        with cursor.copy(sql) as copy:
            copy.write(buffer.getvalue())


def _reference_rows(conn: Connection, n_records: int, at: dt.datetime) -> None:
    conn.execute(insert(warehouse.agencies),
                 [{"code": c, "name": n, "level": lv} for c, n, lv in BENCH_AGENCIES])
    conn.execute(insert(warehouse.procedures), [{"code": p.code, "name": p.name} for p in PROCEDURES])
    batches = range(1, n_records // RECORDS_PER_BENCH_BATCH + 2)
    conn.execute(insert(warehouse.batches), [
        {"id": b, "agency_code": BENCH_AGENCIES[b % len(BENCH_AGENCIES)][0], "batch_id": f"BS{b:05d}",
         "source_dir": f"/data/inbox/BS{b:05d}", "manifest_sha256": "0" * 64, "status": "done",
         "record_count": RECORDS_PER_BENCH_BATCH, "archived_count": RECORDS_PER_BENCH_BATCH,
         "quarantined_count": 0, "registered_at": at} for b in batches])


def fill_search_warehouse(url: str, n_records: int, corpus: SearchCorpus, seed: int = 0,
                          keep: Callable[[BenchRecord], None] | None = None) -> dict[str, float]:
    """An EMPTY, migrated warehouse filled with ``n_records`` records, their holder keys and the
    search index; ``keep`` sees every record as it goes by. Returns seconds per step.

    PostgreSQL: the GIN indexes dropped, records and each record's folded document COPYed (the
    documents to an unlogged table), the tsvectors and the distinct words made by SQL as
    :mod:`pipeline.store.search_index` makes them, the indexes built again, VACUUM ANALYZE.
    SQLite: executemany in chunks into records and records_fts."""
    engine = warehouse.engine_for(url)
    postgresql = engine.dialect.name == "postgresql"
    at = dt.datetime(2024, 6, 1, 8, 0)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    with engine.begin() as conn:
        _reference_rows(conn, n_records, at)
        if postgresql:
            conn.exec_driver_sql("DROP INDEX IF EXISTS ix_search_documents")
            conn.exec_driver_sql("DROP INDEX IF EXISTS ix_search_words_trgm")
            conn.exec_driver_sql("CREATE UNLOGGED TABLE bench_documents (pk integer, doc text)")
        chunk: list[BenchRecord] = []
        for record in corpus.records(n_records, seed):
            if keep is not None:
                keep(record)
            chunk.append(record)
            if len(chunk) == COPY_RECORDS:
                _write_chunk(conn, chunk, at)
                chunk = []
        _write_chunk(conn, chunk, at)
        seconds["records_and_documents"] = time.perf_counter() - started
        if not postgresql:
            return seconds
        step = time.perf_counter()
        conn.exec_driver_sql(
            f"INSERT INTO search_documents (record_pk, document) SELECT pk, to_tsvector("
            f"'{search_index.CONFIG}', doc) FROM bench_documents")
        conn.exec_driver_sql("DROP TABLE bench_documents")
        seconds["tsvectors"] = time.perf_counter() - step
        step = time.perf_counter()
        conn.exec_driver_sql("CREATE TEMPORARY TABLE bench_words (word text) ON COMMIT DROP")
        copy_rows(conn, "bench_words", ["word"], ((w,) for w in sorted(corpus.words())))
        conn.exec_driver_sql(
            f"INSERT INTO search_words (word) SELECT DISTINCT unnest(tsvector_to_array("
            f"to_tsvector('{search_index.CONFIG}', word))) FROM bench_words ON CONFLICT DO NOTHING")
        conn.exec_driver_sql(f"SELECT setval('records_id_seq', {n_records})")
        seconds["words"] = time.perf_counter() - step
        step = time.perf_counter()
        # a GIN index of this size builds many times faster with room to sort in
        conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '1GB'")
        for statement in search_index.POSTGRESQL_INDEXES:
            conn.exec_driver_sql(statement)
        seconds["indexes"] = time.perf_counter() - step
    step = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ("records", "search_documents", "search_words", "batches", "agencies"):
            conn.exec_driver_sql(f"VACUUM ANALYZE {table}")
    seconds["vacuum_analyze"] = time.perf_counter() - step
    return seconds


def _write_chunk(conn: Connection, chunk: list[BenchRecord], at: dt.datetime) -> None:
    if not chunk:
        return
    rows = [_record_row(r, (r.pk - 1) // RECORDS_PER_BENCH_BATCH + 1, at) for r in chunk]
    archived = [r for r in chunk if r.archived]
    if conn.dialect.name == "postgresql":
        copy_rows(conn, "records", RECORD_COLUMNS, rows)
        copy_rows(conn, "bench_documents", ["pk", "doc"], ((r.pk, r.document) for r in archived))
        return
    conn.execute(insert(warehouse.records), [dict(zip(RECORD_COLUMNS, row, strict=True))
                                             for row in rows])
    conn.exec_driver_sql("INSERT INTO records_fts (rowid, document) VALUES (?, ?)",
                         [(r.pk, r.document) for r in archived])


def stats(values: Sequence[float]) -> dict[str, float]:
    """Median, p95 and max of timings (seconds), in milliseconds."""
    ms = np.asarray(values) * 1000.0
    return {"n": len(values), "median_ms": round(float(np.median(ms)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2), "max_ms": round(float(ms.max()), 2)}
