"""Progress summary per agency from the warehouse (the quarterly report builds on the same data)."""

from __future__ import annotations

import csv
import io
import json

from sqlalchemy import case, func, select

from pipeline import warehouse
from pipeline.archive import atomic_write_bytes
from pipeline.config import Settings

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
    writer.writerows([row[k] for k in COLUMNS] for row in rows)
    atomic_write_bytes(csv_path, buffer.getvalue().encode("utf-8-sig"))
    return {"json": str(json_path), "csv": str(csv_path)}
