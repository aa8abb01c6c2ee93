"""The access log (Decree 13/2023): every lookup by holder id and every record or PDF handed out.

One row per record handed out, or one row with no record for a holder lookup that found nothing:
who asked (a token's name, or ``cli:<system user>``), when, which record, and the purpose they
gave. The holder id looked up is never written, here or in any log line.
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence

from sqlalchemy import Connection

from pipeline.store import warehouse

ACTIONS = frozenset({"holder_lookup", "pdf", "record"})


def log_access(conn: Connection, caller: str, action: str,
               reads: Sequence[tuple[str | None, str | None]], purpose: str) -> None:
    """The access log's rows, one per (agency, record id) read, in the caller's transaction: one
    statement for them all (a holder's ten records cost one round trip, not ten)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown access action {action!r} (one of {sorted(ACTIONS)})")
    at = warehouse.now()
    conn.execute(warehouse.access_log.insert(), [
        {"at": at, "caller": caller[:128], "action": action, "agency_code": agency_code,
         "record_id": record_id, "purpose": purpose} for agency_code, record_id in reads])


def cli_caller() -> str:
    """The access log's caller for the command line: the system user running it."""
    return f"cli:{getpass.getuser()}"
