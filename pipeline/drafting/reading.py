"""A record's first page read as the OCR stage reads it: loaded, cleaned, its OCR view
(:func:`pipeline.imaging.ocr.ocr_view`) given to Tesseract, which answers in hOCR: lines, words,
their boxes and confidences (:mod:`pipeline.imaging.hocr`). The reading is kept for the archive,
which takes it instead of reading the page again (:mod:`pipeline.imaging.readings`). A line of
it can be read again on its own (:meth:`Layout.reread`), as a second opinion on a field."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pipeline._exec import tesseract
from pipeline.config import ScannerProfile
from pipeline.imaging import cleanup, hocr, ocr, readings
from pipeline.intake import pages

SINGLE_LINE = 7  # Tesseract's page segmentation mode "the image is one text line"
# slants tried on a line read again: upright to well past italics' ~12 degrees
SLANTS = tuple(round(0.04 * k, 2) for k in range(10))


@dataclass(frozen=True)
class Layout:
    page: hocr.Page
    grey: np.ndarray  # the page's grey view, on which the hOCR boxes lie
    dpi: int
    languages: tuple[str, ...]

    def reread(self, box: hocr.Box, scale: float = 1.0) -> str:
        """Tesseract's reading of the line in ``box`` cut out of the grey view (not the
        binarised view the page was read in), leaned back by its own slant first (Tesseract
        reads italic figures better upright: an italic 8 read as 6 reads 8 leaned back), and
        enlarged ``scale`` times."""
        pad = max(2, (box.bottom - box.top) // 2)
        top, left = max(0, box.top - pad), max(0, box.left - pad)
        crop = upright(self.grey[top:box.bottom + pad, left:box.right + pad])
        if scale != 1.0:
            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        dpi = round(self.dpi * scale)
        with tempfile.TemporaryDirectory(prefix="digitize-draft-") as tmp:
            picture = Path(tmp) / "line.png"
            Image.fromarray(crop).save(picture, dpi=(dpi, dpi))
            return tesseract.read_text(picture, list(self.languages), psm=SINGLE_LINE).strip()


def _leaned(image: np.ndarray, slant: float, fill: int) -> np.ndarray:
    """``image`` sheared so that a stroke leaning right by ``slant`` (shift per unit of height)
    stands upright: the top rows stay, lower rows move right."""
    h, w = image.shape[:2]
    shift = int(round(slant * h))
    matrix = np.float32([[1, slant, 0], [0, 1, 0]])
    return cv2.warpAffine(np.pad(image, ((0, 0), (0, shift)), constant_values=fill), matrix,
                          (w + shift, h), flags=cv2.INTER_NEAREST, borderValue=fill)


def upright(line: np.ndarray) -> np.ndarray:
    """A grey line image leaned back by the slant that makes its strokes most vertical: the one
    whose ink falls into the fewest, fullest columns (the sum of squared column counts)."""
    ink = cleanup.binarised(line) == 0
    ink8 = ink.astype(np.uint8)
    best = max(SLANTS, key=lambda s: float(np.square(
        _leaned(ink8, s, 0).sum(axis=0, dtype=np.int64)).sum()))
    return _leaned(line, best, 255) if best else line


def read_layout(path: Path, page_in_file: int, profile: ScannerProfile,
                store: Path | None = None) -> Layout:
    """The OCR layout of page ``page_in_file`` of ``path``; PageReadError if it cannot be read.
    Tesseract's reading is kept in ``store`` (:mod:`pipeline.imaging.readings`) for the archive
    to take when the page is archived; without one it is dropped."""
    image, dpi = pages.load_page(path, page_in_file, profile.fallback_dpi)
    cleaned = cleanup.clean_page(image, dpi, profile.cleanup).image
    grey = ocr.grey_view(cleaned, profile.ocr.colour_dropout)
    view, view_dpi = ocr.ocr_view(cleaned, dpi, profile.ocr.colour_dropout)
    with tempfile.TemporaryDirectory(prefix="digitize-draft-") as tmp:
        # a TIFF keeps the resolution, which Tesseract reads from the file
        picture = Path(tmp) / "view.tif"
        ocr.save_view(view, view_dpi, picture)
        reading = readings.read(picture, profile.languages, store or Path(tmp) / "store")
        return Layout(hocr.read_page(reading.with_suffix(".hocr")), grey, view_dpi,
                      tuple(profile.languages))
