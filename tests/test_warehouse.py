"""Warehouse schema and upserts on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from pipeline.store import warehouse


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'w.sqlite'}"
    return request.getfixturevalue("pg_url")


def test_migrations_build_exactly_the_declared_schema(db_url: str) -> None:
    warehouse.migrate(db_url)
    warehouse.migrate(db_url)  # a second upgrade is a no-op
    with warehouse.engine_for(db_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(
            conn, opts={"include_name": warehouse.include_name}), warehouse.metadata)
    assert diff == []


def test_upsert_is_idempotent_on_natural_keys(db_url: str) -> None:
    warehouse.migrate(db_url)
    engine = warehouse.engine_for(db_url)
    for name in ("Phòng Tài nguyên", "Phòng Tài nguyên và Môi trường"):
        with engine.begin() as conn:
            warehouse.upsert(conn, warehouse.agencies,
                             [{"code": "000.00.12.H12", "name": name, "level": "huyen"}], ("code",))
            warehouse.upsert(conn, warehouse.procedures, [{"code": "1.004227", "name": name}],
                             ("code",), update=False)
    with engine.connect() as conn:
        assert conn.execute(select(warehouse.agencies.c.name)).scalars().all() == [
            "Phòng Tài nguyên và Môi trường"]
        assert conn.execute(select(warehouse.procedures.c.name)).scalars().all() == [
            "Phòng Tài nguyên"]
    assert warehouse.row_counts(db_url)["agencies"] == 1
