"""The benchmark command: its aggregation (pure) and one tiny real run (our pipeline only)."""

from __future__ import annotations

import json
import math
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import psutil
import pytest
from PIL import Image

from pipeline._exec import tesseract
from pipeline.demo import bench, bench_figures, bench_measure, bench_phases, bench_report, defects, render
from pipeline.demo.bench_figures import Measured, PageRow


def page(n: int, *, hard: bool = False, kind: str = "bw300", chars: int = 100,
         rotation: int = 0, skew: float = 0.0, style: str = "serif", dpi: int = 300,
         bleed: bool = False, **results: Measured) -> PageRow:
    return PageRow(n=n, record_id=f"R{n}", page_no=1, file=f"f{n}.tif", page_in_file=1,
                   kind=kind, hard=hard, chars=chars, rotation=rotation, skew=skew, dpi=dpi,
                   style=style, seal=kind == "seal", bleed=bleed, results=dict(results))


# Inks of the corpus generator (multiply-blended at full strength they give these colours).
PAPER, RED, BLUE, BLACK = (250, 248, 242), render.SEAL_RGB, render.PEN_RGB, (20, 20, 20)


def _marked_page(dpi: int = 100, seed: int = 0) -> np.ndarray:
    """A white page at ``dpi`` with black "text" blocks all over (something to align on), a
    red disc and a blue pen stroke crossing it, as a seal page has."""
    scale = dpi / 100
    page = np.full((round(400 * scale), round(300 * scale), 3), PAPER, np.uint8)
    rng = np.random.default_rng(seed)
    for y in range(20, 380, 12):  # lines of words of random length
        x = 15
        while x < 270:
            w = int(rng.integers(8, 30))
            cv2.rectangle(page, (round(x * scale), round(y * scale)),
                          (round(min(x + w, 285) * scale), round((y + 5) * scale)), BLACK, -1)
            x += w + 6
    cv2.circle(page, (round(150 * scale), round(250 * scale)), round(35 * scale), RED, -1)
    cv2.line(page, (round(110 * scale), round(300 * scale)), (round(230 * scale),
             round(270 * scale)), BLUE, max(2, round(2 * scale)))
    return page


def test_colour_kept_counts_the_marks_still_in_their_colour() -> None:
    source = _marked_page()
    assert bench_measure.colour_kept(source, source.copy()) == (1.0, 1.0)
    red, blue = bench_measure.strongly_red(source), bench_measure.strongly_blue(source)
    assert red.sum() > 3000 and blue.sum() > 200
    # the seal printed black (lost to the print stencil) and the pen washed out to pale grey
    lost = source.copy()
    lost[red] = BLACK
    lost[blue] = (170, 170, 180)
    assert bench_measure.colour_kept(source, lost) == (0.0, 0.0)
    # half the disc kept, the stroke kept
    half = source.copy()
    half[:, :150][red[:, :150]] = BLACK
    kept_red, kept_blue = bench_measure.colour_kept(source, half)
    assert kept_red == pytest.approx(0.5, abs=0.03) and kept_blue == 1.0
    # a pink, not a red: strong colour is a high bar on purpose
    pink = source.copy()
    pink[red] = (235, 150, 150)
    assert bench_measure.colour_kept(source, pink)[0] == 0.0
    # a page without colour marks has no figure, and arrays must be aligned
    blank = np.full_like(source, 255)
    assert bench_measure.colour_kept(blank, source) == (None, None)
    with pytest.raises(ValueError):
        bench_measure.colour_kept(source, source[1:])


@pytest.mark.parametrize("dpi", [300, 200])
def test_marks_are_found_on_a_shifted_cropped_or_turned_output_page(dpi: int) -> None:
    source = _marked_page(dpi)
    # The archived page at 300 dpi: cropped by a border (an odd number of pixels) and turned.
    rendered = _marked_page(300)[17:-5, 8:]
    for turns in (0, 1):
        aligned = bench_measure.align_marks(source, dpi, np.rot90(rendered, turns))
        assert aligned is not None
        window, shown = aligned
        assert window.shape == shown.shape
        red, blue = bench_measure.colour_kept(window, shown)
        assert red is not None and blue is not None
        assert red > 0.97 and blue > 0.9
    # the marks printed black on the output page are found and scored as lost
    black = rendered.copy()
    black[bench_measure.strongly_red(black) | bench_measure.strongly_blue(black)] = BLACK
    aligned = bench_measure.align_marks(source, dpi, black)
    assert aligned is not None
    assert bench_measure.colour_kept(*aligned) == (0.0, 0.0)
    # nothing to measure: no colour in the source, or another page entirely
    assert bench_measure.align_marks(np.full_like(source, 255), dpi, rendered) is None
    assert bench_measure.align_marks(source, dpi, np.full_like(rendered, 255)) is None


def test_upright_scan_undoes_the_generators_turn_and_tilt() -> None:
    clean = _marked_page(100)
    scanned = np.array(defects.degrade(
        Image.fromarray(clean), rotation=270, skew=-3.5, rng=random.Random(0),
        speckle=False, blur=False, border=False, dpi=100))
    assert scanned.shape[:2] == clean.shape[1::-1]
    upright = bench_measure.upright_scan(scanned, 270, -3.5)
    assert upright.shape == clean.shape
    red_before, red_after = bench_measure.strongly_red(clean), bench_measure.strongly_red(upright)
    overlap = np.count_nonzero(red_before & red_after) / np.count_nonzero(red_before | red_after)
    assert overlap > 0.9


def test_colour_is_pooled_by_pixel_and_the_worst_page_is_kept() -> None:
    rows = [page(1, kind="seal", ours=Measured(red_kept=1.0, blue_kept=0.5, red_pixels=300,
                                               blue_pixels=100)),
            page(2, kind="seal", ours=Measured(red_kept=0.8, blue_kept=None, red_pixels=100,
                                               blue_pixels=0)),
            page(3, ours=Measured())]  # no seal: not a colour page
    stats = bench_figures.colour_stats(rows, "ours")
    assert stats["red"] == pytest.approx((300 + 80) / 400)
    assert stats["blue"] == pytest.approx(0.5)
    assert stats["min_page_red"] == pytest.approx(0.8)
    assert stats["pages"] == stats["measured"] == 2
    rows.append(page(4, kind="seal", ours=Measured()))  # a seal page left without a figure
    stats = bench_figures.colour_stats(rows, "ours")
    assert stats["pages"] == 3 and stats["measured"] == 2 and stats["min_page_red"] == 0.0
    assert bench_figures.colour_stats(rows, "baseline") == {
        "pages": 0, "measured": 0, "red": None, "blue": None, "min_page_red": None}


def test_cer_is_pooled_by_characters_and_a_lost_page_counts_in_full() -> None:
    rows = [page(1, chars=100, ours=Measured(cer=0.10)), page(2, chars=300, ours=Measured(cer=0.02)),
            page(3, chars=100)]  # not run by "ours": left out, not counted as lost
    assert bench_figures.pooled_cer(rows, "ours") == pytest.approx((10 + 6) / 400)
    rows.append(page(4, chars=100, ours=Measured(cer=None)))  # run, but no output
    assert bench_figures.pooled_cer(rows, "ours") == pytest.approx((10 + 6 + 100) / 500)
    assert bench_figures.pooled_cer(rows, "baseline") is None


def test_groups_split_hard_easy_and_kinds() -> None:
    rows = [page(1), page(2, hard=True, kind="seal"), page(3, hard=True, kind="bw200")]
    assert [r.n for r in bench_figures.select(rows, "all")] == [1, 2, 3]
    assert [r.n for r in bench_figures.select(rows, "hard")] == [2, 3]
    assert [r.n for r in bench_figures.select(rows, "easy")] == [1]
    assert [r.n for r in bench_figures.select(rows, "seal")] == [2]
    rows += [page(4, hard=True, style="typewriter"), page(5, hard=True, bleed=True),
             page(6, hard=True, kind="seal", dpi=200)]
    assert [r.n for r in bench_figures.select(rows, "typewriter")] == [4]
    assert [r.n for r in bench_figures.select(rows, "bleed")] == [5]
    assert [r.n for r in bench_figures.select(rows, "dpi200")] == [6]  # by dpi, whatever the colour
    assert [r.n for r in bench_figures.select(rows, "seal")] == [2, 6]


def test_skew_figures_are_magnitudes() -> None:
    rows = [page(1, skew=2.0, ours=Measured(residual_skew=-0.3, skew_found=2.1)),
            page(2, skew=-1.0, ours=Measured(residual_skew=0.1, skew_found=-0.8)),
            page(3, ours=Measured())]  # nothing measured on this one
    assert bench_figures.skew_stats(rows, "ours") == {"mean": pytest.approx(0.2), "max": 0.3,
                                              "measured": 2}
    errors = bench_figures.skew_error_stats(rows, "ours")
    assert errors["mean"] == pytest.approx(0.15) and errors["max"] == pytest.approx(0.2)
    assert bench_figures.skew_stats(rows, "baseline") == {"mean": None, "max": None, "measured": 0}


def test_orientation_counts_osd_and_the_rotation_against_the_truth() -> None:
    # The scanner turned page 1 by 90 degrees clockwise: 270 more make it upright.
    assert bench_figures.expected_rotation(90) == 270 and bench_figures.expected_rotation(0) == 0
    rows = [page(1, rotation=90, ours=Measured(osd_rotate=0, rotation_found=270)),
            page(2, rotation=180, ours=Measured(osd_rotate=180, rotation_found=0)),
            page(3, ours=Measured(osd_rotate=None, rotation_found=0))]
    assert bench_figures.orientation_stats(rows, "ours") == {
        "osd_upright": 1, "osd_wrong": 1, "osd_unknown": 1, "rotation_checked": 3,
        "rotation_correct": 2}


def test_osd_output_is_parsed_and_a_failure_is_unknown() -> None:
    text = ("Page number: 0\nOrientation in degrees: 90\nRotate: 270\n"
            "Orientation confidence: 12.57\nScript: Latin\nScript confidence: 3.1\n")
    assert tesseract.parse_osd(text) == tesseract.Orientation(270, 12.57)
    assert tesseract.parse_osd("Too few characters. Skipping this page\n") is None
    if shutil.which("tesseract"):
        # too little text to tell: unknown for the benchmark, upright for the pipeline
        blank = np.full((400, 300), 255, np.uint8)
        assert tesseract.osd(blank) is None
        assert tesseract.detect_orientation(blank) == tesseract.Orientation(0, 0.0)


def test_kb_throughput_and_ratios() -> None:
    rows = [page(1, ours=Measured(kb=40)), page(2, ours=Measured(kb=60)),
            page(3, kind="seal", ours=Measured(kb=200))]
    assert bench_figures.mean_kb(rows, "ours") == pytest.approx(100)
    assert bench_figures.mean_kb(bench_figures.select(rows, "bw300"), "ours") == pytest.approx(50)
    assert bench_figures.throughput(30, 60.0) == {"seconds_per_page": 2.0, "pages_per_minute": 30.0}
    assert bench_figures.throughput(0, 60.0)["pages_per_minute"] is None
    assert bench_figures.ratio(8.0, 2.0) == 4.0
    assert bench_figures.ratio(None, 2.0) is None and bench_figures.ratio(1.0, 0.0) is None


def test_goals_compare_each_value_with_its_target() -> None:
    goals = {g["goal"]: g for g in bench_figures.evaluate_goals(
        {"throughput_vs_baseline": 4.5, "residual_skew_max": 0.5, "orientation_wrong": 0})}
    assert set(goals) == {key for key, *_ in bench_figures.GOALS}
    assert goals["throughput_vs_baseline"]["met"] is True
    assert goals["residual_skew_max"]["met"] is False  # strictly below 0.5
    assert goals["orientation_wrong"]["met"] is True
    assert goals["kb_seal"]["met"] is None and goals["kb_seal"]["value"] is None
    goals = {g["goal"]: g["met"] for g in bench_figures.evaluate_goals(
        {"colour_red": 0.9, "colour_blue": 0.79, "colour_red_min": 0.7})}
    assert goals["colour_red"] is True and goals["colour_blue"] is False
    assert goals["colour_red_min"] is True


def test_report_has_ratios_when_the_baseline_ran() -> None:
    rows = [
        page(1, ours=Measured(cer=0.01, kb=50, residual_skew=0.05, osd_rotate=0,
                              rotation_found=0, skew_found=0.0),
             baseline=Measured(cer=0.02, kb=500, residual_skew=0.1, osd_rotate=0),
             tesseract=Measured(cer=0.015, seconds=2.0, cleanup_seconds=1.0)),
        page(2, hard=True, kind="seal", rotation=90,
             ours=Measured(cer=0.02, kb=150, residual_skew=-0.1, osd_rotate=0,
                           rotation_found=270, skew_found=0.1, red_kept=0.95, blue_kept=0.85,
                           red_pixels=2000, blue_pixels=300),
             baseline=Measured(cer=0.08, kb=400, residual_skew=0.3, osd_rotate=90),
             tesseract=Measured(cer=0.05, seconds=2.0, cleanup_seconds=1.0)),
    ]
    rss = {"self_max_rss_mb": 300.0, "children_max_rss_mb": 200.0, "tree_peak_rss_mb": 600.0,
           "tree_peak_pss_mb": 500.0, "largest_process_rss_mb": 300.0, "peak_rss_mb": 300.0}
    phases = {"ours": {"wall_seconds": 10.0, "cpu_seconds": 16.0, "rss": rss,
                       "cpu_phases": {"start": 1.0, "setup": 0.5, "batch": 14.5},
                       "records": [{"cpu_seconds": 3.0, "programs_cpu_seconds": 2.0},
                                   {"cpu_seconds": 5.0, "programs_cpu_seconds": 3.0}]},
              "baseline": {"wall_seconds": 40.0, "rss": rss},
              "tesseract": {"wall_seconds": 4.0, "cleanup_seconds": 2.0, "ocr_cpu_seconds": 4.0,
                            "rss": rss, "side_by_side": {"jobs": 2, "ocr_cpu_seconds": 5.0,
                                                         "ocr_cpu_seconds_runs": [4.8, 5.2]}}}
    meta = {"started_at": "2025-01-01T00:00:00", "environment": {"cpus": 2},
            "corpus": {"pages": 2, "hard_pages": 1, "easy_pages": 1}, "stack": None}
    report = bench_figures.build_report(rows, phases, meta)
    assert report["ratios"]["throughput_ours_vs_baseline"] == pytest.approx(4.0)
    assert report["ratios"]["seconds_ours_vs_tesseract"] == pytest.approx(2.5)
    assert report["ratios"]["cer_ours_vs_baseline"]["hard"] == pytest.approx(0.25)
    assert report["ratios"]["kb_ours_vs_baseline"]["seal"] == pytest.approx(150 / 400)
    assert report["systems"]["baseline"]["orientation"]["osd_wrong"] == 1
    assert report["systems"]["tesseract"]["cleanup_seconds_per_page"] == pytest.approx(1.0)
    goals = {g["goal"]: g["met"] for g in report["goals"]}
    assert goals["throughput_vs_baseline"] is True and goals["cer_hard_vs_baseline"] is True
    assert report["ratios"]["cpu_ours_vs_tesseract"] == pytest.approx(4.0)
    # the records took 8 s of the 16 for two pages: 4 a page, 8 a batch; Tesseract alone 2 a page
    assert report["systems"]["ours"]["cpu_split"]["fixed_seconds"] == pytest.approx(8.0)
    assert report["ratios"]["cpu_marginal_vs_tesseract"] == pytest.approx(2.0)
    assert goals["cpu_vs_tesseract"] is False and goals["orientation_wrong"] is True
    # Tesseract two at a time took 2.5 CPU s a page: the ratios against it are of our own work
    assert report["systems"]["tesseract"]["side_by_side"]["cpu_seconds_per_page_runs"] == [
        pytest.approx(2.4), pytest.approx(2.6)]
    assert report["ratios"]["cpu_ours_vs_tesseract_side_by_side"] == pytest.approx(8.0 / 2.5)
    assert report["ratios"]["cpu_marginal_vs_tesseract_side_by_side"] == pytest.approx(4.0 / 2.5)
    assert goals["stack_peak_memory_mb"] is None
    assert goals["colour_red"] is True and goals["colour_red_min"] is True
    assert report["systems"]["ours"]["colour"]["red"] == pytest.approx(0.95)
    assert report["systems"]["baseline"]["colour"]["measured"] == 0
    assert report["systems"]["baseline"]["colour"]["min_page_red"] == 0.0  # ran, not measured
    assert report["ratios"]["cer_ours_vs_baseline"]["seal"] == pytest.approx(0.25)
    assert report["systems"]["ours"]["cer"]["typewriter"] is None  # no such page here
    table = bench_report.render_table(report)
    for metric in ("pages per minute", "CER, hard pages", "residual skew, max", "KB per page, "
                   "colour seal", "peak memory, process tree, PSS", "upright on output (OSD)",
                   "CER, typewriter pages", "CER, seal pages", "CER, 200 dpi pages",
                   "CER, show-through pages", "colour kept, red (pooled)",
                   "colour kept, blue (pooled)", "colour kept, red, worst page",
                   "CPU s per batch, fixed", "CPU s/page, marginal", "a batch of 300 pages",
                   "the programs the records ran", "2 at a time as our workers",
                   "as many at a time as our workers"):
        assert metric in table
    assert "95.00%" in table and "85.00%" in table
    assert "4.00×" in table  # the throughput ratio
    assert "3.20×" in table and "1.60×" in table  # ours against Tesseract side by side
    json.dumps(report)  # everything in it is plain JSON


def test_cpu_splits_into_a_fixed_part_per_batch_and_a_part_per_page() -> None:
    ours = {"cpu_seconds": 40.0, "cpu_phases": {"start": 1.5, "setup": 0.5, "batch": 38.0},
            "records": [{"cpu_seconds": 12.0, "programs_cpu_seconds": 9.0},
                        {"cpu_seconds": 18.0, "programs_cpu_seconds": 15.0}]}
    split = bench_figures.cpu_split(ours, 30)
    assert split is not None
    assert split["marginal_seconds_per_page"] == pytest.approx(1.0)
    assert split["programs_seconds_per_page"] == pytest.approx(0.8)
    assert split["own_seconds_per_page"] == pytest.approx(0.2)
    assert split["fixed_seconds"] == pytest.approx(10.0)
    assert split["start_seconds"] == 1.5 and split["setup_seconds"] == 0.5
    assert split["projected_seconds_per_page"] == pytest.approx(
        10.0 / bench_figures.PROJECTED_PAGES + 1.0)
    # a record without its own figure (run in another process) leaves the split unknown
    ours["records"].append({"cpu_seconds": None, "programs_cpu_seconds": None})
    assert bench_figures.cpu_split(ours, 30) is None


def test_tree_cpu_counts_a_descendant_still_running() -> None:
    before = bench_phases.tree_cpu_seconds()
    # a shell whose child spins: neither is reaped when the figure is read
    proc = subprocess.Popen(["sh", "-c", f'"{sys.executable}" -c "while 1: pass"'])
    try:
        spinning = psutil.Process(proc.pid)
        while not spinning.children() or spinning.children()[0].cpu_times().user < 0.5:
            time.sleep(0.05)
        assert bench_phases.tree_cpu_seconds() - before >= 0.5
    finally:
        for child in psutil.Process(proc.pid).children():
            child.kill()
        proc.wait()


def test_tree_sampler_sees_memory_held_by_a_grandchild() -> None:
    # A shell whose child holds 200 MB: only the tree, not the shell, has that memory.
    script = "import time; block = bytearray(200 * 2**20); time.sleep(1.5)"
    proc = subprocess.Popen(["sh", "-c", f'"{sys.executable}" -c "{script}"; true'])
    sampler = bench_phases.TreeSampler(proc.pid, with_root=False)
    sampler.start()
    proc.wait()
    sampler.done.set()
    sampler.join()
    assert 200 * 2**20 <= sampler.largest <= sampler.peak < 400 * 2**20
    assert 200 * 2**20 <= sampler.peak_pss <= sampler.peak


@pytest.mark.slow  # the whole benchmark, real OCR in each of its phases
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
    # Tesseract alone ran before ours and after: its CPU is the mean of the two runs
    before, after = tess["cpu_seconds_per_page_runs"]
    assert before > 0 and after > 0
    assert tess["cpu_seconds_per_page"] == pytest.approx((before + after) / 2)
    # and each run read the pages again two at a time, as our two workers do
    paired = tess["side_by_side"]
    assert paired["jobs"] == 2 and all(run > 0 for run in paired["cpu_seconds_per_page_runs"])
    assert report["ratios"]["cpu_ours_vs_tesseract_side_by_side"] == pytest.approx(
        ours["cpu_seconds_per_page"] / paired["cpu_seconds_per_page"])
    assert 0 <= ours["residual_skew"]["mean"] <= ours["residual_skew"]["max"] <= 6
    assert ours["residual_skew"]["measured"] == 2
    assert ours["skew_error_vs_truth"]["measured"] == 2
    orientation = ours["orientation"]
    assert orientation["rotation_checked"] == 2
    assert orientation["osd_upright"] + orientation["osd_wrong"] + orientation["osd_unknown"] == 2
    # Page 1 is a plain 300 dpi page, page 2 carries a seal.
    assert ours["kb_per_page"]["bw300"] > 0 and ours["kb_per_page"]["seal"] > 0
    assert ours["cer"]["seal"] is not None and ours["cer"]["typewriter"] is None
    colour = ours["colour"]
    assert colour["pages"] == colour["measured"] == 1
    assert 0.5 < colour["red"] <= 1 and 0 <= colour["blue"] <= 1  # the seal found and measured
    assert colour["min_page_red"] == colour["red"]
    assert ours["kb_per_page"]["bw200"] is None
    assert tess["cleanup_seconds_per_page"] > 0
    assert report["ratios"]["seconds_ours_vs_tesseract"] > 0

    assert {g["goal"] for g in report["goals"]} == {key for key, *_ in bench_figures.GOALS}
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
