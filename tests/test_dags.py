"""The DAG files: import cleanly and cheaply, and the batch DAG runs for real (`airflow dags test`)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from pikepdf import Pdf

from pipeline import samples, warehouse
from pipeline.cli import airflow_env
from pipeline.config import PROJECT_DIR, Settings

DAGS = PROJECT_DIR / "dags"


@pytest.fixture(scope="module")
def dagbag() -> object:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_every_dag_file_imports_without_errors(dagbag: object) -> None:
    assert dagbag.import_errors == {}  # type: ignore[attr-defined]
    assert "digitize_batch" in dagbag.dag_ids  # type: ignore[attr-defined]


def test_dags_have_tags_retries_and_named_record_tasks(dagbag: object) -> None:
    for dag in dagbag.dags.values():  # type: ignore[attr-defined]
        assert dag.tags, dag.dag_id
        assert dag.default_args.get("retries", 0) >= 1, dag.dag_id
    batch = dagbag.dags["digitize_batch"]  # type: ignore[attr-defined]
    record_task = batch.get_task("process_record")
    assert record_task.map_index_template == "{{ record_id }}"
    assert record_task.pool == "ocr"
    assert batch.get_task("finalize").trigger_rule == "all_done"


def test_dag_files_are_cheap_to_parse() -> None:
    """Parsing a DAG file must not import the pipeline's heavy libraries or do work."""
    probe = (
        "import sys, time, runpy, airflow.sdk\n"
        "t = time.perf_counter()\n"
        f"for f in sorted(__import__('pathlib').Path({str(DAGS)!r}).glob('*.py')):\n"
        "    runpy.run_path(str(f))\n"
        "heavy = [m for m in ('great_expectations', 'cv2', 'ocrmypdf', 'pandas') if m in sys.modules]\n"
        "print(time.perf_counter() - t, ','.join(heavy) or '-')\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    seconds, heavy = out.stdout.strip().splitlines()[-1].split(" ")
    assert float(seconds) < 2.0
    assert heavy == "-"


@pytest.mark.slow
@pytest.mark.airflow
def test_airflow_dags_test_runs_the_sample_batch(settings: Settings, tmp_path: Path) -> None:
    inbox = settings.dir("inbox") / "000.00.12.H12" / "DAGTEST"
    batch = samples.generate_batch(inbox, agency_code="000.00.12.H12", batch_id="DAGTEST",
                                   n_records=3, seed=11, truth_path=tmp_path / "truth.json")
    env = airflow_env(settings)
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    subprocess.run([airflow, "pools", "set", "ocr", "2", "OCR"], env=env, check=True,
                   capture_output=True)
    run = subprocess.run(
        [airflow, "dags", "test", "digitize_batch", "--conf",
         json.dumps({"batch_dir": str(inbox)})],
        env=env, capture_output=True, text=True, timeout=900,
    )
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    db = Path(env["AIRFLOW_HOME"]) / "airflow.db"
    with sqlite3.connect(db) as conn:
        states = dict(conn.execute("select state, count(*) from dag_run group by state").fetchall())
        names = sorted(r for (r,) in conn.execute(
            "select rendered_map_index from task_instance where task_id = 'process_record'"))
        failed = conn.execute("select task_id from task_instance where state != 'success'").fetchall()
    assert failed == [] and states == {"success": 1}, log[-3000:]
    assert names == sorted(r.record_id for r in batch.records)
    # the batch went through: archived, loaded, and moved out of the inbox
    assert not inbox.exists()
    assert (settings.dir("done") / "000.00.12.H12" / "DAGTEST" / "manifest.csv").is_file()
    counts = warehouse.row_counts(settings.warehouse_url)
    assert counts["records"] == len(batch.records)
    for record in batch.records:
        year = record.issued_on.year
        pdf = settings.dir("archive") / "000.00.12.H12" / str(year) / f"{record.record_id}.pdf"
        with Pdf.open(pdf) as doc:
            assert len(doc.pages) == len(record.pages)
