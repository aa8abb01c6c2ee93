"""The phase plan: the shipped plan loads; a broken plan is refused with the file and the field."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from progress_fixtures import PLAN_YAML, write_plan

from pipeline.config import PROJECT_DIR, load_settings
from pipeline.errors import ConfigError
from pipeline.reporting.plan import load_plan

SHIPPED = PROJECT_DIR / "schemas" / "phase_plan.yaml"


def test_the_shipped_plan_loads() -> None:
    plan = load_plan(SHIPPED)
    assert [p.id for p in plan.phases] == ["GD1", "GD2", "GD3"]
    assert [p.id for p in plan.scoped_phases] == ["GD2", "GD3"]
    assert plan.final_deadline == dt.date(2025, 12, 31)
    assert plan.phase("GD2").work.start == dt.date(2022, 1, 1)
    assert plan.phase("GD3").deadline == dt.date(2025, 9, 30)
    assert plan.issued_range == (dt.date(1945, 9, 2), dt.date(2021, 12, 31))
    # first year 30 / 20 / 15 %, +20 points a year
    assert [plan.target(lv, 2021) for lv in ("tinh", "huyen", "xa")] == [30, 20, 15]
    assert [plan.target("huyen", y) for y in range(2021, 2026)] == [20, 40, 60, 80, 100]
    assert plan.target("xa", 2030) == 100 and plan.target("tinh", 2020) is None
    assert plan.pilot_agencies and plan.timezone == "Asia/Ho_Chi_Minh"


def test_settings_use_the_validated_plan(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DIGITIZE_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.plan == load_plan(SHIPPED)
    assert settings.issued_range == (dt.date(1945, 9, 2), dt.date(2021, 12, 31))
    monkeypatch.setenv("DIGITIZE_PHASE_PLAN", str(write_plan(tmp_path)))
    assert load_settings().plan.province == "Tỉnh Thử nghiệm"


def test_which_phase_an_issue_date_belongs_to() -> None:
    plan = load_plan(SHIPPED)
    assert plan.phase_for_date(dt.date(2006, 1, 1)).id == "GD2"  # type: ignore[union-attr]
    assert plan.phase_for_date(dt.date(2021, 12, 31)).id == "GD2"  # type: ignore[union-attr]
    assert plan.phase_for_date(dt.date(2005, 12, 31)).id == "GD3"  # type: ignore[union-attr]
    assert plan.phase_for_date(dt.date(1990, 5, 1)).id == "GD3"  # type: ignore[union-attr]
    assert plan.phase_for_date(dt.date(2022, 1, 1)) is None
    assert plan.phase_for_date(dt.date(1945, 9, 1)) is None
    assert plan.phase_for_year(2005).id == "GD3"  # type: ignore[union-attr]
    assert plan.phase_for_year(2022) is None


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    assert old in PLAN_YAML
    path = tmp_path / "plan-broken.yaml"
    path.write_text(PLAN_YAML.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(("old", "new", "field", "problem"), [
    ("final_deadline: 2025-12-31\n", "", "final_deadline", "missing"),
    ("    work: {start: 2022-01-01, end: 2023-12-31}\n", "", "phases[1].work", "missing"),
    ("work: {start: 2024-01-01, end: 2025-09-30}", "work: {start: 2024-01-01, end: 2023-09-30}",
     "phases[2].work", "end 2023-09-30 is before start 2024-01-01"),
    ("issued: {start: 2006-01-01, end: 2021-12-31}", "issued: {start: 2006-01-01, end: 2005-12-31}",
     "phases[1].issued", "is before start"),
    ("tỉnh: {2021: 30,", "tỉnh: {2021: 130,", "targets.tinh.2021", "less than or equal to 100"),
    ("xã: {2021: 15, 2022: 35", "xã: {2021: 15, 2022: -5", "targets.xa.2022", "greater than or equal to 0"),
    ("huyện: {2021: 20, 2022: 40", "huyện: {2021: 20, 2022: 10", "targets", "may not go down"),
    ("tỉnh: {", "thành phố: {", "targets.thành phố", "'tinh', 'huyen' or 'xa'"),
    ("issued: {start: 2006-01-01", "issued: {start: 2005-06-01", "phases",
     "must meet at a year boundary"),
    ("issued: {start: 2006-01-01", "issued: {start: 2007-01-01", "phases", "without gap or overlap"),
    ("{id: GD1,", "{id: GD2,", "phases", "ids must be unique"),
    ("work: {start: 2024-01-01, end: 2025-09-30}", "work: {start: 2024-01-01, end: 2026-09-30}",
     "phases", "after final_deadline"),
    ("timezone: Asia/Ho_Chi_Minh", "timezone: Asia/Hanoi_City", "timezone", "unknown time zone"),
    ("pilot_agencies: [000.00.01.H12]", "pilot_agencies: [Sở Tư pháp]", "pilot_agencies", "000.00.12.H12"),
    ("holidays: [2023-04-28", "holidays: [2023-0428", "holidays[0]", "date"),
    ("province:", "provinse:", "provinse", "unknown field"),
])
def test_a_broken_plan_names_the_file_and_the_field(tmp_path: Path, old: str, new: str, field: str,
                                                    problem: str) -> None:
    path = _broken(tmp_path, old, new)
    with pytest.raises(ConfigError) as caught:
        load_plan(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"{field}:" in message and problem in message, message
    assert "DIGITIZE_PHASE_PLAN" in message


@pytest.mark.parametrize(("content", "problem"), [
    ("phases: [\n", "not valid YAML"),
    ("- just\n- a list\n", "must be a YAML mapping"),
    ("", "must be a YAML mapping"),
    (PLAN_YAML.replace("2023-04-28", "2023-02-30"), "day is out of range for month"),
])
def test_a_plan_that_is_not_a_plan(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=problem) as caught:
        load_plan(path)
    assert str(path) in str(caught.value)


def test_a_missing_plan_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGITIZE_PHASE_PLAN", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="Cannot read the phase plan .*nope.yaml"):
        load_settings().issued_range  # noqa: B018
