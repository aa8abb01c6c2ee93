"""PostgreSQL access roles (sql/roles.sql) on a real server: the reporting role reads the progress
views and nothing holding personal data; the loader writes the tables but cannot change them.

Roles are cluster-wide: each run uses its own names and drops them afterwards."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import import_reference
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from pipeline.reporting import progress
from pipeline.reporting.plan import PhasePlan
from pipeline.store import roles, warehouse

pytestmark = pytest.mark.postgres

HOLDER_ID = "079203001234"
CLOSED = ("records", "pages", "files", "validation_results", "validation_runs", "events", "batches",
          "progress_records")


@pytest.fixture
def role_names(pg_url: str) -> Iterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:8]
    names = {"loader": f"t{tag}_loader", "reporting": f"t{tag}_reporting",
             "loader_user": f"t{tag}_etl", "reporting_user": f"t{tag}_bi"}
    yield names
    # roles holding grants in a database cannot be dropped: revoke there first
    for name in names.values():
        warehouse.dispose(make_url(pg_url).set(username=name).render_as_string(hide_password=False))
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        existing = [n for n in names.values() if conn.execute(
            text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": n}).first()]
        if existing:
            conn.execute(text(f"DROP OWNED BY {', '.join(existing)}"))
            for name in existing:
                conn.execute(text(f"DROP ROLE {name}"))
    admin.dispose()


def _user_url(pg_url: str, user: str) -> str:
    # the test server trusts local connections; a deployment gives the user a password
    return make_url(pg_url).set(username=user).render_as_string(hide_password=False)


def test_roles_sql_names_the_two_roles_and_rejects_bad_names() -> None:
    sql = roles.roles_sql("a_loader", "a_reporting")
    assert "CREATE ROLE a_loader NOLOGIN" in sql and "CREATE ROLE a_reporting NOLOGIN" in sql
    assert roles.LOADER not in sql and roles.REPORTING not in sql
    with pytest.raises(Exception, match="Role name"):
        roles.roles_sql("x; DROP TABLE records", "r")


def test_reporting_cannot_read_holder_ids_and_the_loader_can_write(
        pg_url: str, role_names: dict[str, str], tmp_path: Path, plan: PhasePlan) -> None:
    import_reference(tmp_path, db_url=pg_url)
    admin = warehouse.engine_for(pg_url)
    with admin.begin() as conn:
        batch_pk = conn.execute(text(
            "INSERT INTO batches (agency_code, batch_id, source_dir, manifest_sha256, status, "
            "record_count, archived_count, quarantined_count, registered_at) VALUES "
            "('000.00.12.H12', 'B-ROLES', '/x', 'x', 'done', 1, 1, 0, now()) RETURNING id")).scalar()
        conn.execute(text(
            "INSERT INTO records (agency_code, record_id, batch_pk, manifest_line, issued_on, "
            "holder_id, status, page_count, updated_at) VALUES ('000.00.12.H12', 'HS-1', :b, 2, "
            "'2019-03-05', :h, 'archived', 2, :t)"),
            {"b": batch_pk, "h": HOLDER_ID, "t": dt.datetime(2023, 5, 2)})
    loader, reporting = role_names["loader"], role_names["reporting"]
    roles.apply_roles(pg_url, loader, reporting)
    roles.apply_roles(pg_url, loader, reporting)  # idempotent
    with admin.begin() as conn:
        for user, group in ((role_names["loader_user"], loader),
                            (role_names["reporting_user"], reporting)):
            conn.execute(text(f"CREATE ROLE {user} LOGIN IN ROLE {group}"))  # as README says

    bi = create_engine(_user_url(pg_url, role_names["reporting_user"]))
    try:
        for table in CLOSED:
            with bi.connect() as conn, pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text(f"SELECT * FROM {table}"))
        with bi.connect() as conn, pytest.raises(ProgrammingError, match="permission denied"):
            conn.execute(text("SELECT holder_id FROM records"))
        for view in ("progress_inventory", "progress_archived", "progress_quarantine"):
            columns = [c["name"] for c in inspect(bi).get_columns(view)]
            assert not any("holder" in c or c == "text" for c in columns), (view, columns)
            with bi.connect() as conn:
                conn.execute(text(f"SELECT * FROM {view}")).all()
        with bi.connect() as conn:
            dumped = " ".join(str(row) for view in ("progress_archived", "progress_quarantine")
                              for row in conn.execute(text(f"SELECT * FROM {view}")))
        assert HOLDER_ID not in dumped
    finally:
        bi.dispose()
    # the quarterly report runs as the reporting user and counts the archived record
    report = progress.quarter_report(_user_url(pg_url, role_names["reporting_user"]), "2023Q2", plan)
    assert report.totals[-1].digitized == 1

    etl = create_engine(_user_url(pg_url, role_names["loader_user"]))
    try:
        with etl.begin() as conn:
            conn.execute(text(
                "INSERT INTO records (agency_code, record_id, batch_pk, manifest_line, status, "
                "page_count, updated_at) VALUES ('000.00.12.H12', 'HS-2', :b, 3, 'quarantined', 1, "
                "now())"), {"b": batch_pk})
            conn.execute(text("UPDATE records SET reason = 'file_missing' WHERE record_id = 'HS-2'"))
            assert conn.execute(text("SELECT holder_id FROM records WHERE record_id = 'HS-1'")
                                ).scalar() == HOLDER_ID
        with etl.connect() as conn, pytest.raises(ProgrammingError, match="must be owner"):
            conn.execute(text("DROP TABLE events"))
    finally:
        etl.dispose()
