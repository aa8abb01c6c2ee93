"""Validation: the manifest rows against the expectation suite in ``schemas/`` (great-expectations).

The suite file holds the rules and, in each expectation's ``meta``, the Vietnamese message the
archivist reads. Great-expectations is imported lazily: it takes seconds to import and DAG files
and ``digitize --help`` must stay quick.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

from pipeline.config import PROJECT_DIR
from pipeline.errors import ConfigError
from pipeline.models import ManifestRow, Problem

log = logging.getLogger(__name__)

MANIFEST_SUITE = PROJECT_DIR / "schemas" / "manifest_suite.json"
COLUMNS = ("line", "record_id", "procedure_code", "issued_on_raw", "issued_on", "holder_id",
           "files_raw")


def _frame(rows: list[ManifestRow]) -> Any:
    import pandas as pd

    data = [{c: (getattr(r, c) or None) if c != "line" else r.line for c in COLUMNS} for r in rows]
    # object dtype keeps datetime.date values comparable with the suite's date parameters
    return pd.DataFrame(data, columns=list(COLUMNS), dtype=object)


def validate_manifest(
    rows: list[ManifestRow], issued_range: tuple[dt.date, dt.date], suite_path: Path = MANIFEST_SUITE
) -> dict[int, list[Problem]]:
    """Problems per manifest line (lines without problems are absent)."""
    if not rows:
        return {}
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    try:
        suite = gx.ExpectationSuite(**json.loads(suite_path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"Expectation suite {suite_path} is invalid: {exc}") from exc
    issued_min, issued_max = issued_range[0], min(issued_range[1], dt.date.today())
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (context.data_sources.add_pandas("manifest").add_dataframe_asset("rows")
             .add_batch_definition_whole_dataframe("all")
             .get_batch(batch_parameters={"dataframe": _frame(rows)}))
    result = batch.validate(
        suite,
        expectation_parameters={"issued_min": issued_min, "issued_max": issued_max},
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["line"]},
    )
    by_line = {r.line: r for r in rows}
    problems: dict[int, list[Problem]] = {}
    for outcome in result.results:
        config = outcome.expectation_config
        if outcome.exception_info.get("raised_exception"):
            raise ConfigError(f"Expectation {config.type} on {config.kwargs.get('column')} could "
                              f"not run: {outcome.exception_info.get('exception_message')}")
        if outcome.success:
            continue
        meta = config.meta
        for hit in outcome.result.get("unexpected_index_list") or []:
            row = by_line[int(hit["line"])]
            value = getattr(row, config.kwargs["column"], None)
            if isinstance(value, dt.date):
                value = value.strftime("%d/%m/%Y")
            message = meta["message"].format(
                line=row.line, value=value, raw=row.issued_on_raw,
                issued_min=issued_min.strftime("%d/%m/%Y"), issued_max=issued_max.strftime("%d/%m/%Y"),
            )
            problems.setdefault(row.line, []).append(
                Problem(rule=meta["rule"], field=meta["field"], message=message))
    return problems
