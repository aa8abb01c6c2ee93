"""Load: the warehouse tables and idempotent upserts on natural keys (SQLite or PostgreSQL).

The schema lives here once; ``sql/migrations`` (Alembic) creates and evolves it, and
``migrate()`` brings any database to the latest revision before a run.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Engine,
    Float,
    ForeignKey,
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
from sqlalchemy.exc import OperationalError

from pipeline.config import PROJECT_DIR
from pipeline.errors import ConfigError

metadata = MetaData()


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


agencies = Table(
    "agencies", metadata,
    Column("code", String(32), primary_key=True),
    Column("name", String(255)),
    Column("level", String(16)),
)

procedures = Table(
    "procedures", metadata,
    Column("code", String(32), primary_key=True),
    Column("name", Text),
)

batches = Table(
    "batches", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agency_code", String(32), ForeignKey("agencies.code"), nullable=False),
    Column("batch_id", String(128), nullable=False),
    Column("source_dir", Text, nullable=False),
    Column("manifest_sha256", String(64), nullable=False),
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
    Column("pdf_path", Text),
    Column("pdf_sha256", String(64)),
    Column("page_count", Integer, nullable=False, default=0),
    Column("mean_confidence", Float),
    Column("text", Text),
    Column("updated_at", DateTime, nullable=False, default=now),
    UniqueConstraint("agency_code", "record_id", name="uq_records_agency_record"),
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

events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch_pk", Integer, ForeignKey("batches.id"), nullable=False),
    Column("record_id", String(128), nullable=False),
    Column("stage", String(32), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("at", DateTime, nullable=False, default=now),
    UniqueConstraint("batch_pk", "record_id", "stage", name="uq_events_key"),
)

MIGRATIONS = PROJECT_DIR / "sql" / "migrations"
_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def engine_for(url: str) -> Engine:
    """One engine per URL per process; SQLite waits for a busy writer instead of failing."""
    with _lock:
        if url not in _engines:
            if url.startswith("sqlite:///"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
                engine = create_engine(url, connect_args={"timeout": 60})
                event.listen(engine, "connect", _sqlite_pragmas)
            else:
                engine = create_engine(url, pool_pre_ping=True)
            _engines[url] = engine
        return _engines[url]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def migrate(url: str) -> None:
    """Bring the warehouse to the latest schema (Alembic ``upgrade head``)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine_for(url).begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except OperationalError as exc:
        raise ConfigError(
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


def pk_of(conn: Connection, table: Table, **key: Any) -> int | None:
    where = [table.c[k] == v for k, v in key.items()]
    return conn.execute(select(table.c.id).where(*where)).scalar_one_or_none()


def row_counts(url: str) -> dict[str, int]:
    with engine_for(url).connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in metadata.sorted_tables}


def dispose(url: str) -> None:
    """Close this process's connections to ``url`` (before dropping a database, at shutdown)."""
    with _lock:
        engine = _engines.pop(url, None)
    if engine is not None:
        engine.dispose()
