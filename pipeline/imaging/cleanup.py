"""Page cleanup with OpenCV: dark scanner border, orientation (0/90/180/270), uneven lighting,
specks, deskew; and the page's quality flags.

Pages are uint8 arrays, RGB or 2-D grey (``pages.load_page`` reads a grey scan as one channel).
The cleaned page keeps its colours: a result's red seal is part of the record. An RGB page whose
three channels are equal (a grey page rendered from a PDF) is cleaned as one channel and comes
out 2-D: the same pixels for a quarter less CPU (0.44 -> 0.32 s/page on the benchmark's grey
pages); every later stage takes either. Angles follow one convention: ``skew`` is how far
the scan is turned counter-clockwise, ``rotation`` how far it must be turned clockwise to stand
upright.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline._exec import tesseract
from pipeline.config import CleanupProfile

# Resolutions the measurements work at: enough for 13 pt text, cheap to rotate many times.
OSD_DPI = 150
SKEW_DPI = 100
DARK = 80  # grey level below which a pixel counts as scanner-bed black
FLAT_DPI = 25
DARK_LINE_FRACTION = 0.6


@dataclass(frozen=True)
class CleanupResult:
    image: np.ndarray
    rotation: int
    skew: float
    orientation_by: str  # layout | osd | none | off
    border_removed: bool


def dropout(image: np.ndarray) -> np.ndarray:
    """Grey view of the page in which coloured ink is light: the lightest channel per pixel."""
    if image.ndim == 2:
        return image
    # Pairwise maxima: a reduction over the last, 3-wide axis is ten times slower on a page.
    return np.maximum(np.maximum(image[..., 0], image[..., 1]), image[..., 2])


def binarised(grey: np.ndarray) -> np.ndarray:
    """The page's print black (0) on white (255), at Otsu's level: what OCR reads and what the
    archive keeps of a black-and-white page."""
    _, binary = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return binary


def to_gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def scaled(gray: np.ndarray, dpi: int, target_dpi: int) -> np.ndarray:
    factor = min(1.0, target_dpi / dpi)
    if factor >= 1.0:
        return gray
    return cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)


def remove_dark_border(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """Paint white the dark bands a scanner bed leaves where the paper did not cover it."""
    dark = to_gray(image) < DARK
    h, w = dark.shape
    rows, cols = np.count_nonzero(dark, axis=1) / w, np.count_nonzero(dark, axis=0) / h
    out = image  # copied before the first band is painted: most scans have none
    found = False
    for profile, axis in ((rows, 0), (cols, 1)):
        n = len(profile)
        lead = int(np.argmin(profile > DARK_LINE_FRACTION)) if profile[0] > DARK_LINE_FRACTION else 0
        trail = (
            int(np.argmin(profile[::-1] > DARK_LINE_FRACTION))
            if profile[-1] > DARK_LINE_FRACTION else 0
        )
        # A page that is dark all over is not a border problem; leave it for the quality flags.
        if lead + trail >= n // 2:
            continue
        for start, stop in ((0, lead), (n - trail, n)):
            if stop > start:
                if not found:
                    out, found = image.copy(), True
                if axis == 0:
                    out[start:stop] = 255
                else:
                    out[:, start:stop] = 255
    return out, found


def flatten_illumination(image: np.ndarray, dpi: int) -> np.ndarray:
    """Even out the paper's brightness (yellowed corners, a shadow along the spine).

    The paper alone is estimated at 25 dpi, where a closing wipes out the print, and every
    pixel is divided by it; uniform paper comes out unchanged but for scaling to white.
    """
    small = cv2.resize(image, None, fx=FLAT_DPI / dpi, fy=FLAT_DPI / dpi,
                       interpolation=cv2.INTER_AREA) if dpi > FLAT_DPI else image
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5))
    paper = cv2.GaussianBlur(cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel), (0, 0), 2)
    paper = cv2.resize(paper, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    return cv2.divide(image, np.maximum(paper, 1), scale=255)


def _components(ink: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Connected components of ``ink`` (8-connected): their count, labels and stats.

    16-bit labels when the page has fewer than 65,536 blobs: OpenCV's labelling then costs a
    third of the CPU (17 against 53 ms on a 300 dpi page); a page of more blobs (noise) raises
    on the overflow and is labelled again with 32-bit labels.
    """
    try:
        count, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8,
                                                                   ltype=cv2.CV_16U)
    except cv2.error:
        count, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8,
                                                                   ltype=cv2.CV_32S)
    return count, labels, stats


def despeckle(image: np.ndarray, dpi: int) -> tuple[np.ndarray, int]:
    """Whiten isolated specks of dust and toner; returns the cleaned page and the specks removed.

    A speck is a tiny blob with no other ink near it. Diacritics are just as tiny but always sit
    within a letter's height of their letter, so they survive.
    """
    gray = to_gray(image)
    _, ink = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    count, labels, stats = _components(ink)
    if count <= 1:
        return image, 0
    tiny = np.zeros(count, np.uint8)
    tiny[1:][stats[1:, cv2.CC_STAT_AREA] <= max(4, int((dpi / 100) ** 2 * 6))] = 255
    if not tiny.any():
        return image, 0
    # Labels are looked up at the ink's pixels only, a tenth of the page or less: a look-up by
    # label over the whole page cost 0.02 CPU s/page, three of them 0.04 (issue 15).
    xy = cv2.findNonZero(ink).reshape(-1, 2)  # (x, y) of the ink, in raster order
    at_ink = xy[:, 1].astype(np.intp) * labels.shape[1] + xy[:, 0]
    ink_blob = labels.ravel()[at_ink]
    in_tiny = tiny[ink_blob] > 0
    where, blob = at_ink[in_tiny], ink_blob[in_tiny]  # the tiny blobs' pixels and their blobs
    text = ink.copy()
    text.ravel()[where] = 0
    reach = max(3, dpi // 12)  # about 2 mm: more than a diacritic's or a hyphen's gap to text
    # a square reach: OpenCV dilates with a rectangle in two cheap 1-D passes
    near_text = cv2.dilate(text, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8))
    # a blob is kept whole when any of its pixels is near text, never trimmed
    keep = np.zeros(count, bool)
    keep[blob[near_text.ravel()[where] > 0]] = True
    speck = ~keep[blob]
    out = image.copy()
    out.reshape(-1, *image.shape[2:])[where[speck]] = 255
    return out, int(np.count_nonzero(tiny)) - int(np.count_nonzero(keep))


def _ink(gray: np.ndarray, dpi: int, target_dpi: int) -> np.ndarray:
    """The page's ink as 0/1 at ``target_dpi`` (Otsu)."""
    _, ink = cv2.threshold(scaled(gray, dpi, target_dpi), 0, 1,
                           cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    return ink


def _turned(ink: np.ndarray, angle: float) -> np.ndarray:
    h, w = ink.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    return cv2.warpAffine(ink, matrix, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)


# Width of the vertical strips whose row sums are shifted to sum the rows of the page turned
# (pixels at SKEW_DPI): a line tilted by the largest skew moves under half a pixel inside one.
# On 60 benchmark pages the skew found is then as near the truth as with the page turned (mean
# 0.012, max 0.03 degrees); 16 px strips erred by up to 0.14.
STRIP_PX = 4


class _Sheared:
    """Row sums of a page's ink turned by small angles, without turning the page.

    A turn by a few degrees moves each column up or down by its distance from the centre times
    the angle's sine (OpenCV's ``warpAffine`` about the centre, the ``cosine`` scaling of rows
    aside). Summing the page's row profile per vertical strip once, then shifting each strip's
    profile by that much (to the nearest row) and adding, gives the turned page's row profile
    for a fraction of a rotation: the skew searches try about 100 angles a page, and the
    rotations were half the cleanup's CPU (0.15 of 0.30 s/page on the benchmark).

    Neighbouring strips moved by the same whole number of rows are moved as one, their sum
    taken from running sums over the strips: an A4 page's 206 strips move in 73 groups at
    5 degrees, 9 at half a degree, 3 near level: the profiles cost about a third of the CPU
    one move per strip took, the whole cleanup 0.38 CPU s/page instead of 0.45 (issue 15). The
    sums are of whole pixel counts, so exact in any order: the profile is the very one
    strip-by-strip shifting gives.
    """

    def __init__(self, ink: np.ndarray, max_angle: float) -> None:
        h, w = ink.shape
        strips = max(1, w // STRIP_PX)
        edges = np.linspace(0, w, strips + 1).round().astype(int)
        self.offsets = (edges[:-1] + edges[1:]) / 2 - w / 2
        # every strip's rows, with room to move by the largest shift each way: the room for
        # 45 degrees made every profile half again as long at 5 (issue 15)
        self.margin = int(np.ceil(w / 2 * np.sin(np.radians(min(45.0, max_angle))))) + 2
        profiles = np.zeros((strips + 1, h + 2 * self.margin), np.float64)
        profiles[1:, self.margin:self.margin + h] = np.add.reduceat(
            ink, edges[:-1], axis=1, dtype=np.float64).T
        # strips n..m-1 together are running[m] - running[n]
        self.running = np.cumsum(profiles, axis=0)
        self.height = h

    def rows(self, angle: float) -> np.ndarray:
        """The row profile of the ink turned ``angle`` degrees counter-clockwise."""
        size = self.running.shape[1]
        out = np.zeros(size)
        # Whole rows, as the nearest-neighbour rotation moved them: sharing a strip's rows out
        # between two rows blurs the profile at every angle but 0, which then wins whenever
        # the page is within a tenth of a degree of level (a bias the benchmark measured).
        shifts = np.rint(-np.sin(np.radians(angle)) * self.offsets).astype(int)
        # the offsets ascend, so the shifts are monotonic: strips moved alike are neighbours
        bounds = [0, *(np.flatnonzero(np.diff(shifts)) + 1).tolist(), len(shifts)]
        for first, end in itertools.pairwise(bounds):
            shift = int(shifts[first])
            profile = self.running[end] - self.running[first]
            start, stop = max(0, shift), min(size, size + shift)
            out[start:stop] += profile[start - shift:stop - shift]
        return out


def _profile_variance(sheared: _Sheared, angle: float) -> float:
    # over the page's own height: the margins' zeros would add the same to every angle
    rows = sheared.rows(angle)
    return float(np.var(rows[sheared.margin:sheared.margin + sheared.height]))


def _line_contrast(sheared: _Sheared, angle: float) -> float:
    """How strongly the rows alternate between text line and gap at ``angle``.

    The row profile is band-passed (pixel noise and the page's block layout removed) so a
    page turned on its side, whose rows cut across every line, scores several times lower.
    """
    # filtered as one row, not one column: OpenCV's horizontal pass is five times faster on it
    # (63 against 322 us an angle, 13 of the orientation's 45 CPU ms a page, issue 15)
    profile = sheared.rows(angle)[sheared.margin:sheared.margin + sheared.height].reshape(1, -1)
    return float(np.var(cv2.GaussianBlur(profile, (0, 1), 1.0)
                        - cv2.GaussianBlur(profile, (0, 1), 20.0)))


def _search(ink: np.ndarray, score: Callable[[_Sheared, float], float], max_skew: float,
            steps: tuple[tuple[float, float], ...]) -> tuple[float, float]:
    """The angle (counter-clockwise turn making lines level) with the best score, coarse to fine."""
    # no angle tried lies further out than each stage's span and step beyond the range
    sheared = _Sheared(ink, max_skew + sum(step + span for step, span in steps))
    best, value = 0.0, score(sheared, 0.0)
    span = max_skew
    for step, next_span in steps:
        for angle in np.arange(best - span, best + span + step / 2, step):
            candidate = score(sheared, float(angle))
            if candidate > value:
                best, value = float(angle), candidate
        span = next_span
    return best, value


def skew_by_projection(gray: np.ndarray, dpi: int, max_skew: float) -> float:
    """Text lines give the row sums of a binarised page their highest variance when the lines
    are exactly horizontal; a coarse search over the allowed range is refined around the best."""
    ink = _ink(gray, dpi, SKEW_DPI)
    if ink.mean() < 0.005:  # blank page: nothing to align
        return 0.0
    best, _ = _search(ink, _profile_variance, max_skew, ((0.5, 0.5), (0.1, 0.1), (0.02, 0.0)))
    return -best


def skew_by_hough(gray: np.ndarray, dpi: int, max_skew: float) -> float:
    """Median angle of the longest straight edges of text lines smeared into bars."""
    ink = _ink(gray, dpi, SKEW_DPI) * 255
    bars = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (9, 1)))
    edges = cv2.morphologyEx(bars, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    lines = cv2.HoughLines(edges, 1, np.pi / 1800, threshold=int(ink.shape[1] * 0.25),
                           min_theta=np.radians(90 - max_skew), max_theta=np.radians(90 + max_skew))
    if lines is None:
        return 0.0
    return 90.0 - float(np.median(np.degrees(lines[:50, 0, 1])))


def skew_by_line_fit(gray: np.ndarray, dpi: int, max_skew: float) -> float:
    """Width-weighted median slope of least-squares lines through each smeared text line."""
    ink = _ink(gray, dpi, OSD_DPI) * 255
    bars = cv2.morphologyEx(ink, cv2.MORPH_CLOSE,
                            cv2.getStructuringElement(cv2.MORPH_RECT, (15, 1)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(bars, connectivity=8)
    angles, weights = [], []
    for i in range(1, count):
        x, y, w, h, _ = stats[i]
        if w < 60 or w < 4 * h:
            continue
        ys, xs = np.nonzero(labels[y:y + h, x:x + w] == i)
        vx, vy, _, _ = cv2.fitLine(np.column_stack([xs, ys]).astype(np.float32),
                                   cv2.DIST_L2, 0, 0.01, 0.01).ravel()
        angle = (np.degrees(np.arctan2(vy, vx)) + 90) % 180 - 90
        if abs(angle) <= max_skew:
            angles.append(-angle)
            weights.append(w)
    if not angles:
        return 0.0
    order = np.argsort(angles)
    cumulative = np.cumsum(np.asarray(weights)[order])
    return float(np.asarray(angles)[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


# Measured by ``digitize bench`` on generated pages (see README): projection is the most
# accurate, the other two are cheaper and kept for comparison and for profiles that need speed.
SKEW_METHODS: dict[str, Callable[[np.ndarray, int, float], float]] = {
    "projection": skew_by_projection,
    "hough": skew_by_hough,
    "line_fit": skew_by_line_fit,
}
# Below this a page is left as it is: resampling blurs the print more than such a skew harms.
SKEW_DEAD_BAND = 0.1


def detect_skew(gray: np.ndarray, dpi: int, max_skew: float, method: str = "projection") -> float:
    """Skew in degrees, counter-clockwise positive; 0 inside the dead band."""
    skew = SKEW_METHODS[method](gray, dpi, max_skew)
    return round(skew, 2) if abs(skew) >= SKEW_DEAD_BAND else 0.0


# Orientation without Tesseract: which way the lines run, then which side is up.
# Which way the lines run is read at 50 dpi: at 100 dpi it cost 40 % more CPU (96 against 56 ms
# a page) for the same turns on 60 benchmark pages of every kind (all right, none undecided); the
# weakest page's lines still stood out 3.6 times against the other axis (4.5 at 100 dpi), where
# under 2 sends a page to OSD (issue 15).
LINES_DPI = 50
UPRIGHT_MIN_SIDE_RATIO = 2.0
UPRIGHT_MIN_LINES = 3
UPRIGHT_MIN_SCORE = 0.12


def _upright_score(ink: np.ndarray) -> tuple[float, int]:
    """+1..-1: how much more ink sits above each line's x-height band than below it, and the
    number of lines measured. Latin letters rise above the band (capitals, b d h k l t) more than
    they drop below it (g p q y), and Vietnamese adds its tone marks above: upright text scores
    well above zero, text upside down as far below."""
    profile = ink.sum(axis=1, dtype=np.float64)
    on = np.concatenate([[False], profile > 0.02 * profile.max(), [False]])
    edges = np.flatnonzero(np.diff(on.astype(np.int8)))
    above = below = 0.0
    lines = 0
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        run = profile[start:stop]
        if len(run) < 4:
            continue
        core = np.flatnonzero(run >= 0.5 * run.max())
        if core[-1] - core[0] + 1 != len(core):  # two lines touching: no single band
            continue
        above += run[:core[0]].sum()
        below += run[core[-1] + 1:].sum()
        lines += 1
    return ((above - below) / (above + below) if above + below else 0.0), lines


def orientation_from_layout(gray: np.ndarray, dpi: int, max_skew: float) -> int | None:
    """Clockwise turn (0/90/180/270) that makes a text page upright, or None when unsure.

    Lines run along the axis whose row profile alternates most sharply (at the best skew);
    the side that is up is the one the ascenders and tone marks point to. About 50 ms where
    Tesseract OSD takes 0.6 s; pages it cannot decide (few lines, tables, photos) go to OSD.
    """
    ink = _ink(gray, dpi, LINES_DPI)
    if ink.mean() < 0.005:
        return None
    coarse = ((0.5, 0.0),)
    level, along = _search(ink, _line_contrast, max_skew, coarse)
    sideways = np.ascontiguousarray(np.rot90(ink))
    level_side, across = _search(sideways, _line_contrast, max_skew, coarse)
    if max(along, across) < UPRIGHT_MIN_SIDE_RATIO * max(1e-9, min(along, across)):
        return None
    on_side = across > along
    fine = _ink(gray, dpi, OSD_DPI)
    if on_side:
        fine = np.ascontiguousarray(np.rot90(fine))  # a quarter turn counter-clockwise
    score, lines = _upright_score(_turned(fine, level_side if on_side else level))
    if lines < UPRIGHT_MIN_LINES or abs(score) < UPRIGHT_MIN_SCORE:
        return None
    return ((270 if on_side else 0) + (0 if score > 0 else 180)) % 360


# OpenCV's turns, not numpy's rot90 copied out: the same pixels, 3–17 times less CPU (a quarter
# turn of a colour 300 dpi page: 28 against 103 ms, issue 15)
_TURNS = {1: cv2.ROTATE_90_CLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_COUNTERCLOCKWISE}


def rotate_bound(image: np.ndarray, quarter_turns_cw: int) -> np.ndarray:
    turns = quarter_turns_cw % 4
    return cv2.rotate(image, _TURNS[turns]) if turns else np.ascontiguousarray(image)


def deskew(image: np.ndarray, skew: float) -> np.ndarray:
    if abs(skew) < 0.01:
        return image
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), -skew, 1.0)
    white = (255,) * (image.shape[2] if image.ndim == 3 else 1)
    # Cubic, though it costs three times bilinear's CPU (0.10 against 0.03 s on a grey 300 dpi
    # page, issue 15): bilinear read the benchmark's pages as well, but lost the date of a
    # typewritten cover page in tests/test_stack_batch.py
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=white)


class Flag:
    """Per-page quality flags, stored with the page in the warehouse."""

    blank = "blank"
    too_dark = "too_dark"
    too_light = "too_light"
    blurred = "blurred"
    low_dpi = "low_dpi"
    low_ocr_confidence = "low_ocr_confidence"


QUALITY_DPI = 150
MIN_DPI = 200
BLANK_INK_SHARE = 0.002
INK_CONTRAST = 40  # grey levels below the paper that count as ink
DARK_PAPER = 150  # paper (median grey) darker than this: the scan is too dark
FAINT_PRINT = 100  # the darkest print lighter than this: the scan is too light / faded
# mean |Laplacian| on ink at 150 dpi: ~150 sharp, ~90 for a 1.5 px blur at 300 dpi, ~45 at 2.5 px
MIN_EDGE_STRENGTH = 60


class _Levels:
    """numpy's median and (linear) percentiles of a uint8 image, from its histogram.

    Written out because numpy sorts a copy of the page for each (20 of the 27 ms the quality
    flags cost a page, issue 15), where the histogram gives every order statistic at once; the
    arithmetic is numpy's own, so the values are the same to the bit."""

    def __init__(self, image: np.ndarray) -> None:
        self.size = image.size
        self.cumulative = np.cumsum(np.bincount(image.ravel(), minlength=256))

    def _nth(self, n: int) -> np.uint8:
        """The value at 0-based position ``n`` of the sorted pixels."""
        return np.uint8(np.searchsorted(self.cumulative, n, side="right"))

    def median(self) -> float:
        middle = (self.size - 1) // 2
        if self.size % 2:
            return float(self._nth(middle))
        return float(np.mean([self._nth(middle), self._nth(middle + 1)]))

    def percentile(self, q: float) -> float:
        # numpy's "linear" method: between the values at floor and ceil of q (n - 1), and its
        # _lerp, which counts back from the upper value past the half way
        at = np.float64(q / 100) * (self.size - 1)
        below = int(np.floor(at))
        low, high = self._nth(below), self._nth(min(below + 1, self.size - 1))
        t = at - below
        step = np.subtract(high, low)
        return float(high - step * (1 - t) if t >= 0.5 else low + step * t)


def quality_view(image: np.ndarray, dpi: int) -> np.ndarray:
    """A page's colour-dropout view at ``QUALITY_DPI``: what its quality flags are measured on,
    and its fingerprint (:func:`pipeline.checks.duplicates.phash`) is taken from."""
    return scaled(dropout(image), dpi, QUALITY_DPI)


def assess(image: np.ndarray, dpi: int, view: np.ndarray | None = None) -> list[str]:
    """Quality flags of a cleaned page, measured on its :func:`quality_view` (``view``, when
    it is at hand).

    Ink is what is clearly darker than the paper, so faded print still counts as text; sharpness
    is measured after stretching the page's contrast, so faint print is not also called blurred.
    """
    flags = [Flag.low_dpi] if dpi < MIN_DPI else []
    small = quality_view(image, dpi) if view is None else view
    levels = _Levels(small)
    paper = levels.median()
    ink = small < paper - INK_CONTRAST
    if ink.mean() < BLANK_INK_SHARE:
        return [*flags, Flag.blank]
    darkest = levels.percentile(0.5)
    if paper < DARK_PAPER:
        flags.append(Flag.too_dark)
    elif darkest > FAINT_PRINT:
        flags.append(Flag.too_light)
    stretched = np.clip((small.astype(np.float32) - darkest) * (255 / max(1.0, paper - darkest)),
                        0, 255)
    edges = np.abs(cv2.Laplacian(stretched, cv2.CV_32F))[ink]
    if float(edges.mean()) < MIN_EDGE_STRENGTH:
        flags.append(Flag.blurred)
    return flags


def orientation_by_osd(gray: np.ndarray, dpi: int) -> tesseract.Orientation:
    return tesseract.detect_orientation(scaled(gray, dpi, OSD_DPI))


def _orientation(image: np.ndarray, dpi: int, profile: CleanupProfile) -> tuple[int, str]:
    """Clockwise turn to upright and what decided it: the layout, Tesseract OSD, or nothing
    sure (the page is left as scanned)."""
    gray = to_gray(image)
    found = orientation_from_layout(gray, dpi, profile.max_skew)
    if found is not None:
        return found, "layout"
    osd = orientation_by_osd(gray, dpi)
    if osd.confidence >= profile.orientation_min_confidence:
        return osd.rotate, "osd"
    return 0, "none"


def _one_channel(image: np.ndarray) -> np.ndarray:
    """``image`` as 2-D when its three channels are equal (a grey scan read as RGB)."""
    if image.ndim == 3 and all(cv2.countNonZero(cv2.absdiff(image[..., 0], image[..., c])) == 0
                               for c in (1, 2)):
        return np.ascontiguousarray(image[..., 0])
    return image


def clean_page(image: np.ndarray, dpi: int, profile: CleanupProfile) -> CleanupResult:
    image = _one_channel(image)
    border_removed = False
    if profile.remove_dark_border:
        image, border_removed = remove_dark_border(image)
    rotation, orientation_by = 0, "off"
    if profile.orientation:
        rotation, orientation_by = _orientation(image, dpi, profile)
        image = rotate_bound(image, rotation // 90)
    if profile.flatten_illumination:
        image = flatten_illumination(image, dpi)
    if profile.despeckle:
        image, _ = despeckle(image, dpi)
    skew = 0.0
    if profile.deskew:
        skew = detect_skew(to_gray(image), dpi, profile.max_skew, profile.skew_method)
        image = deskew(image, skew)
    return CleanupResult(image, rotation, skew, orientation_by, border_removed)
