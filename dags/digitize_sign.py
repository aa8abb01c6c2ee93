"""Ký số of the back catalogue: an agency's records archived unsigned (before it had a key) signed
with its key, each signed file a new version beside the unsigned one. What `digitize sign
--agency CODE [--batch ID]` does, for an archivist who works in the Airflow UI: trigger it with
the agency's code (and a batch, to sign only that batch).

Wiring only: the work is ``pipeline.signing.backfill``, imported inside the task. The key comes
from DIGITIZE_SIGN_* or the Airflow connection ``digitize_sign`` (its PIN is never a parameter
of the run, so it never reaches the run's configuration or XCom). The task log starts with a
Vietnamese summary. A token not plugged in or a timestamp server away is retried; a key that
cannot sign, or records that could not be signed, fail the run at once with the reason. Records
already signed are left alone, so a re-run is always safe.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException
from digitize_common import summary_first, task_settings


@dag(
    dag_id="digitize_sign",
    schedule=None,  # triggered by hand, per agency
    start_date=datetime(2021, 1, 1),
    catchup=False,
    default_args={"owner": "digitization", "retries": 2, "retry_delay": timedelta(minutes=10)},
    tags=["digitize", "signing"],
    params={
        "agency_code": Param(type="string", minLength=1, description="Mã cơ quan, e.g. 000.00.12.H12"),
        "batch_id": Param(None, type=["null", "string"], description="only this batch (optional)"),
    },
    doc_md=__doc__,
)
def digitize_sign() -> None:
    @task
    def sign(params: dict[str, Any] | None = None) -> dict[str, object]:
        import logging

        from pipeline.errors import ConfigError

        assert params is not None
        with summary_first() as first:
            from pipeline.signing import backfill
            try:
                outcome = backfill.sign_archived(task_settings(), params["agency_code"],
                                                 params.get("batch_id"))
            except ConfigError as exc:
                # the key or the settings need a person: retries would only delay the message
                first.append((logging.ERROR, str(exc)))
                raise AirflowFailException(str(exc)) from exc
            lines = backfill.summary_lines(outcome)
            first.append((logging.INFO if outcome.ok else logging.ERROR, "\n".join(lines)))
        if not outcome.ok:
            raise AirflowFailException("\n".join(lines[:2]))
        return {"ok": True, "signed": len(outcome.signed), "already_signed": outcome.already_signed}

    sign()


digitize_sign()
