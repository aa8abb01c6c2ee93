"""Measuring the benchmark's outputs against the ground truth: each output page's text (CER),
residual skew and orientation, and on the seal pages the colour kept; and the orientation and
deskew methods compared on the corpus scans."""

from __future__ import annotations

import logging
import subprocess
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pikepdf

from pipeline._exec import poppler, tesseract
from pipeline.demo import samples
from pipeline.demo.bench_figures import Measured, PageRow, corpus_pages, expected_rotation
from pipeline.demo.quality import cer
from pipeline.imaging import cleanup
from pipeline.intake import pages
from pipeline.models import RecordStatus

log = logging.getLogger(__name__)

# Output pages are rasterised at the resolution our own orientation check works at; the skew
# measure scales that down to the 100 dpi it works at itself.
MEASURE_DPI = cleanup.OSD_DPI
MAX_SKEW_MEASURED = 6.0
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


def _pdf_page_text(pdf: Path, page: int) -> str | None:
    try:
        return poppler.page_text(pdf, page, raw=True)
    except subprocess.CalledProcessError:
        return None


def _render(pdf: Path, page: int, dpi: int, *, gray: bool) -> np.ndarray | None:
    """The page as the reader sees it (page rotation applied), greyscale or BGR, at ``dpi``."""
    try:
        png = poppler.render_png(pdf, page, dpi, gray=gray)
    except subprocess.CalledProcessError:
        return None
    if not png:
        return None
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)


def measure_output(pdf: Path, page: int, truth: str, kb: float) -> Measured:
    """CER, residual skew and OSD of one page of an output PDF."""
    text = _pdf_page_text(pdf, page)
    result = Measured(kb=kb)
    if text is not None:
        result.cer = cer(truth, text)
    gray = _render(pdf, page, MEASURE_DPI, gray=True)
    if gray is not None:
        # the method itself, not detect_skew: its dead band would hide small residuals
        result.residual_skew = round(
            cleanup.skew_by_projection(gray, MEASURE_DPI, MAX_SKEW_MEASURED), 2)
        osd = tesseract.osd(gray, dpi=MEASURE_DPI)
        if osd:
            result.osd_rotate, result.osd_confidence = osd.rotate, osd.confidence
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


def render_rgb(pdf: Path, page: int) -> np.ndarray | None:
    """The page in colour at COLOUR_RENDER_DPI, as the reader sees it."""
    image = _render(pdf, page, COLOUR_RENDER_DPI, gray=False)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def measure_colour(pdf: Path, page: int, scan: Path, row: PageRow) -> Measured:
    """Colour kept on one output page against the corpus scan it came from (its page
    ``row.page_in_file``, turned upright from the ground truth); only the colour fields set,
    all ``None`` when the page cannot be measured."""
    result = Measured()
    image, dpi = pages.load_page(scan, row.page_in_file, 300)
    shown = render_rgb(pdf, page)
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
    every = corpus_pages(batch)
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
