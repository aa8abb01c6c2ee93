"""Compose: a cleaned page becomes the compact image-only PDF page that the archive keeps.

Each page gets the cheapest encoding that keeps it legible and faithful:

- ``bitonal``: a black-and-white text page, CCITT G4 at full resolution (tens of KB);
- ``gray``: a page with real grey tones (photos, pencil, stamps in black ink), JPEG;
- ``colour``: a page that is largely a colour picture (a photo, a colour-printed form), colour
  JPEG at full resolution, since its colours carry the content;
- ``mixed``: a page with colour (a red seal, a blue signature): the black print as a sharp G4
  image mask at full resolution over a low-resolution colour JPEG background, so the seal stays
  red without storing a full-colour 300 dpi page.

The black print is taken from the colour-dropout view of the page (the lightest channel of each
pixel), so red and blue ink stay in the colour background and never turn black.

A page of a PDF issued electronically (born digital) is no image at all: with the profile's
``ocr.born_digital: keep`` it is archived as it is (``born_digital``), its text and fonts intact.
"""

from __future__ import annotations

import io
from enum import StrEnum
from pathlib import Path

import cv2
import img2pdf
import numpy as np
import pikepdf
from PIL import Image

from pipeline.cleanup import dropout

GRAY_JPEG_QUALITY = 75
BACKGROUND_DPI = 100
BACKGROUND_JPEG_QUALITY = 60
# share of pixels in the mid-tones above which a page is a grey picture, not printed text
MAX_MIDTONE_SHARE = 0.04
COLOUR_SPREAD = 60  # max-min channel difference that counts as coloured ink
MIN_COLOUR_SHARE = 0.002
# share of coloured pixels above which the page is a colour picture: a seal and a signature
# cover about 1 % of an A4 page
COLOUR_PAGE_SHARE = 0.15
COLOUR_JPEG_QUALITY = 75


class PageKind(StrEnum):
    bitonal = "bitonal"
    gray = "gray"
    colour = "colour"
    mixed = "mixed"
    born_digital = "born_digital"


def classify(image: np.ndarray) -> PageKind:
    gray = dropout(image)
    if image.ndim == 3:
        darkest = np.minimum(np.minimum(image[..., 0], image[..., 1]), image[..., 2])
        coloured = np.count_nonzero(cv2.subtract(gray, darkest) > COLOUR_SPREAD) / gray.size
        if coloured > COLOUR_PAGE_SHARE:
            return PageKind.colour
        if coloured > MIN_COLOUR_SHARE:
            return PageKind.mixed
    midtones = float(((gray > 70) & (gray < 190)).mean())
    return PageKind.gray if midtones > MAX_MIDTONE_SHARE else PageKind.bitonal


def black_print(image: np.ndarray) -> np.ndarray:
    """Boolean mask of the black print (Otsu on the colour-dropout view)."""
    _, ink = cv2.threshold(dropout(image), 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    return ink > 0


def _g4_pdf(mask: np.ndarray, dpi: int) -> bytes:
    """One-page PDF of a CCITT G4 image: True pixels black."""
    buffer = io.BytesIO()
    # a bool array is a mode "1" image as is, where 1 is white
    Image.fromarray(~mask).save(buffer, "TIFF", compression="group4", dpi=(dpi, dpi))
    return img2pdf.convert(buffer.getvalue())


def _jpeg_pdf(pixels: np.ndarray, dpi: int, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality, dpi=(dpi, dpi), optimize=True)
    return img2pdf.convert(buffer.getvalue())


def _mixed_pdf(image: np.ndarray, dpi: int) -> bytes:
    text = black_print(image)
    # The print is lifted out of the background: a blurred low-resolution copy of each letter
    # under the sharp one would give it a grey halo that OCR misreads (a dash as a tilde).
    halo = cv2.dilate(text.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    # the paper's colour from a sparse grid of the page: a median needs no more
    sample = image[::8, ::8][~halo[::8, ::8]]
    paper = np.median(sample, axis=0) if len(sample) else np.full(3, 255)
    lifted = image.copy()
    lifted[halo] = paper.astype(np.uint8)
    scale = min(1.0, BACKGROUND_DPI / dpi)
    background = cv2.resize(lifted, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    bg_dpi = round(dpi * scale)
    with pikepdf.open(io.BytesIO(_jpeg_pdf(background, bg_dpi, BACKGROUND_JPEG_QUALITY))) as pdf, \
            pikepdf.open(io.BytesIO(_g4_pdf(text, dpi))) as mask_pdf:
        page = pdf.pages[0]
        (mask,) = mask_pdf.pages[0].images.values()
        foreground = pdf.copy_foreign(mask)
        # Same samples, same Decode: what the G4 image showed black, the mask now paints black.
        foreground.ImageMask = True
        del foreground.ColorSpace
        page.Resources.XObject.Fg = foreground
        width, height = float(page.mediabox[2]), float(page.mediabox[3])
        page.contents_add(
            pdf.make_stream(f"q 0 g {width:.4f} 0 0 {height:.4f} 0 0 cm /Fg Do Q".encode()),
            prepend=False)
        out = io.BytesIO()
        pdf.save(out)
        return out.getvalue()


def page_pdf(image: np.ndarray, dpi: int, path: Path) -> PageKind:
    """Write the archival one-page PDF of a cleaned page; returns how it was encoded."""
    kind = classify(image)
    if kind is PageKind.bitonal:
        data = _g4_pdf(black_print(image), dpi)
    elif kind is PageKind.gray:
        data = _jpeg_pdf(dropout(image), dpi, GRAY_JPEG_QUALITY)
    elif kind is PageKind.colour:
        data = _jpeg_pdf(image, dpi, COLOUR_JPEG_QUALITY)
    else:
        data = _mixed_pdf(image, dpi)
    path.write_bytes(data)
    return kind


def original_page_pdf(source: Path, page_in_file: int, path: Path) -> PageKind:
    """Write page ``page_in_file`` (1-based) of the PDF ``source`` as it is, as a one-page PDF."""
    with pikepdf.open(source) as pdf, pikepdf.new() as one:
        one.pages.append(pdf.pages[page_in_file - 1])
        one.save(path)
    return PageKind.born_digital


def join_pdfs(parts: list[Path], out: Path) -> Path:
    with pikepdf.new() as pdf:
        for part in parts:
            with pikepdf.open(part) as one:
                pdf.pages.extend(one.pages)
        pdf.save(out)
    return out
