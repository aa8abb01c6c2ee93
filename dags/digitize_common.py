"""Wiring shared by the DAG files: the settings every task runs with.

The warehouse is the Airflow connection ``digitize_warehouse`` (a postgres connection, a sqlite
one whose host is the file, or any type with ``extra.sqlalchemy_url``); without it, the embedded
SQLite warehouse under ``DIGITIZE_DATA_DIR``. ``digitize airflow`` defines the connection from
the project's settings unless the deployment already does. The signing key may come from the
connection ``digitize_sign`` (the PIN as its password).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.config import Settings

WAREHOUSE_CONN_ID = "digitize_warehouse"
# the signing key's PIN as an Airflow secret (password) with its key and timestamp server
# (extra): optional, DIGITIZE_SIGN_* otherwise (pipeline.config.settings_for_connection)
SIGN_CONN_ID = "digitize_sign"


def task_settings(**overrides: object) -> Settings:
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    from pipeline.config import quiet_libraries, settings_for_connection

    quiet_libraries()
    found = []
    for conn_id in (WAREHOUSE_CONN_ID, SIGN_CONN_ID):
        try:
            found.append(Connection.get(conn_id))
        except AirflowNotFoundException:
            found.append(None)
    return settings_for_connection(*found, **overrides)


def emit_record_metrics(result: dict[str, object]) -> None:
    """A record's counters and stage timings through Airflow's metrics (StatsD or OpenTelemetry,
    as configured under [metrics]), for an existing Prometheus/Grafana setup to pick up."""
    from datetime import timedelta

    from airflow.sdk.observability.stats import Stats

    if result["status"] != "archived":
        Stats.incr("digitize.records.quarantined")
        Stats.incr(f"digitize.quarantined.{result['reason']}")
        return
    if result.get("already_archived"):
        return
    pages = int(result["page_count"])  # type: ignore[call-overload]
    timings: dict[str, float] = result.get("timings") or {}  # type: ignore[assignment]
    Stats.incr("digitize.records.archived")
    Stats.incr("digitize.pages", count=pages)
    for stage, seconds in timings.items():
        Stats.timing(f"digitize.stage.{stage}", timedelta(seconds=seconds))
    if pages:
        Stats.timing("digitize.seconds_per_page", timedelta(seconds=sum(timings.values()) / pages))
        # what capacity planning needs: the cores' time a page takes, whatever ran in parallel
        if result.get("cpu_seconds") is not None:
            Stats.timing("digitize.cpu_seconds_per_page",
                         timedelta(seconds=float(result["cpu_seconds"]) / pages))  # type: ignore[arg-type]


def data_problem(message: str) -> Exception:
    """The exception that fails a record's task for a data problem: no retry, and no traceback in
    the log (the archivist has nothing to do with Airflow's stack; the reason was logged first).

    Airflow logs a failed task with ``log.exception`` whatever the cause; a structlog processor
    put in front of its own drops the traceback of exceptions marked so, and shows the message
    in place of "Task failed with exception".
    """
    import structlog
    from airflow.sdk.exceptions import AirflowFailException

    processors = structlog.get_config()["processors"]
    # in place: the task runner's logger was bound before the task ran and holds this very list
    if _drop_data_problem_traceback not in processors:
        processors.insert(0, _drop_data_problem_traceback)
    error = AirflowFailException(message)
    error.digitize_data_problem = True  # type: ignore[attr-defined]
    return error


def _drop_data_problem_traceback(_logger: object, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    import sys

    exc_info = event.get("exc_info")
    error = (sys.exc_info()[1] if exc_info is True else exc_info[1] if isinstance(exc_info, tuple)
             else exc_info)
    if getattr(error, "digitize_data_problem", False):
        event.pop("exc_info")
        event["event"] = str(error)
    return event


class _Hold(logging.Handler):
    def __init__(self, held: list[logging.LogRecord]) -> None:
        super().__init__()
        self.held = held

    def emit(self, record: logging.LogRecord) -> None:
        self.held.append(record)


@contextmanager
def summary_first(logger: str = "digitize") -> Iterator[list[tuple[int, str]]]:
    """Makes the (level, message) pairs appended to the yielded list the first lines of the
    task's log: an archivist opening a failed run reads the verdict, not library chatter
    (pikepdf's start-up line, Alembic's migration check) that the work logged before it knew
    the verdict. Records logged inside the block are held back and written after the summary,
    also when the block raises, so nothing is lost."""
    root = logging.getLogger()
    held: list[logging.LogRecord] = []
    saved = root.handlers[:]
    root.handlers = [_Hold(held)]
    first: list[tuple[int, str]] = []
    try:
        yield first
    finally:
        root.handlers = saved
        for level, message in first:
            logging.getLogger(logger).log(level, "%s", message)
        for record in held:
            root.handle(record)
