"""One batch folder (or one part of a big one) end to end:
register -> one mapped task per record -> finalize, and publish progress beside it.

Wiring only: every step is a function of ``pipeline``, imported inside the task so that parsing
this file stays cheap. A record that cannot be archived fails its own task instance (named by
its record id) with the reason in Vietnamese, without retries: the archivist fixes the row or
the scan, then clears that task, and the re-run reads the row as it is now. Anything else
(database gone, a killed worker) is retried with back-off.

Runs are started by ``digitize_watch`` with conf ``batch_dir``, ``part``, ``parts`` and
``records_per_run`` (see ``pipeline/intake/inbox.py``), or by hand with ``batch_dir`` alone.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from digitize_common import data_problem, emit_record_metrics, summary_first, task_settings

DEFAULT_ARGS = {
    "owner": "digitization",
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}
RECORDS_PER_RUN = 500  # pipeline.intake.inbox.RECORDS_PER_RUN, not imported: parsing stays cheap


@dag(
    dag_id="digitize_batch",
    schedule=None,
    catchup=False,
    max_active_runs=4,
    default_args=DEFAULT_ARGS,
    tags=["digitize", "batch"],
    params={
        "batch_dir": Param(type="string", description="Batch folder: inbox/<agency>/<batch>"),
        "part": Param(0, type="integer", minimum=0, description="part of a big batch, from 0"),
        "parts": Param(1, type="integer", minimum=1),
        "records_per_run": Param(RECORDS_PER_RUN, type="integer", minimum=1, maximum=1000),
    },
    doc_md=__doc__,
)
def digitize_batch() -> None:
    @task(multiple_outputs=True, show_return_value_in_logs=False)
    def register(params: dict[str, Any] | None = None) -> dict[str, Any]:
        import logging
        from pathlib import Path

        from pipeline import registration
        from pipeline.errors import BatchError, ConfigError, WarehouseUnreachableError
        from pipeline.intake import inbox

        assert params is not None
        try:
            plan, batch_pk, docs = registration.register_batch(task_settings(), Path(params["batch_dir"]))
        except WarehouseUnreachableError:
            raise  # a ConfigError, but the server may be back at the next try: an outage
        except (BatchError, ConfigError) as exc:
            # the folder or the settings need a person: retries would only delay the message
            explanation = "\n".join([
                f"Lô {params['batch_dir']} chưa đăng ký được (the batch cannot be registered):",
                str(exc),
                "Sửa lỗi trên (thường là manifest.csv của lô), rồi bấm Clear ô register này "
                "(kèm các ô phía sau) để chạy lại lô. (Fix it, usually in the batch's "
                "manifest.csv, then Clear this register task with its downstream tasks.)",
            ])
            logging.getLogger("digitize").error("%s", explanation)
            raise AirflowFailException(explanation) from exc
        tasks = inbox.part_of(registration.record_tasks(plan, batch_pk, docs), params["part"],
                              params["records_per_run"])
        return {
            "batch": {"batch_dir": str(plan.batch_dir), "agency_code": plan.agency_code,
                      "batch_id": plan.batch_id, "batch_pk": batch_pk,
                      "record_ids": [r.record_id for r in plan.records]},
            # the holder id stays out of XCom: the record task reads it from the manifest
            "tasks": [t.model_dump(mode="json", exclude={"record": {"row": {"holder_id"}}})
                      for t in tasks],
        }

    @task(show_return_value_in_logs=False)
    def record_list(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Hands the record list to the mapped task (mapping needs a task's return value)."""
        return tasks

    @task(map_index_template="{{ record_id }}", pool="ocr", show_return_value_in_logs=False,
          multiple_outputs=False)
    def process_record(record_task: dict[str, Any]) -> dict[str, Any]:
        import logging

        # One record per "ocr" pool slot, one core each: Tesseract runs single-threaded. First:
        # it quiets the libraries before pipeline.record imports them (pikepdf logs on import).
        settings = task_settings(ocr_jobs=1)

        from pipeline import record, registration
        from pipeline.batch import bring_batch_up_to_date
        from pipeline.models import RecordTask
        work = RecordTask.model_validate(record_task)
        context = get_current_context()
        context["record_id"] = work.record.record_id  # type: ignore[typeddict-unknown-key]
        # the verdict, in Vietnamese, is the first line the archivist reads, and only once
        with summary_first() as first:
            work = registration.refresh_task(settings, work)
            result = record.process_record(settings, work)
            if context["ti"].try_number > 1:
                # run again after the archivist's Clear: the batch and the summary follow it
                bring_batch_up_to_date(settings, work)
            archived = result.status == "archived"
            first.append((logging.INFO if archived else logging.ERROR, record.verdict(result)))
        emit_record_metrics(result.model_dump(mode="json"))
        if not archived:
            # A data problem: retrying cannot help, the archivist must fix the row first.
            raise data_problem(
                f"Hồ sơ {result.record_id} chưa được lưu trữ ({result.reason}): lý do và cách sửa "
                "ở dòng đầu nhật ký này. / Record not archived, see the first lines.")
        return result.model_dump(mode="json", exclude={"pages"})

    # retried like the others when the warehouse is away; a batch left for review fails at once.
    # Not after a failed register (nothing to finalize, its arguments do not exist): it needs one
    # upstream success, which register is whenever it ran.
    @task(trigger_rule="all_done_min_one_success", multiple_outputs=False)
    def finalize(batch: dict[str, Any], tasks: list[dict[str, Any]]) -> dict[str, Any]:
        from pathlib import Path

        settings = task_settings()  # before pipeline.batch: it quiets the libraries it imports

        from pipeline.batch import finalize_batch
        from pipeline.models import RecordTask
        part_ids = [RecordTask.model_validate(t).record.record_id for t in tasks]
        outcome = finalize_batch(
            settings, Path(batch["batch_dir"]), batch["agency_code"], batch["batch_id"],
            batch["batch_pk"], batch["record_ids"], part_ids)
        if outcome.not_archived:
            # Failing here marks the run failed, so the batch shows up for review in the UI.
            raise data_problem(
                f"Lô {batch['agency_code']}/{batch['batch_id']}: {outcome.not_archived} hồ sơ chưa "
                "được lưu trữ; lô được giữ lại trong thư mục inbox. Xem các ô process_record bị "
                "lỗi, sửa manifest.csv hoặc tệp quét, rồi Clear các ô đó và ô finalize."
            )
        return outcome.model_dump(mode="json")

    @task(trigger_rule="all_done")
    def publish_progress() -> None:
        from pipeline.reporting import progress
        progress.write_summary(task_settings())

    registered = register()
    done = process_record.expand(record_task=record_list(registered["tasks"]))
    # finalize stays a leaf: its failure is what marks the run failed for review
    done >> [finalize(registered["batch"], registered["tasks"]), publish_progress()]


digitize_batch()
