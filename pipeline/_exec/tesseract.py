"""Tesseract: is it installed with the languages we need, page orientation (OSD), a page's text."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline._exec import INSTALL_HINT, run
from pipeline.errors import ToolMissingError

# Tesseract's OpenMP threads spin while they wait: on one page read by itself (a draft, OSD) two
# threads took 2.2x the CPU of one, and no less wall time on cores that OCR workers share
ONE_THREAD = {"OMP_THREAD_LIMIT": "1"}

# Tesseract's "single column of text of variable sizes": measured on the benchmark's hard pages
# (issue 15) 14 % fewer character errors than its default (3), at no extra time; it reads a
# two-column header in order and list dashes as dashes
PAGE_SEGMENTATION_MODE = 4


def version() -> str:
    out = run(["tesseract", "--version"]).stdout.decode()
    return out.splitlines()[0].split()[-1]


def languages() -> set[str]:
    out = run(["tesseract", "--list-langs"]).stdout.decode()
    return {line.strip() for line in out.splitlines()[1:] if line.strip()}


def probe(required: list[str]) -> str:
    """Tesseract's version, or ToolMissingError naming the missing language data."""
    missing = sorted({*required, "osd"} - languages())
    if missing:
        packages = " ".join(f"tesseract-ocr-{lang}" for lang in missing)
        raise ToolMissingError(
            f"Tesseract language data {missing} is missing. Install {packages}. {INSTALL_HINT}"
        )
    return version()


@dataclass(frozen=True)
class Orientation:
    rotate: int  # degrees to turn the page clockwise to make it upright
    confidence: float


def parse_osd(text: str) -> Orientation | None:
    """The orientation Tesseract's ``--psm 0`` output names, or None if it names none."""
    rotate = re.search(r"Rotate:\s*(\d+)", text)
    if not rotate:
        return None
    conf = re.search(r"Orientation confidence:\s*([\d.]+)", text)
    return Orientation(int(rotate[1]) % 360, float(conf[1]) if conf else 0.0)


def osd(gray: np.ndarray, *, dpi: int | None = None, timeout: float = 60) -> Orientation | None:
    """Tesseract OSD on a grayscale page (told its resolution when ``dpi`` is given); None where
    Tesseract cannot tell."""
    ok, png = cv2.imencode(".png", gray)
    if not ok:
        raise ValueError("cannot encode page for OSD")
    args = ["tesseract", "stdin", "stdout", "--psm", "0", *(["--dpi", str(dpi)] if dpi else [])]
    try:
        proc = run(args, stdin=png.tobytes(), timeout=timeout, env=ONE_THREAD)
    except subprocess.CalledProcessError:
        # Tesseract exits non-zero on pages with too few characters for OSD (blank, photos).
        return None
    return parse_osd(proc.stdout.decode("utf-8", "replace"))


def detect_orientation(gray: np.ndarray, timeout: float = 60) -> Orientation:
    """Tesseract OSD on a grayscale page; a page with too little text reads as upright."""
    return osd(gray, timeout=timeout) or Orientation(0, 0.0)


def read_text(image: Path, languages: Sequence[str], psm: int = PAGE_SEGMENTATION_MODE,
              timeout: float = 600) -> str:
    """The text Tesseract reads on one page image, with ``languages`` in page segmentation mode
    ``psm``."""
    args = ["tesseract", str(image), "-", "-l", "+".join(languages), "--psm", str(psm)]
    return run(args, timeout=timeout, env=ONE_THREAD).stdout.decode("utf-8", "replace")


def read_page(image: Path, languages: Sequence[str], prefix: Path,
              psm: int = PAGE_SEGMENTATION_MODE, timeout: float = 600) -> None:
    """Tesseract's reading of one page image, as the archive lays it over the page
    (:func:`pipeline.imaging.ocr.ocr_record`), from one run: an invisible text-only PDF page, the
    text and the hOCR (its lines and words, their boxes and confidences), at ``prefix`` +
    ``.pdf``, ``.txt`` and ``.hocr``."""
    args = ["tesseract", "-l", "+".join(languages), "--psm", str(psm), "-c", "textonly_pdf=1",
            str(image), str(prefix), "pdf", "txt", "hocr"]
    run(args, timeout=timeout, env=ONE_THREAD)
