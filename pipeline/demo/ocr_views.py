"""The benchmark pages as the OCR candidates see them: the OCR view the pipeline writes, the grey
view it is made from, and the views candidates derive from that one (binarised, upscaled,
show-through or seals whitened, the archived page rendered again)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pipeline.imaging import cleanup, compose


def save_view(image: np.ndarray, dpi: int, path: Path) -> None:
    """As ``ocr.write_view`` saves: an uncompressed TIFF that keeps the dpi."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, dpi=(dpi, dpi))


@dataclass
class Page:
    n: int
    dpi: int
    view_path: Path  # the OCR view ocr.write_view wrote: what the pipeline reads
    grey_path: Path  # the grey view (ocr.grey_view) it is made from, which candidates vary
    view: np.ndarray  # the grey view
    colour: np.ndarray | None  # the cleaned page, where it has colour (else its grey is the view)


# A candidate's input: the view to read (image, dpi) or None for the page's own view.
ViewFn = Callable[[Page], tuple[np.ndarray, int] | None]


def _odd(n: float) -> int:
    k = max(3, round(n))
    return k if k % 2 else k + 1


def view_grey(page: Page) -> tuple[np.ndarray, int] | None:
    """No colour drop-out: the cleaned page in plain grey (luma)."""
    return None if page.colour is None else (cleanup.to_gray(page.colour), page.dpi)


def view_as_it_is(page: Page) -> tuple[np.ndarray, int] | None:
    """The grey view itself (the pipeline's OCR view before it was binarised)."""
    return None


def view_otsu(page: Page) -> tuple[np.ndarray, int] | None:
    return cleanup.binarised(page.view), page.dpi


def view_otsu_upscaled(page: Page) -> tuple[np.ndarray, int] | None:
    """200 dpi pages upscaled to 300 dpi first, then every page binarised (Otsu)."""
    view, dpi = view_upscaled(page) or (page.view, page.dpi)
    return cleanup.binarised(view), dpi


SAUVOLA_WINDOW_MM = 4.0
SAUVOLA_K = 0.34
SAUVOLA_R = 128.0


def sauvola(gray: np.ndarray, dpi: int, window_mm: float = SAUVOLA_WINDOW_MM, k: float = SAUVOLA_K,
            r: float = SAUVOLA_R) -> np.ndarray:
    """Sauvola's threshold T = m (1 + k (s / R - 1)) over a window, from box filters (neither
    opencv-contrib's ximgproc nor scikit-image is installed)."""
    w = _odd(window_mm / 25.4 * dpi)
    f = gray.astype(np.float32)
    mean = cv2.boxFilter(f, -1, (w, w), borderType=cv2.BORDER_REPLICATE)
    sq = cv2.boxFilter(f * f, -1, (w, w), borderType=cv2.BORDER_REPLICATE)
    std = np.sqrt(np.maximum(sq - mean * mean, 0))
    threshold = mean * (1 + k * (std / r - 1))
    return np.where(f > threshold, 255, 0).astype(np.uint8)


def view_sauvola(page: Page) -> tuple[np.ndarray, int] | None:
    return sauvola(page.view, page.dpi), page.dpi


SHOW_THROUGH_RATIO = 0.4  # light-grey pixels away from any ink, per ink pixel, above this
BACKGROUND = 235
INK = 128
INK_REACH_MM = 0.25  # a letter's grey edge lies this close to its dark core


def shows_through(gray: np.ndarray, dpi: int) -> bool:
    """Many light-grey pixels (150-234) that are not the grey edge of a dark letter (farther
    than 0.25 mm from any pixel below 128): on the bench pages 0.8-1.3 per dark pixel on
    show-through pages and at most 0.11 on the others (tuned on seed 0's pages)."""
    dark = (gray < INK).astype(np.uint8)
    reach = max(1, round(INK_REACH_MM / 25.4 * dpi))
    near = cv2.dilate(dark, cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                                      (2 * reach + 1, 2 * reach + 1)))
    far = np.count_nonzero((gray >= 150) & (gray < BACKGROUND) & (near == 0))
    return far > SHOW_THROUGH_RATIO * max(np.count_nonzero(dark), 1)


def suppress_show_through(gray: np.ndarray, dpi: int) -> tuple[np.ndarray, float | None]:
    """Whiten the reverse side's print where :func:`shows_through`: stretch the page's levels
    so that the Otsu threshold of its non-paper pixels (between the print and the light grey)
    turns white; the print's strokes keep their grey edges. Returns the page (the same array
    where it found nothing to do) and the level, or None."""
    if not shows_through(gray, dpi):
        return gray, None
    ink = gray[gray < BACKGROUND]
    level, _ = cv2.threshold(ink.reshape(1, -1), 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    level = max(float(level), 1.0)
    lut = np.clip(np.arange(256, dtype=np.float32) * 255.0 / level, 0, 255).astype(np.uint8)
    return cv2.LUT(gray, lut), level


def view_show_through(page: Page) -> tuple[np.ndarray, int] | None:
    out, level = suppress_show_through(page.view, page.dpi)
    return None if level is None else (out, page.dpi)


def view_show_through_otsu_upscaled(page: Page) -> tuple[np.ndarray, int] | None:
    """On the pages the show-through test finds: 200 dpi upscaled to 300, then Otsu; the other
    pages' grey view as it is."""
    _, level = suppress_show_through(page.view, page.dpi)
    return None if level is None else view_otsu_upscaled(page)


def view_show_through_otsu(page: Page) -> tuple[np.ndarray, int] | None:
    """Otsu binarisation on the pages the show-through test finds (see
    :func:`suppress_show_through`); the other pages' view as it is."""
    _, level = suppress_show_through(page.view, page.dpi)
    return None if level is None else view_otsu(page)


SEAL_CHROMA = 48  # channel spread of a coloured pixel
SEAL_LIGHT = 128  # its lightest channel above this: coloured ink alone, no print under it


def view_seal_white(page: Page) -> tuple[np.ndarray, int] | None:
    """A stronger drop-out: coloured pixels whose lightest channel is light (a seal or a pen
    stroke with no print under it) turn white; print under the ink stays dark in every channel,
    so it is kept."""
    if page.colour is None:
        return None
    img = page.colour
    lightest = np.maximum(np.maximum(img[..., 0], img[..., 1]), img[..., 2])
    darkest = np.minimum(np.minimum(img[..., 0], img[..., 1]), img[..., 2])
    mask = ((lightest - darkest) > SEAL_CHROMA) & (lightest > SEAL_LIGHT)
    out = page.view.copy()
    out[mask] = 255
    return out, page.dpi


def view_archived_render(page: Page) -> tuple[np.ndarray, int] | None:
    """What OCR read before issue 15: the archived page (compose.page_pdf) rendered again as
    OCRmyPDF's pypdfium rasteriser did, at the page's highest image resolution but 200 dpi at
    least (a mixed page's background is 100 dpi); a black-and-white page rendered in grey, then
    made 1-bit by Pillow (which dithers the anti-aliased edges); a colour one in RGB, then
    its lightest channel."""
    import pypdfium2

    image = page.colour if page.colour is not None else np.repeat(page.view[..., None], 3, 2)
    pdf = page.grey_path.with_name(f"{page.n:06d}-archived.pdf")
    kind = compose.page_pdf(image, page.dpi, pdf)
    dpi = max(200, page.dpi if kind is not compose.PageKind.mixed else compose.BACKGROUND_DPI)
    document = pypdfium2.PdfDocument(str(pdf))
    try:
        grey = kind in (compose.PageKind.bitonal, compose.PageKind.gray)
        rendered = document[0].render(scale=dpi / 72, grayscale=grey).to_pil()
    finally:
        document.close()
    if kind is compose.PageKind.bitonal:
        return np.asarray(rendered.convert("L").convert("1").convert("L")), dpi
    if grey:
        return np.asarray(rendered.convert("L")), dpi
    return cleanup.dropout(np.asarray(rendered.convert("RGB"))), dpi


UPSCALE_TO = 300


def view_upscaled(page: Page) -> tuple[np.ndarray, int] | None:
    if page.dpi >= UPSCALE_TO:
        return None
    factor = UPSCALE_TO / page.dpi
    return (cv2.resize(page.view, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC),
            UPSCALE_TO)
