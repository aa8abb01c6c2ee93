"""Reference import benchmark: how long a real-sized catalogue and inventory take to import.

``python -m pipeline.demo.reference_bench [--db-url URL] [--procedures 2000] [--inventory 100000]``
writes synthetic agency, catalogue and inventory CSVs of that size to a temporary folder,
imports each into an empty warehouse, imports it again (which must change nothing), and writes
the timings to ``var/bench/import-<timestamp>.json``. Not part of the test suite.

Without ``--db-url`` it uses a fresh SQLite file in the temporary folder; a database given with
``--db-url`` must hold no reference data yet, so a production warehouse is never filled with
synthetic rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import random
import sys
from pathlib import Path
from typing import Any

from pipeline.checks import reference
from pipeline.demo import benchdb
from pipeline.store import warehouse

YEARS = range(2005, 2022)
FIELDS = ("Hộ tịch", "Đất đai", "Xây dựng", "Kinh doanh hộ gia đình", "Bảo trợ xã hội", "Chứng thực")
LEVELS = ("Cấp Tỉnh", "Cấp Huyện", "Cấp Xã", "Cấp Huyện; Cấp Xã", "Cấp Tỉnh; Cấp Huyện; Cấp Xã")


def _agency_code(i: int) -> str:
    # NNN.NN.NN.HNN: communes (second group) under districts (third group) under the province
    return f"000.{i % 100:02d}.{i // 100 % 100:02d}.H{i // 10000 % 100:02d}"


def write_files(folder: Path, n_procedures: int, n_inventory: int, seed: int = 0) -> dict[str, Path]:
    """Synthetic, valid reference files with Vietnamese headers (as the real exports have)."""
    rng = random.Random(seed)
    # enough agencies that every inventory row has its own (agency, year, procedure) key
    per_agency = len(YEARS) * n_procedures
    n_agencies = max(10, math.ceil(n_inventory / per_agency))
    paths = {kind: folder / f"{kind}.csv" for kind in ("agencies", "catalogue", "inventory")}
    with paths["agencies"].open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["Mã định danh", "Tên cơ quan", "Cấp", "Cơ quan cấp trên"])
        for i in range(n_agencies):
            level = "Tỉnh" if i == 0 else "Huyện" if i % 10 else "Xã"
            out.writerow([_agency_code(i), f"Cơ quan thử nghiệm số {i}", level,
                          _agency_code(0) if i else ""])
    codes = [f"{1 + i // 1_000_000}.{i % 1_000_000:06d}" for i in range(n_procedures)]
    with paths["catalogue"].open("w", encoding="utf-8-sig", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["Mã thủ tục", "Tên thủ tục", "Cấp thực hiện", "Lĩnh vực", "Cơ quan thực hiện",
                      "Hiệu lực từ", "Hiệu lực đến"])
        for i, code in enumerate(codes):
            start = dt.date(2004, 1, 1) + dt.timedelta(days=rng.randrange(3000))
            end = "" if i % 7 else f"{start + dt.timedelta(days=rng.randrange(400, 4000)):%d/%m/%Y}"
            out.writerow([code, f"Thủ tục thử nghiệm số {i} về {rng.choice(FIELDS).lower()}",
                          rng.choice(LEVELS), rng.choice(FIELDS), "Ủy ban nhân dân cấp huyện",
                          f"{start:%d/%m/%Y}", end])
    with paths["inventory"].open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["Mã cơ quan", "Năm ban hành", "Mã TTHC", "Số lượng còn hiệu lực"])
        for n in range(n_inventory):
            agency, rest = divmod(n, per_agency)
            year, procedure = divmod(rest, n_procedures)
            out.writerow([_agency_code(agency), YEARS[year], codes[procedure], rng.randrange(0, 900)])
    return paths


def run(url: str, n_procedures: int, n_inventory: int, folder: Path) -> dict[str, Any]:
    warehouse.migrate(url)
    warehouse.require_empty(url, (warehouse.agencies, warehouse.procedures, warehouse.inventory),
                            "reference rows")
    paths = write_files(folder, n_procedures, n_inventory)
    results = []
    for kind in ("agencies", "catalogue", "inventory"):
        importer = reference.IMPORTERS[kind]
        first = importer(url, paths[kind])
        again = importer(url, paths[kind])
        if first.rejected or again.added or again.changed:
            raise SystemExit(f"{kind}: unexpected report {first} / {again}")
        results.append({
            "kind": kind, "rows": first.rows,
            "first_seconds": first.seconds, "first_added": first.added,
            "reimport_seconds": again.seconds, "reimport_added": again.added,
            "reimport_changed": again.changed, "reimport_unchanged": again.unchanged,
        })
    return {"results": results}


def main(argv: list[str] | None = None) -> int:
    parser = benchdb.parser("python -m pipeline.demo.reference_bench", __doc__, "import")
    parser.add_argument("--procedures", type=int, default=2000)
    parser.add_argument("--inventory", type=int, default=100_000)
    args = parser.parse_args(argv)
    figures, out = benchdb.run_on_warehouse(
        args, "import", lambda url, folder: run(url, args.procedures, args.inventory, folder))
    print(f"{'file':<10} {'rows':>8} {'first s':>9} {'added':>8} {'again s':>9} {'again +/~':>9}")
    for r in figures["results"]:
        print(f"{r['kind']:<10} {r['rows']:>8} {r['first_seconds']:>9.2f} {r['first_added']:>8} "
              f"{r['reimport_seconds']:>9.2f} {r['reimport_added'] + r['reimport_changed']:>9}")
    print(f"{figures['database']} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
