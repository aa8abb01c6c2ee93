"""Crash safety: `digitize run` killed with SIGKILL at 12 random moments, rerun each time.

Whatever moment the kill hits (start-up, registration, cleanup, OCR, the archive copy, the
load), rerunning ends in exactly the state of an uninterrupted run: the same warehouse rows, the
same archived files byte for byte, no temp files, and the scans untouched in ``done/``. The batch
sits in the inbox, as the watcher finds it, so the last step (the move to ``done/``) is at stake
too: two more kills land right before and right after it, where a random moment hardly ever
falls. The same run is killed against the embedded SQLite warehouse (12 random moments) and a
real PostgreSQL one (8): 20 and 10 until the suite outgrew its 15 minutes, when these two
tests took 400 of its 2,400 s of test time. The random kills go in two chains side by side,
each on data folders of its own: a run with ``--jobs 1`` keeps one of the machine's two cores
busy, and each moment is still drawn over the whole of an uninterrupted run.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import QUICK_DPIS, import_reference
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from pipeline.demo import samples
from pipeline.errors import BatchError
from pipeline.store import archive, warehouse

AGENCY = "000.00.12.H12"
KILLS = {"sqlite": 12, "postgresql": 8}
# the random kills are shared between this many chains running side by side
CHAINS = 2
# Every run makes its PDFs at this moment (pipeline.imaging.ocr._source_date): the archived bytes then
# depend on the scans alone, and two runs can be compared by SHA-256.
SOURCE_DATE_EPOCH = "1700000000"
BATCH = Path("inbox") / AGENCY / "B-KILL"
DONE = Path("done") / AGENCY / "B-KILL"
# `digitize run` killed (SIGKILL of its whole session, as the test's own kills) at a moment a random
# kill hardly ever hits: right before archive.finish_batch or right after it returns, before the
# warehouse is updated ("move-before", "move-after"); between the link of the first archived PDF
# to its name and the sync of its folder ("archive-linked"); after that sync, before the
# warehouse commits "archived" ("archive-synced").
KILLED_AT = """
import os, signal, sys
from pipeline import cli
from pipeline.store import archive
moment = os.environ["KILL_AT"]
finish_batch, fsync_dir, place_new = archive.finish_batch, archive.fsync_dir, archive.place_new
def kill():
    os.killpg(0, signal.SIGKILL)
def finish(*args):
    if moment == "move-before":
        kill()
    finish_batch(*args)
    kill()
def synced(folder):
    # the sync of the folder a PDF was just linked into, not of one just made for it
    if moment == "archive-linked" and "archive" in folder.parts and any(folder.glob("*.pdf")):
        kill()
    fsync_dir(folder)
def placed(*args):
    digest = place_new(*args)
    if moment == "archive-synced":
        kill()
    return digest
archive.finish_batch, archive.fsync_dir, archive.place_new = finish, synced, placed
sys.exit(cli.main())
"""


def start(data: Path, url: str, kill_at: str = "") -> subprocess.Popen[bytes]:
    """``digitize run`` of the data folder's inbox batch in the background; its log goes beside
    the data folder (not into it)."""
    env = {**os.environ, "DIGITIZE_DATA_DIR": str(data), "DIGITIZE_DB_URL": url,
           "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, "KILL_AT": kill_at}
    program = ["-c", KILLED_AT] if kill_at else ["-m", "pipeline.cli"]
    # a session of its own: the kill takes OCRmyPDF's child and Tesseract with it
    with data.with_suffix(".log").open("ab") as log:
        return subprocess.Popen([sys.executable, *program, "run", str(data / BATCH),
                                 "--json", "--jobs", "1"], env=env, stdout=subprocess.DEVNULL,
                                stderr=log, start_new_session=True)


def finish(data: Path, url: str) -> None:
    assert start(data, url).wait(timeout=900) == 0, log_tail(data)


def log_tail(data: Path) -> str:
    return data.with_suffix(".log").read_text(encoding="utf-8", errors="replace")[-3000:]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def outcome(data: Path, url: str) -> dict[str, object]:
    """What a run leaves behind, minus what legitimately differs between two data folders
    (surrogate keys, timestamps, the data folder's own path) and the history of attempts (events
    are append-only: a killed run's attempts stay in it): the current state."""
    root = str(data.resolve())
    r, p, f, b = warehouse.records, warehouse.pages, warehouse.files, warehouse.batches
    rv, v = warehouse.record_versions, warehouse.validation_results
    with warehouse.engine_for(url).connect() as conn:
        records = [
            {**row._asdict(), "pdf_path": (row.pdf_path or "").replace(root, "DATA")}
            for row in conn.execute(select(*(c for c in r.c if c.name not in ("id", "batch_pk",
                                                                            "updated_at")))
                                    .order_by(r.c.record_id))]
        pages = conn.execute(select(r.c.record_id, *(c for c in p.c if c.name not in (
            "id", "record_pk"))).join(r, r.c.id == p.c.record_pk)
            .order_by(r.c.record_id, p.c.page_no)).all()
        files = conn.execute(select(f.c.sha256, f.c.name, f.c.size, f.c.page_count)
                             .order_by(f.c.sha256)).all()
        batches = [{**row._asdict(), "source_dir": row.source_dir.replace(root, "DATA")}
                   for row in conn.execute(select(*(c for c in b.c if c.name not in (
                       "id", "registered_at", "finished_at"))))]
        versions = [(rid, version, path.replace(root, "DATA"), sha) for rid, version, path, sha
                    in conn.execute(select(r.c.record_id, rv.c.version, rv.c.pdf_path,
                                           rv.c.pdf_sha256).join(r, r.c.id == rv.c.record_pk)
                                    .order_by(r.c.record_id, rv.c.version))]
        problems = conn.execute(select(v.c.record_id, v.c.rule, v.c.field, v.c.message)
                                .order_by(v.c.record_id, v.c.rule)).all()
        claims = conn.execute(select(warehouse.record_claims)).all()
    warehouse.dispose(url)
    archived = {str(path.relative_to(data)): sha256(path)
                for path in sorted(data.glob("archive/**/*")) if path.is_file()}
    held = sorted(str(path.relative_to(data)) for path in data.glob("quarantine/**/*"))
    # the batch itself, wherever it is: an uninterrupted run leaves it whole in done/
    scans = {str(path.relative_to(data)): sha256(path) for folder in ("inbox", "done")
             for path in sorted(data.glob(f"{folder}/**/*"))
             if path.is_file() and path.name != archive.BATCH_MARK}
    return {"records": records, "pages": pages, "files": files, "batches": batches,
            "versions": versions, "validation": problems, "claims": claims, "archive": archived,
            "quarantine": held, "scans": scans}


def leftovers(data: Path) -> list[str]:
    """Temp files of atomic writes, and anything in the per-record work folders."""
    return sorted(str(p) for p in data.rglob("*")
                  if p.is_file() and (p.name.endswith(".tmp") or "work" in p.relative_to(data).parts))


@pytest.fixture(params=["sqlite", "postgresql"])
def new_warehouse(request: pytest.FixtureRequest) -> Iterator[Callable[[Path], str]]:
    """Makes the warehouse of one data folder, the sample reference data imported: the embedded
    SQLite file, or a fresh PostgreSQL database (dropped afterwards)."""
    made: list[str] = []
    server = request.getfixturevalue("pg_server") if request.param == "postgresql" else ""

    def make(data: Path) -> str:
        if not server:
            return import_reference(data)
        name = f"digitize_crash_{uuid.uuid4().hex[:10]}"
        with create_engine(server, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return import_reference(
            data, make_url(server).set(database=name).render_as_string(hide_password=False))

    yield make
    if made:
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name in made:
                warehouse.dispose(make_url(admin.url).set(database=name).render_as_string(
                    hide_password=False))
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.slow
def test_sigkill_at_random_moments_then_rerun_ends_as_an_uninterrupted_run(
        tmp_path: Path, new_warehouse: Callable[[Path], str], request: pytest.FixtureRequest) -> None:
    wanted = KILLS[request.node.callspec.params["new_warehouse"]]
    batch = samples.generate_batch(tmp_path / "scans" / AGENCY / "B-KILL", agency_code=AGENCY,
                                   batch_id="B-KILL", n_records=2, seed=5, dpis=QUICK_DPIS)
    scans = {p.name: sha256(p) for p in batch.batch_dir.iterdir()}
    # Alembic's commands keep their context in module state: one migration at a time
    migrating = threading.Lock()

    def fresh(name: str) -> tuple[Path, str]:
        """A data folder with its own warehouse and its own copy of the batch in the inbox."""
        data = tmp_path / name
        shutil.copytree(batch.batch_dir, data / BATCH)
        with migrating:
            return data, new_warehouse(data)

    def uninterrupted() -> tuple[dict[str, object], float]:
        reference, reference_url = fresh("uninterrupted")
        started = time.monotonic()
        finish(reference, reference_url)
        return outcome(reference, reference_url), time.monotonic() - started

    def kill_at_random(chain: int, expected: dict[str, object], duration: float) -> tuple[int, int]:
        """This chain's share of the random kills, each run going on in the data folder the
        last one left; returns the kills and the runs that finished before their kill."""
        rng = random.Random(20261123 + chain)
        share = wanted // CHAINS
        kills = completions = 0
        data, url = fresh(f"crashed-{chain}-0")
        untouched = True  # no run has worked in this data folder yet
        for attempt in range(4 * share):
            if kills == share:
                break
            run = start(data, url)
            started = time.monotonic()
            try:
                run.wait(timeout=rng.uniform(0.5, duration))
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()
                kills += 1
                untouched = False
                continue
            # The batch finished before the kill: check it, then crash a fresh data folder
            # again, so that the kills keep landing in the middle of real work.
            assert run.returncode == 0, log_tail(data)
            assert outcome(data, url) == expected and not leftovers(data)
            completions += 1
            if untouched:
                # A whole run, timed as the machine is loaded now: the reference run may have
                # shared it with more (another test file's Airflow starting), and kills drawn
                # over its longer time fell after the end of run after run (21 completions
                # for 12 kills, against 4 for 8 beside a lighter neighbour)
                duration = min(duration, time.monotonic() - started)
            data, url = fresh(f"crashed-{chain}-{attempt + 1}")
            untouched = True
        assert kills == share, f"only {kills} runs of chain {chain} were killed while running"
        finish(data, url)
        assert outcome(data, url) == expected
        assert leftovers(data) == []
        return kills, completions

    def kill_at_moments() -> tuple[Path, str]:
        """A fresh folder, as a random kill hardly ever catches these moments: killed between
        the link of an archived PDF and the sync of its folder, after the sync before the
        warehouse's commit, right before the move, then right after it (the warehouse still
        says "running"); then run to the end."""
        data, url = fresh("killed-at-moments")
        for moment in ("archive-linked", "archive-synced"):
            assert start(data, url, kill_at=moment).wait(timeout=900) == -signal.SIGKILL
            r = warehouse.records
            with warehouse.engine_for(url).connect() as conn:
                assert conn.execute(select(r.c.id).where(r.c.status == "archived")).first() is None
            warehouse.dispose(url)
        assert list(data.glob("archive/**/*.pdf")), "the kills came after a PDF was placed"
        assert start(data, url, kill_at="move-before").wait(timeout=900) == -signal.SIGKILL
        assert (data / BATCH / "manifest.csv").is_file() and not (data / DONE).exists()
        assert start(data, url, kill_at="move-after").wait(timeout=900) == -signal.SIGKILL
        assert not (data / BATCH).exists() and (data / DONE / "manifest.csv").is_file()
        b = warehouse.batches
        with warehouse.engine_for(url).connect() as conn:
            assert conn.execute(select(b.c.status)).scalar_one() == "running"
        warehouse.dispose(url)
        finish(data, url)
        return data, url

    # Each `digitize run --jobs 1` keeps one core busy: two at a time use the machine's two. The
    # uninterrupted run is timed beside the kills at chosen moments, so its duration is that of
    # a run sharing the machine with another, as every randomly killed run does.
    with ThreadPoolExecutor(CHAINS) as pool:
        reference = pool.submit(uninterrupted)
        moments = pool.submit(kill_at_moments)
        expected, duration = reference.result()
        assert len(expected["archive"]) == len(batch.records) and not expected["quarantine"]
        assert expected["scans"] == {str(DONE / name): sha for name, sha in scans.items()}
        chains = [pool.submit(kill_at_random, chain, expected, duration) for chain in range(CHAINS)]
        data, url = moments.result()
        assert outcome(data, url) == expected
        assert leftovers(data) == []
        kills, completions = (sum(counts) for counts in zip(*(c.result() for c in chains),
                                                           strict=True))
    assert kills == wanted
    assert {p.name: sha256(p) for p in batch.batch_dir.iterdir()} == scans
    print(f"{kills} random SIGKILLs + 2 around the archived PDF + 2 at the batch move survived, "
          f"{completions} interim completions checked, uninterrupted run {duration:.1f} s")


def _inbox_batch(data: Path) -> Path:
    folder = data / BATCH
    folder.mkdir(parents=True)
    for name in ("a.tif", "b.tif", "manifest.csv"):
        (folder / name).write_bytes(name.encode())
    return folder


def _finish(folder: Path, data: Path, batch_pk: int = 7) -> Path | None:
    return archive.finish_batch(folder, data / "inbox", data / "done", AGENCY, "B-KILL", batch_pk)


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != archive.BATCH_MARK)


def test_the_batch_moves_to_done_in_one_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _inbox_batch(tmp_path)
    moves: list[tuple[str, str]] = []
    rename = os.rename
    monkeypatch.setattr(os, "rename", lambda a, b: (moves.append((a, b)), rename(a, b))[1])
    moved = _finish(folder, tmp_path)
    assert moved == tmp_path / DONE and moves == [(folder, tmp_path / DONE)]
    assert _visible(moved) == ["a.tif", "b.tif", "manifest.csv"]
    assert not folder.exists()
    # a rerun after a kill that came right after the move finds the batch where it is now
    assert archive.moved_batch(tmp_path / "done", AGENCY, "B-KILL", 7) == moved
    assert _finish(folder, tmp_path) == moved
    assert _finish(moved, tmp_path) == moved


def test_an_existing_done_folder_of_the_same_name_is_never_entered(tmp_path: Path) -> None:
    """Before versioned batches, a batch was merged into a done/ folder of its name, replacing
    the earlier batch's scans and manifest of the same names."""
    folder = _inbox_batch(tmp_path)
    (tmp_path / DONE).mkdir(parents=True)
    for name in ("a.tif", "manifest.csv"):
        (tmp_path / DONE / name).write_bytes(b"an earlier batch of the same name")
    moved = _finish(folder, tmp_path)
    assert moved == tmp_path / DONE.parent / "B-KILL~7" and not folder.exists()
    assert _visible(moved) == ["a.tif", "b.tif", "manifest.csv"]
    assert (tmp_path / DONE / "a.tif").read_bytes() == b"an earlier batch of the same name"
    assert sorted(p.name for p in (tmp_path / DONE).iterdir()) == ["a.tif", "manifest.csv"]
    assert archive.moved_batch(tmp_path / "done", AGENCY, "B-KILL", 7) == moved
    assert _finish(folder, tmp_path) == moved
    # both names taken by others: refused, the batch stays in the inbox whole
    other = _inbox_batch(tmp_path / "second")
    (tmp_path / "second" / DONE).mkdir(parents=True)
    (tmp_path / "second" / DONE / "x.tif").write_bytes(b"x")
    (tmp_path / "second" / DONE.parent / "B-KILL~7").mkdir()
    (tmp_path / "second" / DONE.parent / "B-KILL~7" / "y.tif").write_bytes(b"y")
    with pytest.raises(BatchError, match="không chuyển được lô sang done/"):
        _finish(other, tmp_path / "second")
    assert _visible(other) == ["a.tif", "b.tif", "manifest.csv"]


def test_two_runs_finishing_at_once_never_make_the_batch_folder_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other run moves the batch between this run's look and its mark: before, the mark's
    write made an empty inbox folder of that name again, and this run moved it to done/ too."""
    folder = _inbox_batch(tmp_path)
    real = archive.moved_batch
    looks: list[Path | None] = []

    def other_run_moves_it_meanwhile(*args: object) -> Path | None:
        if not looks:
            looks.append(None)
            looks.append(_finish(folder, tmp_path))  # the other run, start to end
            return None  # what this run saw an instant before
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(archive, "moved_batch", other_run_moves_it_meanwhile)
    assert _finish(folder, tmp_path) == tmp_path / DONE == looks[1]
    assert not folder.exists()
    assert sorted(p.name for p in (tmp_path / DONE).parent.iterdir()) == ["B-KILL"]


def test_a_move_across_file_systems_is_refused_not_half_done(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _inbox_batch(tmp_path)

    def cross_device(a: Path, b: Path) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "rename", cross_device)
    with pytest.raises(OSError, match="cross-device"):
        _finish(folder, tmp_path)
    assert _visible(folder) == ["a.tif", "b.tif", "manifest.csv"]
