"""Validation: the manifest rows against the expectation suite in ``schemas/`` (great-expectations)
and against the reference data: the procedure catalogue, the agency's level, the records already
archived.

The suite file holds the rules and, in each expectation's ``meta``, the Vietnamese message the
archivist reads; its ``{placeholders}`` are the columns of the frame validated (see ``_frame``).
Reference data is joined onto each row first (the procedure's levels and validity, the pages
found, the batch that already holds the record id), so every rule is a plain expectation on a
column or a pair of columns. Great-expectations is imported lazily: it takes seconds to import
and DAG files and ``digitize --help`` must stay quick.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz, process

from pipeline.config import PROJECT_DIR, Settings
from pipeline.errors import ConfigError
from pipeline.models import ManifestRow, Problem
from pipeline.privacy import mask_shape

log = logging.getLogger(__name__)

MANIFEST_SUITE = PROJECT_DIR / "schemas" / "manifest_suite.json"
LEVEL_NAMES = {"tinh": "tỉnh", "huyen": "huyện", "xa": "xã"}
SUGGESTIONS = 3
DOCS_SITE = "batch"
# beside a batch's Data Docs: the inputs' digest and the outcome of the last validation
LAST_RUN = "last-validation.json"


@dataclass(frozen=True)
class Procedure:
    """A catalogue entry as the rules need it."""

    code: str
    name: str
    levels: frozenset[str]  # tinh / huyen / xa
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None


@dataclass(frozen=True)
class Reference:
    """What a batch is checked against, read from the warehouse before validation."""

    agency_code: str
    agency_level: str  # tinh / huyen / xa
    procedures: Mapping[str, Procedure]
    # record id -> the other batch of this agency in which it is already archived
    archived_elsewhere: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Validation:
    problems: dict[int, list[Problem]]  # per manifest line; lines without problems are absent
    result: dict[str, Any]  # great-expectations' validation result, as JSON
    # this run's Data Docs page as the Airflow API server serves it (pipeline.reporting.dashboard.docs_url);
    # a file:// address only when the site is outside the folder the server serves
    docs: str | None = None


def closest_procedures(code: str, name: str, procedures: Mapping[str, Procedure]) -> str:
    """The catalogue entries nearest an unknown code, by code and (when the row names its
    procedure) by name, written for the archivist."""
    def listed(codes: list[str]) -> str:
        return "; ".join(f"{c} ({procedures[c].name})" for c in codes)

    by_code = [c for c, *_ in process.extract(code, list(procedures), scorer=fuzz.ratio,
                                              limit=SUGGESTIONS)]
    text = f"Mã gần nhất trong danh mục: {listed(by_code)}."
    if name:
        names = {c: p.name for c, p in procedures.items()}
        by_name = [c for _, _, c in process.extract(name, names, scorer=fuzz.token_set_ratio,
                                                    limit=SUGGESTIONS)]
        text += f" Tên gần nhất: {listed(by_name)}."
    return text


def _vi_date(value: object) -> object:
    return value.strftime("%d/%m/%Y") if isinstance(value, dt.date) else value


def _frame_rows(rows: list[ManifestRow], reference: Reference, pages_found: Mapping[int, int]
                ) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        proc = reference.procedures.get(r.procedure_code)
        out.append({
            "line": r.line, "where": r.where, "record_id": r.record_id or None,
            "procedure_code": r.procedure_code or None, "issued_on_raw": r.issued_on_raw or None,
            # the rule checks the id's length and digits only; the result (unexpected values) is
            # kept as JSON and rendered as Data Docs under reports/, so it never sees the id whole
            "issued_on": r.issued_on, "holder_id": mask_shape(r.holder_id) or None,
            "files_raw": r.files_raw or None, "still_valid_raw": r.still_valid_raw or None,
            "still_valid": r.still_valid, "page_count_raw": r.page_count_raw or None,
            "page_count": r.page_count, "pages_found": pages_found.get(r.line),
            "procedure_name": proc.name if proc else None,
            "procedure_levels": ",".join(sorted(proc.levels)) if proc else None,
            "valid_from": proc.valid_from if proc else None,
            "valid_to": proc.valid_to if proc else None,
            "archived_in_batch": (None if r.replace_archived
                                  else reference.archived_elsewhere.get(r.record_id)),
            "suggestions": (closest_procedures(r.procedure_code, r.procedure_name,
                                               reference.procedures)
                            if r.procedure_code and not proc and reference.procedures else ""),
        })
    return out


def _frame(data: list[dict[str, Any]]) -> Any:
    import pandas as pd

    # object dtype keeps datetime.date values comparable with the suite's date parameters
    return pd.DataFrame(data, dtype=object)


def _message(template: str, row: dict[str, Any], value: object, reference: Reference,
             params: dict[str, Any]) -> str:
    levels = (row["procedure_levels"] or "").split(",")
    fields = {k: _vi_date(v) if v is not None else "" for k, v in row.items() if k != "holder_id"}
    return template.format(
        **fields, value=_vi_date(value) if value is not None else "",
        agency=reference.agency_code, agency_level=LEVEL_NAMES.get(reference.agency_level, "?"),
        levels=", ".join(LEVEL_NAMES.get(v, v) for v in levels if v),
        issued_min=_vi_date(params["issued_min"]), issued_max=_vi_date(params["issued_max"]),
    )


def _docs_address(site_url: str, docs_dir: Path, settings: Settings | None) -> str:
    """The address the archivist opens: the page under ``DATA/reports/validation`` as the API
    server serves it behind the Airflow login (:func:`pipeline.reporting.dashboard.docs_url`). A site
    outside that folder (a benchmark's data folder, say) keeps great-expectations' file:// URL:
    no server would answer for it.
    """
    from urllib.parse import unquote

    from pipeline.config import load_settings
    from pipeline.reporting.dashboard import docs_url, validation_docs_dir

    # great-expectations writes file://<the folder as given>/<the page's path, percent-escaped>
    prefix = f"file://{docs_dir}/"
    if not site_url.startswith(prefix):
        log.warning("Data Docs URL %s is not under %s; kept as it is", site_url, docs_dir)
        return site_url
    page = docs_dir / unquote(site_url[len(prefix):])
    settings = settings or load_settings()
    try:
        relative = page.resolve().relative_to(validation_docs_dir(settings).resolve())
    except ValueError:
        return site_url
    return docs_url(settings, relative.as_posix())


def validate_manifest(
    rows: list[ManifestRow], issued_range: tuple[dt.date, dt.date], reference: Reference,
    pages_found: Mapping[int, int], suite_path: Path = MANIFEST_SUITE,
    docs_dir: Path | None = None, run_name: str | None = None, settings: Settings | None = None,
) -> Validation:
    """Run the suite over the batch's rows; problems per manifest line and the full result.

    With ``docs_dir`` the result is also rendered there as great-expectations Data Docs (a static
    HTML site, one page per run named ``run_name``), which quarantine notes link to: ``docs`` is
    that page's address on the Airflow API server, made from ``settings`` (default: the
    environment's, ``DIGITIZE_UI_BASE_URL`` and ``DIGITIZE_DATA_DIR``). The same inputs validated
    again there (a rerun after a crash, a retried or cleared task) take the last outcome instead:
    great-expectations costs 3-5 s of CPU per run, mostly its import.
    """
    if not rows:
        return Validation({}, {})
    params = {
        "issued_min": issued_range[0], "issued_max": min(issued_range[1], dt.date.today()),
        "catalogue_codes": sorted(reference.procedures),
        "agency_level_pattern": f"(?:^|,){reference.agency_level}(?:,|$)",
    }
    data = _frame_rows(rows, reference, pages_found)
    key = _inputs_digest(suite_path, data, params, reference, run_name) if docs_dir else ""
    if docs_dir is not None and (last := _last_run(docs_dir, key)) is not None:
        problems, result, site_url = last
        log.info("manifest validation of run %s reused: its inputs are those of the last one",
                 run_name)
        return Validation(problems, result, _docs_address(site_url, docs_dir, settings)
                          if site_url else None)
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # that module sets its own logger to INFO when imported, after quiet_libraries() ran
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)

    try:
        suite = gx.ExpectationSuite(**json.loads(suite_path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"Expectation suite {suite_path} is invalid: {exc}") from exc
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    actions = []
    if docs_dir is not None:
        context.add_data_docs_site(DOCS_SITE, {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
        actions.append(UpdateDataDocsAction(name="data_docs", site_names=[DOCS_SITE]))
    definition = context.validation_definitions.add(gx.ValidationDefinition(
        name="manifest", suite=context.suites.add(suite),
        data=context.data_sources.add_pandas("manifest").add_dataframe_asset("rows")
        .add_batch_definition_whole_dataframe("all")))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name="batch", validation_definitions=[definition], actions=actions,
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["line"]}))
    run = checkpoint.run(batch_parameters={"dataframe": _frame(data)},
                         expectation_parameters=params, run_id=RunIdentifier(run_name=run_name))
    ((identifier, result),) = run.run_results.items()
    docs = site_url = None
    if docs_dir is not None:
        (site,) = context.get_docs_sites_urls(resource_identifier=identifier,
                                              site_names=[DOCS_SITE])
        # None when the page is not there: another run of the same batch rebuilding the site
        # at that moment. The check's result stands; only the link is missing.
        site_url = site["site_url"]
        if site_url is None:
            log.warning("Data Docs page of run %s not found under %s: no link", run_name, docs_dir)
        else:
            docs = _docs_address(site_url, docs_dir, settings)
    by_line = {row["line"]: row for row in data}
    problems: dict[int, list[Problem]] = {}
    for outcome in result.results:
        config = outcome.expectation_config
        column = config.kwargs.get("column") or config.kwargs.get("column_A")
        if outcome.exception_info.get("raised_exception"):
            raise ConfigError(f"Expectation {config.type} on {column} could not run: "
                              f"{outcome.exception_info.get('exception_message')}")
        if outcome.success:
            continue
        meta = config.meta
        for hit in outcome.result.get("unexpected_index_list") or []:
            row = by_line[int(hit["line"])]
            value = row.get(meta.get("value_column", column))
            problems.setdefault(row["line"], []).append(Problem(
                rule=meta["rule"], field=meta["field"],
                message=_message(meta["message"], row, value, reference, params)))
    outcome = result.to_json_dict()
    if docs_dir is not None and site_url is not None:
        _keep_run(docs_dir, key, problems, outcome, site_url)
    return Validation(problems, outcome, docs)


def _inputs_digest(suite_path: Path, data: list[dict[str, Any]], params: dict[str, Any],
                   reference: Reference, run_name: str | None) -> str:
    """Everything the outcome depends on: the suite, the rows as checked (holder ids reduced to
    their shape, as the rules see them), the parameters (today's date among them), the
    catalogue's codes and the agency, the great-expectations version."""
    from importlib.metadata import version

    try:
        suite = suite_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Expectation suite {suite_path} is invalid: {exc}") from exc
    inputs = {"suite": hashlib.sha256(suite).hexdigest(), "rows": data, "params": params,
              "agency": reference.agency_code, "level": reference.agency_level, "run": run_name,
              "great_expectations": version("great_expectations")}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def _last_run(docs_dir: Path, key: str
              ) -> tuple[dict[int, list[Problem]], dict[str, Any], str | None] | None:
    """The last validation's problems, result and Data Docs address, when its inputs were these
    and its page is still there; None otherwise (validate again)."""
    from urllib.parse import unquote

    try:
        last = json.loads((docs_dir / LAST_RUN).read_text(encoding="utf-8"))
        if last["inputs_sha256"] != key:
            return None
        site_url = last["site_url"]
        if not Path(unquote(site_url.removeprefix("file://"))).is_file():
            return None
        problems = {int(line): [Problem.model_validate(p) for p in found]
                    for line, found in last["problems"].items()}
        return problems, last["result"], site_url
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _keep_run(docs_dir: Path, key: str, problems: dict[int, list[Problem]],
              result: dict[str, Any], site_url: str) -> None:
    from pipeline.store.archive import atomic_write_bytes

    last = {"inputs_sha256": key, "site_url": site_url, "result": result,
            "problems": {line: [p.model_dump() for p in found] for line, found in problems.items()}}
    atomic_write_bytes(docs_dir / LAST_RUN, json.dumps(last, ensure_ascii=False).encode())
