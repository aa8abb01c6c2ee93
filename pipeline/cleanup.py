"""Page cleanup with OpenCV: dark scanner border, orientation (0/90/180/270), uneven lighting,
specks, deskew; and the page's quality flags.

Pages are RGB uint8 arrays. The cleaned page keeps its colours: a result's red seal is part of
the record. Angles follow one convention: ``skew`` is how far the scan is turned
counter-clockwise, ``rotation`` how far it must be turned clockwise to stand upright.
"""

from __future__ import annotations

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
    orientation_confidence: float
    border_removed: bool


def dropout(image: np.ndarray) -> np.ndarray:
    """Grey view of the page in which coloured ink is light: the lightest channel per pixel."""
    return image.max(axis=2) if image.ndim == 3 else image


def to_gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def _scaled(gray: np.ndarray, dpi: int, target_dpi: int) -> np.ndarray:
    factor = min(1.0, target_dpi / dpi)
    if factor >= 1.0:
        return gray
    return cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)


def remove_dark_border(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """Paint white the dark bands a scanner bed leaves where the paper did not cover it."""
    dark = to_gray(image) < DARK
    rows, cols = dark.mean(axis=1), dark.mean(axis=0)
    out = image.copy()
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
                found = True
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


def despeckle(image: np.ndarray, dpi: int) -> tuple[np.ndarray, int]:
    """Whiten isolated specks of dust and toner; returns the cleaned page and the specks removed.

    A speck is a tiny blob with no other ink near it. Diacritics are just as tiny but always sit
    within a letter's height of their letter, so they survive.
    """
    gray = to_gray(image)
    _, ink = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    if count <= 1:
        return image, 0
    areas = stats[1:, cv2.CC_STAT_AREA]
    tiny = areas <= max(4, int((dpi / 100) ** 2 * 6))
    if not tiny.any():
        return image, 0
    big = np.zeros(count, np.uint8)
    big[1:][~tiny] = 255
    reach = max(3, dpi // 12)  # about 2 mm: more than a diacritic's or a hyphen's gap to text
    near_text = cv2.dilate(big[labels], cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))) > 0
    is_tiny = np.zeros(count, bool)
    is_tiny[1:] = tiny
    # a blob is kept whole when any of its pixels is near text, never trimmed
    keep = np.zeros(count, bool)
    keep[np.unique(labels[near_text & is_tiny[labels]])] = True
    specks = is_tiny & ~keep
    out = image.copy()
    out[specks[labels]] = 255
    removed = int(specks.sum())
    return out, removed


def detect_skew(gray: np.ndarray, dpi: int, max_skew: float) -> float:
    """Skew in degrees (counter-clockwise positive) by the sharpest horizontal projection profile.

    Text lines give the row sums of a binarised page their highest variance when the lines are
    exactly horizontal; a coarse search over the allowed range is refined around the best angle.
    """
    small = _scaled(gray, dpi, SKEW_DPI)
    _, ink = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    if ink.mean() < 0.5:  # blank page: nothing to align
        return 0.0
    h, w = ink.shape
    centre = (w / 2, h / 2)

    def sharpness(angle: float) -> float:
        matrix = cv2.getRotationMatrix2D(centre, angle, 1.0)
        turned = cv2.warpAffine(ink, matrix, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
        return float(np.var(turned.sum(axis=1, dtype=np.float64)))

    best = 0.0
    for step, span in ((0.5, max_skew), (0.1, 0.5), (0.02, 0.1)):
        candidates = np.arange(best - span, best + span + step / 2, step)
        best = float(max(candidates, key=sharpness))
    # The correcting rotation is the opposite of the skew.
    return round(-best, 2)


def rotate_bound(image: np.ndarray, quarter_turns_cw: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(image, k=-quarter_turns_cw))


def deskew(image: np.ndarray, skew: float) -> np.ndarray:
    if abs(skew) < 0.01:
        return image
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), -skew, 1.0)
    white = (255,) * (image.shape[2] if image.ndim == 3 else 1)
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


def assess(image: np.ndarray, dpi: int) -> list[str]:
    """Quality flags of a cleaned page, measured on its colour-dropout view at 150 dpi.

    Ink is what is clearly darker than the paper, so faded print still counts as text; sharpness
    is measured after stretching the page's contrast, so faint print is not also called blurred.
    """
    flags = [Flag.low_dpi] if dpi < MIN_DPI else []
    small = _scaled(dropout(image), dpi, QUALITY_DPI)
    paper = float(np.median(small))
    ink = small < paper - INK_CONTRAST
    if ink.mean() < BLANK_INK_SHARE:
        return [*flags, Flag.blank]
    darkest = float(np.percentile(small, 0.5))
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


def clean_page(image: np.ndarray, dpi: int, profile: CleanupProfile) -> CleanupResult:
    border_removed = False
    if profile.remove_dark_border:
        image, border_removed = remove_dark_border(image)
    rotation, confidence = 0, 0.0
    if profile.orientation:
        found = tesseract.detect_orientation(_scaled(to_gray(image), dpi, OSD_DPI))
        if found.confidence >= profile.orientation_min_confidence:
            rotation, confidence = found.rotate, found.confidence
            image = rotate_bound(image, rotation // 90)
    if profile.flatten_illumination:
        image = flatten_illumination(image, dpi)
    if profile.despeckle:
        image, _ = despeckle(image, dpi)
    skew = 0.0
    if profile.deskew:
        skew = detect_skew(to_gray(image), dpi, profile.max_skew)
        image = deskew(image, skew)
    return CleanupResult(image, rotation, skew, confidence, border_removed)
