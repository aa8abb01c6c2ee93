"""A small warehouse whose quarterly figures are known, for the progress and report tests.

Three agencies, one per level, two phases with an issue range (GD2: 2006-2021, GD3: up to 2005)
and the quarter 2023Q2 (1 April - 30 June 2023, 63 working days: 65 weekdays less the plan's two
holidays). Sở Tư pháp and the huyện sign (ký số) part of their records, the xã has no key. Rows
are inserted directly (no OCR, no signed file: only the warehouse's signature columns). The
expected figures are worked out by hand in ``EXPECTED_2023Q2`` below, next to the data they come
from.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import insert, update

from pipeline.store import warehouse

PLAN_YAML = """\
province: Tỉnh Thử nghiệm
timezone: Asia/Ho_Chi_Minh
final_deadline: 2025-12-31
phases:
  - {id: GD1, name: Giai đoạn 1, description: Thí điểm, work: {start: 2021-01-01, end: 2021-12-31}}
  - id: GD2
    name: Giai đoạn 2
    description: Kết quả ban hành 2006-2021
    work: {start: 2022-01-01, end: 2023-12-31}
    issued: {start: 2006-01-01, end: 2021-12-31}
  - id: GD3
    name: Giai đoạn 3
    description: Kết quả ban hành đến 2005
    work: {start: 2024-01-01, end: 2025-09-30}
    issued: {start: 1945-09-02, end: 2005-12-31}
targets:
  tỉnh: {2021: 30, 2022: 50, 2023: 70, 2024: 90, 2025: 100}
  huyện: {2021: 20, 2022: 40, 2023: 60, 2024: 80, 2025: 100}
  xã: {2021: 15, 2022: 35, 2023: 55, 2024: 75, 2025: 100}
pilot_agencies: [000.00.01.H12]
holidays: [2023-04-28, 2023-05-01, 2023-04-29]
"""

T, H, X = "000.00.01.H12", "000.00.12.H12", "000.01.12.H12"  # tỉnh, huyện, xã
IDLE = "000.00.13.H12"  # in the registry, no inventory, no records: not in the report
NAMES = {T: "Sở Tư pháp", H: "Ủy ban nhân dân huyện Đông Anh", X: "Ủy ban nhân dân xã Uy Nỗ",
         IDLE: "Ủy ban nhân dân huyện Gia Lâm"}
LEVELS = {T: "tinh", H: "huyen", X: "xa", IDLE: "huyen"}
# personal data on every record: must never appear in a report
HOLDER_NAME, HOLDER_ID = "Trần Thị Bí Mật", "079123456789"


def write_plan(folder: Path) -> Path:
    path = folder / "phase_plan.yaml"
    path.write_text(PLAN_YAML, encoding="utf-8")
    return path


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


class Filler:
    """Inserts batches, records and events with running ids."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.n = 0
        self.batches: dict[str, int] = {}

    def batch(self, conn: Any, agency: str) -> int:
        if agency not in self.batches:
            conn.execute(insert(warehouse.batches).values(
                agency_code=agency, batch_id=f"B-{agency}", source_dir="/x", manifest_sha256="0" * 64,
                status="done", record_count=0, archived_count=0, quarantined_count=0))
            self.batches[agency] = len(self.batches) + 1
        return self.batches[agency]

    def records(self, agency: str, count: int, *, issued: dt.date | None, at: str, pages: int = 1,
                status: str = "archived", reason: str | None = None,
                quarantined_at: str | None = None, quarantine_reason: str | None = None,
                signed: str | None = None) -> None:
        """``count`` records archived (or held) at ``at``; ``signed``: when they were signed."""
        with warehouse.engine_for(self.url).begin() as conn:
            batch = self.batch(conn, agency)
            rows, events = [], []
            for _ in range(count):
                self.n += 1
                record_id = f"HS{self.n:05d}"
                rows.append({
                    "agency_code": agency, "record_id": record_id, "batch_pk": batch,
                    "manifest_line": self.n + 1, "procedure_code": "1.001022",
                    "result_number": f"{self.n}/GCN", "issued_on": issued,
                    "holder_name": HOLDER_NAME, "holder_id": HOLDER_ID, "still_valid": True,
                    "status": status, "reason": reason, "page_count": pages,
                    "signature_level": "B-T" if signed else None,
                    "signed_by": f"CN={NAMES[agency]}" if signed else None,
                    "signed_at": _utc(signed) if signed else None, "updated_at": _utc(at)})
                events.append({"batch_pk": batch, "record_id": record_id,
                               "stage": "archive" if status == "archived" else "quarantine",
                               "outcome": "archived" if status == "archived" else reason,
                               "detail": f"{HOLDER_NAME} {HOLDER_ID}", "at": _utc(at)})
                if quarantined_at:
                    events.append({"batch_pk": batch, "record_id": record_id, "stage": "quarantine",
                                   "outcome": quarantine_reason, "detail": "", "at": _utc(quarantined_at)})
            conn.execute(insert(warehouse.records), rows)
            conn.execute(insert(warehouse.events), events)


def fill(url: str) -> Filler:
    """The warehouse of ``EXPECTED_2023Q2`` (times are UTC; Vietnam is UTC+7)."""
    warehouse.migrate(url)
    with warehouse.engine_for(url).begin() as conn:
        conn.execute(insert(warehouse.agencies), [
            {"code": c, "name": NAMES[c], "level": LEVELS[c]} for c in (T, H, X, IDLE)])
        conn.execute(insert(warehouse.procedures), [{"code": "1.001022", "name": "Trích lục"},
                                                    {"code": "1.001193", "name": "Khai sinh"}])
        conn.execute(insert(warehouse.inventory), [
            {"agency_code": T, "issue_year": 2010, "procedure_code": "1.001022", "still_valid_count": 100},
            {"agency_code": T, "issue_year": 2015, "procedure_code": "1.001022", "still_valid_count": 60},
            {"agency_code": T, "issue_year": 2015, "procedure_code": "1.001193", "still_valid_count": 40},
            {"agency_code": T, "issue_year": 2004, "procedure_code": "1.001022", "still_valid_count": 50},
            {"agency_code": H, "issue_year": 2012, "procedure_code": "1.001022", "still_valid_count": 300},
            {"agency_code": H, "issue_year": 2000, "procedure_code": "1.001022", "still_valid_count": 40},
            {"agency_code": X, "issue_year": 2020, "procedure_code": "1.001193", "still_valid_count": 80},
        ])
    f = Filler(url)
    # tỉnh: 60 archived in Q1, 70 in Q2 (GD2), 5 of GD3 in Q2. Signed (the quarter ends at
    # 2023-06-30 17:00 UTC): 30 of Q1's, archived unsigned, by `digitize sign` on 20 June; the
    # ones of Q2 as they were archived, but one (archived unsigned) only on 3 July
    f.records(T, 30, issued=dt.date(2010, 3, 1), at="2023-01-15 03:00", pages=2,
              signed="2023-06-20 03:00")
    f.records(T, 30, issued=dt.date(2010, 3, 1), at="2023-01-15 03:00", pages=2)
    f.records(T, 69, issued=dt.date(2015, 7, 9), at="2023-05-10 04:00", pages=3,
              signed="2023-05-10 03:59")
    f.records(T, 1, issued=dt.date(2015, 7, 9), at="2023-05-10 04:00", pages=3,
              signed="2023-07-03 03:00")
    f.records(T, 5, issued=dt.date(2003, 1, 2), at="2023-05-11 04:00", pages=1,
              signed="2023-05-11 03:59")
    f.records(T, 4, issued=dt.date(2010, 5, 5), at="2023-06-01 02:00", status="quarantined",
              reason="catalogue_mismatch", pages=2)
    # no issue date: held, counted in the agency's and the province's totals only
    f.records(T, 2, issued=None, at="2023-06-02 02:00", status="quarantined",
              reason="manifest_row_invalid", pages=1)
    # huyện: 100 in 2022, 50 in Q2, one at 00:30 on 1 April local time (Q2), one at 01:00 on
    # 1 July local time (30 June in UTC, but Q3). Signed as archived: 45 of the 50 of Q2 (5
    # archived unsigned), the one of 1 April (00:29 local), the one of 1 July at 23:59 on 30 June
    # local time (signed in Q2 but digitized in Q3: signed in Q3); the 100 of 2022 not yet
    f.records(H, 100, issued=dt.date(2012, 1, 1), at="2022-11-10 03:00", pages=1)
    f.records(H, 45, issued=dt.date(2012, 1, 1), at="2023-04-20 03:00", pages=2,
              signed="2023-04-20 02:59")
    f.records(H, 5, issued=dt.date(2012, 1, 1), at="2023-04-20 03:00", pages=2)
    f.records(H, 1, issued=dt.date(2012, 1, 1), at="2023-03-31 17:30", pages=4,
              signed="2023-03-31 17:29")
    f.records(H, 1, issued=dt.date(2012, 1, 1), at="2023-06-30 18:00", pages=5,
              signed="2023-06-30 16:59")
    f.records(H, 2, issued=dt.date(2012, 2, 2), at="2023-05-05 03:00", status="quarantined",
              reason="file_missing", pages=1)
    # signed, yet held (say its signature did not verify): not signed, as not digitized
    f.records(H, 1, issued=dt.date(2012, 2, 2), at="2023-05-05 03:00", status="quarantined",
              reason="file_missing", pages=1, signed="2023-05-05 02:59")
    f.records(H, 1, issued=dt.date(2012, 2, 2), at="2023-05-06 03:00", status="quarantined",
              reason="catalogue_mismatch", pages=1)
    # held on 10 June, fixed, signed and archived in August: held at the end of Q2, not digitized
    f.records(H, 1, issued=dt.date(2012, 2, 2), at="2023-08-01 03:00", pages=2,
              quarantined_at="2023-06-10 03:00", quarantine_reason="ocr_low_confidence",
              signed="2023-08-01 02:59")
    # held only after the quarter
    f.records(H, 1, issued=dt.date(2012, 2, 2), at="2023-07-05 03:00", status="quarantined",
              reason="pages_blank", pages=1)
    # xã: 10 archived in 2022, nothing since; no key: nothing signed
    f.records(X, 10, issued=dt.date(2020, 6, 6), at="2022-06-01 03:00", pages=1)
    # tỉnh, after the quarter
    f.records(T, 10, issued=dt.date(2010, 3, 1), at="2023-07-03 03:00", pages=2)
    return f


def add_after_quarter(f: Filler) -> None:
    """Work done after 2023Q2 (and a new agency's): must not change the 2023Q2 report. The xã
    gets its key and signs its 10 records of 2022 on 10 July."""
    with warehouse.engine_for(f.url).begin() as conn:
        conn.execute(insert(warehouse.agencies).values(code="000.02.12.H12", name="UBND xã Vân Hà",
                                                       level="xa"))
        r = warehouse.records
        conn.execute(update(r).where(r.c.agency_code == X, r.c.status == "archived").values(
            signature_level="B-T", signed_by=f"CN={NAMES[X]}", signed_at=_utc("2023-07-10 02:00")))
    f.records(X, 25, issued=dt.date(2020, 6, 6), at="2023-07-01 00:00", pages=3)
    f.records("000.02.12.H12", 5, issued=dt.date(2019, 1, 1), at="2023-09-09 03:00")
    f.records(H, 2, issued=dt.date(2012, 1, 1), at="2023-10-02 03:00", status="quarantined",
              reason="file_missing")


WORKING_DAYS = 63


def _row(kind: str, *, agency: str | None = None, level: str | None = None, phase: str | None,
         agencies: int = 1, inventoried: int, digitized: int, remaining: int, percent: float | None,
         target: float | None, expected: float | None, on_track: bool | None, judged: int,
         on: int, pages: int, signed: int, sp: float | None, reasons: dict[str, int], dq: int,
         pq: int, rpd: float, ppd: float, forecast: str | None, status: str, deadline: str,
         meets: bool | None) -> dict[str, Any]:
    from pipeline.reporting.progress import REASON_LABELS

    return {
        "kind": kind, "agency_code": agency, "agency_name": NAMES.get(agency) if agency else None,
        "pilot": agency == T, "level": LEVELS[agency] if agency else level, "phase": phase,
        "agencies": agencies, "inventoried": inventoried, "digitized": digitized,
        "remaining": remaining, "percent": percent, "target": target, "expected": expected,
        "on_track": on_track, "agencies_judged": judged, "agencies_on_track": on, "pages": pages,
        "signed": signed, "signed_percent": sp,
        "quarantined": sum(reasons.values()),
        "reasons": [{"reason": r, "label": REASON_LABELS[r], "count": n} for r, n in reasons.items()],
        "digitized_in_quarter": dq, "pages_in_quarter": pq, "records_per_day": rpd,
        "pages_per_day": ppd, "forecast": dt.date.fromisoformat(forecast) if forecast else None,
        "forecast_status": status, "deadline": dt.date.fromisoformat(deadline), "meets_deadline": meets,
    }


GD2_END, GD3_END, FINAL = "2023-12-31", "2025-09-30", "2025-12-31"

# Worked out by hand. Percent: digitized / inventoried. Targets 2023 (GD2 began in 2022): tỉnh
# 70 (expected at Q2: 50 + (70-50)*2/4 = 60), huyện 60 (50), xã 55 (45); GD3 has not begun: none.
# Pace: archived in Q2 / 63 working days. Forecast: ceil(remaining * 63 / archived in Q2) working
# days after 30/06/2023 (checked with numpy.busday_offset). Signed (sp: signed / digitized, one
# decimal half up): tỉnh GD2 30 + 69 = 99 of 130 (76.15), GD3 5 of 5, all 104 of 135 (77.04);
# huyện 45 + 1 = 46 of 151 (30.46; not the one digitized in Q3 nor the held one); xã 0 of 10;
# none of nothing digitized.
_T_GD2 = dict(inventoried=200, digitized=130, remaining=70, percent=65.0, pages=330, signed=99,
              sp=76.2, reasons={"catalogue_mismatch": 4}, dq=70, pq=210, rpd=1.11, ppd=3.33,
              forecast="2023-09-27", status="forecast", deadline=GD2_END, meets=True)  # 63 days
_T_GD3 = dict(inventoried=50, digitized=5, remaining=45, percent=10.0, pages=5, signed=5, sp=100.0,
              reasons={}, dq=5, pq=5, rpd=0.08, ppd=0.08, forecast="2025-09-02", status="forecast",
              deadline=GD3_END, meets=True)  # 567 days
_T_ALL = dict(inventoried=250, digitized=135, remaining=115, percent=54.0, pages=335, signed=104,
              sp=77.0, reasons={"catalogue_mismatch": 4, "manifest_row_invalid": 2}, dq=75, pq=215,
              rpd=1.19, ppd=3.41, forecast="2023-11-14", status="forecast", deadline=FINAL,
              meets=True)  # 97 days
_H_GD2 = dict(inventoried=300, digitized=151, remaining=149, percent=50.3, pages=204, signed=46,
              sp=30.5, reasons={"file_missing": 3, "catalogue_mismatch": 1, "ocr_low_confidence": 1},
              dq=51, pq=104, rpd=0.81, ppd=1.65, forecast="2024-03-15", status="forecast",
              deadline=GD2_END, meets=False)  # 185 days
_H_GD3 = dict(inventoried=40, digitized=0, remaining=40, percent=0.0, pages=0, signed=0, sp=None,
              reasons={}, dq=0, pq=0, rpd=0.0, ppd=0.0, forecast=None, status="not_started",
              deadline=GD3_END, meets=None)
_H_ALL = dict(_H_GD2, inventoried=340, remaining=189, percent=44.4, forecast="2024-05-23",
              deadline=FINAL, meets=True)  # 234 days
_X_GD2 = dict(inventoried=80, digitized=10, remaining=70, percent=12.5, pages=10, signed=0, sp=0.0,
              reasons={}, dq=0, pq=0, rpd=0.0, ppd=0.0, forecast=None, status="no_pace",
              deadline=GD2_END, meets=False)
_X_GD3 = dict(inventoried=0, digitized=0, remaining=0, percent=None, pages=0, signed=0, sp=None,
              reasons={}, dq=0, pq=0, rpd=0.0, ppd=0.0, forecast=None, status="no_inventory",
              deadline=GD3_END, meets=None)
_X_ALL = dict(_X_GD2, deadline=FINAL)
_NO_TARGET = dict(target=None, expected=None, on_track=None)

EXPECTED_2023Q2: dict[str, list[dict[str, Any]]] = {
    "rows": [
        _row("agency_phase", agency=T, phase="GD2", target=70.0, expected=60.0, on_track=True, judged=1,
             on=1, **_T_GD2),
        _row("agency_phase", agency=T, phase="GD3", judged=0, on=0, **_NO_TARGET, **_T_GD3),
        _row("agency_phase", agency=H, phase="GD2", target=60.0, expected=50.0, on_track=True, judged=1,
             on=1, **_H_GD2),
        _row("agency_phase", agency=H, phase="GD3", judged=0, on=0, **_NO_TARGET, **_H_GD3),
        _row("agency_phase", agency=X, phase="GD2", target=55.0, expected=45.0, on_track=False,
             judged=1, on=0, **_X_GD2),
        _row("agency_phase", agency=X, phase="GD3", judged=0, on=0, **_NO_TARGET, **_X_GD3),
    ],
    "agency_totals": [
        _row("agency", agency=T, phase=None, target=70.0, expected=60.0, on_track=False, judged=1, on=0,
             **_T_ALL),
        _row("agency", agency=H, phase=None, target=60.0, expected=50.0, on_track=False, judged=1, on=0,
             **_H_ALL),
        _row("agency", agency=X, phase=None, target=55.0, expected=45.0, on_track=False, judged=1, on=0,
             **_X_ALL),
    ],
    "summary": [
        _row("level_phase", level="tinh", phase="GD2", target=70.0, expected=60.0, on_track=True,
             judged=1, on=1, **_T_GD2),
        _row("level_phase", level="tinh", phase="GD3", judged=0, on=0, **_NO_TARGET, **_T_GD3),
        _row("level", level="tinh", phase=None, target=70.0, expected=60.0, on_track=False, judged=1,
             on=0, **_T_ALL),
        _row("level_phase", level="huyen", phase="GD2", target=60.0, expected=50.0, on_track=True,
             judged=1, on=1, **_H_GD2),
        _row("level_phase", level="huyen", phase="GD3", judged=0, on=0, **_NO_TARGET, **_H_GD3),
        _row("level", level="huyen", phase=None, target=60.0, expected=50.0, on_track=False, judged=1,
             on=0, **_H_ALL),
        _row("level_phase", level="xa", phase="GD2", target=55.0, expected=45.0, on_track=False,
             judged=1, on=0, **_X_GD2),
        _row("level_phase", level="xa", phase="GD3", judged=0, on=0, **_NO_TARGET, **_X_GD3),
        _row("level", level="xa", phase=None, target=55.0, expected=45.0, on_track=False, judged=1,
             on=0, **_X_ALL),
    ],
    "totals": [
        # 291/580; remaining 70+149+70; 121 in Q2 -> ceil(289*63/121) = 151 days; signed
        # 99+46+0 = 145 of 291 (49.83)
        _row("province_phase", phase="GD2", agencies=3, inventoried=580, digitized=291, remaining=289,
             percent=50.2, **_NO_TARGET, judged=3, on=2, pages=544, signed=145, sp=49.8,
             reasons={"catalogue_mismatch": 5, "file_missing": 3, "ocr_low_confidence": 1}, dq=121,
             pq=314, rpd=1.92, ppd=4.98, forecast="2024-01-29", status="forecast", deadline=GD2_END,
             meets=False),
        # 5/90; ceil(85*63/5) = 1071 days; signed 5 of 5
        _row("province_phase", phase="GD3", agencies=3, inventoried=90, digitized=5, remaining=85,
             percent=5.6, **_NO_TARGET, judged=0, on=0, pages=5, signed=5, sp=100.0, reasons={}, dq=5,
             pq=5, rpd=0.08, ppd=0.08, forecast="2027-08-09", status="forecast", deadline=GD3_END,
             meets=False),
        # 296/670; remaining 115+189+70 = 374; 126 in Q2 -> 187 days; signed 104+46+0 = 150 of
        # 296 (50.68)
        _row("province", phase=None, agencies=3, inventoried=670, digitized=296, remaining=374,
             percent=44.2, **_NO_TARGET, judged=3, on=0, pages=549, signed=150, sp=50.7,
             reasons={"catalogue_mismatch": 5, "file_missing": 3, "manifest_row_invalid": 2,
                      "ocr_low_confidence": 1},
             dq=126, pq=319, rpd=2.0, ppd=5.06, forecast="2024-03-19", status="forecast",
             deadline=FINAL, meets=True),
    ],
}
