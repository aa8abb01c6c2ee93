"""The access log (Decree 13/2023): every lookup by holder id and every record or PDF handed out.

One row per record handed out, or one row with no record for a holder lookup that found nothing:
who asked (a token's name, or ``cli:<system user>``), when, which record, and the purpose they
gave. The holder id looked up is never written, here or in any log line.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Sequence

from sqlalchemy import Connection, DateTime, bindparam, text

from pipeline.store import warehouse

ACTIONS = frozenset({"holder_lookup", "pdf", "record"})


def log_access(conn: Connection, caller: str, action: str,
               reads: Sequence[tuple[str | None, str | None]], purpose: str) -> None:
    """The access log's rows, one per (agency, record id) read, in the caller's transaction: one
    statement for them all (a holder's ten records cost one round trip, not ten)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown access action {action!r} (one of {sorted(ACTIONS)})")
    params: dict[str, object] = {"at": warehouse.now(), "caller": caller[:128], "action": action,
                                 "purpose": purpose}
    if conn.dialect.name == "postgresql":
        params.update(agencies=[a for a, _ in reads], records=[r for _, r in reads])
        conn.execute(_INSERT_POSTGRESQL, params)
    else:
        params["reads"] = json.dumps(list(reads))
        conn.execute(_INSERT_SQLITE, params)


# The rows in one statement whose text never changes, the reads passed as arrays (PostgreSQL) or
# as JSON (SQLite): the driver's executemany prepared and sent a statement per row, and a
# multi-row VALUES is a new statement for SQLAlchemy to compile for each number of rows; either
# cost more than the lookup's own query (issue 18).
_INSERT_INTO = "INSERT INTO access_log (at, caller, action, agency_code, record_id, purpose) "
_AT = bindparam("at", type_=DateTime())
_INSERT_POSTGRESQL = text(
    _INSERT_INTO + "SELECT :at, :caller, :action, a, r, :purpose FROM "
    "unnest(CAST(:agencies AS varchar[]), CAST(:records AS varchar[])) AS t(a, r)").bindparams(_AT)
_INSERT_SQLITE = text(
    _INSERT_INTO + "SELECT :at, :caller, :action, json_extract(value, '$[0]'), "
    "json_extract(value, '$[1]'), :purpose FROM json_each(:reads)").bindparams(_AT)


def cli_caller() -> str:
    """The access log's caller for the command line: the system user running it."""
    return f"cli:{getpass.getuser()}"
