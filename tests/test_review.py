"""Review: a record task re-reads its manifest row, so a row fixed by the archivist counts when
the task is cleared and runs again (the pipeline's side of Airflow's Clear)."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from conftest import QUICK_DPIS, edit_manifest
from sqlalchemy import select

from pipeline.batch import bring_batch_up_to_date, finalize_batch, run_batch
from pipeline.config import Settings
from pipeline.demo import samples
from pipeline.models import RecordStatus, RecordTask
from pipeline.record import process_record
from pipeline.registration import record_tasks, refresh_task, register_batch
from pipeline.store import archive, warehouse

AGENCY = "000.00.12.H12"


@pytest.mark.slow
def test_a_fixed_row_is_archived_when_its_task_runs_again(reference_settings: Settings,
                                                          tmp_path: Path) -> None:
    settings = reference_settings
    batch = samples.generate_batch(settings.dir("inbox") / AGENCY / "B-FIX", agency_code=AGENCY,
                                   batch_id="B-FIX", n_records=2, seed=21,
                                   vietnamese_headers=False, dpis=QUICK_DPIS)
    good_code = batch.records[0].procedure_code
    edit_manifest(batch.batch_dir, {0: {"procedure_code": "9.999999"}})
    plan, batch_pk, docs = register_batch(settings, batch.batch_dir)
    bad, good = record_tasks(plan, batch_pk, docs)
    # as the task travels through Airflow: without the holder id
    bad = RecordTask.model_validate(
        bad.model_dump(mode="json", exclude={"record": {"row": {"holder_id"}}}))
    first = process_record(settings, refresh_task(settings, bad))
    assert (first.status, first.reason) == (RecordStatus.quarantined, "catalogue_mismatch")
    assert process_record(settings, good).status is RecordStatus.archived

    # unchanged row: what registration found, with the holder id read back from the file
    same = refresh_task(settings, bad)
    assert same.record.problems == bad.record.problems
    assert same.record.row.holder_id == batch.records[0].holder_id

    edit_manifest(batch.batch_dir, {0: {"procedure_code": good_code}})  # the archivist's fix
    fixed = refresh_task(settings, bad)
    assert fixed.record.problems == [] and fixed.record.row.procedure_code == good_code
    second = process_record(settings, fixed)
    assert second.status is RecordStatus.archived
    assert process_record(settings, refresh_task(settings, good)).already_archived

    outcome = finalize_batch(settings, plan.batch_dir, AGENCY, "B-FIX", batch_pk,
                             [r.record_id for r in plan.records])
    assert outcome.not_archived == 0 and outcome.moved_to
    counts = warehouse.row_counts(settings.warehouse_url)
    assert counts["records"] == 2 and counts["validation_results"] == 0
    assert len(list(settings.dir("archive").rglob("*.pdf"))) == 2


def test_a_record_id_on_two_rows_stays_a_duplicate_on_every_try(reference_settings: Settings,
                                                                 tmp_path: Path) -> None:
    """Each mapped task keeps its own row, and the shared id is caught again after a change."""
    settings = reference_settings
    batch = samples.generate_batch(settings.dir("inbox") / AGENCY / "B-TWICE", agency_code=AGENCY,
                                   batch_id="B-TWICE", n_records=2, seed=22,
                                   vietnamese_headers=False, dpis=QUICK_DPIS)
    edit_manifest(batch.batch_dir, {1: {"record_id": batch.records[0].record_id}})
    plan, batch_pk, docs = register_batch(settings, batch.batch_dir)
    for task in record_tasks(plan, batch_pk, docs):
        same = refresh_task(settings, task)
        assert same.record.row.line == task.record.row.line
        assert "duplicate_record_id" in {p.rule for p in same.record.problems}
    edit_manifest(batch.batch_dir, {1: {"result_number": "99/GPXD"}})  # the second row changes
    second = record_tasks(plan, batch_pk, docs)[1]
    changed = refresh_task(settings, second)
    assert changed.record.row.line == 3 and changed.record.row.result_number == "99/GPXD"
    assert "duplicate_record_id" in {p.rule for p in changed.record.problems}


def test_a_changed_row_finds_its_file_under_a_decomposed_name(reference_settings: Settings) -> None:
    """A scan copied from a Mac keeps its NFD name on disk; the manifest is NFC. Registration
    matches the two, and so must the re-check of an edited row."""
    settings = reference_settings
    batch = samples.generate_batch(settings.dir("inbox") / AGENCY / "B-NFD", agency_code=AGENCY,
                                   batch_id="B-NFD", n_records=1, seed=23,
                                   vietnamese_headers=False, dpis=QUICK_DPIS)
    (scan,) = (p for p in batch.batch_dir.iterdir() if p.name != "manifest.csv")
    on_disk = unicodedata.normalize("NFD", f"giấy phép{scan.suffix}")
    scan.rename(batch.batch_dir / on_disk)
    named = unicodedata.normalize("NFC", on_disk)
    good_code = batch.records[0].procedure_code
    edit_manifest(batch.batch_dir, {0: {"files": named, "procedure_code": "9.999999"}})
    plan, batch_pk, docs = register_batch(settings, batch.batch_dir)
    (task,) = record_tasks(plan, batch_pk, docs)
    # registration matched the file: the row's only problems are about its procedure code
    assert task.record.problems and task.record.pages
    assert all(p.field == "procedure_code" for p in task.record.problems), task.record.problems

    edit_manifest(batch.batch_dir, {0: {"procedure_code": good_code}})
    fixed = refresh_task(settings, task)
    assert fixed.record.problems == []
    assert [p.file for p in fixed.record.pages] == [on_disk] * len(batch.records[0].pages)
    assert fixed.sources[on_disk].sha256 == task.sources[on_disk].sha256


@pytest.mark.slow
def test_a_cleared_record_brings_its_batch_the_summary_and_its_note_up_to_date(
        reference_settings: Settings) -> None:
    """What the record task does when the archivist clears it after a fix (try 2 and later):
    without it, the summary said 1 archived and 1 to review, the batch stayed in the inbox and
    the note in quarantine/ until someone also cleared finalize and publish_progress."""
    settings = reference_settings
    batch = samples.generate_batch(settings.dir("inbox") / AGENCY / "B-CLEAR", agency_code=AGENCY,
                                   batch_id="B-CLEAR", n_records=2, seed=24,
                                   vietnamese_headers=False, dpis=QUICK_DPIS)
    good_code = batch.records[0].procedure_code
    edit_manifest(batch.batch_dir, {0: {"procedure_code": "9.999999"}})
    first = run_batch(settings, batch.batch_dir)
    assert (first.archived, first.quarantined) == (1, 1)
    summary = json.loads((settings.dir("reports") / "progress_summary.json").read_text())
    assert (summary[0]["archived"], summary[0]["quarantined"]) == (1, 1)
    held = settings.dir("quarantine") / AGENCY / "B-CLEAR"
    name = archive.record_name(AGENCY, batch.records[0].record_id)
    assert (held / f"{name}.txt").is_file()

    edit_manifest(batch.batch_dir, {0: {"procedure_code": good_code}})  # the archivist's fix
    plan, batch_pk, docs = register_batch(settings, batch.batch_dir)  # as Airflow held it
    bad = record_tasks(plan, batch_pk, docs)[0]
    fixed = refresh_task(settings, bad)
    assert process_record(settings, fixed).status is RecordStatus.archived
    outcome = bring_batch_up_to_date(settings, fixed)
    assert outcome.moved_to == str(settings.dir("done") / AGENCY / "B-CLEAR")
    summary = json.loads((settings.dir("reports") / "progress_summary.json").read_text())
    assert (summary[0]["archived"], summary[0]["quarantined"]) == (2, 0)
    assert not held.exists()  # the note and the scan copies went to resolved/, kept
    resolved = settings.dir("resolved") / AGENCY / "B-CLEAR"
    assert (resolved / f"{name}.txt").is_file() and list((resolved / "files").iterdir())
    b = warehouse.batches
    with warehouse.engine_for(settings.warehouse_url).connect() as conn:
        row = conn.execute(select(b.c.status, b.c.archived_count, b.c.quarantined_count)).one()
    assert tuple(row) == ("done", 2, 0)
