"""Compose: a cleaned page becomes the compact image-only PDF page that the archive keeps.

Each page gets the cheapest encoding that keeps it legible and faithful:

- ``bitonal``: a black-and-white text page, CCITT G4 at full resolution (tens of KB);
- ``gray``: a page scanned in grey with real grey tones, kept in grey (never a colour image or
  fill). A grey picture (mid-tones over much of the page: a photograph) is one JPEG at full
  resolution. A grey text page is encoded like a ``mixed`` one, in grey: the black print as a
  sharp G4 image mask at full resolution, the grey marks as dark as ink (a seal stamped in grey,
  weakly struck type, a pencil pressed hard) as a second mask painted in their grey, over a
  low-resolution greyscale JPEG background that keeps the paper's tone and the paler marks
  (show-through, faint pencil): a sixth of the size of the page as one JPEG (a sealed page on
  tinted paper with show-through: 85 KB instead of 500 KB);
- ``colour``: a page that is largely a colour picture (a photo, a colour-printed form), colour
  JPEG at full resolution, since its colours carry the content;
- ``mixed``: a page with colour (a red seal, a blue signature): the black print and each
  coloured ink (grouped by hue) as sharp G4 image masks at full resolution, the ink's in its own
  colour, over a low-resolution colour JPEG background, so the seal stays red and sharp without
  storing a full-colour 300 dpi page.

The black print is taken from the colour-dropout view of the page (the lightest channel of each
pixel) less the coloured pixels, so dark red and blue ink never turn black. On a grey page it is
the ink around stroke cores darker than any seal, so a grey seal stays grey.

A page of a PDF issued electronically (born digital) is no image at all: with the profile's
``ocr.born_digital: keep`` it is archived as it is (``born_digital``), its text and fonts intact.
"""

from __future__ import annotations

import io
import zlib
from enum import StrEnum
from pathlib import Path

import cv2
import img2pdf
import numpy as np
import pikepdf
from PIL import Image

from pipeline.imaging.cleanup import binarised, dropout

GRAY_JPEG_QUALITY = 75
BACKGROUND_DPI = 100
BACKGROUND_JPEG_QUALITY = 60
# share of pixels in the mid-tones above which a page is grey, not black-and-white text
MAX_MIDTONE_SHARE = 0.04
# and above which a grey page is a picture (a photograph) rather than text with grey marks:
# those have a few per cent (a seal, show-through on tinted paper), a photograph most of the page
GRAY_PICTURE_SHARE = 0.25
# On a grey page the black print is told from grey marks by its darkness: each of its strokes has
# a core darker than this share of the paper's grey. A red seal stamped at full pressure is 40 %
# of the paper in grey, black print and typed text 5-30 % (a letter struck weakly, paler than
# that, is painted as a grey mark: still sharp, and as grey as on paper).
PRINT_CORE_SHARE = 0.35
COLOUR_SPREAD = 60  # max-min channel difference that counts as coloured ink
MIN_COLOUR_SHARE = 0.002
# share of coloured pixels above which the page is a colour picture: a seal and a signature
# cover about 1 % of an A4 page
COLOUR_PAGE_SHARE = 0.15
COLOUR_JPEG_QUALITY = 75
# Coloured ink on a mixed page is grouped by hue (OpenCV's 0-180 scale) into these fixed inks,
# each painted as one sharp stencil in its own colour: red and pink (seals), orange and yellow,
# green and cyan, blue and violet (pens). Fixed bins keep the result deterministic and the
# stencils few.
INK_HUES: tuple[tuple[tuple[int, int], ...], ...] = (
    ((0, 12), (150, 180)), ((12, 35),), ((35, 95),), ((95, 150),))
MIN_INK_PIXELS = 50
MIN_INK_SHARE = 1e-5
# the ink's colour is the median of its most saturated pixels, those at or above this percentile
INK_CORE_PERCENTILE = 90
RIM_SPREAD = 12  # a pixel next to an ink's stroke and this coloured is the stroke's rim
MAX_INK_LUMA = 150.0  # paler inks are darkened to this luma (0-255) to stay legible on paper
# img2pdf without dates and with its own writer, whose file has no random /ID: the same page makes
# the same bytes
_IMG2PDF = {"nodate": True, "engine": img2pdf.Engine.internal}


class PageKind(StrEnum):
    bitonal = "bitonal"
    gray = "gray"
    colour = "colour"
    mixed = "mixed"
    born_digital = "born_digital"


def _spread(image: np.ndarray, gray: np.ndarray | None = None) -> np.ndarray:
    """Max-min channel difference per pixel: high for coloured ink, low for black, grey, paper.
    ``gray``: the page's :func:`dropout` view, when it is at hand."""
    darkest = np.minimum(np.minimum(image[..., 0], image[..., 1]), image[..., 2])
    return cv2.subtract(dropout(image) if gray is None else gray, darkest)


def _midtone_share(gray: np.ndarray) -> float:
    return float(((gray > 70) & (gray < 190)).mean())


def classify(gray: np.ndarray, spread: np.ndarray | None) -> PageKind:
    """How a page is encoded, from its dropout view and (RGB only) its :func:`_spread`."""
    if spread is not None:
        coloured = np.count_nonzero(spread > COLOUR_SPREAD) / gray.size
        if coloured > COLOUR_PAGE_SHARE:
            return PageKind.colour
        if coloured > MIN_COLOUR_SHARE:
            return PageKind.mixed
    return PageKind.gray if _midtone_share(gray) > MAX_MIDTONE_SHARE else PageKind.bitonal


def black_print(gray: np.ndarray) -> np.ndarray:
    """Boolean mask of the black print (Otsu on the page's :func:`dropout` view ``gray``)."""
    return binarised(gray) == 0


def _g4_pdf(mask: np.ndarray, dpi: int) -> bytes:
    """One-page PDF of a CCITT G4 image: True pixels black."""
    buffer = io.BytesIO()
    # A bool array is a mode "1" image as is, where 1 is white. One strip: img2pdf takes a
    # single-strip G4 TIFF's data as it is, and decodes and encodes again one of several strips
    # (Pillow's default), which took 60 % of the time for the same bytes.
    Image.fromarray(~mask).save(buffer, "TIFF", compression="group4", dpi=(dpi, dpi),
                                strip_size=2**31 - 1)
    return img2pdf.convert(buffer.getvalue(), **_IMG2PDF)


def _jpeg_pdf(pixels: np.ndarray, dpi: int, quality: int,
              page_inches: tuple[float, float] | None = None) -> bytes:
    """One-page PDF of a JPEG; ``page_inches`` (width, height) stretches it over that page."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality, dpi=(dpi, dpi), optimize=True)
    if page_inches is None:
        return img2pdf.convert(buffer.getvalue(), **_IMG2PDF)
    size = (img2pdf.in_to_pt(page_inches[0]), img2pdf.in_to_pt(page_inches[1]))
    layout = img2pdf.get_layout_fun(size, fit=img2pdf.FitMode.exact)
    return img2pdf.convert(buffer.getvalue(), layout_fun=layout, **_IMG2PDF)


def _stencil(pdf: pikepdf.Pdf, mask: np.ndarray, dpi: int) -> pikepdf.Object:
    """A 1-bit CCITT G4 ``/ImageMask`` of ``mask`` in ``pdf``: paints its True pixels in the fill
    colour current at ``Do``, the rest of the page shows through."""
    with pikepdf.open(io.BytesIO(_g4_pdf(mask, dpi))) as mask_pdf:
        (image,) = mask_pdf.pages[0].images.values()
        stencil = pdf.copy_foreign(image)
    # Same samples, same Decode: what the G4 image showed black, the mask now paints.
    stencil.ImageMask = True
    del stencil.ColorSpace
    return stencil


def ink_colours(image: np.ndarray, spread: np.ndarray,
                text: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The coloured ink of a page grouped by hue, in the fixed order of ``INK_HUES``: for each
    ink found, the mask of its pixels and the RGB colour (uint8) to paint it with. ``spread``
    is :func:`_spread` of the page, ``text`` the black print (which keeps its pixels)."""
    # OpenCV lists the coloured pixels in numpy's order (row by row) for a seventh of the CPU
    points = cv2.findNonZero((spread > COLOUR_SPREAD).view(np.uint8))
    if points is None:
        return []
    xs, ys = points.reshape(-1, 2).T
    pixels = image[ys, xs]
    hue = cv2.cvtColor(pixels[:, None, :], cv2.COLOR_RGB2HSV)[:, 0, 0]
    strength = spread[ys, xs]
    # A stroke's anti-aliased rim, paler than COLOUR_SPREAD, still belongs to its ink: without
    # it the stencil is thinner than the stroke and a pen line fades to a pale hairline.
    rim = (spread > RIM_SPREAD) & ~text
    inks = []
    for ranges in INK_HUES:
        member = np.zeros(len(hue), bool)
        for low, high in ranges:
            member |= (hue >= low) & (hue < high)
        # A few stray pixels (a scanner's colour fringe, a speck) are no ink worth a stencil.
        if np.count_nonzero(member) < max(MIN_INK_PIXELS, MIN_INK_SHARE * spread.size):
            continue
        # The ink's own colour is where it lies thickest: the rims and the lightly pressed parts
        # of a stamp are paler, and a stencil painted with their average looks washed out.
        core = strength[member] >= np.percentile(strength[member], INK_CORE_PERCENTILE)
        colour = np.median(pixels[member][core], axis=0)
        luma = float(colour @ np.array([0.299, 0.587, 0.114]))
        if luma > MAX_INK_LUMA:  # a pale ink (yellow, pink) is darkened to stay legible
            colour = colour * MAX_INK_LUMA / luma
        mask = np.zeros(spread.shape, np.uint8)
        mask[ys[member], xs[member]] = 1
        mask = (cv2.dilate(mask, np.ones((5, 5), np.uint8)) > 0) & (rim | (mask > 0))
        inks.append((mask, np.round(colour).astype(np.uint8)))
    return inks


def _deflate_jpegs(page: pikepdf.Page) -> None:
    """Deflate each JPEG of ``page`` again where that makes it smaller (``/FlateDecode`` over
    ``/DCTDecode``, lossless; at zlib's level 6, as OCRmyPDF's optimizer). A background that is
    mostly paper repeats one block's code all over: 6.2 KB of JPEG deflate to 0.5. Done here,
    at the cost of one small compression, OCRmyPDF's optimizer is not needed: it took 12 CPU ms
    a record for the same bytes (issue 15)."""
    for image in page.images.values():
        if image.get("/Filter") == pikepdf.Name.DCTDecode:
            raw = image.read_raw_bytes()
            packed = zlib.compress(raw, 6)
            if len(packed) < len(raw):
                image.write(packed, filter=[pikepdf.Name.FlateDecode, pikepdf.Name.DCTDecode])


def _layered_pdf(image: np.ndarray, dpi: int, text: np.ndarray,
                 inks: list[tuple[np.ndarray, np.ndarray]]) -> bytes:
    """The page as sharp full-resolution G4 stencils over a low-resolution JPEG background:
    each ink's mask painted in its colour, then the black print ``text`` over them. ``image``
    is RGB, or 2-D grey for a DeviceGray background whose inks are each one grey level."""
    painted = text.copy()
    for mask, _ in inks:
        painted |= mask
    # The print and the ink are lifted out of the background: a blurred low-resolution copy of
    # each letter under the sharp one would give it a halo that OCR misreads (a dash as a
    # tilde), and a seal's ring a pale pink fringe.
    halo = cv2.dilate(painted.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    # the paper's colour from a sparse grid of the page: a median needs no more
    sample = image[::8, ::8][~halo[::8, ::8]]
    paper = np.median(sample, axis=0) if len(sample) else np.full(image.shape[2:], 255)
    # OpenCV paints the paper's colour under the mask from a plane per channel: numpy's boolean
    # index over a full-resolution colour page cost three times the CPU (60 against 22 ms,
    # issue 15), and numpy's own fill of a colour (full_like) as much again
    planes = [np.full(image.shape[:2], level, np.uint8)
              for level in np.atleast_1d(paper.astype(np.uint8))]
    lifted = cv2.copyTo(cv2.merge(planes) if image.ndim == 3 else planes[0], halo.view(np.uint8),
                        image.copy())
    scale = min(1.0, BACKGROUND_DPI / dpi)
    background = cv2.resize(lifted, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    bg_dpi = round(dpi * scale)
    # The page is the full-resolution page's size, not the rounded background's: the stencils
    # then sit on the very pixels they came from instead of stretched by up to a pixel.
    inches = (image.shape[1] / dpi, image.shape[0] / dpi)
    with pikepdf.open(io.BytesIO(_jpeg_pdf(background, bg_dpi, BACKGROUND_JPEG_QUALITY,
                                           inches))) as pdf:
        page = pdf.pages[0]
        _deflate_jpegs(page)
        width, height = float(page.mediabox[2]), float(page.mediabox[3])
        place = f"{width:.4f} 0 0 {height:.4f} 0 0 cm"
        ops = []
        for number, (mask, colour) in enumerate(inks, start=1):
            page.Resources.XObject[f"/Ink{number}"] = _stencil(pdf, mask, dpi)
            fill = " ".join(f"{c / 255:.4f}" for c in colour)
            operator = "rg" if len(colour) == 3 else "g"
            ops.append(f"q {fill} {operator} {place} /Ink{number} Do Q")
        # The black print last: where a letter crosses the seal it stays whole and black.
        page.Resources.XObject.Fg = _stencil(pdf, text, dpi)
        ops.append(f"q 0 g {place} /Fg Do Q")
        page.contents_add(pdf.make_stream("\n".join(ops).encode()), prepend=False)
        # Byte for byte the same file for the same page: an /ID from the content (_IMG2PDF).
        out = io.BytesIO()
        pdf.save(out, deterministic_id=True)
        return out.getvalue()


def _mixed_pdf(image: np.ndarray, gray: np.ndarray, spread: np.ndarray, dpi: int) -> bytes:
    # The dropout view of a dark red or blue pixel is dark too: such pixels are coloured ink,
    # painted in their colour below, never black print.
    text = black_print(gray) & (spread <= COLOUR_SPREAD)
    return _layered_pdf(image, dpi, text, ink_colours(image, spread, text))


def _print_and_marks(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A grey page's ink (2-D) as its black print and its grey marks (boolean masks)."""
    inked = black_print(gray)
    paper = float(np.median(gray[::8, ::8]))
    cores = (gray < PRINT_CORE_SHARE * paper).astype(np.uint8)
    # The print is the ink at and next to those cores: a stroke paler at its edges or in places
    # (a pen line) stays whole and black. A seal's ring, which has no core, is a grey mark but
    # for the pixel next to a letter it crosses.
    text = inked & (cv2.dilate(cores, np.ones((3, 3), np.uint8)) > 0)
    return text, inked & ~text


def _gray_pdf(gray: np.ndarray, dpi: int) -> bytes:
    """A grey page (2-D): a picture whole as a JPEG, text as print and grey marks over a
    low-resolution grey background (``_layered_pdf``), all of it DeviceGray."""
    if _midtone_share(gray) > GRAY_PICTURE_SHARE:
        return _jpeg_pdf(gray, dpi, GRAY_JPEG_QUALITY)
    text, marks = _print_and_marks(gray)
    inks = ([(marks, np.array([np.median(gray[marks])]).round())]
            if np.count_nonzero(marks) >= max(MIN_INK_PIXELS, MIN_INK_SHARE * marks.size) else [])
    return _layered_pdf(gray, dpi, text, inks)


def page_pdf(image: np.ndarray, dpi: int, path: Path) -> PageKind:
    """Write the archival one-page PDF of a cleaned page; returns how it was encoded."""
    # the dropout view and the colour spread, each computed once: on an RGB page each is a pass
    # over the full-resolution page that every encoding below reads
    gray = dropout(image)
    spread = _spread(image, gray) if image.ndim == 3 else None
    kind = classify(gray, spread)
    if kind is PageKind.bitonal:
        data = _g4_pdf(black_print(gray), dpi)
    elif kind is PageKind.gray:
        data = _gray_pdf(gray, dpi)
    elif kind is PageKind.colour:
        data = _jpeg_pdf(image, dpi, COLOUR_JPEG_QUALITY)
    else:
        assert spread is not None  # mixed: a page with colour
        data = _mixed_pdf(image, gray, spread, dpi)
    path.write_bytes(data)
    return kind


def original_page_pdf(source: Path, page_in_file: int, path: Path) -> PageKind:
    """Write page ``page_in_file`` (1-based) of the PDF ``source`` as it is, as a one-page PDF."""
    with pikepdf.open(source) as pdf, pikepdf.new() as one:
        one.pages.append(pdf.pages[page_in_file - 1])
        one.save(path)
    return PageKind.born_digital
