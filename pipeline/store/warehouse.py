"""Load: the warehouse tables and idempotent upserts on natural keys (SQLite or PostgreSQL).

The schema lives here once; ``sql/migrations`` (Alembic) creates and evolves it, and
``migrate()`` brings any database to the latest revision before a run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from pipeline.checks.crosscheck import read_fields
from pipeline.config import PROJECT_DIR
from pipeline.errors import WarehouseUnreachableError
from pipeline.models import RecordResult, RecordStatus, RecordTask
from pipeline.privacy import holder_key

if TYPE_CHECKING:
    from pipeline.signing.sign import SignatureInfo

metadata = MetaData()


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


agencies = Table(
    "agencies", metadata,
    Column("code", String(32), primary_key=True),
    Column("name", String(255)),
    Column("level", String(16)),  # tinh | huyen | xa (reference import); NULL until imported
    Column("parent_code", String(32)),  # the agency above it (a commune's district), not enforced
)

procedures = Table(
    "procedures", metadata,
    Column("code", String(32), primary_key=True),
    Column("name", Text),
    # Catalogue columns (pipeline.checks.reference); a batch only ever inserts the bare code.
    Column("levels", String(32)),  # comma-separated subset of tinh,huyen,xa, in that order
    Column("field", String(255)),
    Column("implementing_agency", String(255)),
    Column("valid_from", Date),
    Column("valid_to", Date),
)

# Kiểm đếm: still-valid paper results per agency, issue year and procedure (the denominator of
# the yearly targets); written by pipeline.checks.reference.import_inventory.
inventory = Table(
    "inventory", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agency_code", String(32), ForeignKey("agencies.code"), nullable=False),
    Column("issue_year", Integer, nullable=False),
    Column("procedure_code", String(32), ForeignKey("procedures.code"), nullable=False),
    Column("still_valid_count", Integer, nullable=False),
    UniqueConstraint("agency_code", "issue_year", "procedure_code", name="uq_inventory_key"),
)

batches = Table(
    "batches", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agency_code", String(32), ForeignKey("agencies.code"), nullable=False),
    # unique per agency: the folder name, or for a folder name used again ``<name>~<n>``
    Column("batch_id", String(128), nullable=False),
    # the batch folder's name as dropped; NULL (rows loaded in bulk) reads as batch_id
    Column("folder_name", String(128),
           default=lambda ctx: ctx.get_current_parameters().get("batch_id")),
    Column("source_dir", Text, nullable=False),
    Column("manifest_sha256", String(64), nullable=False),
    # SHA-256 over the manifest's and every scan's name and hash: tells a folder re-run from a
    # new batch put in the same folder (pipeline.intake.batches)
    Column("content_sha256", String(64)),
    Column("status", String(16), nullable=False),
    Column("record_count", Integer, nullable=False, default=0),
    Column("archived_count", Integer, nullable=False, default=0),
    Column("quarantined_count", Integer, nullable=False, default=0),
    Column("registered_at", DateTime, nullable=False, default=now),
    Column("finished_at", DateTime),
    UniqueConstraint("agency_code", "batch_id", name="uq_batches_agency_batch"),
)

records = Table(
    "records", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agency_code", String(32), ForeignKey("agencies.code"), nullable=False),
    Column("record_id", String(128), nullable=False),
    Column("batch_pk", Integer, ForeignKey("batches.id"), nullable=False),
    Column("manifest_line", Integer, nullable=False),
    Column("procedure_code", String(32)),
    Column("result_number", String(128)),
    Column("issued_on", Date),
    Column("holder_name", String(255)),
    Column("holder_id", String(32)),
    Column("still_valid", Boolean),
    Column("status", String(16), nullable=False),
    Column("reason", String(64)),
    # the current version (record_versions); every earlier one stays beside it on disk
    Column("pdf_path", Text),
    Column("pdf_sha256", String(64)),
    Column("version", Integer),
    Column("page_count", Integer, nullable=False, default=0),
    Column("mean_confidence", Float),
    Column("text", Text),
    # what the archivist should look at although the record was archived (Vietnamese, one a line)
    Column("warnings", Text),
    # ký số of the current version (pipeline.signing): the PAdES level reached (B-B, B-T, B-LT,
    # B-LTA), the certificate's subject, the signing time (UTC); NULL when archived unsigned
    Column("signature_level", String(8)),
    Column("signed_by", String(255)),
    Column("signed_at", DateTime),
    Column("updated_at", DateTime, nullable=False, default=now),
    # holder_id as a lookup compares it: its digits only (pipeline.privacy.holder_key);
    # NULL when the manifest has none or it has no known shape
    Column("holder_key", String(13)),
    # the manifest fields (comma-separated) whose value the watcher's draft read off the first
    # page and no person changed (pipeline.checks.crosscheck.read_fields); the others were
    # typed. NULL: nothing read (the manifest was typed, or a person changed every field)
    Column("read_fields", Text),
    UniqueConstraint("agency_code", "record_id", name="uq_records_agency_record"),
)
# The progress figures (pipeline.reporting.progress) read records by status and time of archiving; with the
# agency, issue date and pages in the index the quarterly report never touches the table's rows
# (an index-only scan on PostgreSQL), which holds the OCR text.
Index("ix_records_progress", records.c.status, records.c.updated_at, records.c.agency_code,
      records.c.issued_on, records.c.page_count)
# The report's "Đã ký số" column: archived records signed before the quarter's end, per agency.
Index("ix_records_signed", records.c.status, records.c.signed_at, records.c.agency_code,
      records.c.issued_on, records.c.updated_at)

# The holder's store (pipeline.access.holders): one holder's records, within the caller's agencies.
Index("ix_records_holder", records.c.holder_key, records.c.agency_code)

# Every archived PDF of a record, oldest first: a re-scan or, later, a signature adds a version
# beside the earlier ones, which are never overwritten (pipeline.store.archive.place_new).
record_versions = Table(
    "record_versions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("record_pk", Integer, ForeignKey("records.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("batch_pk", Integer, ForeignKey("batches.id"), nullable=False),
    Column("pdf_path", Text, nullable=False),
    Column("pdf_sha256", String(64), nullable=False),
    # archived | replaced | rearchived | migrated | signed | long_term | timestamp_renewed
    Column("reason", String(32), nullable=False),
    Column("signature_level", String(8)),  # the version's PAdES level; NULL: unsigned
    Column("created_at", DateTime, nullable=False, default=now),
    UniqueConstraint("record_pk", "version", name="uq_record_versions_key"),
)

files = Table(
    "files", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("batch_pk", Integer, ForeignKey("batches.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("page_count", Integer, nullable=False),
)

pages = Table(
    "pages", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("record_pk", Integer, ForeignKey("records.id"), nullable=False),
    Column("page_no", Integer, nullable=False),
    Column("file_sha256", String(64), nullable=False),
    Column("page_in_file", Integer, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("dpi", Integer, nullable=False),
    Column("rotation", Integer, nullable=False),
    Column("skew", Float, nullable=False),
    Column("confidence", Float),
    Column("encoding", String(16)),
    Column("flags", String(128)),
    Column("phash", String(16)),  # perceptual hash of the cleaned page, hex (probable duplicates)
    UniqueConstraint("record_pk", "page_no", name="uq_pages_record_page"),
)

validation_results = Table(
    "validation_results", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch_pk", Integer, ForeignKey("batches.id"), nullable=False),
    Column("record_id", String(128), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("field", String(64), nullable=False),
    Column("message", Text, nullable=False),
    UniqueConstraint("batch_pk", "record_id", "rule", "field", name="uq_validation_key"),
)

# The latest great-expectations run over each batch's manifest, and where its Data Docs are.
validation_runs = Table(
    "validation_runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch_pk", Integer, ForeignKey("batches.id"), nullable=False),
    Column("success", Boolean, nullable=False),
    Column("evaluated", Integer, nullable=False),
    Column("unsuccessful", Integer, nullable=False),
    Column("result_json", Text, nullable=False),
    Column("docs_url", Text),
    Column("validated_at", DateTime, nullable=False, default=now),
    UniqueConstraint("batch_pk", name="uq_validation_runs_batch"),
)

# Append-only: one row per attempt of a stage, never updated; a record's story is its rows in
# order (``digitize history``), its current state the ``records`` row written beside them.
events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch_pk", Integer, ForeignKey("batches.id"), nullable=False),
    Column("record_id", String(128), nullable=False),
    Column("stage", String(32), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("at", DateTime, nullable=False, default=now),
    Column("duration_s", Float),
)
Index("ix_events_record", events.c.record_id, events.c.batch_pk)

# Who is working on a record right now (pipeline.store.claims), on SQLite: its primary key is the lock.
# PostgreSQL uses advisory locks instead, which die with the holder's connection.
record_claims = Table(
    "record_claims", metadata,
    Column("agency_code", String(32), primary_key=True),
    Column("record_id", String(128), primary_key=True),
    Column("holder", String(255), nullable=False),  # <pid>@<host>#<process start time>
    Column("claimed_at", DateTime, nullable=False),
)

# One row per fixity audit (pipeline.store.fixity): counts only, the entries are in its report file.
fixity_audits = Table(
    "fixity_audits", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime, nullable=False),
    Column("archived_checked", Integer, nullable=False),
    Column("sources_checked", Integer, nullable=False),
    Column("missing", Integer, nullable=False),
    Column("changed", Integer, nullable=False),
    Column("unexpected", Integer, nullable=False),
    Column("shared", Integer),  # files or batch folders two warehouse rows point at (0008)
    Column("report_path", Text, nullable=False),
)

# Every lookup by holder id and every PDF or record handed out (pipeline.access.accesslog), for
# Decree 13/2023: who (a token's name, or "cli:<system user>"), when (UTC), which record, and the
# purpose the caller stated. Never the holder id looked up; closed to the reporting role.
access_log = Table(
    "access_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False, default=now),
    Column("caller", String(128), nullable=False),
    Column("action", String(16), nullable=False),  # holder_lookup | pdf | record
    Column("agency_code", String(32)),
    Column("record_id", String(128)),  # NULL: a holder lookup that found nothing
    Column("purpose", Text, nullable=False, default=""),
)

# The systems that call the read API (pipeline.access.tokens): only the token's SHA-256 is kept.
api_tokens = Table(
    "api_tokens", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("agencies", Text),  # comma-separated agency codes; NULL: the whole province
    Column("personal_data", Boolean, nullable=False, default=False),
    Column("created_at", DateTime, nullable=False, default=now),
    Column("revoked_at", DateTime),
)

# The search index is one dialect's own objects, which the metadata above cannot describe (made by
# migration 0010, kept up to date by pipeline.store.search_index): on SQLite the FTS5 table records_fts
# and the shadow tables FTS5 keeps beside it, on PostgreSQL search_documents (a tsvector per
# record) and search_words (the distinct words, trigram-indexed). A schema comparison
# (alembic autogenerate, tests/test_warehouse.py) passes include_name to leave them out.
SEARCH_INDEX_TABLES = frozenset({
    "records_fts", "records_fts_data", "records_fts_idx", "records_fts_content",
    "records_fts_docsize", "records_fts_config", "search_documents", "search_words"})


def include_name(name: str | None, type_: str, _parent_names: Mapping[str, Any]) -> bool:
    """Alembic's ``include_name`` hook: everything but the search index's own tables."""
    return not (type_ == "table" and name in SEARCH_INDEX_TABLES)


MIGRATIONS = PROJECT_DIR / "sql" / "migrations"

# --- reporting views (sql/views/*.sql, created by migration 0005) -------------------------------
# One file per view; ``<view>.<dialect>.sql`` wins over ``<view>.sql`` where the SQL differs
# (the issue year of a date). Created in this order: later views read earlier ones.
VIEWS_DIR = PROJECT_DIR / "sql" / "views"
VIEWS = ("progress_records", "progress_inventory", "progress_archived", "progress_quarantine")

# Typed handles on the views for SQLAlchemy queries; a metadata of their own, because the views
# are not tables to create or to compare with the migrations.
view_metadata = MetaData()
progress_inventory = Table(
    "progress_inventory", view_metadata,
    Column("agency_code", String(32)), Column("issue_year", Integer),
    Column("still_valid", Integer), Column("procedures", Integer),
)
progress_archived = Table(
    "progress_archived", view_metadata,
    Column("agency_code", String(32)), Column("issue_year", Integer),
    Column("archived_at", DateTime), Column("page_count", Integer),
)
progress_quarantine = Table(
    "progress_quarantine", view_metadata,
    Column("agency_code", String(32)), Column("issue_year", Integer), Column("reason", String(64)),
    Column("held_at", DateTime), Column("released_at", DateTime),
)


def view_sql(name: str, dialect: str) -> str:
    """The ``CREATE VIEW`` statement of one reporting view for this dialect."""
    specific = VIEWS_DIR / f"{name}.{dialect}.sql"
    return (specific if specific.is_file() else VIEWS_DIR / f"{name}.sql").read_text(encoding="utf-8")


def create_views(conn: Connection) -> None:
    """Create the reporting views (from a migration).

    SQLite refuses to rename a table that a view reads while it is missing, which is what
    Alembic's batch mode does to alter a table: a later migration that alters ``records``,
    ``events`` or ``inventory`` on SQLite calls :func:`drop_views` first and this after.
    """
    for name in VIEWS:
        conn.exec_driver_sql(view_sql(name, conn.dialect.name))


def drop_views(conn: Connection) -> None:
    for name in reversed(VIEWS):
        conn.exec_driver_sql(f"DROP VIEW IF EXISTS {name}")
_engines: dict[tuple[str, bool], Engine] = {}
_lock = threading.Lock()
# PostgreSQL connections a process keeps open between uses. The read API answers up to this many
# calls at once in each worker (pipeline.access.api.THREADS): a connection opened for a call
# beyond the pool and closed after it costs PostgreSQL a new backend, several times the call.
POOL_SIZE = 16
CONNECT_TIMEOUT_SECONDS = 10


def engine_for(url: str, ping: bool = True) -> Engine:
    """One engine per URL per process; SQLite waits for a busy writer instead of failing.

    A PostgreSQL connection is pinged each time it is taken from the pool, so that one the
    server dropped (a restart) is replaced rather than failing its user. ``ping=False`` is for a
    caller whose first statement may fail and be retried on a new connection instead: a ping is
    a round trip, a tenth of a read API call's CPU (pipeline.access.api). SQLite has no server to
    drop a connection: one engine serves both."""
    ping = ping or url.startswith("sqlite:///")
    with _lock:
        if (url, ping) not in _engines:
            if url.startswith("sqlite:///"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
                engine = create_engine(url, connect_args={"timeout": 60})
                event.listen(engine, "connect", _sqlite_pragmas)
            else:
                # connect_timeout: the read API connects on its event loop, which a warehouse
                # that does not answer must not hold for the system's two-minute TCP timeout
                engine = create_engine(url, pool_pre_ping=ping, pool_size=POOL_SIZE,
                                       connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS})
            _engines[url, ping] = engine
        return _engines[url, ping]


@contextlib.contextmanager
def connection(source: str | Connection) -> Iterator[Connection]:
    """A connection to the warehouse: ``source`` itself when it is one (a caller doing several
    things in a row on one connection, like an API call), else a new one to that URL."""
    if isinstance(source, Connection):
        yield source
        return
    with engine_for(source).connect() as conn:
        yield conn


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def migrate(url: str) -> None:
    """Bring the warehouse to the latest schema (Alembic ``upgrade head``)."""
    # imported here: Alembic is a fifth of the warehouse's import, and an Airflow record task,
    # which imports the warehouse for one record, never migrates
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine_for(url).begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except OperationalError as exc:
        raise WarehouseUnreachableError(
            f"Cannot reach the warehouse {engine_for(url).url.render_as_string()}: {exc.orig}. "
            "Check DIGITIZE_DB_URL and that the database server is running."
        ) from exc


def upsert(conn: Connection, table: Table, rows: Iterable[Mapping[str, Any]],
           keys: tuple[str, ...], update: bool = True) -> None:
    """INSERT .. ON CONFLICT (natural key) DO UPDATE, on SQLite and PostgreSQL alike.

    With ``update=False`` the first row written under a key wins (DO NOTHING).
    """
    rows = [dict(r) for r in rows]
    if not rows:
        return
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table).values(rows)
    changed = {c: stmt.excluded[c] for c in rows[0] if c not in keys} if update else {}
    stmt = (stmt.on_conflict_do_update(index_elements=list(keys), set_=changed) if changed
            else stmt.on_conflict_do_nothing(index_elements=list(keys)))
    conn.execute(stmt)


def upsert_many(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]],
                keys: tuple[str, ...], chunk_size: int = 5000) -> None:
    """:func:`upsert` for many rows with the same columns and distinct keys, in chunks.

    One multi-VALUES statement of 100,000 rows is slow to compile and huge to send; executemany
    of one prepared statement in chunks keeps memory bounded. Key-only rows never overwrite
    anything (DO NOTHING), as in :func:`upsert`.
    """
    if not rows:
        return
    # Within one multi-row INSERT .. ON CONFLICT DO UPDATE PostgreSQL refuses to touch a row
    # twice, so the keys must be distinct (an importer deduplicates its file first).
    if len({tuple(r[k] for k in keys) for r in rows}) != len(rows):
        raise ValueError(f"upsert_many into {table.name}: repeated keys {keys}")
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table)
    changed = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
    stmt = (stmt.on_conflict_do_update(index_elements=list(keys), set_=changed) if changed
            else stmt.on_conflict_do_nothing(index_elements=list(keys)))
    if conn.dialect.name == "postgresql":
        # SQLAlchemy sends an ON CONFLICT executemany row by row (one round trip each: 100,000
        # rows took 14 s) unless the statement has RETURNING; with it, the rows go as pages of
        # multi-row VALUES ("insertmanyvalues"), about 7x faster. The returned keys are unused.
        stmt = stmt.returning(*(table.c[k] for k in keys))
    for start in range(0, len(rows), chunk_size):
        conn.execute(stmt, [dict(r) for r in rows[start:start + chunk_size]])


def pk_of(conn: Connection, table: Table, **key: Any) -> int | None:
    where = [table.c[k] == v for k, v in key.items()]
    return conn.execute(select(table.c.id).where(*where)).scalar_one_or_none()


def record_row(task: RecordTask, **outcome: object) -> dict[str, object]:
    """The warehouse row of a record: the manifest's fields plus this run's outcome."""
    row = task.record.row
    return {
        "agency_code": task.agency_code, "record_id": task.record.record_id,
        "batch_pk": task.batch_pk, "manifest_line": row.line,
        "procedure_code": row.procedure_code or None, "result_number": row.result_number or None,
        "issued_on": row.issued_on, "holder_name": row.holder_name or None,
        "holder_id": row.holder_id or None, "holder_key": holder_key(row.holder_id),
        "still_valid": row.still_valid,
        "read_fields": ",".join(read_fields(row, task.record.read)) or None,
        "updated_at": now(), **outcome,
    }


def signature_fields(info: SignatureInfo | None) -> dict[str, Any]:
    """The records row's (and RecordResult's) ký số columns; all None for an unsigned file."""
    if info is None:
        return {"signature_level": None, "signed_by": None, "signed_at": None}
    return {"signature_level": info.level, "signed_by": info.signer[:255],
            "signed_at": info.signed_at.astimezone(dt.UTC).replace(tzinfo=None)}


def agency_name(conn: Connection, agency_code: str) -> str:
    """The agency's name from the reference data (the signature's location), else its code."""
    name = conn.execute(select(agencies.c.name).where(agencies.c.code == agency_code)).scalar()
    return name or agency_code


def load_archived(conn: Connection, task: RecordTask, result: RecordResult, text: str) -> None:
    """The archived record, its new version and its pages (the earlier version's pages go). Its
    text goes into the search index (pipeline.store.search_index.index_record) in the same
    transaction, by the caller."""
    upsert(conn, records, [record_row(
        task, status=result.status.value, reason=None, pdf_path=result.pdf_path,
        pdf_sha256=result.pdf_sha256, version=result.version, page_count=result.page_count,
        mean_confidence=result.mean_confidence, text=text,
        warnings="\n".join(result.warnings) or None, signature_level=result.signature_level,
        signed_by=result.signed_by, signed_at=result.signed_at,
    )], ("agency_code", "record_id"))
    record_pk = pk_of(conn, records, agency_code=task.agency_code, record_id=result.record_id)
    upsert(conn, record_versions, [{
        "record_pk": record_pk, "version": result.version, "batch_pk": task.batch_pk,
        "pdf_path": result.pdf_path, "pdf_sha256": result.pdf_sha256,
        "signature_level": result.signature_level,
        "reason": ("archived" if result.version == 1
                   else "replaced" if task.record.row.replace_archived else "rearchived"),
        "created_at": now(),
    }], ("record_pk", "version"), update=False)
    conn.execute(pages.delete().where(pages.c.record_pk == record_pk))
    upsert(conn, pages, [{
        "record_pk": record_pk, "page_no": p.page_no, "file_sha256": p.source_sha256,
        "page_in_file": p.page_in_file, "width": p.width, "height": p.height, "dpi": p.dpi,
        "rotation": p.rotation, "skew": p.skew, "confidence": p.confidence,
        "encoding": p.encoding, "flags": ",".join(p.flags) or None, "phash": p.phash or None,
    } for p in result.pages], ("record_pk", "page_no"))


def load_quarantined(conn: Connection, task: RecordTask, reason: str) -> None:
    status = conn.execute(select(records.c.status).where(
        records.c.agency_code == task.agency_code,
        records.c.record_id == task.record.record_id)).scalar()
    if status == RecordStatus.archived:
        return  # never let a rejected duplicate overwrite the record that is archived
    upsert(conn, records, [record_row(
        task, status=RecordStatus.quarantined.value, reason=reason, pdf_path=None,
        pdf_sha256=None, page_count=len(task.record.pages), mean_confidence=None, text=None,
        warnings=None,
    )], ("agency_code", "record_id"))


def add_event(conn: Connection, task: RecordTask, stage: str, outcome: str, detail: str,
              duration_s: float | None = None) -> None:
    """One more row of the record's history (never an update): this attempt of ``stage``."""
    conn.execute(events.insert().values(
        batch_pk=task.batch_pk, record_id=task.record.record_id, stage=stage, outcome=outcome,
        detail=detail, at=now(), duration_s=round(duration_s, 3) if duration_s is not None else None))


def next_version(conn: Connection, task: RecordTask) -> int:
    latest = conn.execute(
        select(func.max(record_versions.c.version))
        .join(records, records.c.id == record_versions.c.record_pk)
        .where(records.c.agency_code == task.agency_code,
               records.c.record_id == task.record.record_id)).scalar()
    return (latest or 0) + 1


def require_empty(url: str, tables: Iterable[Table], what: str) -> None:
    """Stop a benchmark that would write synthetic rows into a warehouse holding real ones."""
    with engine_for(url).connect() as conn:
        held = sum(conn.execute(select(func.count()).select_from(t)).scalar_one() for t in tables)
    if held:
        raise SystemExit(f"{make_url(url).render_as_string()} already holds {held} {what}; "
                         "give the benchmark an empty database.")


def row_counts(url: str) -> dict[str, int]:
    with engine_for(url).connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in metadata.sorted_tables}


def dispose(url: str) -> None:
    """Close this process's connections to ``url`` (before dropping a database, at shutdown)."""
    with _lock:
        engines = [_engines.pop((url, ping), None) for ping in (True, False)]
    for engine in engines:
        if engine is not None:
            engine.dispose()
