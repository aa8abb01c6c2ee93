"""The `digitize_report` DAG: wiring, cheap to parse, and a real run (`airflow dags test`) that
writes the report of the quarter just ended in all four formats."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MigrateAirflow
from progress_fixtures import fill, write_plan

from pipeline.cli import airflow_env
from pipeline.config import PROJECT_DIR, load_settings
from pipeline.reporting import progress, report

DAGS = PROJECT_DIR / "dags"


@pytest.fixture(scope="module")
def dag() -> object:
    from airflow.dag_processing.dagbag import DagBag

    if str(DAGS) not in sys.path:  # Airflow puts the DAGs folder on sys.path (digitize_common)
        sys.path.insert(0, str(DAGS))
    bag = DagBag(dag_folder=str(DAGS / "digitize_report.py"))
    assert bag.import_errors == {}
    return bag.dags["digitize_report"]


def test_the_dag_runs_at_the_start_of_each_quarter(dag: object) -> None:
    assert dag.tags and "report" in dag.tags  # type: ignore[attr-defined]
    assert dag.default_args["retries"] >= 1  # type: ignore[attr-defined]
    assert dag.catchup is False  # type: ignore[attr-defined]
    # a run at its trigger time (logical date 1 July 06:00 -> the report of 2023Q2)
    assert type(dag.timetable).__name__ == "CronTriggerTimetable"  # type: ignore[attr-defined]
    assert dag.timetable.expression == "0 6 1 1,4,7,10 *"  # type: ignore[attr-defined]
    assert [t.task_id for t in dag.tasks] == ["write_report"]  # type: ignore[attr-defined]
    assert dag.params["quarter"] == ""  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.airflow
def test_a_run_writes_the_quarter_just_ended(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             migrate_airflow: MigrateAirflow) -> None:
    monkeypatch.setenv("DIGITIZE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("DIGITIZE_PHASE_PLAN", str(write_plan(tmp_path)))
    monkeypatch.delenv("DIGITIZE_DB_URL", raising=False)
    settings = load_settings()
    fill(settings.warehouse_url)
    env = airflow_env(settings)
    airflow = str(Path(sys.executable).with_name("airflow"))
    migrate_airflow(env)
    # the run of 1 July 2023, 06:00 reports on 2023Q2
    run = subprocess.run([airflow, "dags", "test", "digitize_report", "2023-07-01T06:00:00+00:00"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    data = progress.quarter_report(settings.warehouse_url, "2023Q2", settings.plan)
    folder = settings.dir("reports")
    for fmt in report.FORMATS:
        path = folder / f"bao-cao-tien-do-2023Q2.{fmt}"
        assert path.read_bytes() == report.render(data, fmt), fmt
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    # by hand, for any quarter
    run = subprocess.run([airflow, "dags", "test", "digitize_report", "2023-08-15T09:00:00+00:00",
                          "--conf", '{"quarter": "2023Q1"}'],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    data = progress.quarter_report(settings.warehouse_url, "2023Q1", settings.plan)
    assert (folder / "bao-cao-tien-do-2023Q1.json").read_bytes() == report.render(data, "json")
