"""Watch the inboxes: start one run of ``digitize_batch`` per ready batch (one per part of a big
batch). A batch is never started twice: the run names come from the batch alone, and a run that
already exists is skipped, whether the watcher overlapped itself or the scheduler restarted.
A batch whose manifest.csv cannot be read still gets its one run, whose ``register`` task fails
with the reason for the archivist; the batches beside it start all the same. Under a scanner
profile with ``manifest: draft`` or ``auto`` a batch of scans without manifest.csv is drafted
here (a bounded number of first pages per look) and held for the clerk, or under ``auto``
started at once when every field was read surely (docs/manifest-draft.md).

Wiring only: readiness and run names are ``pipeline.intake.inbox``'s.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, task
from digitize_common import task_settings


@dag(
    dag_id="digitize_watch",
    schedule=timedelta(minutes=2),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "digitization", "retries": 2, "retry_delay": timedelta(seconds=20)},
    tags=["digitize", "inbox"],
    doc_md=__doc__,
)
def digitize_watch() -> None:
    @task
    def find_ready_batches() -> list[dict[str, Any]]:
        from pipeline.intake import inbox
        return [{"trigger_run_id": r.run_id, "conf": r.conf}
                for r in inbox.ready_runs(task_settings())]

    TriggerDagRunOperator.partial(
        task_id="start_batch_run", trigger_dag_id="digitize_batch",
        skip_when_already_exists=True, wait_for_completion=False,
        map_index_template="{{ task.trigger_run_id }}",
    ).expand_kwargs(find_ready_batches())


digitize_watch()
