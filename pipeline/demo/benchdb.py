"""What the warehouse benchmarks (reference import, quarterly report) share: their command line,
an empty temporary SQLite unless a database is named, and the figures written as JSON."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from pipeline.config import load_settings
from pipeline.store import warehouse
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
