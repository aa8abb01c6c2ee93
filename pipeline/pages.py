"""Reading page images out of scanner files, one page at a time.

Multi-page TIFFs and image-only PDFs are opened per page (TIFF: seek; PDF: poppler renders just
the requested page), so a 300-page file never sits whole in memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pikepdf
from pdf2image import convert_from_path
from PIL import Image, ImageSequence, UnidentifiedImageError

SUPPORTED_SUFFIXES = {".tif", ".tiff", ".jpg", ".jpeg", ".png", ".pdf"}

# Scans are large by nature; Pillow's decompression-bomb guard is meant for untrusted web input.
Image.MAX_IMAGE_PIXELS = 400_000_000


class PageReadError(Exception):
    """A page file cannot be decoded (truncated, not an image, encrypted PDF)."""


def page_count(path: Path) -> int:
    try:
        if path.suffix.lower() == ".pdf":
            with pikepdf.open(path) as pdf:
                return len(pdf.pages)
        with Image.open(path) as img:
            return sum(1 for _ in ImageSequence.Iterator(img))
    except (OSError, UnidentifiedImageError, pikepdf.PdfError, ValueError) as exc:
        raise PageReadError(f"{path.name}: {exc}") from exc


def _pdf_page_dpi(path: Path, page_in_file: int, fallback_dpi: int) -> int:
    """The resolution of the scan embedded in an image-only PDF page, from its size on paper."""
    with pikepdf.open(path) as pdf:
        page = pdf.pages[page_in_file - 1]
        images = list(page.images.values())
        if not images:
            return fallback_dpi
        width_pt = float(page.mediabox[2]) - float(page.mediabox[0])
        return max(72, round(int(images[0].Width) / (width_pt / 72)))


def load_page(path: Path, page_in_file: int, fallback_dpi: int) -> tuple[np.ndarray, int]:
    """Page ``page_in_file`` (1-based) of ``path`` as an RGB uint8 array, and its dpi."""
    try:
        if path.suffix.lower() == ".pdf":
            dpi = _pdf_page_dpi(path, page_in_file, fallback_dpi)
            (img,) = convert_from_path(path, dpi=dpi, first_page=page_in_file, last_page=page_in_file)
            return np.asarray(img.convert("RGB")), dpi
        with Image.open(path) as img:
            img.seek(page_in_file - 1)
            dpi_info = img.info.get("dpi")
            dpi = round(float(dpi_info[0])) if dpi_info and dpi_info[0] else fallback_dpi
            # JPEGs without density report 1 or 72 dpi; a scan is never that coarse.
            if dpi < 100:
                dpi = fallback_dpi
            return np.asarray(img.convert("RGB")), dpi
    except (OSError, UnidentifiedImageError, pikepdf.PdfError, ValueError, EOFError) as exc:
        raise PageReadError(f"{path.name} page {page_in_file}: {exc}") from exc
