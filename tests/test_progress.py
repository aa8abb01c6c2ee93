"""Progress figures per agency, level, phase and quarter, on SQLite and on the real PostgreSQL:
every figure of a small warehouse whose answers were worked out by hand (tests/progress_fixtures)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from progress_fixtures import (
    EXPECTED_2023Q2,
    HOLDER_ID,
    HOLDER_NAME,
    H,
    T,
    X,
    add_after_quarter,
    fill,
    write_plan,
)
from sqlalchemy import text

from pipeline.reporting import progress
from pipeline.reporting.plan import PhasePlan, load_plan
from pipeline.store import warehouse


def _dump(rows: list[progress.ProgressRow]) -> list[dict[str, object]]:
    return [r.model_dump() for r in rows]


def test_every_figure_of_the_quarter(warehouse_url: str, plan: PhasePlan) -> None:
    fill(warehouse_url)
    report = progress.quarter_report(warehouse_url, "2023Q2", plan)
    assert (report.quarter, report.quarter_label) == ("2023Q2", "Quý 2/2023")
    assert (report.start, report.end) == (dt.date(2023, 4, 1), dt.date(2023, 6, 30))
    assert report.as_of == "số liệu đến hết ngày 30/06/2023"
    assert report.working_days == 63  # 65 weekdays, less 28/04 and 01/05 (29/04 is a Saturday)
    assert report.province == "Tỉnh Thử nghiệm"
    assert [p.id for p in report.phases] == ["GD2", "GD3"]
    assert [p.started for p in report.phases] == [True, False]
    assert [p.id for p in report.pilot_phases] == ["GD1"]
    for part in ("rows", "agency_totals", "summary", "totals"):
        got, expected = _dump(getattr(report, part)), EXPECTED_2023Q2[part]
        assert len(got) == len(expected), part
        for g, e in zip(got, expected, strict=True):
            assert g == e, (part, e["kind"], e["agency_code"] or e["level"], e["phase"])
    assert [(c.reason, c.count) for c in report.top_reasons] == [
        ("catalogue_mismatch", 5), ("file_missing", 3), ("manifest_row_invalid", 2),
        ("ocr_low_confidence", 1)]
    # the registered agency without inventory or records is left out
    assert [a.code for a in report.choices.agencies] == [T, H, X]
    assert report.choices.levels == ["tinh", "huyen", "xa"]
    assert report.choices.phases == ["GD2", "GD3"]
    assert HOLDER_NAME not in report.model_dump_json() and HOLDER_ID not in report.model_dump_json()


def test_the_views_hold_no_personal_data_and_serve_plain_sql(warehouse_url: str) -> None:
    fill(warehouse_url)
    with warehouse.engine_for(warehouse_url).connect() as conn:
        for view in warehouse.VIEWS:
            result = conn.execute(text(f"SELECT * FROM {view}"))
            assert not {"holder_name", "holder_id", "text"} & set(result.keys()), view
            assert result.fetchall(), view
        inventory = dict(conn.execute(text(
            "SELECT issue_year, still_valid FROM progress_inventory WHERE agency_code = :a"),
            {"a": T}).tuples().all())
    assert inventory == {2004: 50, 2010: 100, 2015: 100}


def test_a_record_counts_as_signed_from_the_quarter_it_was_signed(warehouse_url: str,
                                                                   plan: PhasePlan) -> None:
    """Digitized in the quarter it was archived, signed in the quarter it was signed (the
    quarter's end at local midnight); unsigned is 0, not missing."""
    f = fill(warehouse_url)
    add_after_quarter(f)  # the xã signs its 10 records of 2022 on 10 July

    def signed(quarter: str) -> dict[tuple[str | None, str | None], tuple[int, int, float | None]]:
        report = progress.quarter_report(warehouse_url, quarter, plan)
        return {(r.agency_code, r.phase): (r.digitized, r.signed, r.signed_percent)
                for r in [*report.rows, *report.agency_totals]}

    # Sở Tư pháp's 60 of January are digitized in Q1, 30 of them signed only on 20 June
    q1 = signed("2023Q1")
    assert q1[(T, "GD2")] == (60, 0, 0.0)
    assert q1[(H, None)] == (100, 0, 0.0)  # the one of 00:30 on 1 April (local) is Q2's
    assert signed("2023Q2")[(T, "GD2")] == (130, 99, 76.2)
    q3 = signed("2023Q3")
    # + 10 archived unsigned on 3 July; + the one archived in Q2 and signed on 3 July
    assert q3[(T, "GD2")] == (140, 100, 71.4)
    # + the one signed at 23:59 on 30 June and archived after midnight, + the one of August
    assert q3[(H, "GD2")] == (153, 48, 31.4)
    # 10 of 2022 signed in July, 25 archived in July unsigned; nothing of GD3 digitized
    assert q3[(X, None)] == (35, 10, 28.6)
    assert q3[(X, "GD3")] == (0, 0, None)


def test_targets_follow_the_year_and_the_phase(tmp_path: Path, plan: PhasePlan) -> None:
    url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    fill(url)

    def targets(quarter: str) -> dict[tuple[str, str | None], tuple[float | None, float | None]]:
        report = progress.quarter_report(url, quarter, plan)
        return {(t.level, t.phase): (t.target, t.expected) for t in report.targets}

    q = targets("2024Q1")
    # all phases and GD2 (begun 2022): 70 + (90 - 70) / 4; GD3 begins in 2024: from 0
    assert q[("tinh", None)] == q[("tinh", "GD2")] == (90.0, 75.0)
    assert q[("tinh", "GD3")] == (90.0, 22.5)
    assert q[("huyen", "GD3")] == (80.0, 20.0)
    assert q[("xa", "GD3")] == (75.0, 18.75)
    q = targets("2021Q4")  # the first year: nothing before it; GD2 has not begun
    assert q[("xa", None)] == (15.0, 15.0)
    assert q[("xa", "GD2")] == (None, None)
    q = targets("2026Q1")  # after the last year of the plan the last target holds
    assert q[("huyen", None)] == (100.0, 100.0)


def test_a_phase_can_carry_its_own_targets(tmp_path: Path) -> None:
    path = write_plan(tmp_path)
    path.write_text(path.read_text(encoding="utf-8").replace(
        "    issued: {start: 2006-01-01, end: 2021-12-31}\n",
        "    issued: {start: 2006-01-01, end: 2021-12-31}\n"
        "    targets: {tinh: {2022: 40, 2023: 100}}\n"), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    fill(url)
    report = progress.quarter_report(url, "2023Q2", load_plan(path))
    row = next(r for r in report.rows if r.agency_code == T and r.phase == "GD2")
    # 40 + (100 - 40) * 2/4 = 70 due; 65 % done
    assert (row.target, row.expected, row.on_track) == (100.0, 70.0, False)
    other = next(r for r in report.rows if r.agency_code == H and r.phase == "GD2")
    assert (other.target, other.expected) == (None, None)  # the phase's table has no huyện


def test_filter_by_level_agency_and_phase(tmp_path: Path, plan: PhasePlan) -> None:
    url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    fill(url)
    report = progress.quarter_report(url, "2023Q2", plan)

    huyen = progress.filter_report(report, level="huyện")
    assert huyen.filters == {"level": "huyen"}
    assert {r.agency_code for r in [*huyen.rows, *huyen.agency_totals]} == {H}
    assert [r.level for r in huyen.summary] == ["huyen"] * 3
    total = huyen.totals[-1]
    assert (total.inventoried, total.digitized, total.quarantined, total.agencies) == (340, 151, 5, 1)
    assert total.forecast == dt.date(2024, 5, 23)
    assert huyen.choices == report.choices  # the form still offers everything

    gd2 = progress.filter_report(report, phase="GD2")
    assert {r.phase for r in gd2.rows} == {"GD2"} and gd2.agency_totals == []
    assert [r.kind for r in gd2.totals] == ["province_phase"]
    assert gd2.totals[0].model_dump() == EXPECTED_2023Q2["totals"][0]
    assert [p.id for p in gd2.phases] == ["GD2"]

    one = progress.filter_report(progress.filter_report(report, agency=X), phase="GD2")
    assert one.filters == {"agency": X, "phase": "GD2"}
    assert [r.agency_code for r in one.rows] == [X]
    assert one.totals[0].percent == 12.5

    # filtering everything away is not an error: the tables are empty
    assert progress.filter_report(report, level="xa", agency=T).rows == []
    for bad in ({"level": "tỉnh thành"}, {"agency": "000.99.99.H12"}, {"phase": "GD9"}):
        with pytest.raises(ValueError, match="tỉnh thành|000.99.99.H12|GD9"):
            progress.filter_report(report, **bad)  # type: ignore[arg-type]


def test_an_agency_without_a_level_is_reported_without_a_target(tmp_path: Path, plan: PhasePlan) -> None:
    url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    f = fill(url)
    with warehouse.engine_for(url).begin() as conn:
        # a batch names an agency the registry does not know yet: code only
        conn.execute(warehouse.agencies.insert().values(code="000.09.09.H12"))
    f.records("000.09.09.H12", 3, issued=dt.date(2011, 1, 1), at="2023-05-02 03:00")
    report = progress.quarter_report(url, "2023Q2", plan)
    row = next(r for r in report.agency_totals if r.agency_code == "000.09.09.H12")
    assert (row.level, row.agency_name, row.digitized, row.target, row.on_track) == (None, "", 3, None, None)
    assert row.forecast_status == "no_inventory"
    assert report.summary[-1].level is None and report.summary[-1].kind == "level"
    assert report.totals[-1].digitized == 299


def test_a_warehouse_without_the_views_says_to_migrate(warehouse_url: str, plan: PhasePlan) -> None:
    from alembic import command
    from alembic.config import Config

    from pipeline.errors import ConfigError

    fill(warehouse_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(warehouse.MIGRATIONS))

    def downgrade(revision: str) -> None:
        with warehouse.engine_for(warehouse_url).begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, revision)

    downgrade("0008")  # the views, without the signature columns of 0009
    with pytest.raises(ConfigError, match="(?s)signed_at.*digitize migrate"):
        progress.quarter_report(warehouse_url, "2023Q2", plan)
    downgrade("0004")  # the migration also goes back cleanly
    with pytest.raises(ConfigError, match="digitize migrate"):
        progress.quarter_report(warehouse_url, "2023Q2", plan)
    warehouse.migrate(warehouse_url)
    total = progress.quarter_report(warehouse_url, "2023Q2", plan).totals[-1]
    # the signatures went with 0009's columns: what was archived before it is unsigned
    assert (total.digitized, total.signed, total.signed_percent) == (296, 0, 0.0)


def test_percentages_round_half_up() -> None:
    assert progress._ratio(100 * 49, 400, 1) == 12.3  # 12.25: Python's round() would give 12.2
    assert progress._ratio(100 * 1, 3, 1) == 33.3 and progress._ratio(100 * 2, 3, 1) == 66.7
    assert progress._ratio(5, 63, 2) == 0.08 and progress._ratio(0, 63, 2) == 0.0


@pytest.mark.parametrize(("text", "label"), [("2023Q2", "2023Q2"), ("2023-q4", "2023Q4"),
                                             (" 2024 Q1 ", "2024Q1")])
def test_parse_quarter(text: str, label: str) -> None:
    assert progress.parse_quarter(text).label == label


@pytest.mark.parametrize("text", ["2023Q5", "2023", "Q2 2023", "23Q1", ""])
def test_a_bad_quarter_names_the_form(text: str) -> None:
    with pytest.raises(ValueError, match="YYYYQn"):
        progress.parse_quarter(text)


def test_quarters_and_working_days() -> None:
    q = progress.parse_quarter("2024Q1")
    assert (q.start, q.end) == (dt.date(2024, 1, 1), dt.date(2024, 3, 31))
    assert progress.parse_quarter("2023Q4").end == dt.date(2023, 12, 31)
    assert progress.previous_quarter(dt.date(2023, 7, 1)) == "2023Q2"
    assert progress.previous_quarter(dt.date(2024, 1, 1)) == "2023Q4"
    assert progress.previous_quarter(dt.date(2023, 9, 30)) == "2023Q2"
    # 2024Q1: 13 weeks (65 weekdays), 1 January 2024 a Monday
    assert progress.working_days(q.start, q.end) == 65
    assert progress.working_days(q.start, q.end, [dt.date(2024, 1, 1), dt.date(2024, 1, 6)]) == 64
    assert progress.working_days(dt.date(2023, 6, 3), dt.date(2023, 6, 4)) == 0  # a weekend
    assert progress.working_days(dt.date(2023, 6, 5), dt.date(2023, 6, 4)) == 0
    # Friday 30/06/2023 + 1 working day: Monday 03/07; + 5: Friday 07/07; over a holiday
    assert progress.add_working_days(dt.date(2023, 6, 30), 1) == dt.date(2023, 7, 3)
    assert progress.add_working_days(dt.date(2023, 6, 30), 5) == dt.date(2023, 7, 7)
    assert progress.add_working_days(dt.date(2023, 6, 30), 1, [dt.date(2023, 7, 3)]) == dt.date(2023, 7, 4)
    assert progress.add_working_days(dt.date(9999, 12, 1), 100) is None



def test_working_days_agree_with_counting_day_by_day() -> None:
    """numpy's business days against a walk over the calendar, three years long: every pair of
    some days (weekends, year ends, holidays among them, either order) and forecasts from each."""
    # one holiday on a Saturday (29/04/2023), one given twice, some on year ends
    holidays = sorted([dt.date(2023, 1, 2), dt.date(2023, 4, 28), dt.date(2023, 4, 29), dt.date(2023, 5, 1),
                       dt.date(2023, 5, 1), dt.date(2023, 12, 29), dt.date(2024, 1, 1), dt.date(2024, 9, 2),
                       dt.date(2024, 12, 31), dt.date(2025, 1, 1)])
    first = dt.date(2022, 12, 20)
    days = [first + dt.timedelta(days=i) for i in range(3 * 366 + 30)]
    year_ends = [d for d in days if (d.month == 12 and d.day >= 24) or (d.month == 1 and d.day <= 8)]
    sample = sorted(set(days[::13] + year_ends))
    assert {d.weekday() for d in sample} == set(range(7)) and set(holidays) <= set(days)
    for off in ((), holidays):
        # before[i]: working days among days[:i], counted one day at a time
        before = [0]
        for d in days:
            before.append(before[-1] + (d.weekday() < 5 and d not in off))
        index = {d: i for i, d in enumerate(days)}
        for start in sample:
            for end in sample:
                expected = max(before[index[end] + 1] - before[index[start]], 0)
                assert progress.working_days(start, end, off) == expected, (start, end, off)
            for n in (1, 2, 4, 5, 6, 10, 21, 63, 200):
                day, left = start, n
                while left:
                    day += dt.timedelta(days=1)
                    left -= day.weekday() < 5 and day not in off
                assert progress.add_working_days(start, n, off) == day, (start, n, off)


def test_the_running_summary_still_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.config import load_settings

    monkeypatch.setenv("DIGITIZE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("DIGITIZE_DB_URL", raising=False)
    settings = load_settings()
    fill(settings.warehouse_url)
    paths = progress.write_summary(settings)
    rows = {r["agency_code"]: r for r in progress.summary(settings.warehouse_url)}
    assert rows[X] == {"agency_code": X, "batches": 1, "records": 10, "archived": 10,
                       "quarantined": 0, "pages": 10}
    assert Path(paths["csv"]).read_text(encoding="utf-8-sig").startswith("Cơ quan,Số lô")
