"""The manifest draft benchmark runs end to end on a two-page corpus (real Tesseract, the real
batch runner archiving it twice) and writes every figure; the figures' values are the
benchmark's business, not the test's. Only this: the archive after the draft took every reading
the draft kept, and archived what the archive alone archived."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.demo import bench_draft


@pytest.mark.slow
def test_the_draft_benchmark_writes_its_figures_and_the_archive_takes_its_readings(
        tmp_path: Path) -> None:
    out = tmp_path / "out"

    assert bench_draft.main(["--pages", "2", "--seed", "5", "--out", str(out)]) == 0

    report = json.loads((out / "bench-draft.json").read_text(encoding="utf-8"))
    n = report["records"]
    assert n >= 1 and set(report["fields"]) == set(bench_draft.GOALS)
    assert all(c["right"] + c["empty"] + c["wrong"] == n for c in report["fields"].values())
    archiving = report["archiving"]
    assert archiving["readings_kept"] == n and archiving["readings_taken"] == n
    assert archiving["records_archived"] == archiving["records_archived_alone"] == n
    for figure in ("cpu_per_record_archive_alone", "cpu_per_record_archive_after_draft",
                   "cpu_per_record_on_top"):
        assert isinstance(archiving[figure], float)
    table = (out / "bench-draft.md").read_text(encoding="utf-8")
    assert "on top" in table and f"taken by the archive: {n}" in table
