"""The province's phase plan (``schemas/phase_plan.yaml``), validated on load.

The plan is configuration, never code: another province's plan is just another file
(``DIGITIZE_PHASE_PLAN``). It holds

- ``phases``: each with its work window (``work``) and, except for a pilot phase, the range of
  issue dates of the results it digitizes (``issued``). The issue ranges must not overlap and must
  meet at year boundaries, because the inventory (kiểm đếm) counts results per issue *year*: a year
  must belong to exactly one phase. A phase without ``issued`` (Giai đoạn 1: build the archive,
  inventory, pilot) has no scope of its own; what it digitizes counts towards the phase of each
  record's issue date;
- ``targets``: per level (``tinh`` / ``huyen`` / ``xa``) and year, the cumulative percentage of
  the inventoried still-valid results that must be digitized by 31 December of that year; a phase
  may override them with its own ``targets``;
- ``pilot_agencies``, ``final_deadline``, the province's ``timezone`` (quarters are cut at local
  midnight) and optional ``holidays`` (days off besides Saturday and Sunday).

:func:`load_plan` turns any problem into a :class:`~pipeline.errors.ConfigError` that names the
file and the field (``phases[1].work: end 2021-01-01 is before start 2021-12-31``).
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import ConfigError

Level = Literal["tinh", "huyen", "xa"]
LEVELS: tuple[Level, ...] = ("tinh", "huyen", "xa")  # highest first: the report's order
LEVEL_NAMES: dict[str, str] = {"tinh": "Tỉnh", "huyen": "Huyện", "xa": "Xã"}
# Level keys as people write them in the YAML; stored in the warehouse's form (pipeline.checks.reference).
LEVEL_ALIASES = {"tinh": "tinh", "tỉnh": "tinh", "huyen": "huyen", "huyện": "huyen", "xa": "xa",
                  "xã": "xa", "province": "tinh", "district": "huyen", "commune": "xa"}
_AGENCY_CODE = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$", re.ASCII)
Percent = Annotated[float, Field(ge=0, le=100)]
YearTargets = dict[Annotated[int, Field(ge=1945, le=2100)], Percent]


class DateRange(BaseModel):
    """Inclusive range of days."""

    model_config = ConfigDict(extra="forbid")

    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    def __contains__(self, day: dt.date) -> bool:
        return self.start <= day <= self.end


def _level_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {LEVEL_ALIASES.get(str(k).strip().lower(), k): v for k, v in value.items()}
    return value


def _check_targets(targets: dict[str, dict[int, float]]) -> dict[str, dict[int, float]]:
    """Targets are cumulative: a year may not ask for less than the year before."""
    for level, years in targets.items():
        ordered = sorted(years.items())
        for (year, pct), (next_year, next_pct) in zip(ordered, ordered[1:], strict=False):
            if next_pct < pct:
                raise ValueError(f"{level}: {next_year} asks {next_pct:g}% after {pct:g}% in {year}; "
                                 "targets are cumulative and may not go down")
    return targets


class Phase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,16}$")
    name: str = Field(min_length=1)
    description: str = ""
    work: DateRange
    issued: DateRange | None = None
    targets: dict[Level, YearTargets] | None = None

    normalise_levels = field_validator("targets", mode="before")(_level_keys)

    @field_validator("targets")
    @classmethod
    def _cumulative(cls, value: dict[str, dict[int, float]] | None) -> dict[str, dict[int, float]] | None:
        return _check_targets(value) if value is not None else None

    @property
    def deadline(self) -> dt.date:
        return self.work.end


class PhasePlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    province: str = ""
    timezone: str = "Asia/Ho_Chi_Minh"
    phases: list[Phase] = Field(min_length=1)
    targets: dict[Level, YearTargets] = Field(min_length=1)
    pilot_agencies: list[str] = Field(default_factory=list)
    holidays: list[dt.date] = Field(default_factory=list)
    final_deadline: dt.date

    normalise_levels = field_validator("targets", mode="before")(_level_keys)

    @field_validator("targets")
    @classmethod
    def _cumulative(cls, value: dict[str, dict[int, float]]) -> dict[str, dict[int, float]]:
        return _check_targets(value)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Ho_Chi_Minh)") from exc
        return value

    @field_validator("pilot_agencies")
    @classmethod
    def _agency_codes(cls, value: list[str]) -> list[str]:
        bad = [code for code in value if not _AGENCY_CODE.match(code)]
        if bad:
            raise ValueError(f"agency codes {bad} are not of the form 000.00.12.H12")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PhasePlan:
        ids = [p.id for p in self.phases]
        if len(set(ids)) != len(ids):
            raise ValueError(f"phases: ids must be unique, found {ids}")
        scoped = sorted((p for p in self.phases if p.issued), key=lambda p: p.issued.start)  # type: ignore[union-attr]
        if not scoped:
            raise ValueError("phases: at least one phase needs an 'issued' range (the results it digitizes)")
        for before, after in zip(scoped, scoped[1:], strict=False):
            assert before.issued and after.issued
            if after.issued.start != before.issued.end + dt.timedelta(days=1) \
                    or (after.issued.start.month, after.issued.start.day) != (1, 1):
                raise ValueError(
                    f"phases: the issue ranges of {before.id} (to {before.issued.end}) and {after.id} "
                    f"(from {after.issued.start}) must meet at a year boundary, without gap or "
                    "overlap (31 December, then 1 January): the inventory counts results per issue "
                    "year, and every year must belong to exactly one phase")
        late = [p.id for p in self.phases if p.work.end > self.final_deadline]
        if late:
            raise ValueError(f"phases: {late} end after final_deadline {self.final_deadline}")
        return self

    # --- questions the pipeline asks ---------------------------------------------------------------
    @property
    def scoped_phases(self) -> list[Phase]:
        """The phases with an issue range, in plan order: the report has one part per phase."""
        return [p for p in self.phases if p.issued]

    @property
    def issued_range(self) -> tuple[dt.date, dt.date]:
        """Earliest and latest plausible issue date: the union of the phases' issue ranges."""
        ranges = [p.issued for p in self.scoped_phases if p.issued]
        return min(r.start for r in ranges), max(r.end for r in ranges)

    def phase(self, phase_id: str) -> Phase:
        for p in self.phases:
            if p.id == phase_id:
                return p
        raise KeyError(f"no phase {phase_id!r} in the plan (phases: {[p.id for p in self.phases]})")

    def phase_for_date(self, issued_on: dt.date) -> Phase | None:
        """The phase whose issue range holds this issue date; None outside the plan."""
        for p in self.scoped_phases:
            if p.issued and issued_on in p.issued:
                return p
        return None

    def phase_for_year(self, year: int) -> Phase | None:
        """The phase of an inventory year: issue ranges meet at year boundaries, so one at most."""
        for p in self.scoped_phases:
            if p.issued and p.issued.start.year <= year <= p.issued.end.year:
                return p
        return None

    def target(self, level: str | None, year: int, phase: Phase | None = None) -> float | None:
        """Cumulative % due by 31/12 of ``year`` at ``level`` (the phase's own targets first).

        After the last year given the last target holds; before the first there is none.
        """
        table = phase.targets if phase is not None and phase.targets else self.targets
        years = table.get(level) if level else None  # type: ignore[call-overload]
        if not years:
            return None
        due = [pct for y, pct in sorted(years.items()) if y <= year]
        return due[-1] if due else None


def load_plan(path: Path) -> PhasePlan:
    """Read and validate a phase plan; :class:`ConfigError` naming the file and the field."""
    hint = "Fix the file or point DIGITIZE_PHASE_PLAN to a valid one."
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"Cannot read the phase plan {path}: {exc.strerror or exc}. {hint}") from exc
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: a date that does not exist (2023-02-30)
        raise ConfigError(f"The phase plan {path} is not valid YAML: {exc}. {hint}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"The phase plan {path} must be a YAML mapping with 'phases', 'targets' and "
                          f"'final_deadline'. {hint}")
    try:
        return PhasePlan.model_validate(raw)
    except ValidationError as exc:
        # errors of the whole plan (ids, issue ranges) name their field in the message itself
        problems = "; ".join(f"{_where(e['loc'])}: {_what(e)}" if e["loc"] else _what(e)
                             for e in exc.errors())
        raise ConfigError(f"The phase plan {path} is invalid: {problems}. {hint}") from exc


def _where(loc: tuple[int | str, ...]) -> str:
    """``('phases', 1, 'work')`` -> ``phases[1].work``."""
    text = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for a bad dict key: the key itself says enough
            continue
        # list positions read phases[1]; dict keys (years under targets) stay dotted
        if isinstance(part, int) and part < 1000 and text:
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def _what(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        return "missing (required)"
    if error["type"] == "extra_forbidden":
        return f"unknown field (value {error.get('input')!r})"
    return message
