"""Outages: the warehouse going away in the middle of a load, and a full archive disk.

The database outage is made with a TCP proxy between the pipeline and the shared PostgreSQL
server (cut and restored by the test), so the server itself keeps serving other tests.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import QUICK_DPIS, edit_manifest, import_reference, skip_or_fail
from conftest import digitize as run_digitize
from sqlalchemy import select
from sqlalchemy.engine import make_url

from pipeline import cli
from pipeline.batch import finalize_batch
from pipeline.config import load_settings
from pipeline.demo import samples
from pipeline.errors import ExitCode, WarehouseUnavailableError
from pipeline.models import BatchOutcome
from pipeline.record import process_record
from pipeline.registration import record_tasks, register_batch
from pipeline.store import archive, warehouse

AGENCY = "000.00.12.H12"
pytestmark = pytest.mark.slow


class CuttableProxy:
    """Forwards TCP connections to ``target``; ``cut()`` drops every open connection and refuses
    new ones (a stopped server, a pulled cable), ``restore()`` serves again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(self.target)
            with self.lock:
                self.open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        with self.lock:
            for s in self.open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self.open.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture
def proxy(pg_url: str) -> Iterator[CuttableProxy]:
    url = make_url(pg_url)
    p = CuttableProxy((url.host or "127.0.0.1", url.port or 5432))
    yield p
    p.close()


def record_state(url: str, record_id: str) -> tuple[int, int, int]:
    """(record rows, page rows, "archived" events) of one record."""
    r, p, e = warehouse.records, warehouse.pages, warehouse.events
    with warehouse.engine_for(url).connect() as conn:
        pks = conn.execute(select(r.c.id).where(r.c.record_id == record_id)).scalars().all()
        pages = conn.execute(select(p.c.id).where(p.c.record_pk.in_(pks))).all()
        events = conn.execute(select(e.c.id).where(e.c.record_id == record_id,
                                                   e.c.outcome == "archived")).all()
    return len(pks), len(pages), len(events)


@pytest.mark.postgres
@pytest.mark.parametrize("cut_at", ["mid_load", "before_record"])
def test_warehouse_outage_is_transient_and_the_retry_completes_without_duplicates(
    tmp_path: Path, pg_url: str, proxy: CuttableProxy, monkeypatch: pytest.MonkeyPatch,
    cut_at: str,
) -> None:
    via_proxy = make_url(pg_url).set(port=proxy.port).render_as_string(hide_password=False)
    data = tmp_path / "var"
    import_reference(data, via_proxy)
    settings = load_settings(data_dir=data, db_url=via_proxy)
    batch = samples.generate_batch(tmp_path / "scans" / AGENCY / "B-OUT", agency_code=AGENCY,
                                   batch_id="B-OUT", n_records=1, seed=5, dpis=QUICK_DPIS)
    plan, batch_pk, docs = register_batch(settings, batch.batch_dir)
    [task] = record_tasks(plan, batch_pk, docs)
    record_id = task.record.record_id

    if cut_at == "mid_load":
        load = warehouse.load_archived

        def load_then_cut(*args: object, **kwargs: object) -> None:
            load(*args, **kwargs)  # records and pages sent, not committed: then the server goes
            proxy.cut()

        monkeypatch.setattr(warehouse, "load_archived", load_then_cut)
    else:
        proxy.cut()
    with pytest.raises(WarehouseUnavailableError) as failed:
        process_record(settings, task)
    assert failed.value.exit_code == ExitCode.retry_later
    assert "Không kết nối được kho dữ liệu" in str(failed.value)
    assert record_state(pg_url, record_id) == (0, 0, 0)  # nothing half-loaded, nothing quarantined
    assert not (data / "quarantine").exists()

    monkeypatch.undo()
    proxy.restore()
    result = process_record(settings, task)  # what Airflow's retry does
    assert result.status == "archived" and not result.already_archived
    assert record_state(pg_url, record_id) == (1, len(task.record.pages), 1)
    pdfs = sorted(p for p in (data / "archive").rglob("*") if p.is_file())
    current = Path(result.pdf_path)
    assert current in pdfs and hashlib.sha256(current.read_bytes()).hexdigest() == result.pdf_sha256
    # cut mid-load, the PDF was placed but never recorded: the retry's copy (new dates) does not
    # replace it, it becomes the next version and the leftover is named for the archivist
    leftovers = [p for p in pdfs if p != current]
    assert len(leftovers) == (1 if cut_at == "mid_load" else 0)
    assert all(any(str(p) in w for w in result.warnings) for p in leftovers)
    assert not [p for p in (data / "work").rglob("*") if p.is_file()]

    again = process_record(settings, task)  # a retry of a task that had in fact finished
    assert again.already_archived  # its attempt is an event of its own, "already_archived"
    assert record_state(pg_url, record_id) == (1, len(task.record.pages), 1)


@pytest.fixture
def full_archive(tmp_path: Path) -> Iterator[Path]:
    """DATA/archive on a 16 KB tmpfs: no room for any PDF."""
    archive = tmp_path / "var" / "archive"
    archive.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(archive)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        skip_or_fail(f"cannot mount a small tmpfs for the full-disk test: {mounted.stderr.strip()}")
    try:
        yield archive
    finally:
        subprocess.run(["umount", str(archive)], check=False)


def run_cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DIGITIZE_DATA_DIR": str(data)}
    env.pop("DIGITIZE_DB_URL", None)
    return run_digitize(*args, env=env)


def test_full_archive_disk_quarantines_the_record_and_keeps_the_scans(
    tmp_path: Path, full_archive: Path
) -> None:
    data = tmp_path / "var"
    import_reference(data)
    batch_dir = data / "inbox" / AGENCY / "B-FULL"
    batch = samples.generate_batch(batch_dir, agency_code=AGENCY, batch_id="B-FULL", n_records=1,
                                   seed=5)
    scans = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in batch_dir.iterdir()}

    run = run_cli(data, "run", str(batch_dir), "--json", "--jobs", "1")
    assert run.returncode == ExitCode.some_quarantined, run.stderr[-3000:]
    [out] = map(json.loads, run.stdout.splitlines())
    assert (out["status"], out["reason"]) == ("quarantined", "archive_storage_full")
    message = "\n".join(out["errors"])
    assert "ổ lưu trữ đã đầy" in message and "Giải phóng dung lượng" in message
    assert str(full_archive) in message and "free space on" in message
    assert [p for p in full_archive.rglob("*") if p.is_file()] == []  # no partial PDF, no temp
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in batch_dir.iterdir()} == scans  # the batch stays in the inbox, untouched
    note = json.loads((data / "quarantine" / AGENCY / "B-FULL" /
                       f"{archive.record_name(AGENCY, batch.records[0].record_id)}.json")
                      .read_text(encoding="utf-8"))
    assert note["reason"] == "archive_storage_full"

    subprocess.run(["umount", str(full_archive)], check=True)  # space again
    rerun = run_cli(data, "run", str(batch_dir), "--json", "--jobs", "1")
    assert rerun.returncode == ExitCode.ok, rerun.stderr[-3000:]
    [out] = map(json.loads, rerun.stdout.splitlines())
    assert out["status"] == "archived"
    assert Path(out["pdf"]).is_file() and not batch_dir.exists()
    moved = data / "done" / AGENCY / "B-FULL"
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in moved.iterdir() if p.name != archive.BATCH_MARK} == scans


@pytest.mark.postgres
@pytest.mark.parametrize("cut_at", ["register", "finalize"])
def test_an_outage_before_or_after_the_records_exits_4_and_the_rerun_finishes(
    tmp_path: Path, pg_url: str, proxy: CuttableProxy, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, cut_at: str,
) -> None:
    """The batch's own steps around the records (registration, the final update) meet the
    outage as the records do: retry later (4), not a usage error (2) or a crash (1)."""
    via_proxy = make_url(pg_url).set(port=proxy.port).render_as_string(hide_password=False)
    data = tmp_path / "var"
    import_reference(data, via_proxy)
    batch_dir = data / "inbox" / AGENCY / "B-DOWN"
    samples.generate_batch(batch_dir, agency_code=AGENCY, batch_id="B-DOWN", n_records=1, seed=5,
                           vietnamese_headers=False)
    # a code missing from the catalogue: the record is settled (quarantined) without any OCR
    edit_manifest(batch_dir, {0: {"procedure_code": "9.999999"}})
    monkeypatch.setenv("DIGITIZE_DATA_DIR", str(data))
    monkeypatch.setenv("DIGITIZE_DB_URL", via_proxy)
    if cut_at == "register":
        proxy.cut()
    else:
        def cut_then_finalize(*args: Any, **kwargs: Any) -> BatchOutcome:
            proxy.cut()
            return finalize_batch(*args, **kwargs)

        monkeypatch.setattr("pipeline.batch.finalize_batch", cut_then_finalize)
    assert cli.main(["run", str(batch_dir), "--json", "--jobs", "1"]) == ExitCode.retry_later
    assert "Không kết nối được kho dữ liệu" in caplog.text
    b = warehouse.batches
    with warehouse.engine_for(pg_url).connect() as conn:
        assert conn.execute(select(b.c.status)).scalars().all() == (
            [] if cut_at == "register" else ["running"])

    monkeypatch.undo()
    proxy.restore()
    warehouse.dispose(via_proxy)  # a new run is a new process with new connections
    monkeypatch.setenv("DIGITIZE_DATA_DIR", str(data))
    monkeypatch.setenv("DIGITIZE_DB_URL", via_proxy)
    assert cli.main(["run", str(batch_dir), "--json", "--jobs", "1"]) == ExitCode.some_quarantined
    with warehouse.engine_for(pg_url).connect() as conn:
        assert conn.execute(select(b.c.status)).scalars().all() == ["review"]
