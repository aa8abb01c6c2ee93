"""Progress figures per agency, level, phase and quarter: the data of the quarterly report.

API (the CLI, the ``digitize_report`` DAG and the Airflow UI plugin all call these)::

    parse_quarter("2023Q2") -> Quarter            # also "2023-Q2", "2023q2"; ValueError if not
    previous_quarter(day: date) -> str            # "2023Q2" for any day of 2023Q3
    quarter_report(url: str, quarter: str | Quarter, plan: PhasePlan | Path) -> QuarterReport
    filter_report(report, *, level=None, agency=None, phase=None) -> QuarterReport
    summary(url) / write_summary(settings)        # the running per-agency summary of a batch run

Rendering (XLSX, CSV, JSON, HTML) is :mod:`pipeline.reporting.report`: ``render(report, fmt) -> bytes``,
``render_html(report, *, form_action=None, download_links=None) -> str`` and
``write_quarter_report(settings, quarter)``.

A :class:`QuarterReport` holds every figure as plain data (no rendering, no personal data):
``rows`` (agency x phase), ``agency_totals`` (agency, all phases), ``summary`` (level x phase and
level, all phases), ``totals`` (province x phase and province, all phases), ``top_reasons``, plus
the plan's phases and targets for the quarter and ``choices`` (every level, agency and phase of
the unfiltered report, for a filter form). Every row is a :class:`ProgressRow` whose ``kind`` says
which of these it is. :func:`filter_report` keeps the matching agency rows and computes the
aggregates again from them, so a filtered report is what the same warehouse would give for
those agencies alone.

Definitions (the figures at the end of the quarter, "số liệu đến hết ngày 30/06/2023"):

- *phase of a result*: the plan phase whose issue range holds its issue year
  (:meth:`PhasePlan.phase_for_year`); results outside every range (or without a date) count in
  the agency and province totals only;
- *inventoried* (Đã kiểm đếm): ``inventory.still_valid_count`` summed per agency and issue year,
  as the inventory is now (it has no history);
- *digitized* (Đã số hóa): records with ``status = 'archived'`` archived (``records.updated_at``)
  before the end of the quarter; *pages*: their pages;
- *percent* (Tỷ lệ): digitized / inventoried, one decimal rounded half up; none without
  inventory;
- *signed* (Đã ký số): digitized records whose current version was signed (``records.signed_at``)
  before the end of the quarter, 0 for an agency without a key; a record archived in one quarter
  and signed in a later one counts as digitized in the first and as signed from the second;
  *signed percent* (Tỷ lệ đã ký số): signed / digitized, one decimal rounded half up; none when
  nothing is digitized;
- *year's target* (Chỉ tiêu năm): the plan's cumulative target for the agency's level and the
  quarter's year (a phase's own targets first); *expected* (Mức cần đạt): the part of the year's
  progress due by the quarter's end, linear over the four quarters from the previous year's
  target (from 0 in the year a phase starts); a phase whose work has not started has none;
- *on track* (Đạt): percent >= expected, compared exactly; for levels and the province, the number
  of agencies on track out of those with a target;
- *quarantined* (Cần xử lý): records held at the quarter's end (in quarantine since before it and
  not archived before it), with their reasons, most frequent first;
- *pace* (Hồ sơ/ngày, Trang/ngày): records (pages) archived inside the quarter per working day
  of the quarter: Monday to Friday, less the plan's ``holidays``;
- *remaining* (Còn lại): inventoried - digitized per agency, never below 0 (summed for groups);
- *forecast* (Dự kiến hoàn thành): the working day, counted from the day after the quarter, on
  which the remaining results are done at the quarter's pace; *on time* (Kịp hạn): forecast on
  or before the deadline (the phase's work end; for all phases the plan's ``final_deadline``).

Quarters are cut at local midnight in the plan's time zone; the warehouse stores UTC. Each figure
is one query over a view of ``sql/views/`` (``progress_inventory``, ``progress_archived``,
``progress_quarantine``), so the same SQL serves other tools; the signed count alone reads
``records``: its signature columns came with migration 0009, and the views, which migration 0005
creates from ``sql/views/``, cannot name them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import zoneinfo
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Integer, case, cast, extract, func, or_, select
from sqlalchemy.exc import OperationalError, ProgrammingError

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.reporting.cells import csv_text
from pipeline.reporting.plan import LEVEL_ALIASES, LEVEL_NAMES, LEVELS, Phase, PhasePlan, load_plan
from pipeline.store import warehouse
from pipeline.store.archive import atomic_write_bytes

# --- the running summary of a batch run (DAG publish_progress, `digitize run`) --------------------
# Vietnamese column headers for the people who read the summary; keys for machines.
COLUMNS = {
    "agency_code": "Cơ quan",
    "batches": "Số lô",
    "records": "Số hồ sơ",
    "archived": "Đã số hóa",
    "quarantined": "Cần xử lý",
    "pages": "Số trang",
}


def summary(url: str) -> list[dict[str, int | str]]:
    r = warehouse.records
    archived = r.c.status == "archived"
    query = (
        select(
            r.c.agency_code,
            func.count(func.distinct(r.c.batch_pk)).label("batches"),
            func.count().label("records"),
            func.sum(case((archived, 1), else_=0)).label("archived"),
            func.sum(case((archived, 0), else_=1)).label("quarantined"),
            func.sum(case((archived, r.c.page_count), else_=0)).label("pages"),
        )
        .group_by(r.c.agency_code)
        .order_by(r.c.agency_code)
    )
    with warehouse.engine_for(url).connect() as conn:
        return [{k: (v if k == "agency_code" else int(v or 0)) for k, v in row._mapping.items()}
                for row in conn.execute(query)]


def write_summary(settings: Settings) -> dict[str, str]:
    """``reports/progress_summary.{json,csv}`` under the data folder; returns their paths."""
    rows = summary(settings.warehouse_url)
    folder = settings.dir("reports")
    json_path, csv_path = folder / "progress_summary.json", folder / "progress_summary.csv"
    atomic_write_bytes(json_path, json.dumps(rows, ensure_ascii=False, indent=2).encode("utf-8"))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS.values())
    writer.writerows([csv_text(v) if isinstance(v := row[k], str) else v for k in COLUMNS]
                     for row in rows)
    atomic_write_bytes(csv_path, buffer.getvalue().encode("utf-8-sig"))
    return {"json": str(json_path), "csv": str(csv_path)}


# --- quarters and working days --------------------------------------------------------------------
_QUARTER = re.compile(r"^\s*(\d{4})\s*-?\s*[Qq]\s*([1-4])\s*$")


class Quarter(BaseModel):
    model_config = ConfigDict(frozen=True)

    year: int
    number: int

    @property
    def label(self) -> str:
        return f"{self.year}Q{self.number}"

    @property
    def vi_label(self) -> str:
        return f"Quý {self.number}/{self.year}"

    @property
    def start(self) -> dt.date:
        return dt.date(self.year, 3 * self.number - 2, 1)

    @property
    def end(self) -> dt.date:
        following = dt.date(self.year + 1, 1, 1) if self.number == 4 else \
            dt.date(self.year, 3 * self.number + 1, 1)
        return following - dt.timedelta(days=1)


def parse_quarter(text: str | Quarter) -> Quarter:
    """``'2023Q2'`` (or ``2023-Q2``, ``2023q2``) -> :class:`Quarter`; ValueError with the form."""
    if isinstance(text, Quarter):
        return text
    found = _QUARTER.match(str(text))
    if not found or not 1900 <= int(found[1]) <= 2999:
        raise ValueError(f"quarter {text!r} is not of the form YYYYQn, e.g. 2023Q2")
    return Quarter(year=int(found[1]), number=int(found[2]))


def quarter_of(day: dt.date) -> Quarter:
    return Quarter(year=day.year, number=(day.month - 1) // 3 + 1)


def previous_quarter(day: dt.date) -> str:
    """The quarter that ended last before ``day``'s quarter: the one a report run on ``day`` is for."""
    current = quarter_of(day)
    return (Quarter(year=current.year - 1, number=4) if current.number == 1
            else Quarter(year=current.year, number=current.number - 1)).label


def _calendar(holidays: Sequence[dt.date]) -> np.busdaycalendar:
    # holidays on a weekend, repeated or unsorted are fine: numpy drops and sorts them
    return np.busdaycalendar(weekmask="Mon Tue Wed Thu Fri", holidays=list(holidays))


def working_days(start: dt.date, end: dt.date, holidays: Sequence[dt.date] = ()) -> int:
    """Monday-to-Friday days from ``start`` to ``end`` inclusive, less ``holidays``."""
    if end < start:
        return 0
    # busday_count leaves out its end; numpy's day after date.max still exists
    return int(np.busday_count(start, np.datetime64(end, "D") + 1, busdaycal=_calendar(holidays)))


def add_working_days(after: dt.date, n: int, holidays: Sequence[dt.date] = ()) -> dt.date | None:
    """The ``n``-th (``n`` >= 1) working day after ``after`` (None past the calendar's end)."""
    # "backward": a day off counts from the working day before it, whose n-th successor is the same
    day = np.busday_offset(after, n, roll="backward", busdaycal=_calendar(holidays))
    return day.astype(dt.date) if day <= np.datetime64(dt.date.max, "D") else None


# --- the report's data ----------------------------------------------------------------------------
RowKind = Literal["agency_phase", "agency", "level_phase", "level", "province_phase", "province"]
ForecastStatus = Literal["forecast", "done", "no_pace", "too_slow", "not_started", "no_inventory"]
TOP_REASONS = 3  # reasons shown per row ("Lý do chính")
FORECAST_YEARS = 100  # a pace slower than this is "too slow", not a date in another century

# Vietnamese names of the quarantine reasons (pipeline/errors.py), as the report shows them.
REASON_LABELS = {
    "manifest_row_invalid": "Dòng manifest sai",
    "file_missing": "Thiếu tệp quét",
    "image_unreadable": "Ảnh không đọc được",
    "page_range_invalid": "Khoảng trang sai",
    "duplicate_source": "Tệp đã xử lý trước đó",
    "catalogue_mismatch": "Không khớp danh mục TTHC",
    "result_expired": "Kết quả hết hiệu lực",
    "probable_duplicate": "Có thể trùng hồ sơ đã lưu",
    "pages_blank": "Trang trắng",
    "ocr_low_confidence": "Chữ đọc được kém",
    "ocr_failed": "Lỗi nhận dạng chữ",
    "pdfa_check_failed": "Lỗi kiểm tra PDF/A",
    "image_too_large": "Trang quá khổ",
    "pdf_encrypted": "PDF bị mã hóa",
    "pdf_active_content": "PDF có mã lệnh/biểu mẫu",
    "path_outside_batch": "Tệp nằm ngoài thư mục lô",
    "archive_storage_full": "Ổ lưu trữ đầy",
    "stack_pages_unassigned": "Trang chưa rõ hồ sơ (tờ bìa)",
    "sheet_without_pages": "Tờ bìa không có trang",
    "sheet_mismatch": "Tờ bìa không khớp",
    "archive_conflict": "Tệp lạ chiếm chỗ trong kho lưu trữ",
    "signing_failed": "Chưa ký số được",
    "unexpected_error": "Lỗi không lường trước",
    "record_error": "Lỗi khác",
}


class ReasonCount(BaseModel):
    reason: str
    label: str
    count: int


class PhaseInfo(BaseModel):
    id: str
    name: str
    description: str
    work_start: dt.date
    work_end: dt.date  # the phase's deadline
    issued_start: dt.date | None
    issued_end: dt.date | None
    started: bool  # its work had begun by the quarter's end (else it has no target yet)


class TargetInfo(BaseModel):
    """The target of one level (and phase, None = all phases) for the report's quarter."""

    level: str
    phase: str | None
    target: float | None  # the year's cumulative %
    expected: float | None  # % due by the quarter's end


class AgencyChoice(BaseModel):
    code: str
    name: str
    level: str | None


class Choices(BaseModel):
    """Everything a filter form can offer: the unfiltered report's levels, agencies, phases."""

    levels: list[str]
    agencies: list[AgencyChoice]
    phases: list[str]


class ProgressRow(BaseModel):
    kind: RowKind
    agency_code: str | None = None  # agency rows only
    agency_name: str | None = None
    pilot: bool = False  # one of the plan's pilot agencies
    level: str | None = None  # tinh | huyen | xa; None: unknown (agency, level rows) / province
    phase: str | None = None  # phase id; None: all phases
    agencies: int  # agencies counted in the row
    inventoried: int
    digitized: int
    remaining: int
    percent: float | None
    target: float | None
    expected: float | None
    on_track: bool | None
    agencies_judged: int  # agencies with a target
    agencies_on_track: int
    pages: int
    signed: int  # Đã ký số: 0, never missing, where nothing is signed
    signed_percent: float | None  # of the digitized records; None: nothing digitized
    quarantined: int
    reasons: list[ReasonCount]  # every reason, most frequent first
    digitized_in_quarter: int
    pages_in_quarter: int
    records_per_day: float
    pages_per_day: float
    forecast: dt.date | None
    forecast_status: ForecastStatus
    deadline: dt.date
    meets_deadline: bool | None

    @property
    def top_reasons(self) -> list[ReasonCount]:
        return self.reasons[:TOP_REASONS]


class QuarterReport(BaseModel):
    quarter: str  # 2023Q2
    quarter_label: str  # Quý 2/2023
    start: dt.date
    end: dt.date
    as_of: str  # "số liệu đến hết ngày 30/06/2023": the only "when" in the report
    working_days: int
    province: str
    final_deadline: dt.date
    holidays: list[dt.date]
    phases: list[PhaseInfo]  # the phases with an issue range, in plan order
    pilot_phases: list[PhaseInfo]  # phases without one (the pilot), for the plan's description
    targets: list[TargetInfo]
    rows: list[ProgressRow]  # agency x phase
    agency_totals: list[ProgressRow]  # agency, all phases
    summary: list[ProgressRow]  # level x phase, then level, all phases (per level)
    totals: list[ProgressRow]  # province x phase, then province, all phases
    top_reasons: list[ReasonCount]
    choices: Choices
    filters: dict[str, str] = {}

    def phase_name(self, phase_id: str | None) -> str:
        for p in self.phases:
            if p.id == phase_id:
                return p.name
        return "Tất cả giai đoạn"


def level_name(level: str | None) -> str:
    return LEVEL_NAMES.get(level or "", "Chưa rõ cấp")


def reason_label(reason: str | None) -> str:
    return REASON_LABELS.get(reason or "", reason or "Không rõ")


# --- reading the warehouse ------------------------------------------------------------------------
@dataclass
class _Sums:
    inventoried: int = 0
    digitized: int = 0
    pages: int = 0
    digitized_q: int = 0
    pages_q: int = 0
    signed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


def _utc(day: dt.date, zone: str) -> dt.datetime:
    """Local midnight starting ``day`` as the naive UTC time the warehouse stores."""
    local = dt.datetime.combine(day, dt.time(0), tzinfo=zoneinfo.ZoneInfo(zone))
    return local.astimezone(dt.UTC).replace(tzinfo=None)


def _read(url: str, start: dt.datetime, end: dt.datetime
          ) -> tuple[dict[str, tuple[str, str | None]], list[tuple[str, int | None, int]],
                     list[tuple[str, int | None, int, int, int, int]],
                     list[tuple[str, int | None, str | None, int]],
                     list[tuple[str, int | None, int]]]:
    """Agencies, inventory, archived, quarantined and signed figures: one query each, one snapshot."""
    a, inv, rec = warehouse.agencies, warehouse.progress_inventory, warehouse.records
    arc, qua = warehouse.progress_archived, warehouse.progress_quarantine
    in_quarter = arc.c.archived_at >= start
    archived = (
        select(arc.c.agency_code, arc.c.issue_year, func.count(),
               func.coalesce(func.sum(arc.c.page_count), 0),
               func.coalesce(func.sum(case((in_quarter, 1), else_=0)), 0),
               func.coalesce(func.sum(case((in_quarter, arc.c.page_count), else_=0)), 0))
        .where(arc.c.archived_at < end)
        .group_by(arc.c.agency_code, arc.c.issue_year)
    )
    held = (
        select(qua.c.agency_code, qua.c.issue_year, qua.c.reason, func.count())
        .where(qua.c.held_at < end, or_(qua.c.released_at.is_(None), qua.c.released_at >= end))
        .group_by(qua.c.agency_code, qua.c.issue_year, qua.c.reason)
    )
    # The issue year as progress_records computes it on either dialect (EXTRACT / strftime).
    # Archived before the end as well: a record signed just before midnight and archived just
    # after is not digitized in the quarter, so it cannot be signed in it either.
    issue_year = cast(extract("year", rec.c.issued_on), Integer)
    signed = (
        select(rec.c.agency_code, issue_year, func.count())
        .where(rec.c.status == "archived", rec.c.signed_at < end, rec.c.updated_at < end)
        .group_by(rec.c.agency_code, issue_year)
    )
    engine = warehouse.engine_for(url)
    # On PostgreSQL the five queries read one snapshot, so a batch archiving meanwhile cannot
    # make the inventory and the digitized figures disagree.
    options = {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}
    try:
        with engine.connect().execution_options(**options) as conn, conn.begin():
            agencies = {code: (name or "", level) for code, name, level in
                        conn.execute(select(a.c.code, a.c.name, a.c.level))}
            inventory = [tuple(r) for r in conn.execute(
                select(inv.c.agency_code, inv.c.issue_year, inv.c.still_valid))]
            arch = [tuple(r) for r in conn.execute(archived)]
            quar = [tuple(r) for r in conn.execute(held)]
            sign = [tuple(r) for r in conn.execute(signed)]
    except (OperationalError, ProgrammingError) as exc:
        if not any(name in str(exc.orig) for name in (*warehouse.VIEWS, "signed_at")):
            raise
        raise ConfigError(
            f"The warehouse {engine.url.render_as_string()} lacks the progress views or the "
            f"signature columns ({exc.orig}). Run `digitize migrate` (migrations 0005, 0009) "
            "first.") from exc
    return (agencies, [(c, y, int(n or 0)) for c, y, n in inventory],  # type: ignore[misc]
            [(c, y, int(n), int(p), int(nq), int(pq)) for c, y, n, p, nq, pq in arch],  # type: ignore[misc]
            [(c, y, r, int(n)) for c, y, r, n in quar],  # type: ignore[misc]
            [(c, y, int(n)) for c, y, n in sign])  # type: ignore[misc]


# --- figures --------------------------------------------------------------------------------------
def _ratio(numerator: int, denominator: int, digits: int) -> float:
    """numerator / denominator rounded half up (12.25 -> 12.3, as people round), not to even."""
    scaled = (2 * numerator * 10**digits + denominator) // (2 * denominator)
    return scaled / 10**digits


def _reasons(counter: Counter[str]) -> list[ReasonCount]:
    ordered = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    return [ReasonCount(reason=r, label=reason_label(r), count=n) for r, n in ordered if n]


@dataclass(frozen=True)
class _Context:
    """What the figures of a row need besides its sums; all of it kept in the report."""

    quarter_end: dt.date
    working_days: int
    holidays: tuple[dt.date, ...]
    final_deadline: dt.date
    phases: dict[str, PhaseInfo]
    targets: dict[tuple[str, str | None], TargetInfo]

    @classmethod
    def of(cls, report: QuarterReport) -> _Context:
        return cls(report.end, report.working_days, tuple(report.holidays), report.final_deadline,
                   {p.id: p for p in report.phases},
                   {(t.level, t.phase): t for t in report.targets})


def _forecast(ctx: _Context, inventoried: int, remaining: int, done_in_quarter: int,
              started: bool, deadline: dt.date) -> tuple[dt.date | None, ForecastStatus, bool | None]:
    if inventoried == 0:
        return None, "no_inventory", None
    if remaining == 0:
        return None, "done", True
    if done_in_quarter == 0 or ctx.working_days == 0:
        return (None, "not_started", None) if not started else (None, "no_pace", False)
    days = -(-remaining * ctx.working_days // done_in_quarter)  # ceil, in exact integers
    day = add_working_days(ctx.quarter_end, days, ctx.holidays) \
        if days <= FORECAST_YEARS * 261 else None
    if day is None:
        return None, "too_slow", False
    return day, "forecast", day <= deadline


def _row(ctx: _Context, kind: RowKind, sums: _Sums, *, remaining: int, level: str | None,
         phase: str | None, agencies: int, judged: int, on_track_count: int,
         agency: AgencyChoice | None = None, pilot: bool = False,
         with_target: bool = True) -> ProgressRow:
    info = ctx.phases.get(phase) if phase else None
    started = info.started if info else True
    deadline = info.work_end if info else ctx.final_deadline
    target = ctx.targets.get((level, phase)) if with_target and level else None
    percent = _ratio(100 * sums.digitized, sums.inventoried, 1) if sums.inventoried else None
    signed_percent = _ratio(100 * sums.signed, sums.digitized, 1) if sums.digitized else None
    on_track = None
    if target is not None and target.expected is not None and sums.inventoried:
        # exact: 100 * digitized >= expected * inventoried, no rounding in between
        on_track = 100 * sums.digitized >= target.expected * sums.inventoried - 1e-9
    if kind.startswith("agency"):
        judged, on_track_count = int(on_track is not None), int(bool(on_track))
    forecast, status, meets = _forecast(ctx, sums.inventoried, remaining, sums.digitized_q, started,
                                        deadline)
    days = ctx.working_days
    return ProgressRow(
        kind=kind, agency_code=agency.code if agency else None,
        agency_name=agency.name if agency else None, pilot=pilot, level=level, phase=phase,
        agencies=agencies, inventoried=sums.inventoried, digitized=sums.digitized,
        remaining=remaining, percent=percent,
        target=target.target if target else None, expected=target.expected if target else None,
        on_track=on_track, agencies_judged=judged, agencies_on_track=on_track_count,
        pages=sums.pages, signed=sums.signed, signed_percent=signed_percent,
        quarantined=sum(sums.reasons.values()), reasons=_reasons(sums.reasons),
        digitized_in_quarter=sums.digitized_q, pages_in_quarter=sums.pages_q,
        records_per_day=_ratio(sums.digitized_q, days, 2) if days else 0.0,
        pages_per_day=_ratio(sums.pages_q, days, 2) if days else 0.0,
        forecast=forecast, forecast_status=status, deadline=deadline, meets_deadline=meets,
    )


def _group(ctx: _Context, kind: RowKind, rows: Sequence[ProgressRow], level: str | None,
           phase: str | None) -> ProgressRow:
    """A level's or the province's row from its agencies' rows."""
    sums = _Sums()
    for r in rows:
        sums.inventoried += r.inventoried
        sums.digitized += r.digitized
        sums.pages += r.pages
        sums.digitized_q += r.digitized_in_quarter
        sums.pages_q += r.pages_in_quarter
        sums.signed += r.signed
        sums.reasons.update({c.reason: c.count for c in r.reasons})
    return _row(ctx, kind, sums, remaining=sum(r.remaining for r in rows), level=level, phase=phase,
                agencies=len(rows), judged=sum(r.agencies_judged for r in rows),
                on_track_count=sum(r.agencies_on_track for r in rows),
                with_target=kind.startswith("level"))


def _level_order(level: str | None) -> int:
    return LEVELS.index(level) if level in LEVELS else len(LEVELS)  # type: ignore[arg-type]


def _aggregates(ctx: _Context, rows: Sequence[ProgressRow], agency_totals: Sequence[ProgressRow],
                phases: Sequence[str]) -> tuple[list[ProgressRow], list[ProgressRow], list[ReasonCount]]:
    """Summary (level x phase, level) and province totals from the agencies' rows.

    Per phase from the agency x phase rows; "all phases" from the agency totals, which also hold
    the results outside every phase's issue range.
    """
    levels = sorted({r.level for r in [*rows, *agency_totals]}, key=_level_order)
    summary, totals = [], []
    for level in levels:
        for phase in phases:
            group = [r for r in rows if r.level == level and r.phase == phase]
            if group:
                summary.append(_group(ctx, "level_phase", group, level, phase))
        group = [r for r in agency_totals if r.level == level]
        if group:
            summary.append(_group(ctx, "level", group, level, None))
    for phase in phases:
        group = [r for r in rows if r.phase == phase]
        if group:
            totals.append(_group(ctx, "province_phase", group, None, phase))
    if agency_totals:
        totals.append(_group(ctx, "province", agency_totals, None, None))
    top = totals[-1].reasons if totals else []
    return summary, totals, top


def _targets(plan: PhasePlan, quarter: Quarter) -> list[TargetInfo]:
    out = []
    for level in LEVELS:
        for phase in [None, *plan.scoped_phases]:
            target = expected = None
            if phase is None or quarter.end >= phase.work.start:
                target = plan.target(level, quarter.year, phase)
            if target is not None:
                # A phase's scope starts from nothing in the year its work begins.
                fresh = phase is not None and phase.work.start.year == quarter.year
                before = 0.0 if fresh else plan.target(level, quarter.year - 1, phase) or 0.0
                expected = round(before + (target - before) * quarter.number / 4, 2)
            out.append(TargetInfo(level=level, phase=phase.id if phase else None, target=target,
                                  expected=expected))
    return out


def _phase_info(phase: Phase, quarter: Quarter) -> PhaseInfo:
    return PhaseInfo(id=phase.id, name=phase.name, description=phase.description,
                     work_start=phase.work.start, work_end=phase.work.end,
                     issued_start=phase.issued.start if phase.issued else None,
                     issued_end=phase.issued.end if phase.issued else None,
                     started=quarter.end >= phase.work.start)


def quarter_report(url: str, quarter: str | Quarter, plan: PhasePlan | Path) -> QuarterReport:
    """Every figure of one quarter from the warehouse at ``url`` (views of migration 0005)."""
    if isinstance(plan, Path):
        plan = load_plan(plan)
    q = parse_quarter(quarter)
    holidays = sorted(set(plan.holidays))
    start_utc = _utc(q.start, plan.timezone)
    end_utc = _utc(q.end + dt.timedelta(days=1), plan.timezone)
    agencies, inventory, archived, held, signed = _read(url, start_utc, end_utc)

    sums: dict[tuple[str, str | None], _Sums] = {}
    year_phase: dict[int | None, str | None] = {}

    def buckets(code: str, year: int | None) -> list[_Sums]:
        if year not in year_phase:
            found = plan.phase_for_year(year) if year is not None else None
            year_phase[year] = found.id if found else None
        keys = [(code, None)] + ([(code, year_phase[year])] if year_phase[year] else [])
        return [sums.get(k) or sums.setdefault(k, _Sums()) for k in keys]

    for code, year, count in inventory:
        for s in buckets(code, year):
            s.inventoried += count
    for code, year, n, pages, nq, pq in archived:
        for s in buckets(code, year):
            s.digitized += n
            s.pages += pages
            s.digitized_q += nq
            s.pages_q += pq
    for code, year, reason, n in held:
        for s in buckets(code, year):
            s.reasons[reason or "record_error"] += n
    for code, year, n in signed:
        for s in buckets(code, year):
            s.signed += n

    phases = [_phase_info(p, q) for p in plan.scoped_phases]
    report = QuarterReport(
        quarter=q.label, quarter_label=q.vi_label, start=q.start, end=q.end,
        as_of=f"số liệu đến hết ngày {q.end:%d/%m/%Y}",
        working_days=working_days(q.start, q.end, holidays), province=plan.province,
        final_deadline=plan.final_deadline, holidays=holidays, phases=phases,
        pilot_phases=[_phase_info(p, q) for p in plan.phases if not p.issued],
        targets=_targets(plan, q), rows=[], agency_totals=[], summary=[], totals=[],
        top_reasons=[], choices=Choices(levels=[], agencies=[], phases=[p.id for p in phases]),
    )
    ctx = _Context.of(report)
    pilots = set(plan.pilot_agencies)
    codes = sorted({code for code, _ in sums},
                   key=lambda c: (_level_order(agencies.get(c, ("", None))[1]), c))
    for code in codes:
        name, level = agencies.get(code, ("", None))
        agency = AgencyChoice(code=code, name=name, level=level)
        report.choices.agencies.append(agency)
        for phase in [*(p.id for p in phases), None]:
            s = sums.get((code, phase), _Sums())
            row = _row(ctx, "agency_phase" if phase else "agency", s,
                       remaining=max(s.inventoried - s.digitized, 0), level=level, phase=phase,
                       agencies=1, judged=0, on_track_count=0, agency=agency, pilot=code in pilots)
            (report.rows if phase else report.agency_totals).append(row)
    report.choices.levels = sorted({a.level for a in report.choices.agencies if a.level},
                                   key=_level_order)
    report.summary, report.totals, report.top_reasons = _aggregates(
        ctx, report.rows, report.agency_totals, report.choices.phases)
    return report


def filter_report(report: QuarterReport, *, level: str | None = None, agency: str | None = None,
                  phase: str | None = None) -> QuarterReport:
    """The report of the agencies of one level and/or one agency and/or one phase.

    Aggregates are computed again from the agencies kept. With ``phase``, only that phase's rows
    remain (no agency totals over all phases). ValueError names an unknown level, agency or phase.
    """
    filters = dict(report.filters)
    rows, totals = list(report.rows), list(report.agency_totals)
    if level:
        stored = LEVEL_ALIASES.get(level.strip().lower())
        if stored is None:
            raise ValueError(f"unknown level {level!r}; one of {list(LEVELS)}")
        rows = [r for r in rows if r.level == stored]
        totals = [r for r in totals if r.level == stored]
        filters["level"] = stored
    if agency:
        if agency not in {a.code for a in report.choices.agencies}:
            raise ValueError(f"agency {agency!r} is not in the report of {report.quarter}")
        rows = [r for r in rows if r.agency_code == agency]
        totals = [r for r in totals if r.agency_code == agency]
        filters["agency"] = agency
    phases = report.choices.phases
    if phase:
        if phase not in phases:
            raise ValueError(f"unknown phase {phase!r}; one of {phases}")
        rows = [r for r in rows if r.phase == phase]
        totals = []
        phases = [phase]
        filters["phase"] = phase
    summary, province, top = _aggregates(_Context.of(report), rows, totals, phases)
    return report.model_copy(update={
        "rows": rows, "agency_totals": totals, "summary": summary, "totals": province,
        "top_reasons": top, "filters": filters,
        "phases": [p for p in report.phases if p.id in phases]})

