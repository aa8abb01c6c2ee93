"""One batch folder end to end: register -> one mapped task per record -> finalize.

Wiring only: every step is a function of ``pipeline.runner``, imported inside the task so that
parsing this file stays cheap. A record that cannot be archived fails its own task instance
(named by its record id) with the reason in Vietnamese; the others go on.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

DEFAULT_ARGS = {
    "owner": "digitization",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
}


@dag(
    dag_id="digitize_batch",
    schedule=None,
    catchup=False,
    max_active_runs=4,
    default_args=DEFAULT_ARGS,
    tags=["digitize", "batch"],
    params={"batch_dir": Param(type="string", description="Batch folder: inbox/<agency>/<batch>")},
    doc_md=__doc__,
)
def digitize_batch() -> None:
    @task(multiple_outputs=True, show_return_value_in_logs=False)
    def register(params: dict[str, Any] | None = None) -> dict[str, Any]:
        from pathlib import Path

        from pipeline import runner
        from pipeline.config import load_settings

        assert params is not None
        plan, batch_pk = runner.register_batch(load_settings(), Path(params["batch_dir"]))
        return {
            "batch": {"batch_dir": str(plan.batch_dir), "agency_code": plan.agency_code,
                      "batch_id": plan.batch_id, "batch_pk": batch_pk},
            "tasks": [t.model_dump(mode="json") for t in runner.record_tasks(plan, batch_pk)],
        }

    @task(show_return_value_in_logs=False)
    def record_list(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Hands the record list to the mapped task (mapping needs a task's return value)."""
        return tasks

    @task(map_index_template="{{ record_id }}", pool="ocr", retries=1)
    def process_record(record_task: dict[str, Any]) -> dict[str, Any]:
        from pipeline import runner
        from pipeline.config import load_settings

        work = runner.RecordTask.model_validate(record_task)
        get_current_context()["record_id"] = work.record.record_id  # type: ignore[typeddict-unknown-key]
        # One record per "ocr" pool slot, one core each: Tesseract runs single-threaded.
        result = runner.process_record(load_settings(ocr_jobs=1), work)
        if result.status != "archived":
            # A data problem: retrying cannot help, the archivist must fix the row first.
            raise AirflowFailException(
                f"Hồ sơ {result.record_id} bị cách ly ({result.reason}).\n" + "\n".join(result.errors)
            )
        return result.model_dump(mode="json")

    @task(trigger_rule="all_done", retries=0)
    def finalize(batch: dict[str, Any], tasks: list[dict[str, Any]]) -> dict[str, Any]:
        from pathlib import Path

        from pipeline import runner
        from pipeline.config import load_settings

        record_ids = [runner.RecordTask.model_validate(t).record.record_id for t in tasks]
        outcome = runner.finalize_batch(
            load_settings(), Path(batch["batch_dir"]), batch["agency_code"], batch["batch_id"],
            batch["batch_pk"], record_ids)
        if outcome.not_archived:
            # Failing here marks the run failed, so the batch shows up for review in the UI.
            raise AirflowFailException(
                f"Lô {batch['agency_code']}/{batch['batch_id']}: {outcome.not_archived} hồ sơ chưa "
                "được lưu trữ; lô được giữ lại trong thư mục inbox. Xem các ô process_record bị "
                "lỗi, sửa manifest.csv hoặc tệp quét, rồi Clear các ô đó và ô finalize."
            )
        return outcome.model_dump(mode="json")

    registered = register()
    done = process_record.expand(record_task=record_list(registered["tasks"]))
    done >> finalize(registered["batch"], registered["tasks"])


digitize_batch()
