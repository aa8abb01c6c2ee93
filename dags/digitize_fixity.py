"""Monthly fixity audit: every archived version of a PDF/A and every source scan an archived record
was made from is hashed again and compared with the SHA-256 in the warehouse; files missing,
changed or unknown to the warehouse, and files (or batch folders) claimed by several records (or
batches), are reported in ``DATA/reports/fixity-<date>.{json,csv}``.

Wiring only: the audit is ``pipeline.store.fixity``, imported inside the task so that parsing this file
stays cheap. The task log starts with a Vietnamese summary; when the audit finds a problem the
task fails at once (no retry: hashing again cannot bring a file back), so the run shows red in
the UI for the archivist. A database or storage outage is retried. The audit only reads, so a
re-run is always safe.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowFailException
from digitize_common import summary_first, task_settings


@dag(
    dag_id="digitize_fixity",
    schedule="0 2 1 * *",  # 02:00 on the first of each month, before the working day
    start_date=datetime(2021, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "digitization", "retries": 2, "retry_delay": timedelta(minutes=10)},
    tags=["digitize", "fixity"],
    doc_md=__doc__,
)
def digitize_fixity() -> None:
    @task
    def audit() -> dict[str, object]:
        import logging

        with summary_first() as first:
            from pipeline.store import fixity
            settings = task_settings()
            report = fixity.audit(settings)
            paths = fixity.write_report(settings, report)
            lines = [*fixity.summary_lines(report), f"Báo cáo: {paths['json']} và {paths['csv']}"]
            first.append((logging.INFO if report.ok else logging.ERROR, "\n".join(lines)))
        if not report.ok:
            raise AirflowFailException("\n".join(lines[:2]))
        return {"ok": True, "archived_checked": report.archived_checked,
                "sources_checked": report.sources_checked, **paths}

    audit()


digitize_fixity()
