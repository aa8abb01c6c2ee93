"""Benchmark: our pipeline against plain OCRmyPDF on a generated corpus (not part of the tests).

    python -m pipeline.demo.bench [--pages 30] [--seed 0] [--out DIR] [--skip-baseline] [--jobs N]
                             [--tiff-pages N]

One run generates a corpus with :func:`pipeline.demo.samples.generate_corpus` and processes it with

- **ours**: ``runner.run_batch`` on the corpus batch, timed as one wall clock for the batch;
- **baseline**: what a user would otherwise run, ``ocrmypdf -l vie --rotate-pages --deskew
  --clean --output-type pdfa-2 IN OUT.pdf``, once per page file, sequentially;
- **Tesseract alone**: our cleanup on each page (timed apart), then Tesseract on the very OCR
  view our OCR reads (``ocr.write_view``), with our languages and page segmentation mode and
  ``OMP_THREAD_LIMIT=1``, one page after another: the floor our OCR stage can approach;
- with ``--tiff-pages N``, our pipeline on one record of an N-page multi-page TIFF, for memory.

Every phase runs in a fresh child process of this one, so that its memory is its own. The
parent samples the memory of the phase's process tree: its total (PSS, and the RSS sum; OCR
workers run side by side, and ``ru_maxrss`` only knows single processes) and the largest
process. ``getrusage`` figures are kept too, but Linux charges a child with the memory of
whoever spawned it (the pre-exec image), so ``RUSAGE_CHILDREN`` is never below the spawning
Python's size.

Then the parent measures every output page against the ground truth: CER (NFC, whitespace
ignored; a page without output counts as 1.0), residual skew and orientation measured on the
output PDF rasterised, KB per page, and on the seal pages how much of the red stamp and the blue
signature stays red / blue (see :func:`colour_kept`). It writes ``OUT/bench.json`` and
``OUT/bench.md`` and prints the table. Figures on a shared machine are noisy: compare runs made
on a quiet one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pikepdf
import psutil

from pipeline import runner
from pipeline._exec import tesseract
from pipeline.checks import reference
from pipeline.config import Settings, load_settings
from pipeline.demo import samples
from pipeline.demo.quality import cer, normalise
from pipeline.imaging import cleanup, ocr
from pipeline.intake import pages
from pipeline.models import RecordStatus
from pipeline.store import warehouse
from pipeline.store.archive import atomic_write_bytes

log = logging.getLogger("pipeline.demo.bench")

SYSTEMS = ("ours", "baseline", "tesseract")
PHASES = ("ours", "baseline", "tesseract", "stack")
# Output pages are rasterised at the resolution our own orientation check works at; the skew
# measure scales that down to the 100 dpi it works at itself.
MEASURE_DPI = cleanup.OSD_DPI
MAX_SKEW_MEASURED = 6.0
TRUTH_NAME = "truth.json"
RSS_SAMPLE_SECONDS = 0.1
_OSD_ROTATE = re.compile(r"Rotate:\s*(\d+)")
_OSD_CONFIDENCE = re.compile(r"Orientation confidence:\s*([\d.]+)")

# The goals: (key, label, how the value compares with the target, target).
GOALS: tuple[tuple[str, str, str, float], ...] = (
    ("throughput_vs_baseline", "pages/min, ours / baseline", ">=", 4.0),
    ("cer_hard_vs_baseline", "CER on hard pages, ours / baseline", "<=", 0.5),
    ("seconds_vs_tesseract", "s/page, ours / Tesseract alone", "<=", 1.3),
    ("residual_skew_mean", "residual skew mean (deg)", "<", 0.15),
    ("residual_skew_max", "residual skew max (deg)", "<", 0.5),
    ("orientation_wrong", "pages wrongly oriented", "<=", 0),
    ("kb_bw300", "KB/page, B/W 300 dpi", "<=", 100),
    ("kb_seal", "KB/page, colour seal", "<=", 250),
    ("stack_peak_memory_mb", "peak memory (PSS), multi-page TIFF (MB)", "<", 1024),
    ("colour_red", "red kept, pooled over colour pages", ">=", 0.9),
    ("colour_blue", "blue kept, pooled over colour pages", ">=", 0.8),
    ("colour_red_min", "red kept, worst colour page", ">=", 0.7),
)
# CER is reported for these page groups: hard/easy and each class of hard page.
CER_GROUPS = ("all", "hard", "easy", "typewriter", "seal", "dpi200", "bleed")
CER_GROUP_LABELS = {"all": "all pages", "hard": "hard pages", "easy": "easy pages",
                    "typewriter": "typewriter pages", "seal": "seal pages",
                    "dpi200": "200 dpi pages", "bleed": "show-through pages"}
# Colour fidelity is judged at 100 dpi, where a pen stroke is still 1-2 px wide: fine enough to
# see an ink lost, coarse enough that the cleanup's resampling does not count as a loss. The
# archived page is rendered at 300 dpi and area-averaged down, never rendered at 100 dpi
# directly: poppler's own downsampling of a 1-bit image mask (our inks are G4 stencils) samples
# about a third of a pixel off the area grid, which would score the renderer, not the archive
# (see tests/test_ink_colours.py).
COLOUR_DPI = 100
COLOUR_RENDER_DPI = 300
COLOUR_MARGIN = 40  # px at COLOUR_DPI (10 mm) of page around the marks, to align on the text
COLOUR_MIN_MATCH = 0.3  # below this correlation the archived page is not the scan: no figure


# --- per-page data and the pure aggregation over it -------------------------------------------
@dataclass
class Measured:
    """One system's result for one page; ``None`` where it was not measured or failed."""

    cer: float | None = None  # None: the page has no output (counts as 1.0 in aggregates)
    residual_skew: float | None = None  # measured on the output page, degrees
    osd_rotate: int | None = None  # Tesseract OSD on the output page; None: OSD failed
    osd_confidence: float | None = None
    kb: float | None = None  # output file size / pages in that file
    rotation_found: int | None = None  # ours: rotation the cleanup applied
    skew_found: float | None = None  # ours: skew the cleanup removed
    seconds: float | None = None  # Tesseract alone: OCR of this page
    cleanup_seconds: float | None = None  # Tesseract alone: our cleanup of this page
    # Colour pages: share of the source's strongly red / blue pixels still so on the output
    # page, and how many there were (the weight for pooling over pages).
    red_kept: float | None = None
    blue_kept: float | None = None
    red_pixels: int | None = None
    blue_pixels: int | None = None


@dataclass
class PageRow:
    """A corpus page: what it is (ground truth) and what each system made of it."""

    n: int  # 1-based, corpus order
    record_id: str
    page_no: int  # 1-based within the record
    file: str
    page_in_file: int
    kind: str  # see page_kind
    hard: bool
    chars: int  # reference length for the CER (NFC, no whitespace)
    rotation: int
    skew: float
    dpi: int
    style: str
    seal: bool
    bleed: bool
    truth: str = field(default="", repr=False)  # the page's ground-truth text
    results: dict[str, Measured] = field(default_factory=dict)

    @property
    def expected_rotation(self) -> int:
        return expected_rotation(self.rotation)


def expected_rotation(turned_cw: int) -> int:
    """The clockwise turn that makes upright a page the scanner turned ``turned_cw`` clockwise."""
    return (360 - turned_cw) % 360


def page_kind(page: samples.SamplePage) -> str:
    """Size class of a page: ``seal`` (colour), ``bw300`` / ``bw200`` (no colour) by dpi."""
    if page.seal:
        return "seal"
    return "bw300" if page.dpi >= 300 else "bw200"


def select(rows: Iterable[PageRow], group: str) -> list[PageRow]:
    """``all``, ``hard``, ``easy``, a page class (``typewriter``, ``dpi200``: 200 dpi or less
    whatever its colour, ``bleed``: show-through) or a page kind (``seal``, ``bw300``, ...)."""
    rows = list(rows)
    if group == "all":
        return rows
    if group in ("hard", "easy"):
        return [r for r in rows if r.hard == (group == "hard")]
    if group == "typewriter":
        return [r for r in rows if r.style == "typewriter"]
    if group == "dpi200":
        return [r for r in rows if r.dpi < 300]
    if group == "bleed":
        return [r for r in rows if r.bleed]
    return [r for r in rows if r.kind == group]


def pooled_cer(rows: Iterable[PageRow], system: str) -> float | None:
    """Character-weighted CER of ``system`` over ``rows`` (total edits / total characters).

    A page the system produced no text for counts as entirely wrong: a lost page is lost.
    """
    edits = chars = 0.0
    for row in rows:
        result = row.results.get(system)
        if result is None:
            continue
        edits += (1.0 if result.cer is None else result.cer) * row.chars
        chars += row.chars
    return edits / chars if chars else None


def _abs_stats(values: Sequence[float]) -> dict[str, float | int | None]:
    magnitudes = [abs(v) for v in values]
    return {"mean": float(np.mean(magnitudes)) if magnitudes else None,
            "max": max(magnitudes) if magnitudes else None, "measured": len(magnitudes)}


def skew_stats(rows: Iterable[PageRow], system: str) -> dict[str, float | int | None]:
    """|Skew| measured on the output pages."""
    return _abs_stats([r.results[system].residual_skew for r in rows
                       if system in r.results and r.results[system].residual_skew is not None])


def skew_error_stats(rows: Iterable[PageRow], system: str) -> dict[str, float | int | None]:
    """|Skew the system says it removed - skew the page really had|: the residual skew from the
    ground truth, free of the measuring detector's own error (about 0.1 degree)."""
    return _abs_stats([r.results[system].skew_found - r.skew for r in rows
                       if system in r.results and r.results[system].skew_found is not None])


def orientation_stats(rows: Iterable[PageRow], system: str) -> dict[str, int]:
    """OSD on the output pages (upright / not / unknown) and, where the system says what it
    turned, whether that matches the truth."""
    out = {"osd_upright": 0, "osd_wrong": 0, "osd_unknown": 0, "rotation_checked": 0,
           "rotation_correct": 0}
    for row in rows:
        result = row.results.get(system)
        if result is None:
            continue
        if result.osd_rotate is None:
            out["osd_unknown"] += 1
        elif result.osd_rotate == 0:
            out["osd_upright"] += 1
        else:
            out["osd_wrong"] += 1
        if result.rotation_found is not None:
            out["rotation_checked"] += 1
            out["rotation_correct"] += result.rotation_found == row.expected_rotation
    return out


def colour_stats(rows: Iterable[PageRow], system: str) -> dict[str, float | int | None]:
    """Colour kept on the seal pages: red and blue pooled by pixel over the pages (a page with
    a big stamp weighs more), and the worst page's red. A colour page the system ran but left
    without a figure (no output, or its page not found on the output) makes the worst page 0:
    a lost seal is lost."""
    seal_rows = [r for r in rows if r.seal and system in r.results]
    measured = [r.results[system] for r in seal_rows if r.results[system].red_pixels is not None]

    def pooled(kept: str, pixels: str) -> float | None:
        total = sum(getattr(m, pixels) or 0 for m in measured)
        return (sum((getattr(m, kept) or 0.0) * (getattr(m, pixels) or 0) for m in measured)
                / total if total else None)

    reds = [m.red_kept for m in measured if m.red_kept is not None]
    unmeasured = len(seal_rows) - len(measured)
    return {"pages": len(seal_rows), "measured": len(measured),
            "red": pooled("red_kept", "red_pixels"), "blue": pooled("blue_kept", "blue_pixels"),
            "min_page_red": 0.0 if unmeasured else (min(reds) if reds else None)}


def mean_kb(rows: Iterable[PageRow], system: str) -> float | None:
    # Each output file (ours: a record; baseline: a page file) holds pages of one kind, so the
    # mean of file size / pages over the pages is that kind's size per page.
    values = [r.results[system].kb for r in rows
              if system in r.results and r.results[system].kb is not None]
    return float(np.mean(values)) if values else None


def throughput(pages_done: int, seconds: float | None) -> dict[str, float | None]:
    if not seconds or not pages_done:
        return {"seconds_per_page": None, "pages_per_minute": None}
    return {"seconds_per_page": seconds / pages_done, "pages_per_minute": 60.0 * pages_done / seconds}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def summarise(rows: Sequence[PageRow], system: str, wall_seconds: float | None) -> dict[str, Any]:
    """Every aggregate figure of one system over the corpus."""
    mine = [r for r in rows if system in r.results]
    failed = sum(r.results[system].cer is None for r in mine)
    return {
        "pages": len(mine),
        "failed_pages": failed,
        "wall_seconds": wall_seconds,
        **throughput(len(mine), wall_seconds),
        "cer": {g: pooled_cer(select(mine, g), system) for g in CER_GROUPS},
        "residual_skew": skew_stats(mine, system),
        "skew_error_vs_truth": skew_error_stats(mine, system),
        "orientation": orientation_stats(mine, system),
        "kb_per_page": {g: mean_kb(select(mine, g), system)
                        for g in ("all", "bw300", "seal", "bw200")},
        "colour": colour_stats(mine, system),
    }


def evaluate_goals(values: dict[str, float | None]) -> list[dict[str, Any]]:
    """Each goal with its value and whether it is met (``None``: not measured in this run)."""
    checks: dict[str, Callable[[float, float], bool]] = {
        ">=": lambda v, t: v >= t, "<=": lambda v, t: v <= t, "<": lambda v, t: v < t}
    out = []
    for key, label, op, target in GOALS:
        value = values.get(key)
        out.append({"goal": key, "label": label, "target": f"{op} {target:g}", "value": value,
                    "met": None if value is None else checks[op](value, target)})
    return out


def parse_osd(text: str) -> tuple[int, float] | None:
    """(clockwise turn Tesseract says the page needs, its confidence) from ``--psm 0`` output."""
    rotate = _OSD_ROTATE.search(text)
    if not rotate:
        return None
    confidence = _OSD_CONFIDENCE.search(text)
    return int(rotate[1]) % 360, float(confidence[1]) if confidence else 0.0


# --- small helpers ------------------------------------------------------------------------------
def dig(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...``, or None where a level is missing (a system that did not run)."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _write_json(path: Path, data: object) -> None:
    atomic_write_bytes(path, (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode())


def _tool(name: str) -> str:
    """A program of this virtualenv (next to the interpreter) before one on the PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name) or name


def _first_line(args: list[str]) -> str:
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    return (proc.stdout or proc.stderr).strip().splitlines()[0] if (proc.stdout or proc.stderr) else ""


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _rusage_mb() -> dict[str, float]:
    # Linux reports ru_maxrss in KiB.
    return {"self_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "children_max_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def _corpus_pages(batch: samples.SampleBatch) -> list[samples.SamplePage]:
    """Every page of the batch in corpus order (records in manifest order, then their pages)."""
    return [page for record in batch.records for page in record.pages]


def _page_files(batch: samples.SampleBatch) -> list[str]:
    """The batch's page files in corpus order, each once."""
    return list(dict.fromkeys(page.file for page in _corpus_pages(batch)))


def _settings(data_dir: Path, jobs: int | None) -> Settings:
    # The warehouse is named explicitly: a DIGITIZE_DB_URL in the environment must never
    # receive benchmark records.
    overrides: dict[str, object] = {
        "data_dir": data_dir, "db_url": f"sqlite:///{(data_dir / 'warehouse.sqlite').resolve()}"}
    if jobs:
        overrides["ocr_jobs"] = jobs
    return load_settings(**overrides)


# --- phases (each runs in its own child process) ------------------------------------------------
def phase_ours(truth: Path, data_dir: Path, jobs: int | None) -> dict[str, Any]:
    batch = samples.load_truth(truth)
    settings = _settings(data_dir, jobs)
    # what the batch is validated against
    warehouse.migrate(settings.warehouse_url)
    reference.import_samples(settings.warehouse_url)
    started = time.perf_counter()
    summary = runner.run_batch(settings, batch.batch_dir)
    wall = time.perf_counter() - started
    return {
        "wall_seconds": wall, "profile": settings.profile, "ocr_jobs": settings.jobs,
        "records": [
            {"record_id": r.record_id, "status": str(r.status), "pdf_path": r.pdf_path,
             "pages": [{"page_no": p.page_no, "rotation": p.rotation, "skew": p.skew}
                       for p in r.pages]}
            for r in summary.records
        ],
    }


def phase_baseline(out: Path, jobs: int | None) -> dict[str, Any]:
    batch = samples.load_truth(out / "corpus" / TRUTH_NAME)
    inputs, outputs = out / "baseline" / "in", out / "baseline" / "out"
    outputs.mkdir(parents=True, exist_ok=True)
    files = []
    started = time.perf_counter()
    for name in _page_files(batch):
        target = outputs / f"{name}.pdf"
        args = [_tool("ocrmypdf"), "-l", "vie", "--rotate-pages", "--deskew", "--clean",
                "--output-type", "pdfa-2", *(["--jobs", str(jobs)] if jobs else []),
                str(inputs / name), str(target)]
        t0 = time.perf_counter()
        proc = subprocess.run(args, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            log.warning("baseline: ocrmypdf exit %d on %s: %s", proc.returncode, name,
                        " | ".join(proc.stderr.strip().splitlines()[-3:]))
        files.append({"file": name, "pdf": str(target) if target.is_file() else None,
                      "exit_code": proc.returncode, "seconds": seconds})
        log.info("baseline: %s in %.1f s", name, seconds)
    return {"wall_seconds": time.perf_counter() - started, "command": args[:-2] + ["IN", "OUT.pdf"],
            "files": files}


def phase_tesseract(out: Path) -> dict[str, Any]:
    batch = samples.load_truth(out / "corpus" / TRUTH_NAME)
    profile = _settings(out / "tesseract", None).scanner_profile
    images = out / "tesseract" / "cleaned"
    images.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    rows = []
    for n, page in enumerate(_corpus_pages(batch), start=1):
        image, dpi = pages.load_page(batch.batch_dir / page.file, page.page_in_file,
                                     profile.fallback_dpi)
        t0 = time.perf_counter()
        cleaned = cleanup.clean_page(image, dpi, profile.cleanup)
        cleanup_seconds = time.perf_counter() - t0
        # the very image and settings our OCR reads: the comparison is of everything else
        ocr.write_view(cleaned.image, dpi, profile.ocr.colour_dropout, images, n)
        path = images / ocr.VIEW_DIR / f"{n:06d}.tif"
        t0, cpu0 = time.perf_counter(), _cpu_seconds(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(
            ["tesseract", str(path), "-", "-l", "+".join(profile.languages),
             "--psm", str(tesseract.PAGE_SEGMENTATION_MODE)], capture_output=True, text=True,
            env=env)
        seconds = time.perf_counter() - t0
        rows.append({"n": n, "cleanup_seconds": cleanup_seconds, "seconds": seconds,
                     "cpu_seconds": _cpu_seconds(resource.RUSAGE_CHILDREN) - cpu0,
                     "text": proc.stdout if proc.returncode == 0 else None})
        log.info("tesseract alone: page %d cleaned in %.1f s, read in %.1f s", n,
                 cleanup_seconds, seconds)
    return {"cleanup_seconds": sum(r["cleanup_seconds"] for r in rows),
            "wall_seconds": sum(r["seconds"] for r in rows),
            "ocr_cpu_seconds": sum(r["cpu_seconds"] for r in rows), "pages": rows}


def _run_phase(name: str, out: Path, jobs: int | None) -> dict[str, Any]:
    if name == "ours":
        return phase_ours(out / "corpus" / TRUTH_NAME, out / "ours", jobs)
    if name == "stack":
        return phase_ours(out / "stack" / TRUTH_NAME, out / "stack" / "ours", jobs)
    if name == "baseline":
        return phase_baseline(out, jobs)
    return phase_tesseract(out)


class TreeSampler(threading.Thread):
    """Peak memory of a process's descendants (and of itself ``with_root``), sampled, in bytes:
    ``peak`` and ``peak_pss`` of them all together, ``largest`` RSS of a single one.

    The PSS sum is the tree's real footprint: it shares each library page among the processes
    mapping it, where the RSS sum counts it once per process.
    """

    def __init__(self, pid: int, with_root: bool) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.with_root = with_root
        self.peak = self.peak_pss = self.largest = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            total = total_pss = 0
            try:
                procs = self.process.children(recursive=True)
            except psutil.Error:
                break
            if self.with_root:
                procs.append(self.process)
            for proc in procs:
                try:
                    info = proc.memory_full_info()
                except psutil.Error:
                    continue  # ended between listing and reading: it no longer holds memory
                total += info.rss
                total_pss += info.pss
                self.largest = max(self.largest, info.rss)
            self.peak = max(self.peak, total)
            self.peak_pss = max(self.peak_pss, total_pss)
            self.done.wait(RSS_SAMPLE_SECONDS)


def spawn_phase(name: str, out: Path, jobs: int | None) -> dict[str, Any]:
    """Run one phase in a fresh ``python -m pipeline.demo.bench --phase NAME`` child.

    Our pipeline runs inside that child, so its memory counts; the baseline and Tesseract
    alone are programs the child only starts, so there only the programs' memory counts.
    """
    in_process = name in ("ours", "stack")
    args = [sys.executable, "-m", "pipeline.demo.bench", "--phase", name, "--out", str(out)]
    if jobs:
        args += ["--jobs", str(jobs)]
    log.info("phase %s: starting", name)
    started = time.perf_counter()
    proc = subprocess.Popen(args)
    sampler = TreeSampler(proc.pid, with_root=in_process)
    sampler.start()
    code = proc.wait()
    sampler.done.set()
    sampler.join()
    result_path = out / "phases" / f"{name}.json"
    if code != 0 or not result_path.is_file():
        raise RuntimeError(f"benchmark phase {name} failed (exit code {code})")
    result = json.loads(result_path.read_text(encoding="utf-8"))
    rss = result["rss"]
    rss["tree_peak_rss_mb"] = sampler.peak / 2**20
    rss["tree_peak_pss_mb"] = sampler.peak_pss / 2**20
    rss["largest_process_rss_mb"] = sampler.largest / 2**20
    # In process, the kernel's exact high-water mark of our process can only be higher than a
    # sample; a program's RUSAGE_CHILDREN figure is inflated (see the module docstring).
    rss["peak_rss_mb"] = (max(rss["self_max_rss_mb"], rss["largest_process_rss_mb"]) if in_process
                          else rss["largest_process_rss_mb"])
    log.info("phase %s: done in %.0f s", name, time.perf_counter() - started)
    return result


# --- measuring the outputs ----------------------------------------------------------------------
def _pdf_page_text(pdf: Path, page: int) -> str | None:
    proc = subprocess.run(["pdftotext", "-raw", "-f", str(page), "-l", str(page), str(pdf), "-"],
                          capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


def _rasterise(pdf: Path, page: int) -> np.ndarray | None:
    """The page as the reader sees it (page rotation applied), greyscale, at MEASURE_DPI."""
    proc = subprocess.run(["pdftoppm", "-r", str(MEASURE_DPI), "-gray", "-png", "-f", str(page),
                           "-l", str(page), str(pdf)], capture_output=True)
    if proc.returncode != 0 or not proc.stdout:
        return None
    return cv2.imdecode(np.frombuffer(proc.stdout, np.uint8), cv2.IMREAD_GRAYSCALE)


def _osd(gray: np.ndarray) -> tuple[int, float] | None:
    ok, png = cv2.imencode(".png", gray)
    if not ok:
        return None
    proc = subprocess.run(["tesseract", "stdin", "stdout", "--psm", "0", "--dpi", str(MEASURE_DPI)],
                          input=png.tobytes(), capture_output=True)
    # Tesseract exits non-zero when a page has too little text to tell: unknown, not upright.
    return parse_osd(proc.stdout.decode("utf-8", "replace")) if proc.returncode == 0 else None


def measure_output(pdf: Path, page: int, truth: str, kb: float) -> Measured:
    """CER, residual skew and OSD of one page of an output PDF."""
    text = _pdf_page_text(pdf, page)
    result = Measured(kb=kb)
    if text is not None:
        result.cer = cer(truth, text)
    gray = _rasterise(pdf, page)
    if gray is not None:
        # the method itself, not detect_skew: its dead band would hide small residuals
        result.residual_skew = round(
            cleanup.skew_by_projection(gray, MEASURE_DPI, MAX_SKEW_MEASURED), 2)
        osd = _osd(gray)
        if osd:
            result.osd_rotate, result.osd_confidence = osd
    return result


def strongly_red(rgb: np.ndarray) -> np.ndarray:
    """Pixels of an RGB array that are unmistakably seal red (the thresholds of
    tests/test_ink_colours.py: paper, black print and a pale pink are not)."""
    a = rgb.astype(np.int16)
    return (a[..., 0] > 150) & (a[..., 1] < 90) & (a[..., 2] < 90)


def strongly_blue(rgb: np.ndarray) -> np.ndarray:
    """Pixels of an RGB array that are unmistakably pen blue."""
    a = rgb.astype(np.int16)
    return (a[..., 2] > 120) & (a[..., 0] < 90) & (a[..., 1] < 110)


def colour_counts(source: np.ndarray, shown: np.ndarray) -> tuple[int, int, int, int]:
    """(red in source, of it red in shown, blue in source, of it blue in shown), pixel by pixel
    of two aligned RGB arrays of one shape."""
    if source.shape != shown.shape:
        raise ValueError(f"source {source.shape} and shown {shown.shape} are not aligned")
    red, blue = strongly_red(source), strongly_blue(source)
    return (int(np.count_nonzero(red)), int(np.count_nonzero(red & strongly_red(shown))),
            int(np.count_nonzero(blue)), int(np.count_nonzero(blue & strongly_blue(shown))))


def colour_kept(source: np.ndarray, shown: np.ndarray) -> tuple[float | None, float | None]:
    """Colour fidelity: the shares of the strongly red and of the strongly blue pixels of
    ``source`` that are still strongly red / blue in ``shown`` (both RGB, aligned, same shape,
    at COLOUR_DPI). ``None`` for a colour the source does not have."""
    red, red_kept, blue, blue_kept = colour_counts(source, shown)
    return (red_kept / red if red else None, blue_kept / blue if blue else None)


def at_dpi(image: np.ndarray, dpi: int, target: int = COLOUR_DPI) -> np.ndarray:
    """``image`` resampled from ``dpi`` to ``target``; an area average when going down, so a
    thin stroke turns paler, not gappy."""
    if dpi == target:
        return image
    h, w = image.shape[:2]
    size = (max(1, round(w * target / dpi)), max(1, round(h * target / dpi)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if target < dpi
                      else cv2.INTER_LINEAR)


def upright_scan(scan: np.ndarray, rotation: int, skew: float) -> np.ndarray:
    """A corpus scan put back where the generator drew the clean page: ``degrade`` tilted the
    clean page by ``skew`` about its centre (same size) and then turned it ``rotation``
    clockwise; this undoes both from the ground truth, so the source is aligned with what the
    archived page should be after our cleanup, whatever our cleanup found. Its colours are the
    scan's (blur, dust, show-through and JPEG included), not the ideal page's."""
    image = np.ascontiguousarray(np.rot90(scan, k=rotation // 90))
    if not skew:
        return image
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), -skew, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(255, 255, 255))


def _match(image: np.ndarray, template: np.ndarray) -> tuple[float, tuple[int, int]]:
    """Best normalised correlation of ``template`` in ``image`` (greyscale) and its (x, y)."""
    if image.shape[0] < template.shape[0] or image.shape[1] < template.shape[1]:
        return -1.0, (0, 0)
    scores = cv2.matchTemplate(cleanup.to_gray(image), cleanup.to_gray(template),
                               cv2.TM_CCOEFF_NORMED)
    _, best, _, at = cv2.minMaxLoc(scores)
    return float(best), (int(at[0]), int(at[1]))


def align_marks(source: np.ndarray, source_dpi: int, shown: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray] | None:
    """The colour marks of ``source`` (upright, at ``source_dpi``) and the same part of
    ``shown`` (the archived page rendered at COLOUR_RENDER_DPI), both at COLOUR_DPI and
    aligned; ``None`` if the source has no strong colour or the part is not found.

    Our cleanup crops the scanner border and deskews by what it measured, so the archived page
    is the source shifted by some pixels and turned by a residual of about 0.1 degree. Matching
    only the marks with their surrounding text (not the whole page) makes that residual turn
    negligible (a third of a pixel across a 200 px window). The match is found at COLOUR_DPI
    over the whole page (each quarter turn tried, so that a page left on its side is still
    measured for colour: orientation is scored apart) and refined at COLOUR_RENDER_DPI, so that
    the two are aligned to a third of a COLOUR_DPI pixel, which a 1-2 px stroke needs.
    """
    small = at_dpi(source, source_dpi)
    marks = strongly_red(small) | strongly_blue(small)
    if not marks.any():
        return None
    ys, xs = np.nonzero(marks)
    h, w = small.shape[:2]
    y0, y1 = max(0, int(ys.min()) - COLOUR_MARGIN), min(h, int(ys.max()) + 1 + COLOUR_MARGIN)
    x0, x1 = max(0, int(xs.min()) - COLOUR_MARGIN), min(w, int(xs.max()) + 1 + COLOUR_MARGIN)
    window = small[y0:y1, x0:x1]
    scale = COLOUR_RENDER_DPI // COLOUR_DPI
    best = max(((*_match(at_dpi(np.rot90(shown, k), COLOUR_RENDER_DPI), window), k)
                for k in range(4)), key=lambda found: found[0])
    score, (mx, my), turns = best
    if score < COLOUR_MIN_MATCH:
        return None
    shown = np.ascontiguousarray(np.rot90(shown, turns))
    # The same window of the source at the render's resolution, to refine within +-1 coarse px.
    fine = at_dpi(source, source_dpi, COLOUR_RENDER_DPI)[y0 * scale:y1 * scale,
                                                          x0 * scale:x1 * scale]
    fh, fw = fine.shape[:2]
    sy, sx = max(0, (my - 1) * scale), max(0, (mx - 1) * scale)
    area = shown[sy:sy + fh + 2 * scale, sx:sx + fw + 2 * scale]
    _, (dx, dy) = _match(area, fine)
    crop = shown[sy + dy:sy + dy + (y1 - y0) * scale, sx + dx:sx + dx + (x1 - x0) * scale]
    if crop.shape[:2] != ((y1 - y0) * scale, (x1 - x0) * scale):
        return None  # the marks run off the archived page
    return window, at_dpi(crop, COLOUR_RENDER_DPI)


def _render_rgb(pdf: Path, page: int) -> np.ndarray | None:
    """The page in colour at COLOUR_RENDER_DPI, as the reader sees it."""
    proc = subprocess.run(["pdftoppm", "-r", str(COLOUR_RENDER_DPI), "-png", "-f", str(page),
                           "-l", str(page), str(pdf)], capture_output=True)
    if proc.returncode != 0 or not proc.stdout:
        return None
    image = cv2.imdecode(np.frombuffer(proc.stdout, np.uint8), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def measure_colour(pdf: Path, page: int, scan: Path, row: PageRow) -> Measured:
    """Colour kept on one output page against the corpus scan it came from (its page
    ``row.page_in_file``, turned upright from the ground truth); only the colour fields set,
    all ``None`` when the page cannot be measured."""
    result = Measured()
    image, dpi = pages.load_page(scan, row.page_in_file, 300)
    shown = _render_rgb(pdf, page)
    if shown is None:
        return result
    aligned = align_marks(upright_scan(image, row.rotation, row.skew), dpi, shown)
    if aligned is None:
        log.warning("colour: page %d (%s) not found on %s", row.n, row.file, pdf.name)
        return result
    red, red_kept, blue, blue_kept = colour_counts(*aligned)
    result.red_pixels, result.blue_pixels = red, blue
    result.red_kept = red_kept / red if red else None
    result.blue_kept = blue_kept / blue if blue else None
    return result


def _with_colour(result: Measured, colour: Measured | None) -> Measured:
    if colour is not None:
        result.red_kept, result.blue_kept = colour.red_kept, colour.blue_kept
        result.red_pixels, result.blue_pixels = colour.red_pixels, colour.blue_pixels
    return result


def _pdf_pages(pdf: Path) -> int:
    with pikepdf.open(pdf) as doc:
        return len(doc.pages)


def build_rows(batch: samples.SampleBatch) -> list[PageRow]:
    rows: list[PageRow] = []
    for record in batch.records:
        for page_no, page in enumerate(record.pages, start=1):
            rows.append(PageRow(
                n=len(rows) + 1, record_id=record.record_id, page_no=page_no, file=page.file,
                page_in_file=page.page_in_file, kind=page_kind(page), hard=samples.is_hard(page),
                chars=len(normalise(page.text)), rotation=page.rotation, skew=page.skew,
                dpi=page.dpi, style=page.style, seal=page.seal, bleed=page.bleed, truth=page.text))
    return rows


def _colour_job(pool: ThreadPoolExecutor, batch_dir: Path | None, pdf: Path, page: int,
                row: PageRow) -> Future[Measured] | None:
    # Only seal pages carry colour marks; without the corpus there is no source to compare.
    if batch_dir is None or not row.seal:
        return None
    return pool.submit(measure_colour, pdf, page, batch_dir / row.file, row)


def measure_ours(rows: list[PageRow], phase: dict[str, Any], pool: ThreadPoolExecutor,
                 batch_dir: Path | None = None) -> None:
    """Our output pages against the truth; with ``batch_dir`` (the corpus scans) colour too."""
    records = {r["record_id"]: r for r in phase["records"]}
    jobs = []
    for row in rows:
        record = records.get(row.record_id)
        pdf = Path(record["pdf_path"]) if record and record["pdf_path"] else None
        if (record is None or record["status"] != RecordStatus.archived or pdf is None
                or not pdf.is_file()):
            row.results["ours"] = Measured()  # quarantined or missing: no output page
            continue
        kb = pdf.stat().st_size / 1024 / _pdf_pages(pdf)
        found = next((p for p in record["pages"] if p["page_no"] == row.page_no), {})
        jobs.append((row, found, pool.submit(measure_output, pdf, row.page_no, row.truth, kb),
                     _colour_job(pool, batch_dir, pdf, row.page_no, row)))
    for row, found, future, colour in jobs:
        result = _with_colour(future.result(), colour.result() if colour else None)
        result.rotation_found, result.skew_found = found.get("rotation"), found.get("skew")
        row.results["ours"] = result


def measure_baseline(rows: list[PageRow], phase: dict[str, Any], pool: ThreadPoolExecutor,
                     batch_dir: Path | None = None) -> None:
    outputs = {f["file"]: Path(f["pdf"]) if f["pdf"] else None for f in phase["files"]}
    jobs = []
    for row in rows:
        pdf = outputs.get(row.file)
        if pdf is None or not pdf.is_file():
            row.results["baseline"] = Measured()
            continue
        kb = pdf.stat().st_size / 1024 / _pdf_pages(pdf)
        jobs.append((row, pool.submit(measure_output, pdf, row.page_in_file, row.truth, kb),
                     _colour_job(pool, batch_dir, pdf, row.page_in_file, row)))
    for row, future, colour in jobs:
        row.results["baseline"] = _with_colour(future.result(),
                                               colour.result() if colour else None)


def measure_tesseract(rows: list[PageRow], phase: dict[str, Any]) -> None:
    for row, page in zip(rows, phase["pages"], strict=True):
        text = page["text"]
        row.results["tesseract"] = Measured(
            cer=cer(row.truth, text) if text is not None else None,
            seconds=page["seconds"], cleanup_seconds=page["cleanup_seconds"])


def _upright_scan(batch: samples.SampleBatch, page: samples.SamplePage) -> tuple[np.ndarray, int]:
    """A corpus page as scanned, without its dark border, and its dpi."""
    image, dpi = pages.load_page(batch.batch_dir / page.file, page.page_in_file, 300)
    return cleanup.remove_dark_border(image)[0], dpi


def compare_methods(batch: samples.SampleBatch, max_skew: float, min_osd_confidence: float
                    ) -> dict[str, Any]:
    """Orientation (layout vs Tesseract OSD) on each page as scanned, and each deskew method
    on each page turned upright, against the truth: accuracy and milliseconds per page."""
    orientation = {m: {"right": 0, "wrong": 0, "undecided": 0, "ms": 0.0}
                   for m in ("layout", "osd")}
    skew: dict[str, dict[str, Any]] = {m: {"errors": [], "ms": 0.0} for m in cleanup.SKEW_METHODS}
    every = _corpus_pages(batch)
    for page in every:
        scan, dpi = _upright_scan(batch, page)
        gray = cleanup.to_gray(scan)
        want = expected_rotation(page.rotation)
        t0 = time.perf_counter()
        found: int | None = cleanup.orientation_from_layout(gray, dpi, max_skew)
        orientation["layout"]["ms"] += (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        osd = cleanup.orientation_by_osd(gray, dpi)
        orientation["osd"]["ms"] += (time.perf_counter() - t0) * 1000
        for method, value in (("layout", found),
                              ("osd", osd.rotate if osd.confidence >= min_osd_confidence else None)):
            verdict = "undecided" if value is None else "right" if value == want else "wrong"
            orientation[method][verdict] += 1
        upright = cleanup.to_gray(cleanup.rotate_bound(scan, want // 90))
        for method, detect in cleanup.SKEW_METHODS.items():
            t0 = time.perf_counter()
            angle = detect(upright, dpi, max_skew)
            skew[method]["ms"] += (time.perf_counter() - t0) * 1000
            skew[method]["errors"].append(abs(angle - page.skew))
    n = max(1, len(every))
    return {
        "orientation": {m: {**v, "ms": v["ms"] / n} for m, v in orientation.items()},
        "skew": {m: {"mean_error": float(np.mean(v["errors"])), "max_error": float(np.max(v["errors"])),
                     "ms": v["ms"] / n} for m, v in skew.items()},
    }


def methods_table(methods: dict[str, Any]) -> list[str]:
    lines = ["", "## Methods compared on the corpus pages", "",
             "| orientation method | right | wrong | undecided | ms/page |", "|---|---|---|---|---|"]
    lines += [f"| {m} | {v['right']} | {v['wrong']} | {v['undecided']} | {v['ms']:.0f} |"
              for m, v in methods["orientation"].items()]
    lines += ["", "| deskew method | mean error (°) | max error (°) | ms/page |", "|---|---|---|---|"]
    lines += [f"| {m} | {v['mean_error']:.3f} | {v['max_error']:.3f} | {v['ms']:.0f} |"
              for m, v in methods["skew"].items()]
    lines += ["", "The pipeline reads orientation from the layout and asks OSD only where the "
              "layout is undecided; it deskews with the method its scanner profile names."]
    return lines


# --- report -------------------------------------------------------------------------------------
def _fmt(value: float | None, kind: str) -> str:
    """``kind``: "pct", "x" (a ratio) or the number of decimals."""
    if value is None:
        return "—"
    if kind == "pct":
        return f"{value:.2%}"
    if kind == "x":
        return f"{value:.2f}×"
    return f"{value:.{kind}f}"


def table_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    """(metric, ours, baseline, Tesseract alone, ratio, target) rows of the readable table."""
    s = report["systems"]
    ours, base, tess = s.get("ours") or {}, s.get("baseline") or {}, s.get("tesseract") or {}
    r = report["ratios"]

    def row(metric: str, kind: str, keys: tuple[str, ...], ratio_value: float | None = None,
            target: str = "", systems: Sequence[str] = SYSTEMS) -> tuple[str, ...]:
        cells = [_fmt(dig(d, *keys), kind) if name in systems else ""
                 for name, d in (("ours", ours), ("baseline", base), ("tesseract", tess))]
        return (metric, *cells, _fmt(ratio_value, "x"), target)

    def osd(d: dict[str, Any]) -> str:
        o = d.get("orientation")
        if not o:
            return "—"
        unknown = f", {o['osd_unknown']} unknown" if o["osd_unknown"] else ""
        return f"{o['osd_upright']}/{d['pages']}{unknown}"

    def found(d: dict[str, Any]) -> str:
        o = d.get("orientation")
        return f"{o['rotation_correct']}/{o['rotation_checked']}" if o and o["rotation_checked"] else "—"

    rows: list[tuple[str, ...]] = [
        ("pages (without output)", *(f"{d['pages']} ({d['failed_pages']})" if d else "—"
                                     for d in (ours, base, tess)), "", ""),
        row("wall time (s)", "1", ("wall_seconds",)),
        row("seconds per page", "2", ("seconds_per_page",), r.get("seconds_ours_vs_baseline")),
        row("pages per minute", "1", ("pages_per_minute",), r.get("throughput_ours_vs_baseline"),
            ">= 4× baseline"),
        ("s/page, ours vs Tesseract alone", _fmt(ours.get("seconds_per_page"), "2"), "",
         _fmt(tess.get("seconds_per_page"), "2"), _fmt(r.get("seconds_ours_vs_tesseract"), "x"),
         "<= 1.3×"),
        ("cleanup only (s/page)", "", "", _fmt(tess.get("cleanup_seconds_per_page"), "2"), "", ""),
        ("CPU s/page, all cores (ours vs Tesseract alone)", _fmt(ours.get("cpu_seconds_per_page"), "2"),
         _fmt(base.get("cpu_seconds_per_page"), "2"), _fmt(tess.get("cpu_seconds_per_page"), "2"),
         _fmt(r.get("cpu_ours_vs_tesseract"), "x"), ""),
    ]
    for group in CER_GROUPS:
        rows.append(row(f"CER, {CER_GROUP_LABELS[group]}", "pct", ("cer", group),
                        dig(r, "cer_ours_vs_baseline", group),
                        "<= 0.5× baseline" if group == "hard" else ""))
    rows += [
        row("residual skew, mean |°|", "3", ("residual_skew", "mean"), None, "< 0.15",
            ("ours", "baseline")),
        row("residual skew, max |°|", "3", ("residual_skew", "max"), None, "< 0.5",
            ("ours", "baseline")),
        row("skew removed - truth, mean |°|", "3", ("skew_error_vs_truth", "mean"), None, "",
            ("ours",)),
        row("skew removed - truth, max |°|", "3", ("skew_error_vs_truth", "max"), None, "",
            ("ours",)),
        ("rotation found = truth", found(ours), "", "", "", "every page"),
        ("upright on output (OSD)", osd(ours) if ours else "—", osd(base) if base else "—", "", "",
         "every page"),
    ]
    for group, label, target in (("all", "all pages", ""), ("bw300", "B/W 300 dpi", "<= 100"),
                                 ("seal", "colour seal", "<= 250"), ("bw200", "B/W 200 dpi", "")):
        rows.append(row(f"KB per page, {label}", "0", ("kb_per_page", group),
                        dig(r, "kb_ours_vs_baseline", group), target, ("ours", "baseline")))
    rows += [
        ("colour pages measured", *(f"{d['colour']['measured']}/{d['colour']['pages']}"
                                    if d.get("colour") else "" for d in (ours, base)), "", "", ""),
        row("colour kept, red (pooled)", "pct", ("colour", "red"), None, ">= 90%",
            ("ours", "baseline")),
        row("colour kept, blue (pooled)", "pct", ("colour", "blue"), None, ">= 80%",
            ("ours", "baseline")),
        row("colour kept, red, worst page", "pct", ("colour", "min_page_red"), None, ">= 70%",
            ("ours", "baseline")),
        row("peak RSS, largest process (MB)", "0", ("rss", "peak_rss_mb")),
        row("peak memory, process tree, PSS (MB)", "0", ("rss", "tree_peak_pss_mb")),
        row("peak memory, process tree, RSS sum (MB)", "0", ("rss", "tree_peak_rss_mb")),
    ]
    stack = report.get("stack")
    if stack:
        rows += [
            (f"multi-page TIFF, {stack['pages']} pages: s/page",
             _fmt(stack.get("seconds_per_page"), "2"), "", "", "", ""),
            ("multi-page TIFF: peak memory PSS / RSS sum / largest (MB)",
             f"{_fmt(stack['rss']['tree_peak_pss_mb'], '0')} / "
             f"{_fmt(stack['rss']['tree_peak_rss_mb'], '0')} / "
             f"{_fmt(stack['rss']['peak_rss_mb'], '0')}", "", "", "", "< 1024"),
        ]
    return rows


def render_table(report: dict[str, Any]) -> str:
    header = ("metric", "ours", "baseline (ocrmypdf)", "Tesseract alone", "ratio ours/other",
              "target")
    rows = [header, *table_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    corpus = report["corpus"]
    hardness = f"{corpus['hard_pages']} hard, {corpus['easy_pages']} easy"
    title = (f"# Benchmark {report['started_at']}: {corpus['pages']} pages ({hardness}), "
             f"{report['environment']['cpus']} CPUs")
    notes = [
        "",
        "ratio: ours / baseline, except the Tesseract-alone row (ours / Tesseract alone).",
        "CER: edit distance / reference characters, NFC, whitespace ignored, pooled over pages; "
        "a page without output counts as 100%.",
        "Tesseract alone: OCR time only (our cleanup is the 'cleanup only' row).",
        f"Memory sampled every {RSS_SAMPLE_SECONDS} s; for the baseline and Tesseract alone, "
        "of their processes only. PSS counts a shared page once; the RSS sum once per process.",
        "Residual skew and OSD are measured on the output PDF rasterised at "
        f"{MEASURE_DPI} dpi; KB per page = output file size / its pages.",
        "Hard pages: seal, typewriter, show-through, 200 dpi or turned; a page can be in several "
        "classes (200 dpi counts every page of 200 dpi, a seal page too).",
        "Colour kept: of the scan's strongly red (R>150, G<90, B<90) and strongly blue (B>120, "
        "R<90, G<110) pixels at 100 dpi, the share still so on the output page; the scan is "
        "turned upright from the ground truth and matched to the output page around its marks; "
        f"the output is rendered at {COLOUR_RENDER_DPI} dpi and area-averaged to 100 dpi "
        "(poppler's direct 100 dpi rendering of 1-bit masks is a third of a pixel off). Red and "
        "blue are pooled by pixel over the seal pages; a seal page without a figure makes the "
        "worst page 0%.",
    ]
    goals = ["", "## Goals", "", "| goal | value | target | met |", "|---|---|---|---|"]
    for g in report["goals"]:
        met = {True: "yes", False: "NO", None: "not measured"}[g["met"]]
        value = "—" if g["value"] is None else f"{g['value']:.3g}"
        goals.append(f"| {g['label']} | {value} | {g['target']} | {met} |")
    methods = methods_table(report["methods"]) if report.get("methods") else []
    return "\n".join([title, "", *lines, *notes, *goals, *methods]) + "\n"


def _environment(argv: Sequence[str]) -> dict[str, Any]:
    return {
        "cpus": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(), "python": platform.python_version(),
        "platform": platform.platform(), "tesseract": _first_line(["tesseract", "--version"]),
        "ocrmypdf": _first_line([_tool("ocrmypdf"), "--version"]),
        "command": [sys.executable, "-m", "pipeline.demo.bench", *argv],
    }


def build_report(rows: list[PageRow], phases: dict[str, dict[str, Any]], meta: dict[str, Any]
                 ) -> dict[str, Any]:
    systems: dict[str, Any] = {}
    for name in SYSTEMS:
        if name not in phases:
            systems[name] = None
            continue
        summary = summarise(rows, name, phases[name]["wall_seconds"])
        summary["rss"] = phases[name]["rss"]
        systems[name] = summary
    ours, base, tess = systems["ours"], systems["baseline"], systems["tesseract"]
    if tess:
        tess["cleanup_seconds_per_page"] = phases["tesseract"]["cleanup_seconds"] / max(1, len(rows))
    # CPU seconds a page costs on all cores together: the fair per-core comparison, where the
    # wall clock lets our two workers race single-threaded Tesseract.
    for name, key in (("ours", "cpu_seconds"), ("baseline", "cpu_seconds"),
                      ("tesseract", "ocr_cpu_seconds")):
        if systems[name] and phases[name].get(key) is not None:
            systems[name]["cpu_seconds_per_page"] = phases[name][key] / max(1, len(rows))

    ratios = {
        "throughput_ours_vs_baseline": ratio(dig(ours, "pages_per_minute"),
                                             dig(base, "pages_per_minute")),
        "seconds_ours_vs_baseline": ratio(dig(ours, "seconds_per_page"),
                                          dig(base, "seconds_per_page")),
        "seconds_ours_vs_tesseract": ratio(dig(ours, "seconds_per_page"),
                                           dig(tess, "seconds_per_page")),
        "cpu_ours_vs_tesseract": ratio(dig(ours, "cpu_seconds_per_page"),
                                       dig(tess, "cpu_seconds_per_page")),
        "cer_ours_vs_baseline": {g: ratio(dig(ours, "cer", g), dig(base, "cer", g))
                                 for g in CER_GROUPS},
        "kb_ours_vs_baseline": {g: ratio(dig(ours, "kb_per_page", g), dig(base, "kb_per_page", g))
                                for g in ("all", "bw300", "seal", "bw200")},
    }
    orientation = dig(ours, "orientation")
    stack = meta.get("stack")
    report = {
        **{k: v for k, v in meta.items() if k != "stack"},
        "systems": systems,
        "ratios": ratios,
        "stack": stack,
        "goals": evaluate_goals({
            "throughput_vs_baseline": ratios["throughput_ours_vs_baseline"],
            "cer_hard_vs_baseline": ratios["cer_ours_vs_baseline"]["hard"],
            "seconds_vs_tesseract": ratios["seconds_ours_vs_tesseract"],
            "residual_skew_mean": dig(ours, "residual_skew", "mean"),
            "residual_skew_max": dig(ours, "residual_skew", "max"),
            "orientation_wrong": (orientation["rotation_checked"] - orientation["rotation_correct"]
                                  + (ours["pages"] - orientation["rotation_checked"])
                                  if orientation else None),
            "kb_bw300": dig(ours, "kb_per_page", "bw300"),
            "kb_seal": dig(ours, "kb_per_page", "seal"),
            "stack_peak_memory_mb": dig(stack, "rss", "tree_peak_pss_mb"),
            "colour_red": dig(ours, "colour", "red"),
            "colour_blue": dig(ours, "colour", "blue"),
            "colour_red_min": dig(ours, "colour", "min_page_red"),
        }),
        "pages": [{**{k: v for k, v in asdict(r).items() if k not in ("results", "truth")},
                   **{name: asdict(m) for name, m in r.results.items()}} for r in rows],
    }
    return report


def _corpus_meta(batch: samples.SampleBatch, seed: int) -> dict[str, Any]:
    every = _corpus_pages(batch)
    return {
        "seed": seed, "batch_dir": str(batch.batch_dir), "truth": str(batch.truth_path),
        "pages": len(every), "records": len(batch.records), "files": len(_page_files(batch)),
        "hard_pages": sum(samples.is_hard(p) for p in every),
        "easy_pages": sum(not samples.is_hard(p) for p in every),
        "kinds": {k: sum(page_kind(p) == k for p in every) for k in ("bw300", "seal", "bw200")},
        "rotations": {str(r): sum(p.rotation == r for p in every) for r in (0, 90, 180, 270)},
        "typewriter": sum(p.style == "typewriter" for p in every),
        "bleed": sum(p.bleed for p in every),
        "max_abs_skew": max(abs(p.skew) for p in every),
    }


def run_benchmark(out: Path, *, n_pages: int, seed: int, skip_baseline: bool, jobs: int | None,
                  tiff_pages: int, argv: Sequence[str]) -> dict[str, Any]:
    started_at = dt.datetime.now().isoformat(timespec="seconds")
    environment = _environment(argv)
    log.info("generating a corpus of %d pages into %s", n_pages, out / "corpus")
    batch = samples.generate_corpus(out / "corpus" / samples.DEFAULT_AGENCY / f"BENCH-{seed}",
                                    n_pages=n_pages, seed=seed, truth_path=out / "corpus" / TRUTH_NAME)
    # The baseline reads its own copy, so nothing our run does to the batch can touch it.
    if not skip_baseline:
        for name in _page_files(batch):
            dest = out / "baseline" / "in" / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(batch.batch_dir / name, dest)
    stack_batch = None
    if tiff_pages:
        log.info("generating a %d-page multi-page TIFF", tiff_pages)
        stack_batch = samples.generate_stack(
            out / "stack" / "corpus" / samples.DEFAULT_AGENCY / f"STACK-{seed}", n_pages=tiff_pages,
            seed=seed, truth_path=out / "stack" / TRUTH_NAME)

    phases = {"ours": spawn_phase("ours", out, jobs)}
    if not skip_baseline:
        phases["baseline"] = spawn_phase("baseline", out, jobs)
    phases["tesseract"] = spawn_phase("tesseract", out, jobs)
    stack = None
    if stack_batch is not None:
        result = spawn_phase("stack", out, jobs)
        (record,) = result["records"]
        stack = {"pages": tiff_pages, "status": record["status"],
                 "wall_seconds": result["wall_seconds"], "rss": result["rss"],
                 **throughput(tiff_pages, result["wall_seconds"])}

    log.info("measuring the outputs")
    rows = build_rows(batch)
    workers = jobs or len(os.sched_getaffinity(0))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        measure_ours(rows, phases["ours"], pool, batch.batch_dir)
        if "baseline" in phases:
            measure_baseline(rows, phases["baseline"], pool, batch.batch_dir)
    measure_tesseract(rows, phases["tesseract"])
    log.info("comparing orientation and deskew methods")
    profile = _settings(out / "ours", jobs).scanner_profile
    methods = compare_methods(batch, profile.cleanup.max_skew,
                              profile.cleanup.orientation_min_confidence)
    environment["load_average_end"] = os.getloadavg()
    meta = {
        "benchmark": "pipeline.demo.bench", "started_at": started_at,
        "finished_at": dt.datetime.now().isoformat(timespec="seconds"),
        "environment": environment, "corpus": _corpus_meta(batch, seed),
        "settings": {"profile": phases["ours"]["profile"], "ocr_jobs": phases["ours"]["ocr_jobs"],
                     "jobs_option": jobs, "skip_baseline": skip_baseline,
                     "baseline_command": phases["baseline"]["command"] if "baseline" in phases else None},
        "stack": stack,
        "methods": methods,
    }
    report = build_report(rows, phases, meta)
    _write_json(out / "bench.json", report)
    table = render_table(report)
    atomic_write_bytes(out / "bench.md", table.encode())
    print(table)
    return report


def _default_out() -> Path:
    return Path("var") / "bench" / dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline.demo.bench",
        description="Benchmark our pipeline against plain OCRmyPDF on a generated corpus.")
    p.add_argument("--pages", type=int, default=30, help="corpus pages (default 30)")
    p.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder, new or empty (default var/bench/<timestamp>)")
    p.add_argument("--skip-baseline", action="store_true", help="do not run plain OCRmyPDF")
    p.add_argument("--jobs", type=int, default=None,
                   help="OCR worker processes for ours (DIGITIZE_OCR_JOBS) and the baseline "
                        "(ocrmypdf --jobs); default: every available core")
    p.add_argument("--tiff-pages", type=int, default=0,
                   help="also measure our peak memory on one record of an N-page multi-page "
                        "TIFF (default 0: skip)")
    p.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)  # internal: child process
    return p


def start_logging() -> None:
    """Our progress at INFO; libraries (great-expectations is chatty) only when they warn."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pipeline").setLevel(logging.INFO)


def used(out: Path) -> bool:
    """Whether ``out`` holds files already (said on stderr): an old run's archive would make a
    new run's records "already archived" and its figures meaningless."""
    if out.exists() and any(out.iterdir()):
        print(f"{out} is not empty; give a new folder with --out", file=sys.stderr)
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    start_logging()
    out = (args.out or _default_out()).resolve()
    if args.phase:
        result = _run_phase(args.phase, out, args.jobs)
        result["rss"] = _rusage_mb()
        # Children count once reaped: the pool's workers and every program they ran.
        result["cpu_seconds"] = (_cpu_seconds(resource.RUSAGE_SELF)
                                 + _cpu_seconds(resource.RUSAGE_CHILDREN))
        _write_json(out / "phases" / f"{args.phase}.json", result)
        return 0
    if args.pages < 1 or args.tiff_pages < 0 or (args.jobs is not None and args.jobs < 1):
        print("--pages and --jobs must be at least 1, --tiff-pages at least 0", file=sys.stderr)
        return 2
    if used(out):
        return 2
    out.mkdir(parents=True, exist_ok=True)
    try:
        run_benchmark(out, n_pages=args.pages, seed=args.seed, skip_baseline=args.skip_baseline,
                      jobs=args.jobs, tiff_pages=args.tiff_pages, argv=argv)
    except RuntimeError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
