"""One record, one worker: the claim a run holds while it archives or quarantines a record.

Two runs of the same batch (a double click, a second ``digitize run``, an Airflow retry while a
zombie task still runs) would otherwise both OCR a record and both write its PDF and rows. The
claim is the database's, not luck's:

- PostgreSQL: a session advisory lock keyed by the record. It lives on a connection of its own,
  so a killed process (SIGKILL, a lost machine) drops it with its connection.
- SQLite (one machine): a ``record_claims`` row, whose primary key makes taking it atomic. A row
  left by a killed process is taken over: its holder (pid, host and process start time) is
  checked, so a reused pid does not count as alive.

A run that finds the record claimed waits for the holder to finish (it then usually finds the
record archived) instead of failing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator

import psutil
from sqlalchemy import Engine, delete, select, text, update
from sqlalchemy.exc import DBAPIError

from pipeline.errors import RecordBusyError
from pipeline.store import warehouse

log = logging.getLogger(__name__)

# How long a run waits for another run's claim: longer than the OCR of the biggest record.
CLAIM_WAIT = 3600.0
POLL_SECONDS = 0.5
# A SQLite claim written from another machine cannot be checked for a live holder.
FOREIGN_CLAIM_AGE = dt.timedelta(hours=2)


@contextlib.contextmanager
def claim(url: str, agency_code: str, record_id: str, wait: float = CLAIM_WAIT) -> Iterator[None]:
    """Hold the record's claim for the block; raise RecordBusyError after ``wait`` seconds."""
    engine = warehouse.engine_for(url)
    hold = _advisory_lock if engine.dialect.name == "postgresql" else _claim_row
    with hold(engine, agency_code, record_id, wait):
        yield


def _wait_for(try_once: Callable[[], bool], record_id: str, wait: float) -> None:
    deadline = time.monotonic() + wait
    told = False
    while not try_once():
        if time.monotonic() > deadline:
            raise RecordBusyError(
                f"Hồ sơ {record_id}: một lượt chạy khác đang xử lý hồ sơ này đã quá {wait:.0f} "
                "giây. Chạy lại sau; nếu không còn lượt chạy nào khác, tìm và dừng tiến trình bị "
                "treo.")
        if not told:
            log.info("record %s is being processed by another run; waiting for it", record_id)
            told = True
        time.sleep(POLL_SECONDS)


@contextlib.contextmanager
def _advisory_lock(engine: Engine, agency_code: str, record_id: str, wait: float) -> Iterator[None]:
    key = {"key": f"digitize-record:{agency_code}:{record_id}"}
    conn = engine.connect()
    try:
        def try_once() -> bool:
            got = bool(conn.execute(
                text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))"), key).scalar())
            conn.commit()  # the session lock outlives the transaction; no snapshot held during OCR
            return got

        _wait_for(try_once, record_id, wait)
        try:
            yield
        finally:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"), key)
                conn.commit()
            except DBAPIError:
                # a pooled connection must not keep the lock; a dropped one has lost it anyway
                conn.invalidate()
    finally:
        conn.close()


def _me() -> str:
    started = psutil.Process().create_time()
    return f"{os.getpid()}@{socket.gethostname()}#{started:.2f}"


def _alive(holder: str, claimed_at: dt.datetime) -> bool:
    owner, _, started = holder.partition("#")
    pid, _, host = owner.partition("@")
    if host != socket.gethostname():
        return warehouse.now() - claimed_at < FOREIGN_CLAIM_AGE
    try:
        return f"{psutil.Process(int(pid)).create_time():.2f}" == started
    except (psutil.NoSuchProcess, ValueError):
        return False


@contextlib.contextmanager
def _claim_row(engine: Engine, agency_code: str, record_id: str, wait: float) -> Iterator[None]:
    c = warehouse.record_claims
    key = (c.c.agency_code == agency_code) & (c.c.record_id == record_id)
    me = _me()

    def try_once() -> bool:
        with engine.begin() as conn:  # the INSERT takes SQLite's write lock: one claimant at a time
            warehouse.upsert(conn, c, [{"agency_code": agency_code, "record_id": record_id,
                                        "holder": me, "claimed_at": warehouse.now()}],
                             ("agency_code", "record_id"), update=False)
            holder, claimed_at = conn.execute(select(c.c.holder, c.c.claimed_at).where(key)).one()
            if holder == me:
                return True
            if _alive(holder, claimed_at):
                return False
            log.warning("record %s: taking over the claim of %s, which is gone", record_id, holder)
            return conn.execute(update(c).where(key, c.c.holder == holder)
                                .values(holder=me, claimed_at=warehouse.now())).rowcount == 1

    _wait_for(try_once, record_id, wait)
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(delete(c).where(key, c.c.holder == me))
