"""Inbox watching: which batches are ready, the runs that process them, and a 3,000-record batch
split into runs that stay within Airflow's limits."""

from __future__ import annotations

import configparser
import os
import time
from pathlib import Path

from PIL import Image

from pipeline import inbox, runner
from pipeline.config import PROJECT_DIR, Settings

AGENCY = "000.00.12.H12"


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
    settled = _batch(tmp_path, "B-SETTLED", 2)
    busy = _batch(tmp_path, "B-BUSY", 2)
    no_manifest = _batch(tmp_path, "B-NOMANIFEST", 2, with_manifest=False)
    for folder in (settled, busy, no_manifest):
        _age(folder, 600)
    (busy / "late.png").write_bytes(b"still copying")  # the scanner is still writing
    assert inbox.ready_batches(tmp_path, settle_seconds=120) == [settled]
    assert inbox.ready_batches(tmp_path, settle_seconds=0) == [busy, settled]
    assert inbox.ready_batches(tmp_path / "nothing", settle_seconds=0) == []


def test_run_names_come_from_the_batch_alone(tmp_path: Path) -> None:
    (run,) = inbox.batch_runs(_batch(tmp_path, "Lô 01", 3))
    assert run.run_id == "inbox__000.00.12.H12__L--01"  # only the characters Airflow allows
    assert run.conf["parts"] == 1 and run.conf["part"] == 0


def test_a_3000_record_batch_runs_as_parts_within_airflows_limits(
        reference_settings: Settings, tmp_path: Path) -> None:
    folder = _batch(tmp_path, "B-BIG", 3000)
    runs = inbox.batch_runs(folder)
    assert [r.run_id for r in runs] == [f"inbox__{AGENCY}__B-BIG__part{n}of6" for n in range(1, 7)]
    cfg = configparser.ConfigParser()
    cfg.read(PROJECT_DIR / "airflow.cfg")
    max_map_length = cfg.getint("core", "max_map_length")
    # each run registers the whole batch (idempotent) and maps only its own part
    plan, batch_pk, docs = runner.register_batch(reference_settings, folder)
    tasks = runner.record_tasks(plan, batch_pk, docs)
    parts = [inbox.part_of(tasks, r.conf["part"], r.conf["records_per_run"]) for r in runs]
    assert [len(p) for p in parts] == [500] * 6
    assert max(len(p) for p in parts) <= inbox.RECORDS_PER_RUN < max_map_length
    ids = [t.record.record_id for p in parts for t in p]
    assert ids == [r.record_id for r in plan.records] and len(set(ids)) == 3000
