"""The search index: one document per archived record, on SQLite (FTS5) or PostgreSQL.

A record's document is its procedure's name, its result number, its holder's name and its OCR
text, folded by :func:`pipeline.text.fold` (case, tone marks and đ gone) and cut into the same
ASCII words on both back ends, so that both find the same records for the same words:

- SQLite: the FTS5 table ``records_fts`` (rowid = ``records.id``). FTS5's ``remove_diacritics``
  leaves đ alone, which is why the text is folded here before FTS5 sees it.
- PostgreSQL: ``search_documents`` holds each record's tsvector under the text search
  configuration ``digitize_vi`` (``simple`` behind ``unaccent``), GIN-indexed; ``search_words``
  holds every distinct word once, trigram-indexed (``pg_trgm``), so that a query word with an
  OCR slip is replaced by the similar words the texts do contain. Trigrams over the words, not
  over whole texts, keep that index small.

A document is written whenever a record is archived (:func:`index_record`, from
``warehouse.load_archived``, in its transaction); migration 0010 builds it for the records
archived before (:func:`build`). Signing a record later changes its file, not its text: the
document stays.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import Connection, select

from pipeline.store import warehouse
from pipeline.text import fold

# What FTS5's unicode61 tokenizer and PostgreSQL's parser both read as one word once the text
# is folded: runs of ASCII letters and digits (punctuation, "/" and "-" separate).
WORD = re.compile(r"[0-9a-z]+")
CONFIG = "digitize_vi"
# records whose text is read and indexed at a time while the index is rebuilt
REBUILD_CHUNK = 500

SQLITE_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS records_fts USING fts5("
    "document, tokenize = 'unicode61 remove_diacritics 2')",
)
POSTGRESQL_DDL = (
    "CREATE EXTENSION IF NOT EXISTS unaccent",
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    f"""DO $$
BEGIN
    CREATE TEXT SEARCH CONFIGURATION {CONFIG} (COPY = simple);
    ALTER TEXT SEARCH CONFIGURATION {CONFIG}
        ALTER MAPPING FOR hword, hword_part, word WITH unaccent, simple;
EXCEPTION WHEN unique_violation THEN
    NULL;  -- made before, by an earlier run of this migration on the same database
END
$$""",
    "CREATE TABLE IF NOT EXISTS search_documents ("
    " record_pk integer PRIMARY KEY REFERENCES records (id),"
    " document tsvector NOT NULL)",
    "CREATE TABLE IF NOT EXISTS search_words (word text PRIMARY KEY)",
)
# made after the documents of a warehouse's records are written: building a GIN index once is
# many times faster than updating it document by document
POSTGRESQL_INDEXES = (
    "CREATE INDEX IF NOT EXISTS ix_search_documents ON search_documents USING gin (document)",
    "CREATE INDEX IF NOT EXISTS ix_search_words_trgm ON search_words USING gin (word gin_trgm_ops)",
)
SQLITE_DROP = ("DROP TABLE IF EXISTS records_fts",)
POSTGRESQL_DROP = (
    "DROP TABLE IF EXISTS search_words",
    "DROP TABLE IF EXISTS search_documents",
    f"DROP TEXT SEARCH CONFIGURATION IF EXISTS {CONFIG}",
    # the extensions stay: another schema of the database may use them
)


def words(text: str) -> list[str]:
    """The folded words of ``text`` as both back ends index and query them."""
    return WORD.findall(fold(text))


def document(*parts: str | None) -> str:
    """A record's document: its parts' folded words, one space apart."""
    return " ".join(w for part in parts if part for w in words(part))


def build(conn: Connection) -> int:
    """The index made and filled with every archived record (migration 0010); returns how many
    records it holds."""
    postgresql = conn.dialect.name == "postgresql"
    for statement in POSTGRESQL_DDL if postgresql else SQLITE_DDL:
        conn.exec_driver_sql(statement)
    count = rebuild(conn)
    for statement in POSTGRESQL_INDEXES if postgresql else ():
        conn.exec_driver_sql(statement)
    return count


def drop(conn: Connection) -> None:
    for statement in SQLITE_DROP if conn.dialect.name == "sqlite" else POSTGRESQL_DROP:
        conn.exec_driver_sql(statement)


def _documents(conn: Connection, record_pks: Iterable[int] | None) -> list[tuple[int, str]]:
    r, p = warehouse.records, warehouse.procedures
    query = (select(r.c.id, p.c.name, r.c.result_number, r.c.holder_name, r.c.text)
             .select_from(r.outerjoin(p, p.c.code == r.c.procedure_code))
             .where(r.c.status == "archived"))
    if record_pks is not None:
        query = query.where(r.c.id.in_(list(record_pks)))
    return [(row.id, document(row.name, row.result_number, row.holder_name, row.text))
            for row in conn.execute(query)]


def _write(conn: Connection, docs: list[tuple[int, str]]) -> None:
    if not docs:
        return
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("DELETE FROM records_fts WHERE rowid = :pk",
                             [{"pk": pk} for pk, _ in docs])
        conn.exec_driver_sql("INSERT INTO records_fts (rowid, document) VALUES (:pk, :doc)",
                             [{"pk": pk, "doc": doc} for pk, doc in docs])
        return
    # one statement per chunk: psycopg2 sends an executemany row by row
    conn.exec_driver_sql(
        f"INSERT INTO search_documents (record_pk, document) "
        f"SELECT pk, to_tsvector('{CONFIG}', doc) FROM unnest(%(pks)s::integer[], %(docs)s::text[]) "
        "AS chunk (pk, doc) "
        "ON CONFLICT (record_pk) DO UPDATE SET document = excluded.document",
        {"pks": [pk for pk, _ in docs], "docs": [doc for _, doc in docs]})
    distinct = sorted({w for _, doc in docs for w in doc.split()})
    conn.exec_driver_sql(
        f"INSERT INTO search_words (word) SELECT unnest(tsvector_to_array(to_tsvector('{CONFIG}', "
        "%(words)s))) ON CONFLICT DO NOTHING", {"words": " ".join(distinct)})


def index_record(conn: Connection, record_pk: int | None) -> None:
    """The archived record's document written (again) into the index."""
    if record_pk is not None:
        _write(conn, _documents(conn, [record_pk]))


def rebuild(conn: Connection) -> int:
    """Every archived record's document written into the index; returns how many."""
    r = warehouse.records
    pks = conn.execute(select(r.c.id).where(r.c.status == "archived").order_by(r.c.id)).scalars().all()
    for start in range(0, len(pks), REBUILD_CHUNK):
        _write(conn, _documents(conn, pks[start:start + REBUILD_CHUNK]))
    return len(pks)
