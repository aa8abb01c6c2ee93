"""Monthly fixity audit: every archived version of a PDF/A and every source scan an archived record
was made from is hashed again and compared with the SHA-256 in the warehouse; files missing,
changed or unknown to the warehouse, and files (or batch folders) claimed by several records (or
batches), are reported in ``DATA/reports/fixity-<date>.{json,csv}``.

Wiring only: the audit is ``pipeline.store.fixity``, imported inside the task so that parsing this file
stays cheap. The task log starts with a Vietnamese summary; when the audit finds a problem the
task fails at once (no retry: hashing again cannot bring a file back), so the run shows red in
the UI for the archivist. A database or storage outage is retried. The audit only reads, so a
re-run is always safe.

Then ``renew_timestamps`` (``pipeline.signing.renewal``): records of agencies kept long term that
their batch left at B-T (a timestamp server away when it ended) are brought to B-LTA, and each
B-LTA record whose archive timestamp certificate expires within ``DIGITIZE_SIGN_RENEW_DAYS`` gets
a new document timestamp, each as a new version; with no timestamp server or trust roots set it
only says so. A timestamp server away is retried; records that could not be done fail the task,
the summary first in its log. Records done are not due again, so a re-run is safe.
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

    @task
    def renew_timestamps() -> dict[str, object]:
        import logging

        with summary_first() as first:
            from pipeline.signing import renewal
            settings = task_settings()
            if not renewal.can_renew(settings):
                first.append((logging.INFO, renewal.NOT_SET_UP))
                return {"ok": True, "checked": 0, "extended": 0, "renewed": 0}
            # a timestamp server away (SigningUnavailableError) propagates: Airflow retries it
            outcome = renewal.renew_due(settings)
            lines = renewal.summary_lines(outcome)
            first.append((logging.INFO if outcome.ok else logging.ERROR, "\n".join(lines)))
        if not outcome.ok:
            raise AirflowFailException("\n".join(lines[:2]))
        return {"ok": True, "checked": outcome.checked, "extended": len(outcome.extended),
                "renewed": len(outcome.renewed)}

    # only after a clean audit: new versions are not added to an archive with problems to see to
    audit() >> renew_timestamps()


digitize_fixity()
