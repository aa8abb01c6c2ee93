"""Nothing lost, nothing misfiled (issue 13): a record id is never a path, nothing in archive/ or
done/ is overwritten, a folder name used again is a new batch, one odd page never stops a batch,
and a record's history is append-only. Each case failed on the code before it (see the closing
note of issue 13), through `digitize run` on SQLite and PostgreSQL, and through the DAGs."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import QUICK_DPIS, MigrateAirflow, edit_manifest, import_reference
from conftest import digitize as run_digitize
from PIL import Image
from sqlalchemy import select

from pipeline.cli import airflow_env
from pipeline.config import Settings
from pipeline.demo import samples
from pipeline.intake import batches
from pipeline.intake import inbox as watcher
from pipeline.store import archive, warehouse

AGENCY = "000.00.12.H12"
pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str | None:
    return None if request.param == "sqlite" else request.getfixturevalue("pg_url")


def digitize(data: Path, db_url: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DIGITIZE_DATA_DIR": str(data)}
    env.pop("DIGITIZE_DB_URL", None)
    if db_url:
        env["DIGITIZE_DB_URL"] = db_url
    return run_digitize(*args, env=env)


def url_of(data: Path, db_url: str | None) -> str:
    return db_url or f"sqlite:///{(data / 'warehouse.sqlite').resolve()}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def odd_page(path: Path) -> None:
    """20 px square declared at 2400 dpi: readable, within the size limits, and yet OpenCV's
    cleanup cannot scale it (cv2.error): the kind of page no rule foresaw."""
    Image.fromarray(np.full((20, 20, 3), 255, np.uint8)).save(path, dpi=(2400, 2400))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # names are the file system's
def test_ids_that_differ_by_slash_case_or_dots_never_share_a_file(tmp_path: Path,
                                                                   db_url: str | None) -> None:
    data = tmp_path / "var"
    import_reference(data, db_url)
    batch_dir = data / "inbox" / AGENCY / "Lô 01"
    samples.generate_batch(batch_dir, agency_code=AGENCY, batch_id="Lô 01", n_records=3,
                           seed=31, truth_path=tmp_path / "truth.json", vietnamese_headers=False,
                           dpis=QUICK_DPIS)
    climbing = f"x/../../../../archive/{AGENCY}/2015/HS_001"
    ids = ["HS/001", "HS_001", "hs/001"]
    rows = {i: {"record_id": rid, "issued_on": "15/03/2015"} for i, rid in enumerate(ids)}
    edit_manifest(batch_dir, rows)
    # three more rows, held (their scan is missing): their notes must not meet either
    first = rows_of(batch_dir)[0]
    write_rows(batch_dir, [*rows_of(batch_dir), *(
        {**first, "record_id": rid, "files": "khong-co.tif"} for rid in ("HS/002", "HS_002", climbing))])
    run = digitize(data, db_url, "run", str(batch_dir), "--json", "--jobs", "2")
    assert run.returncode == 3, run.stderr[-3000:]
    out = {o["record_id"]: o for o in map(json.loads, run.stdout.splitlines())}
    assert [out[i]["status"] for i in ids] == ["archived"] * 3
    pdfs = [Path(out[i]["pdf"]) for i in ids]
    assert len(set(pdfs)) == 3 and len({p.name.lower() for p in pdfs}) == 3  # SMB ignores case
    assert all(p.parent == data.resolve() / "archive" / AGENCY / "2015" for p in pdfs)
    assert len({sha256(p) for p in pdfs}) == 3, "three papers, three files"
    assert all(out[i]["version"] == 1 for i in ids)
    r = warehouse.records
    with warehouse.engine_for(url_of(data, db_url)).connect() as conn:
        stored = dict(conn.execute(select(r.c.record_id, r.c.pdf_path)).tuples().all())
    assert {i: Path(stored[i]) for i in ids} == dict(zip(ids, pdfs, strict=True))
    held = data / "quarantine" / AGENCY / "Lô 01"
    notes = sorted(held.glob("*.json"))
    assert len(notes) == 3
    assert sorted(json.loads(n.read_text(encoding="utf-8"))["record_id"] for n in notes) == sorted(
        ["HS/002", "HS_002", climbing])
    # nothing written outside the data folder but the test's own truth file
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and data not in p.parents]
    assert outside == [tmp_path / "truth.json"]
    fixity = digitize(data, db_url, "fixity", "--json")
    assert fixity.returncode == 0, fixity.stdout[-2000:] + fixity.stderr[-2000:]


def test_operator_names_that_climb_out_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    data = tmp_path / "deep" / "var"
    import_reference(data)
    batch_dir = tmp_path / "scans" / "B1"
    samples.generate_batch(batch_dir, agency_code=AGENCY, batch_id="B1", n_records=1, seed=32,
                           truth_path=tmp_path / "truth.json",
                                   vietnamese_headers=False)
    before = files_under(tmp_path)
    for args in (["--batch-id", "../../.."], ["--batch-id", "a\nb"], ["--agency", "../x"]):
        run = digitize(data, None, "run", str(batch_dir), "--agency", AGENCY, *args) \
            if args[0] == "--batch-id" else digitize(data, None, "run", str(batch_dir), *args)
        assert run.returncode == 2, run.stderr[-2000:]
        assert "không dùng được làm tên thư mục" in run.stderr
    assert files_under(tmp_path) == before


def test_a_folder_name_used_again_is_a_new_batch_and_the_first_stays_whole(
        tmp_path: Path, db_url: str | None) -> None:
    data = tmp_path / "var"
    import_reference(data, db_url)
    inbox = data / "inbox" / AGENCY / "REUSE"
    samples.generate_batch(inbox, agency_code=AGENCY, batch_id="REUSE", n_records=1, seed=33,
                           truth_path=tmp_path / "t1.json", vietnamese_headers=False, dpis=QUICK_DPIS)
    first = digitize(data, db_url, "run", str(inbox), "--json")
    assert first.returncode == 0, first.stderr[-3000:]
    done = data / "done" / AGENCY / "REUSE"
    kept = files_under(done)
    # next month, the clerk drops another batch into a folder of the same name
    samples.generate_batch(inbox, agency_code=AGENCY, batch_id="REUSE", n_records=1, seed=34,
                           truth_path=tmp_path / "t2.json", vietnamese_headers=False, dpis=QUICK_DPIS)
    # the watcher names its run after the new batch: the first batch's run would skip it forever
    with warehouse.engine_for(url_of(data, db_url)).connect() as conn:
        new_id = batches.resolve_batch_id(conn, AGENCY, "REUSE", inbox.resolve())
    assert new_id == "REUSE~2"
    (run,) = watcher.batch_runs(inbox.resolve(), batch_id=new_id)
    assert run.run_id == watcher.run_name(AGENCY, "REUSE~2") != watcher.run_name(AGENCY, "REUSE")
    second = digitize(data, db_url, "run", str(inbox), "--json")
    assert second.returncode == 0, second.stderr[-3000:]
    assert files_under(done) == kept, "the first batch's scans and manifest are untouched"
    moved = data / "done" / AGENCY / "REUSE~2"
    assert (moved / "manifest.csv").is_file() and not inbox.exists()
    b = warehouse.batches
    url = url_of(data, db_url)
    with warehouse.engine_for(url).connect() as conn:
        rows = conn.execute(select(b.c.batch_id, b.c.folder_name, b.c.source_dir, b.c.status)
                            .order_by(b.c.id)).all()
    assert [(r.batch_id, r.folder_name, Path(r.source_dir), r.status) for r in rows] == [
        ("REUSE", "REUSE", done, "done"), ("REUSE~2", "REUSE", moved, "done")]
    # the first batch run again where it lies is the same batch: nothing new, nothing redone
    again = digitize(data, db_url, "run", str(done), "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    assert all(json.loads(line)["already_archived"] for line in again.stdout.splitlines())
    assert warehouse.row_counts(url)["batches"] == 2
    fixity = digitize(data, db_url, "fixity", "--json")
    assert fixity.returncode == 0, fixity.stdout[-2000:] + fixity.stderr[-2000:]


def test_a_rescan_marked_to_replace_becomes_the_next_version_beside_the_first(
        tmp_path: Path, db_url: str | None) -> None:
    data = tmp_path / "var"
    import_reference(data, db_url)
    first_dir = data / "inbox" / AGENCY / "B-V1"
    (record,) = samples.generate_batch(first_dir, agency_code=AGENCY, batch_id="B-V1", n_records=1,
                                       seed=38, truth_path=tmp_path / "t1.json",
                                       vietnamese_headers=False, dpis=QUICK_DPIS).records
    assert digitize(data, db_url, "run", str(first_dir)).returncode == 0
    (v1,) = (data / "archive").rglob("*_v1.pdf")
    kept = sha256(v1)
    # the paper scanned again in a later batch under the same id: refused until the archivist
    # marks the row, then archived as version 2 beside version 1
    rescan_dir = data / "inbox" / AGENCY / "B-V2"
    samples.generate_batch(rescan_dir, agency_code=AGENCY, batch_id="B-V2", n_records=1, seed=39,
                           truth_path=tmp_path / "t2.json", vietnamese_headers=False, dpis=QUICK_DPIS)
    edit_manifest(rescan_dir, {0: {"record_id": record.record_id,
                                   "issued_on": record.issued_on.strftime("%d/%m/%Y")}})
    refused = digitize(data, db_url, "run", str(rescan_dir), "--json")
    assert refused.returncode == 3
    assert "Thay bản đã lưu" in json.loads(refused.stdout)["errors"][0]
    rows = rows_of(rescan_dir)
    write_rows(rescan_dir, [{**rows[0], "replace_archived": "có"}])
    again = digitize(data, db_url, "run", str(rescan_dir), "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    out = json.loads(again.stdout)
    assert out["version"] == 2 and Path(out["pdf"]).name.endswith("_v2.pdf")
    assert sha256(v1) == kept and Path(out["pdf"]).parent == v1.parent
    story = json.loads(digitize(data, db_url, "history", record.record_id, "--json").stdout)[0]
    assert [(v["version"], v["reason"], v["batch_id"]) for v in story["versions"]] == [
        (1, "archived", "B-V1"), (2, "replaced", "B-V2")]
    assert story["pdf_path"] == out["pdf"]
    # the same marked row run again is archived already: no third version
    done = data / "done" / AGENCY / "B-V2"
    third = digitize(data, db_url, "run", str(done), "--json")
    assert third.returncode == 0 and json.loads(third.stdout)["already_archived"]
    assert sorted(p.name[-7:] for p in v1.parent.iterdir()) == ["_v1.pdf", "_v2.pdf"]
    fixity = digitize(data, db_url, "fixity", "--json")
    assert fixity.returncode == 0, fixity.stdout[-2000:]


def test_a_record_held_twice_then_archived_keeps_its_whole_story(tmp_path: Path,
                                                                   db_url: str | None) -> None:
    data = tmp_path / "var"
    import_reference(data, db_url)
    batch_dir = data / "inbox" / AGENCY / "B-STORY"
    batch = samples.generate_batch(batch_dir, agency_code=AGENCY, batch_id="B-STORY",
                                   n_records=1, seed=35, truth_path=tmp_path / "truth.json",
                                   vietnamese_headers=False, dpis=QUICK_DPIS)
    (record,) = batch.records
    files = next(iter(rows_of(batch_dir)))["files"]
    edit_manifest(batch_dir, {0: {"files": "mat-tep.tif", "procedure_code": "9.999999"}})
    assert digitize(data, db_url, "run", str(batch_dir)).returncode == 3
    edit_manifest(batch_dir, {0: {"files": files}})
    assert digitize(data, db_url, "run", str(batch_dir)).returncode == 3
    held = data / "quarantine" / AGENCY / "B-STORY"
    name = archive.record_name(AGENCY, record.record_id)
    assert (held / f"{name}.txt").is_file()
    edit_manifest(batch_dir, {0: {"procedure_code": record.procedure_code}})
    last = digitize(data, db_url, "run", str(batch_dir))
    assert last.returncode == 0, last.stderr[-3000:]

    story = digitize(data, db_url, "history", record.record_id, "--json")
    assert story.returncode == 0, story.stderr
    (told,) = json.loads(story.stdout)
    # (a cross-check warning beside the archiving depends on how OCR read the date: not the
    # story told here)
    events = [e for e in told["events"] if e["stage"] != "crosscheck"]
    assert [(e["stage"], e["outcome"]) for e in events] == [
        ("quarantine", "file_missing"), ("quarantine", "catalogue_mismatch"), ("archive", "archived"),
        ("sign", "unsigned")]
    assert all(e["duration_s"] is not None and e["batch_id"] == "B-STORY" for e in events)
    assert (told["status"], told["version"]) == ("archived", 1)
    assert [v["version"] for v in told["versions"]] == [1]
    readable = digitize(data, db_url, "history", record.record_id)
    assert "catalogue_mismatch" in readable.stdout and "đã lưu trữ, phiên bản 1" in readable.stdout
    # the old note left quarantine/ for resolved/, not deleted
    assert not held.exists() or not list(held.glob(f"{name}.*"))
    resolved = data / "resolved" / AGENCY / "B-STORY"
    note = json.loads((resolved / f"{name}.json").read_text(encoding="utf-8"))
    assert note["reason"] == "catalogue_mismatch"
    # the progress views count the hold once, with its first reason
    with warehouse.engine_for(url_of(data, db_url)).connect() as conn:
        holds = conn.execute(select(warehouse.progress_quarantine.c.reason)).scalars().all()
    assert holds == ["file_missing"]
    assert digitize(data, db_url, "history", "KHONG-CO").returncode == 2


def rows_of(batch_dir: Path) -> list[dict[str, str]]:
    with (batch_dir / "manifest.csv").open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def write_rows(batch_dir: Path, rows: list[dict[str, str]]) -> None:
    with (batch_dir / "manifest.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_an_unforeseen_failure_holds_one_record_and_the_batch_goes_on(tmp_path: Path) -> None:
    data = tmp_path / "var"
    import_reference(data)
    batch_dir = data / "inbox" / AGENCY / "B-ODD"
    batch = samples.generate_batch(batch_dir, agency_code=AGENCY, batch_id="B-ODD", n_records=1,
                                   seed=36, truth_path=tmp_path / "truth.json",
                                   vietnamese_headers=False, dpis=QUICK_DPIS)
    odd_page(batch_dir / "le.png")
    (good,) = batch.records
    # the odd record comes first: the one after it must still be archived
    rows = rows_of(batch_dir)
    write_rows(batch_dir, [{**rows[0], "record_id": "HS-ODD", "files": "le.png"}, *rows])
    run = digitize(data, None, "run", str(batch_dir), "--json")
    assert run.returncode == 3, run.stderr[-3000:]
    out = {o["record_id"]: o for o in map(json.loads, run.stdout.splitlines())}
    assert out[good.record_id]["status"] == "archived"
    assert (out["HS-ODD"]["status"], out["HS-ODD"]["reason"]) == ("quarantined", "unexpected_error")
    message = out["HS-ODD"]["errors"][0]
    assert "trang 1 của tệp 'le.png'" in message and "error" in message and "Clear" in message
    note = data / "quarantine" / AGENCY / "B-ODD" / f"{archive.record_name(AGENCY, 'HS-ODD')}.json"
    assert json.loads(note.read_text(encoding="utf-8"))["reason"] == "unexpected_error"
    b = warehouse.batches
    with warehouse.engine_for(url_of(data, None)).connect() as conn:
        assert conn.execute(select(b.c.status)).scalar_one() == "review"


@pytest.mark.airflow
def test_the_dag_fails_only_the_odd_record_and_finishes_the_rest(
        reference_settings: Settings, tmp_path: Path, migrate_airflow: MigrateAirflow) -> None:
    settings = reference_settings
    inbox = settings.dir("inbox") / AGENCY / "DAG-ODD"
    batch = samples.generate_batch(inbox, agency_code=AGENCY, batch_id="DAG-ODD", n_records=1,
                                   seed=37, truth_path=tmp_path / "truth.json",
                                   vietnamese_headers=False, dpis=QUICK_DPIS)
    odd_page(inbox / "le.png")
    rows = rows_of(inbox)
    write_rows(inbox, [*rows, {**rows[0], "record_id": "HS-ODD", "files": "le.png"}])
    env = airflow_env(settings)
    airflow = str(Path(sys.executable).with_name("airflow"))
    migrate_airflow(env)
    subprocess.run([airflow, "pools", "set", "ocr", "2", "OCR"], env=env, check=True,
                   capture_output=True)
    run = subprocess.run([airflow, "dags", "test", "digitize_batch", "--conf",
                          json.dumps({"batch_dir": str(inbox)})],
                         env=env, capture_output=True, text=True, timeout=900)
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as conn:
        states = dict(conn.execute(
            "select coalesce(rendered_map_index, task_id), state from task_instance").fetchall())
    assert states[batch.records[0].record_id] == "success", run.stdout[-3000:]
    assert states["HS-ODD"] == "failed" and states["finalize"] == "failed", states
    assert states["publish_progress"] == "success"
    r = warehouse.records
    with warehouse.engine_for(settings.warehouse_url).connect() as conn:
        outcome = dict(conn.execute(select(r.c.record_id, r.c.reason)).tuples().all())
    assert outcome == {batch.records[0].record_id: None, "HS-ODD": "unexpected_error"}
