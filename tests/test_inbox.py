"""Inbox watching: which batches are ready, the runs that process them, a 3,000-record batch
split into runs that stay within Airflow's limits, and what a clerk finds when a record of a
batch cannot be archived (its note, copied to ``docs/examples/`` for the clerk's guide)."""

from __future__ import annotations

import configparser
import hashlib
import json
import logging
import os
import re
import time
import unicodedata
from pathlib import Path

import pytest
from PIL import Image

from pipeline.batch import finalize_batch
from pipeline.config import PROJECT_DIR, Settings
from pipeline.intake import inbox
from pipeline.record import process_record
from pipeline.registration import record_tasks, register_batch
from pipeline.store import archive

AGENCY = "000.00.12.H12"
# a quarantine note as the clerk's guide shows it; rewritten by each run of the test that makes it
DOCS_NOTE = PROJECT_DIR / "docs" / "examples" / "ghi-chu-ho-so-chua-luu-tru.txt"


def _age(folder: Path, seconds: float) -> None:
    then = time.time() - seconds
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (then, then))


def _batch(root: Path, batch_id: str, records: int, with_manifest: bool = True) -> Path:
    folder = root / AGENCY / batch_id
    folder.mkdir(parents=True)
    Image.new("L", (40, 56), 255).save(folder / "blank.png")
    if with_manifest:
        rows = [f"HS-{batch_id}-{n:05d},1.004227,{n}/GPXD,05/03/2019,blank.png"
                for n in range(records)]
        (folder / "manifest.csv").write_text(
            "record_id,procedure_code,result_number,issued_on,files\n" + "\n".join(rows) + "\n",
            encoding="utf-8")
    return folder


def test_a_batch_is_ready_once_its_manifest_is_there_and_nothing_changed(tmp_path: Path) -> None:
    looks = tmp_path / "work" / inbox.LOOKS_FILE
    inbox_dir = tmp_path / "inbox"
    settled = _batch(inbox_dir, "B-SETTLED", 2)
    busy = _batch(inbox_dir, "B-BUSY", 2)
    no_manifest = _batch(inbox_dir, "B-NOMANIFEST", 2, with_manifest=False)
    for folder in (settled, busy, no_manifest):
        _age(folder, 600)
    t0 = time.time()
    # the first look remembers the listings: nothing is ready before a second look
    assert inbox.ready_batches(inbox_dir, settle_seconds=120, now=t0, looks=looks) == []
    (busy / "late.png").write_bytes(b"still copying")  # the scanner is still writing
    assert inbox.ready_batches(inbox_dir, settle_seconds=120, now=t0 + 120, looks=looks) == [settled]
    assert inbox.ready_batches(inbox_dir, settle_seconds=0, now=t0 + 121, looks=looks) == [busy, settled]
    assert inbox.ready_batches(tmp_path / "nothing", settle_seconds=0, looks=looks) == []
    # without a memory: by the latest mtime or ctime (the files were written just now)
    assert inbox.ready_batches(inbox_dir, settle_seconds=120) == []
    assert inbox.ready_batches(inbox_dir, settle_seconds=120, now=time.time() + 121) == [busy, settled]


def _copy_slowly(source: Path, target: Path, files: list[str] | None = None) -> None:
    """What ``cp -a`` / ``rsync -a`` do: the files arrive with the source's (old) mtimes."""
    target.mkdir(parents=True, exist_ok=True)
    for name in files if files is not None else sorted(p.name for p in source.iterdir()):
        (target / name).write_bytes((source / name).read_bytes())
        st = (source / name).stat()
        os.utime(target / name, ns=(st.st_atime_ns, st.st_mtime_ns))
    st = source.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_copy_keeping_old_mtimes_is_not_ready_until_it_settled(tmp_path: Path) -> None:
    """A batch copied with its day-old mtimes looks settled by its mtimes alone: the ctimes
    (set by the copy, not by it) and the watcher's two looks say it is not."""
    source = _batch(tmp_path / "staging", "B-COPY", 3)
    for n in range(3):
        Image.new("L", (40, 56), 255).save(source / f"page{n}.png")
    _age(source, 86400)
    inbox_dir, looks = tmp_path / "inbox", tmp_path / "work" / inbox.LOOKS_FILE
    target = inbox_dir / AGENCY / "B-COPY"
    names = sorted(p.name for p in source.iterdir())
    # the manifest is copied first (a file manager's order is anyone's guess)
    names.remove("manifest.csv")
    _copy_slowly(source, target, ["manifest.csv", names[0]])
    t0 = time.time()
    assert max(p.stat().st_mtime for p in target.rglob("*")) < t0 - 86000  # old mtimes...
    assert inbox.last_change(target) >= t0 - 5  # ...but the ctimes are the copy's
    assert inbox.ready_batches(inbox_dir, 60, now=t0, looks=looks) == []
    assert inbox.ready_batches(inbox_dir, 60) == []  # without a memory, by the ctimes
    # the copy goes on: each look sees another listing and starts the wait again
    _copy_slowly(source, target, names[1:3])
    assert inbox.ready_batches(inbox_dir, 60, now=t0 + 61, looks=looks) == []
    _copy_slowly(source, target, names[3:])
    t_done = t0 + 122
    assert inbox.ready_batches(inbox_dir, 60, now=t_done, looks=looks) == []
    assert inbox.ready_batches(inbox_dir, 60, now=t_done + 59, looks=looks) == []
    # settle_seconds after the look that saw the finished copy: ready
    assert inbox.ready_batches(inbox_dir, 60, now=t_done + 60, looks=looks) == [target]
    assert inbox.ready_batches(inbox_dir, 60, now=time.time() + 60) == [target]
    # the memory is a small JSON file; a batch gone (moved to done/) is forgotten
    assert set(json.loads(looks.read_text(encoding="utf-8"))) == {f"{AGENCY}/B-COPY"}
    target.rename(tmp_path / "done")
    assert inbox.ready_batches(inbox_dir, 60, now=t_done + 61, looks=looks) == []
    assert json.loads(looks.read_text(encoding="utf-8")) == {}


def test_a_file_growing_between_looks_restarts_the_wait(tmp_path: Path) -> None:
    inbox_dir, looks = tmp_path / "inbox", tmp_path / "work" / inbox.LOOKS_FILE
    folder = _batch(inbox_dir, "B-GROW", 1)
    scan = folder / "big.tif"
    scan.write_bytes(b"II*\0" + b"\0" * 1000)
    t0 = time.time()
    assert inbox.ready_batches(inbox_dir, 30, now=t0, looks=looks) == []
    first = inbox.fingerprint(folder)
    with scan.open("ab") as fh:  # the scanner appends the next page
        fh.write(b"\0" * 1000)
    # the mtime can stay the same (coarse clocks, a writer resetting it): the size alone tells
    os.utime(scan, ns=(scan.stat().st_atime_ns, scan.stat().st_mtime_ns))
    assert inbox.fingerprint(folder) != first
    assert inbox.ready_batches(inbox_dir, 30, now=t0 + 30, looks=looks) == []
    assert inbox.ready_batches(inbox_dir, 30, now=t0 + 59, looks=looks) == []
    assert inbox.ready_batches(inbox_dir, 30, now=t0 + 60, looks=looks) == [folder]
    # a file rewritten with the same size and mtime (a copy over it): its ctime tells
    before = inbox.fingerprint(folder)
    st = scan.stat()
    scan.write_bytes(scan.read_bytes())
    os.utime(scan, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert inbox.fingerprint(folder) != before
    assert inbox.ready_batches(inbox_dir, 30, now=t0 + 61, looks=looks) == []


def test_a_lost_or_broken_memory_only_delays(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    inbox_dir, looks = tmp_path / "inbox", tmp_path / "work" / inbox.LOOKS_FILE
    folder = _batch(inbox_dir, "B-MEM", 1)
    t0 = time.time()
    assert inbox.ready_batches(inbox_dir, 30, now=t0, looks=looks) == []
    assert inbox.ready_batches(inbox_dir, 30, now=t0 + 30, looks=looks) == [folder]
    looks.write_text("{not json", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="pipeline.intake.inbox"):
        assert inbox.ready_batches(inbox_dir, 30, now=t0 + 31, looks=looks) == []
    assert "cannot be read" in caplog.text
    assert inbox.ready_batches(inbox_dir, 30, now=t0 + 61, looks=looks) == [folder]
    # a clock set back: the wait starts again rather than counting negative time
    assert inbox.ready_batches(inbox_dir, 30, now=t0, looks=looks) == []
    assert inbox.ready_batches(inbox_dir, 30, now=t0 + 30, looks=looks) == [folder]
    # settle_seconds 0: ready at the first look
    looks.unlink()
    assert inbox.ready_batches(inbox_dir, 0, looks=looks) == [folder]


def test_run_names_come_from_the_batch_alone(tmp_path: Path) -> None:
    # Once "inbox__000.00.12.H12__L--01", which "Lô-01" shared: now folded and hashed (run_name)
    (run,) = inbox.batch_runs(_batch(tmp_path, "Lô 01", 3))
    assert run.run_id == inbox.run_name(AGENCY, "Lô 01")
    assert run.run_id.startswith("inbox__000.00.12.H12__Lo-01__")
    assert run.conf["parts"] == 1 and run.conf["part"] == 0
    # the warehouse's id for a reused folder name, when given, names the run instead
    (reused,) = inbox.batch_runs(tmp_path / AGENCY / "Lô 01", batch_id="Lô 01~2")
    assert reused.run_id == inbox.run_name(AGENCY, "Lô 01~2") != run.run_id


ALIKE = ["Lô 01", "Lô-01", "lô 01", "Lo 01", "Lô  01", unicodedata.normalize("NFD", "Lô 01"),
         "Lô..01", "Lô/01", "L\udcf4 01", "x" * 300, "x" * 301, "đề án 2019 (bản sao)"]


def test_run_names_never_collide_and_stay_valid_airflow_run_ids() -> None:
    names = [inbox.run_name(AGENCY, batch) for batch in ALIKE]
    assert len(set(names)) == len(ALIKE)
    # the exact pair is hashed: moving text between agency and batch is another batch
    assert inbox.run_name("A_B", "C") != inbox.run_name("A", "B_C")
    assert names == [inbox.run_name(AGENCY, batch) for batch in ALIKE]  # stable
    pattern = re.compile(r"^[A-Za-z0-9_.~:+-]+$")  # Airflow's default allowed_run_id_pattern
    for name in names:
        longest = f"{name}__part1000of1000"  # well under Airflow's 250 characters
        assert pattern.match(longest) and len(longest) <= 200, longest
        assert ".." not in name  # Airflow refuses it (path traversal) despite its pattern
        readable, digest = name.rsplit("__", 1)
        assert readable.startswith(f"inbox__{AGENCY}__") and re.fullmatch(r"[0-9a-f]{16}", digest)
    assert names[0] == f"inbox__{AGENCY}__Lo-01__" + hashlib.sha256(
        f"{AGENCY}\0Lô 01".encode()).hexdigest()[:16]
    assert names[2].startswith(f"inbox__{AGENCY}__lo-01__")
    assert names[-1].startswith(f"inbox__{AGENCY}__de-an-2019-ban-sao-__")


def test_airflow_accepts_the_run_names() -> None:
    from airflow.models.dagrun import DagRun

    for batch in ALIKE:
        run_id = f"{inbox.run_name(AGENCY, batch)}__part2of6"
        assert DagRun(dag_id="digitize_batch", run_id=run_id).run_id == run_id


def test_a_malformed_manifest_still_gets_its_one_run(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """The watcher counts records from the manifest; one it cannot read must not stop the other
    batches: the batch gets one run, whose register task fails with the reason."""
    cases = {"B-UTF": b"record_id,files\n\x81\x8a\x9d\n", "B-EMPTY": b"",
             "B-NOID": "Mã TTHC,Tệp\n1.004227,a.tif\n".encode(), "B-NOHEADER": b"\nR-1,a.tif\n"}
    for batch_id, data in cases.items():
        folder = _batch(tmp_path, batch_id, 0, with_manifest=False)
        (folder / "manifest.csv").write_bytes(data)
        with caplog.at_level(logging.WARNING, logger="pipeline.intake.inbox"):
            (run,) = inbox.batch_runs(folder, records_per_run=1)
        assert run.run_id == inbox.run_name(AGENCY, batch_id)
        assert run.conf == {"batch_dir": str(folder), "part": 0, "parts": 1, "records_per_run": 1}
        assert f"Batch {folder}: manifest.csv cannot be read" in caplog.text
    good = _batch(tmp_path, "B-GOOD", 3)
    assert [r.conf["parts"] for r in inbox.batch_runs(good, records_per_run=2)] == [2, 2]


def test_a_file_vanishing_while_looked_at_is_not_settled(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _batch(tmp_path, "B-TEMP", 1)
    looks = tmp_path / "looks.json"
    t0 = time.time()
    assert inbox.ready_batches(tmp_path, settle_seconds=120, now=t0, looks=looks) == []
    real_stat = Path.stat

    def renamed_meanwhile(self: Path, **kwargs: object) -> os.stat_result:
        if self.name == "blank.png":
            raise FileNotFoundError(self)
        return real_stat(self, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "stat", renamed_meanwhile)
    assert inbox.ready_batches(tmp_path, settle_seconds=120, now=t0 + 3600) == []
    assert inbox.ready_batches(tmp_path, settle_seconds=120, now=t0 + 3600, looks=looks) == []
    monkeypatch.undo()
    # the wait starts again at the next look that sees the whole folder
    assert inbox.ready_batches(tmp_path, settle_seconds=120, now=t0 + 3601, looks=looks) == []
    assert inbox.ready_batches(tmp_path, settle_seconds=120, now=t0 + 3721, looks=looks) == [folder]


def test_a_3000_record_batch_runs_as_parts_within_airflows_limits(
        reference_settings: Settings, tmp_path: Path) -> None:
    folder = _batch(tmp_path, "B-BIG", 3000)
    runs = inbox.batch_runs(folder)
    name = inbox.run_name(AGENCY, "B-BIG")
    assert [r.run_id for r in runs] == [f"{name}__part{n}of6" for n in range(1, 7)]
    cfg = configparser.ConfigParser()
    cfg.read(PROJECT_DIR / "airflow.cfg")
    max_map_length = cfg.getint("core", "max_map_length")
    # each run registers the whole batch (idempotent) and maps only its own part
    plan, batch_pk, docs = register_batch(reference_settings, folder)
    tasks = record_tasks(plan, batch_pk, docs)
    parts = [inbox.part_of(tasks, r.conf["part"], r.conf["records_per_run"]) for r in runs]
    assert [len(p) for p in parts] == [500] * 6
    assert max(len(p) for p in parts) <= inbox.RECORDS_PER_RUN < max_map_length
    ids = [t.record.record_id for p in parts for t in p]
    assert ids == [r.record_id for r in plan.records] and len(set(ids)) == 3000


def test_a_batch_with_a_missing_scan_stays_in_the_inbox_with_a_note(reference_settings: Settings) -> None:
    """The clerk's view: the batch folder stays where it was dropped, and the record's note in
    quarantine/ says which line and file and what to do (no OCR: the record stops before it)."""
    folder = reference_settings.dir("inbox") / AGENCY / "Lo-2019-03"
    folder.mkdir(parents=True)
    (folder / "manifest.csv").write_text(
        "Mã hồ sơ,Mã TTHC,Số ký hiệu,Ngày ban hành,Tên chủ hồ sơ,Còn hiệu lực,Tệp\n"
        "HS-2019-0002,1.004227,13/GPXD,06/03/2019,Trần Thị Bình,có,trang-2.tif\n", encoding="utf-8")
    plan, batch_pk, docs = register_batch(reference_settings, folder)
    (task,) = record_tasks(plan, batch_pk, docs)
    result = process_record(reference_settings, task)
    assert result.reason == "file_missing"
    outcome = finalize_batch(reference_settings, folder, AGENCY, plan.batch_id, batch_pk,
                             ["HS-2019-0002"])
    assert outcome.moved_to is None and (folder / "manifest.csv").is_file()
    held = reference_settings.dir("quarantine") / AGENCY / "Lo-2019-03"
    note = held / f"{archive.record_name(AGENCY, 'HS-2019-0002')}.txt"
    text = note.read_text(encoding="utf-8")
    assert text.startswith("Hồ sơ: HS-2019-0002\nLô: 000.00.12.H12/Lo-2019-03\nLý do: file_missing\n")
    assert "Dòng 2 của manifest.csv: không tìm thấy tệp 'trang-2.tif'" in text
    assert "Chép tệp quét vào thư mục lô hoặc sửa tên tệp ở cột Tệp" in text
    # the validation run's time in the link changes with every run; the guide shows a fixed one
    shown, stamps = re.subn(r"/\d{8}T\d{6}\.\d{6}Z/", "/20190306T083000.000000Z/", text)
    assert stamps == 1
    archive.atomic_write_bytes(DOCS_NOTE, shown.encode("utf-8"))
