"""The benchmark command: its aggregation (pure) and one tiny real run (our pipeline only)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import bench
from pipeline.bench import Measured, PageRow


def page(n: int, *, hard: bool = False, kind: str = "bw300", chars: int = 100,
         rotation: int = 0, skew: float = 0.0, **results: Measured) -> PageRow:
    return PageRow(n=n, record_id=f"R{n}", page_no=1, file=f"f{n}.tif", page_in_file=1,
                   kind=kind, hard=hard, chars=chars, rotation=rotation, skew=skew, dpi=300,
                   style="serif", seal=kind == "seal", bleed=False, results=dict(results))


def test_cer_is_pooled_by_characters_and_a_lost_page_counts_in_full() -> None:
    rows = [page(1, chars=100, ours=Measured(cer=0.10)), page(2, chars=300, ours=Measured(cer=0.02)),
            page(3, chars=100)]  # not run by "ours": left out, not counted as lost
    assert bench.pooled_cer(rows, "ours") == pytest.approx((10 + 6) / 400)
    rows.append(page(4, chars=100, ours=Measured(cer=None)))  # run, but no output
    assert bench.pooled_cer(rows, "ours") == pytest.approx((10 + 6 + 100) / 500)
    assert bench.pooled_cer(rows, "baseline") is None


def test_groups_split_hard_easy_and_kinds() -> None:
    rows = [page(1), page(2, hard=True, kind="seal"), page(3, hard=True, kind="bw200")]
    assert [r.n for r in bench.select(rows, "all")] == [1, 2, 3]
    assert [r.n for r in bench.select(rows, "hard")] == [2, 3]
    assert [r.n for r in bench.select(rows, "easy")] == [1]
    assert [r.n for r in bench.select(rows, "seal")] == [2]


def test_skew_figures_are_magnitudes() -> None:
    rows = [page(1, skew=2.0, ours=Measured(residual_skew=-0.3, skew_found=2.1)),
            page(2, skew=-1.0, ours=Measured(residual_skew=0.1, skew_found=-0.8)),
            page(3, ours=Measured())]  # nothing measured on this one
    assert bench.skew_stats(rows, "ours") == {"mean": pytest.approx(0.2), "max": 0.3,
                                              "measured": 2}
    errors = bench.skew_error_stats(rows, "ours")
    assert errors["mean"] == pytest.approx(0.15) and errors["max"] == pytest.approx(0.2)
    assert bench.skew_stats(rows, "baseline") == {"mean": None, "max": None, "measured": 0}


def test_orientation_counts_osd_and_the_rotation_against_the_truth() -> None:
    # The scanner turned page 1 by 90 degrees clockwise: 270 more make it upright.
    assert bench.expected_rotation(90) == 270 and bench.expected_rotation(0) == 0
    rows = [page(1, rotation=90, ours=Measured(osd_rotate=0, rotation_found=270)),
            page(2, rotation=180, ours=Measured(osd_rotate=180, rotation_found=0)),
            page(3, ours=Measured(osd_rotate=None, rotation_found=0))]
    assert bench.orientation_stats(rows, "ours") == {
        "osd_upright": 1, "osd_wrong": 1, "osd_unknown": 1, "rotation_checked": 3,
        "rotation_correct": 2}


def test_osd_output_is_parsed_and_a_failure_is_unknown() -> None:
    text = ("Page number: 0\nOrientation in degrees: 90\nRotate: 270\n"
            "Orientation confidence: 12.57\nScript: Latin\nScript confidence: 3.1\n")
    assert bench.parse_osd(text) == (270, 12.57)
    assert bench.parse_osd("Too few characters. Skipping this page\n") is None


def test_kb_throughput_and_ratios() -> None:
    rows = [page(1, ours=Measured(kb=40)), page(2, ours=Measured(kb=60)),
            page(3, kind="seal", ours=Measured(kb=200))]
    assert bench.mean_kb(rows, "ours") == pytest.approx(100)
    assert bench.mean_kb(bench.select(rows, "bw300"), "ours") == pytest.approx(50)
    assert bench.throughput(30, 60.0) == {"seconds_per_page": 2.0, "pages_per_minute": 30.0}
    assert bench.throughput(0, 60.0)["pages_per_minute"] is None
    assert bench.ratio(8.0, 2.0) == 4.0
    assert bench.ratio(None, 2.0) is None and bench.ratio(1.0, 0.0) is None


def test_goals_compare_each_value_with_its_target() -> None:
    goals = {g["goal"]: g for g in bench.evaluate_goals(
        {"throughput_vs_baseline": 4.5, "residual_skew_max": 0.5, "orientation_wrong": 0})}
    assert set(goals) == {key for key, *_ in bench.GOALS}
    assert goals["throughput_vs_baseline"]["met"] is True
    assert goals["residual_skew_max"]["met"] is False  # strictly below 0.5
    assert goals["orientation_wrong"]["met"] is True
    assert goals["kb_seal"]["met"] is None and goals["kb_seal"]["value"] is None


def test_report_has_ratios_when_the_baseline_ran() -> None:
    rows = [
        page(1, ours=Measured(cer=0.01, kb=50, residual_skew=0.05, osd_rotate=0,
                              rotation_found=0, skew_found=0.0),
             baseline=Measured(cer=0.02, kb=500, residual_skew=0.1, osd_rotate=0),
             tesseract=Measured(cer=0.015, seconds=2.0, cleanup_seconds=1.0)),
        page(2, hard=True, kind="seal", rotation=90,
             ours=Measured(cer=0.02, kb=150, residual_skew=-0.1, osd_rotate=0,
                           rotation_found=270, skew_found=0.1),
             baseline=Measured(cer=0.08, kb=400, residual_skew=0.3, osd_rotate=90),
             tesseract=Measured(cer=0.05, seconds=2.0, cleanup_seconds=1.0)),
    ]
    rss = {"self_max_rss_mb": 300.0, "children_max_rss_mb": 200.0, "tree_peak_rss_mb": 600.0,
           "tree_peak_pss_mb": 500.0, "largest_process_rss_mb": 300.0, "peak_rss_mb": 300.0}
    phases = {"ours": {"wall_seconds": 10.0, "rss": rss},
              "baseline": {"wall_seconds": 40.0, "rss": rss},
              "tesseract": {"wall_seconds": 4.0, "cleanup_seconds": 2.0, "rss": rss}}
    meta = {"started_at": "2025-01-01T00:00:00", "environment": {"cpus": 2},
            "corpus": {"pages": 2, "hard_pages": 1, "easy_pages": 1}, "stack": None}
    report = bench.build_report(rows, phases, meta)
    assert report["ratios"]["throughput_ours_vs_baseline"] == pytest.approx(4.0)
    assert report["ratios"]["seconds_ours_vs_tesseract"] == pytest.approx(2.5)
    assert report["ratios"]["cer_ours_vs_baseline"]["hard"] == pytest.approx(0.25)
    assert report["ratios"]["kb_ours_vs_baseline"]["seal"] == pytest.approx(150 / 400)
    assert report["systems"]["baseline"]["orientation"]["osd_wrong"] == 1
    assert report["systems"]["tesseract"]["cleanup_seconds_per_page"] == pytest.approx(1.0)
    goals = {g["goal"]: g["met"] for g in report["goals"]}
    assert goals["throughput_vs_baseline"] is True and goals["cer_hard_vs_baseline"] is True
    assert goals["seconds_vs_tesseract"] is False and goals["orientation_wrong"] is True
    assert goals["stack_peak_memory_mb"] is None
    table = bench.render_table(report)
    for metric in ("pages per minute", "CER, hard pages", "residual skew, max", "KB per page, "
                   "colour seal", "peak memory, process tree, PSS", "upright on output (OSD)"):
        assert metric in table
    assert "4.00×" in table  # the throughput ratio
    json.dumps(report)  # everything in it is plain JSON


def test_tree_sampler_sees_memory_held_by_a_grandchild() -> None:
    # A shell whose child holds 200 MB: only the tree, not the shell, has that memory.
    script = "import time; block = bytearray(200 * 2**20); time.sleep(1.5)"
    proc = subprocess.Popen(["sh", "-c", f'"{sys.executable}" -c "{script}"; true'])
    sampler = bench.TreeSampler(proc.pid, with_root=False)
    sampler.start()
    proc.wait()
    sampler.done.set()
    sampler.join()
    assert 200 * 2**20 <= sampler.largest <= sampler.peak < 400 * 2**20
    assert 200 * 2**20 <= sampler.peak_pss <= sampler.peak


def test_tiny_run_writes_every_metric(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench"
    assert bench.main(["--pages", "2", "--skip-baseline", "--out", str(out), "--jobs", "2"]) == 0
    report = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    assert report["corpus"]["pages"] == 2
    assert report["corpus"]["hard_pages"] == 1 and report["corpus"]["easy_pages"] == 1
    assert report["systems"]["baseline"] is None
    assert report["ratios"]["throughput_ours_vs_baseline"] is None
    assert report["settings"]["ocr_jobs"] == 2
    assert report["environment"]["tesseract"].startswith("tesseract")

    ours, tess = report["systems"]["ours"], report["systems"]["tesseract"]
    for system in (ours, tess):
        assert system["pages"] == 2 and system["failed_pages"] == 0
        assert system["seconds_per_page"] > 0
        assert system["pages_per_minute"] == pytest.approx(60 / system["seconds_per_page"])
        for group in ("all", "hard", "easy"):
            assert 0 <= system["cer"][group] <= 1
        rss = system["rss"]
        assert rss["peak_rss_mb"] > 0 and rss["tree_peak_rss_mb"] >= rss["tree_peak_pss_mb"] > 0
    assert ours["cer"]["all"] < 0.2  # a sane OCR run, not a measurement gone wrong
    assert 0 <= ours["residual_skew"]["mean"] <= ours["residual_skew"]["max"] <= 6
    assert ours["residual_skew"]["measured"] == 2
    assert ours["skew_error_vs_truth"]["measured"] == 2
    orientation = ours["orientation"]
    assert orientation["rotation_checked"] == 2
    assert orientation["osd_upright"] + orientation["osd_wrong"] + orientation["osd_unknown"] == 2
    # Page 1 is a plain 300 dpi page, page 2 carries a seal.
    assert ours["kb_per_page"]["bw300"] > 0 and ours["kb_per_page"]["seal"] > 0
    assert ours["kb_per_page"]["bw200"] is None
    assert tess["cleanup_seconds_per_page"] > 0
    assert report["ratios"]["seconds_ours_vs_tesseract"] > 0

    assert {g["goal"] for g in report["goals"]} == {key for key, *_ in bench.GOALS}
    assert len(report["pages"]) == 2
    for row in report["pages"]:
        assert set(row) >= {"n", "record_id", "kind", "hard", "rotation", "skew", "ours",
                            "tesseract"}
        assert not math.isnan(row["ours"]["cer"])
    table = (out / "bench.md").read_text(encoding="utf-8")
    assert "| metric" in table and "CER, hard pages" in table
    assert "| metric" in capsys.readouterr().out
    # Ours must not be timed against an archive left by an earlier run.
    assert bench.main(["--pages", "2", "--out", str(out)]) == 2
