"""The DAG files: import cleanly and cheaply, and the batch DAG runs for real (`airflow dags test`)."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest
from conftest import QUICK_DPIS, MigrateAirflow
from pikepdf import Pdf
from sqlalchemy import select

from pipeline.cli import airflow_env
from pipeline.config import PROJECT_DIR, Settings
from pipeline.demo import samples
from pipeline.intake import inbox
from pipeline.store import archive, warehouse

DAGS = PROJECT_DIR / "dags"


@pytest.fixture(scope="module")
def dagbag() -> object:
    from airflow.dag_processing.dagbag import DagBag

    # Airflow puts the DAGs folder on sys.path; the DAG files share dags/digitize_common.py.
    if str(DAGS) not in sys.path:
        sys.path.insert(0, str(DAGS))
    return DagBag(dag_folder=str(DAGS))


def test_every_dag_file_imports_without_errors(dagbag: object) -> None:
    assert dagbag.import_errors == {}  # type: ignore[attr-defined]
    assert {"digitize_batch", "digitize_watch"} <= set(dagbag.dag_ids)  # type: ignore[attr-defined]


def test_dags_have_tags_retries_and_named_record_tasks(dagbag: object) -> None:
    for dag in dagbag.dags.values():  # type: ignore[attr-defined]
        assert dag.tags, dag.dag_id
        assert dag.default_args.get("retries", 0) >= 1, dag.dag_id
    batch = dagbag.dags["digitize_batch"]  # type: ignore[attr-defined]
    record_task = batch.get_task("process_record")
    assert record_task.map_index_template == "{{ record_id }}"
    assert record_task.pool == "ocr"
    assert batch.get_task("finalize").trigger_rule == "all_done_min_one_success"


def test_dag_files_are_cheap_to_parse() -> None:
    """Parsing a DAG file must not import the pipeline's heavy libraries or do work."""
    probe = (
        "import sys, time, runpy, airflow.sdk\n"
        f"sys.path.insert(0, {str(DAGS)!r})\n"
        "t = time.perf_counter()\n"
        f"for f in sorted(__import__('pathlib').Path({str(DAGS)!r}).glob('*.py')):\n"
        "    runpy.run_path(str(f))\n"
        "heavy = [m for m in ('great_expectations', 'cv2', 'ocrmypdf', 'pandas', 'openpyxl',"
        " 'pipeline.reporting.progress', 'pipeline.reporting.report') if m in sys.modules]\n"
        "print(time.perf_counter() - t, ','.join(heavy) or '-')\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    seconds, heavy = out.stdout.strip().splitlines()[-1].split(" ")
    assert float(seconds) < 2.0
    assert heavy == "-"


def test_a_record_task_imports_no_migration_machinery() -> None:
    """Every record task is a fresh process importing the record's stages: Alembic, which only
    a migration needs (the batch's register task), is not among them."""
    probe = "import sys, pipeline.record; print('alembic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
@pytest.mark.airflow
def test_airflow_dags_test_runs_the_sample_batch(reference_settings: Settings, tmp_path: Path,
                                                 migrate_airflow: MigrateAirflow) -> None:
    settings = reference_settings
    inbox = settings.dir("inbox") / "000.00.12.H12" / "DAGTEST"
    batch = samples.generate_batch(inbox, agency_code="000.00.12.H12", batch_id="DAGTEST",
                                   n_records=3, seed=11, truth_path=tmp_path / "truth.json", dpis=QUICK_DPIS)
    # A StatsD server stands in for Prometheus' statsd_exporter: it collects what tasks emit.
    statsd = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    statsd.bind(("127.0.0.1", 0))
    statsd.settimeout(0.2)
    env = {**airflow_env(settings), "AIRFLOW__METRICS__STATSD_ON": "True",
           "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
           "AIRFLOW__METRICS__STATSD_PORT": str(statsd.getsockname()[1])}
    airflow = str(Path(sys.executable).with_name("airflow"))
    migrate_airflow(env)
    subprocess.run([airflow, "pools", "set", "ocr", "2", "OCR"], env=env, check=True,
                   capture_output=True)
    metrics: list[str] = []
    output: list[str] = []
    # what the run starts, seen every 0.2 s: a page's OCR takes seconds
    started: dict[int, tuple[list[str], str | None]] = {}
    with subprocess.Popen(
        [airflow, "dags", "test", "digitize_batch", "--conf",
         json.dumps({"batch_dir": str(inbox)})],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    ) as proc:
        reader = threading.Thread(target=lambda: output.append(proc.stdout.read()))  # type: ignore[union-attr]
        reader.start()
        while proc.poll() is None:
            with contextlib.suppress(TimeoutError):
                metrics.extend(statsd.recv(65536).decode().splitlines())
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(proc.pid).children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        started.setdefault(child.pid, (child.cmdline(),
                                                       child.environ().get("OMP_THREAD_LIMIT")))
        reader.join()
    log = output[0]
    assert proc.returncode == 0, log[-3000:]
    # a record task reads its pages with Tesseract on one thread (one "ocr" slot, one core)
    readers = [omp for cmd, omp in started.values() if cmd[:1] == ["tesseract"] and "hocr" in cmd]
    assert readers and set(readers) == {"1"}, started
    counters = {m.split(":")[0] for m in metrics}
    assert {"airflow.digitize.records.archived", "airflow.digitize.pages",
            "airflow.digitize.stage.ocr", "airflow.digitize.seconds_per_page",
            "airflow.digitize.cpu_seconds_per_page"} <= counters
    assert sum(int(m.split(":")[1].split("|")[0]) for m in metrics
               if m.startswith("airflow.digitize.pages:")) == sum(len(r.pages) for r in batch.records)
    db = Path(env["AIRFLOW_HOME"]) / "airflow.db"
    with sqlite3.connect(db) as conn:
        states = dict(conn.execute("select state, count(*) from dag_run group by state").fetchall())
        names = sorted(r for (r,) in conn.execute(
            "select rendered_map_index from task_instance where task_id = 'process_record'"))
        failed = conn.execute("select task_id from task_instance where state != 'success'").fetchall()
        xcoms = " ".join(str(v) for (v,) in conn.execute("select value from xcom"))
    assert failed == [] and states == {"success": 1}, log[-3000:]
    # personal ids never travel through Airflow: the record task reads them from the manifest
    holder_ids = [r.holder_id for r in batch.records if r.holder_id]
    assert holder_ids and xcoms and not any(h in xcoms for h in holder_ids)
    assert names == sorted(r.record_id for r in batch.records)
    # the batch went through: archived, loaded, and moved out of the inbox
    assert not inbox.exists()
    assert (settings.dir("done") / "000.00.12.H12" / "DAGTEST" / "manifest.csv").is_file()
    counts = warehouse.row_counts(settings.warehouse_url)
    assert counts["records"] == len(batch.records)
    r = warehouse.records
    with warehouse.engine_for(settings.warehouse_url).connect() as conn:
        stored = dict(conn.execute(select(r.c.record_id, r.c.holder_id)).tuples().all())
    assert stored == {rec.record_id: rec.holder_id or None for rec in batch.records}
    for record in batch.records:
        year = record.issued_on.year
        pdf = archive.archive_path(settings.dir("archive"), "000.00.12.H12", year, record.record_id)
        with Pdf.open(pdf) as doc:
            assert len(doc.pages) == len(record.pages)


@pytest.mark.slow
@pytest.mark.airflow
def test_the_watcher_starts_each_ready_batch_exactly_once(
        reference_settings: Settings, settled_at_once: Path, migrate_airflow: MigrateAirflow) -> None:
    settings = reference_settings
    ready = []
    for n in (1, 2):
        folder = settings.dir("inbox") / "000.00.12.H12" / f"W{n}"
        samples.generate_batch(folder, agency_code="000.00.12.H12", batch_id=f"W{n}",
                               n_records=1, seed=n, dpis=QUICK_DPIS)
        ready.append(folder)
    env = airflow_env(settings)
    airflow = str(Path(sys.executable).with_name("airflow"))
    migrate_airflow(env)
    for _ in range(2):  # the second watcher run finds the batch runs already there
        run = subprocess.run([airflow, "dags", "test", "digitize_watch"], env=env,
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as conn:
        started = sorted(conn.execute(
            "select run_id, conf from dag_run where dag_id = 'digitize_batch'").fetchall())
        states = sorted(conn.execute(
            "select state from task_instance where task_id = 'start_batch_run'").fetchall())
    assert [run_id for run_id, _ in started] == sorted([inbox.run_name("000.00.12.H12", "W1"),
                                                        inbox.run_name("000.00.12.H12", "W2")])
    assert states == [("skipped",), ("skipped",), ("success",), ("success",)]
