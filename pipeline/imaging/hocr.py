"""One page of Tesseract's hOCR (``<work>/hocr/<page:06d>_ocr_hocr.hocr``) as plain data: its
lines in reading order, with their words, boxes and confidences.

Read by OCRmyPDF's hOCR parser, a well-kept one; this module only turns its tree into frozen
values of ours. Coordinates are pixels of the image Tesseract read, the page's OCR view
(:func:`pipeline.imaging.ocr.ocr_view`), origin at the top left.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ocrmypdf.hocrtransform import BoundingBox, HocrParseError, HocrParser


class UnreadableHocrError(Exception):
    """Tesseract's output for a page cannot be read as hOCR (cut short by a crash or a full disk):
    the record is to be run again, which writes it anew."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"OCR output unreadable: {path} is not valid hOCR ({problem}). "
                         "Run the record again.")
        self.path = path


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    right: int
    bottom: int


@dataclass(frozen=True)
class Baseline:
    """The line the letters sit on: ``y = slope * x + offset``, from the bottom left corner of the
    line's box (hOCR's convention)."""

    slope: float
    offset: float


@dataclass(frozen=True)
class Word:
    text: str  # NFC
    box: Box
    confidence: int | None  # Tesseract's x_wconf, 0-100


@dataclass(frozen=True)
class Line:
    box: Box
    baseline: Baseline | None
    words: tuple[Word, ...]

    @property
    def text(self) -> str:
        return " ".join(word.text for word in self.words)


@dataclass(frozen=True)
class Page:
    width: int
    height: int
    dpi: int | None  # the resolution Tesseract was told (scan_res), if the hOCR says
    lines: tuple[Line, ...]  # in reading order; none on a page without text

    @property
    def words(self) -> tuple[Word, ...]:
        return tuple(word for line in self.lines for word in line.words)


def read_page(path: Path) -> Page:
    """The first page of the hOCR file ``path``; UnreadableHocrError if it is not hOCR."""
    try:
        root = HocrParser(path).parse()
    except HocrParseError as exc:
        raise UnreadableHocrError(path, str(exc)) from exc

    def box(bbox: BoundingBox | None, what: str) -> Box:
        if bbox is None:
            raise UnreadableHocrError(path, f"{what} without a bbox")
        return Box(round(bbox.left), round(bbox.top), round(bbox.right), round(bbox.bottom))

    lines = []
    for line in root.lines:
        words = tuple(
            # the parser's NFKC is NFC as well, but that is its own choice, not its contract
            Word(unicodedata.normalize("NFC", word.text), box(word.bbox, f"word {word.text!r}"),
                 None if word.confidence is None else round(word.confidence * 100))
            for word in line.words)
        baseline = None if line.baseline is None else Baseline(line.baseline.slope,
                                                                line.baseline.intercept)
        lines.append(Line(box(line.bbox, "a line"), baseline, words))
    page = box(root.bbox, "the page")
    return Page(page.right - page.left, page.bottom - page.top,
                None if root.dpi is None else round(root.dpi), tuple(lines))
