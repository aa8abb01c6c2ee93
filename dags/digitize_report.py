"""The quarterly progress report for Sở TT&TT: at 06:00 on the first day of each quarter, the
report of the quarter just ended in all four formats (XLSX, CSV, JSON, HTML) under
``DATA/reports/bao-cao-tien-do-<quarter>.<format>``, each file written atomically.

Wiring only: the figures are ``pipeline.reporting.progress`` and the files
``pipeline.reporting.report``, imported inside the task so that parsing this file stays cheap.
The report of a past quarter is the same bytes whenever it is made again, so a retry or a manual
re-run is safe; trigger it by hand with ``{"quarter": "2023Q2"}`` to (re)make any quarter.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from digitize_common import task_settings


@dag(
    dag_id="digitize_report",
    schedule="0 6 1 1,4,7,10 *",
    start_date=datetime(2021, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "digitization", "retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["digitize", "report"],
    params={
        "quarter": Param("", type="string", pattern=r"^(\d{4}Q[1-4])?$",
                         description="YYYYQn; empty: the quarter that ended before this run"),
    },
    doc_md=__doc__,
)
def digitize_report() -> None:
    @task
    def write_report(params: dict[str, Any] | None = None) -> dict[str, str]:
        from pipeline.reporting import progress, report
        run = get_current_context()["dag_run"]
        # A scheduled run's logical date is its trigger time (1 Apr -> 2026Q1); a manual run may
        # have no logical date, and then the time it was started for counts.
        when = run.logical_date or run.run_after
        quarter = (params or {}).get("quarter") or progress.previous_quarter(when.date())
        return report.write_quarter_report(task_settings(), quarter)

    write_report()


digitize_report()
