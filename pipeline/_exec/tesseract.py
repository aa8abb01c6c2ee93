"""Tesseract: is it installed with the languages we need, and page orientation (OSD)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline._exec import INSTALL_HINT, run
from pipeline.errors import ToolMissingError

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


def detect_orientation(gray: np.ndarray, timeout: float = 60) -> Orientation:
    """Tesseract OSD on a grayscale page; a page with too little text reads as upright."""
    ok, png = cv2.imencode(".png", gray)
    if not ok:
        raise ValueError("cannot encode page for OSD")
    try:
        proc = run(["tesseract", "stdin", "stdout", "--psm", "0"], stdin=png.tobytes(),
                   timeout=timeout)
    except subprocess.CalledProcessError:
        # Tesseract exits non-zero on pages with too few characters for OSD (blank, photos).
        return Orientation(0, 0.0)
    text = proc.stdout.decode()
    rotate = re.search(r"Rotate:\s*(\d+)", text)
    conf = re.search(r"Orientation confidence:\s*([\d.]+)", text)
    if not rotate:
        return Orientation(0, 0.0)
    return Orientation(int(rotate[1]) % 360, float(conf[1]) if conf else 0.0)
