"""Synthetic scanner batches of Vietnamese administrative-procedure results.

The demo, the tests and the benchmark need inbox batches that look like what a digitization team
drops into the watched folder: decree-style pages (Nghị định 30/2020/NĐ-CP layout) printed or
typed, sealed and signed, then scanned crooked, turned, dusty and saved as TIFF / JPEG / PNG /
image-only PDF, plus the ``manifest.csv`` the clerk fills in. Everything is derived from one
seed, so a failing test or benchmark run can be reproduced byte for byte.

Ground truth convention (``SamplePage.text``): one line per text line actually drawn, NFC, in
row-major reading order: rows top to bottom, and within a visual row the fragments left to right
(so the two-column header reads "UBND HUYỆN …", "CỘNG HÒA …", "PHÒNG …", "Độc lập …", and the
"Nơi nhận:" list interleaves with the signature block row by row). This is the order Tesseract
produces with ``--psm 6``. The seal ring text and the signature scribble are never in the truth.
A record's text is its pages' texts joined with "\\n".

Manifest ``still_valid`` values: "có" with Vietnamese headers, "true" with English headers.

The procedure codes in :data:`PROCEDURES` are illustrative, shaped like codes of the national
catalogue (``1.004227``); a demo catalogue must list them for validation to pass.

Needs only Pillow, numpy, OpenCV and img2pdf, plus a serif and a monospace font that cover
Vietnamese: GNU FreeFont (Debian ``fonts-freefont-ttf``) is preferred, DejaVu / Liberation 2 /
Noto Mono are fallbacks. Liberation 1.x (Debian ``fonts-liberation``) lacks ơ/ư and is never used.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import json
import math
import os
import random
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from itertools import zip_longest
from pathlib import Path

import cv2
import img2pdf
import numpy as np
from PIL import Image, ImageDraw, ImageFont, TiffImagePlugin

__all__ = [
    "DEFAULT_AGENCY",
    "ENGLISH_HEADERS",
    "PROCEDURES",
    "VIETNAMESE_HEADERS",
    "Procedure",
    "SampleBatch",
    "SamplePage",
    "STYLES",
    "SampleRecord",
    "Span",
    "degrade",
    "font_path",
    "generate_batch",
    "generate_corpus",
    "generate_stack",
    "is_hard",
    "load_truth",
    "page_text",
    "record_page_lines",
    "render_page",
]

DEFAULT_AGENCY = "000.00.12.H12"
ENGLISH_HEADERS = (
    "record_id", "procedure_code", "result_number", "issued_on",
    "holder_name", "holder_id", "still_valid", "files",
)
VIETNAMESE_HEADERS = (
    "Mã hồ sơ", "Mã TTHC", "Số ký hiệu", "Ngày ban hành",
    "Tên chủ hồ sơ", "Số định danh", "Còn hiệu lực", "Tệp",
)
STYLES = ("serif", "typewriter")

# --- page geometry (A4, margins of Nghị định 30/2020: left 30-35 mm, right 15-20 mm) ----------
PAGE_W_MM, PAGE_H_MM = 210.0, 297.0
MARGIN_L_MM, MARGIN_R_MM, MARGIN_T_MM, MARGIN_B_MM = 30.0, 20.0, 20.0, 20.0
PT_PER_MM = 72.0 / 25.4
TEXT_W_PT = (PAGE_W_MM - MARGIN_L_MM - MARGIN_R_MM) * PT_PER_MM
TEXT_H_PT = (PAGE_H_MM - MARGIN_T_MM - MARGIN_B_MM) * PT_PER_MM
# Header columns: the national title at 12 pt bold needs ~88 mm, so the agency block gets the rest
# and wraps long unit names onto two lines, as clerks do.
HEADER_LEFT = (0.0, 0.40)
HEADER_RIGHT = (0.40, 1.0)
SIG_LEFT = (0.0, 0.5)
SIG_RIGHT = (0.5, 1.0)
BODY_PT = 13.0
TITLE_PT = 14.0
HEADER_PT = 12.0
# Baseline sits this many em below the row top: Vietnamese capitals with stacked marks (Ễ, Ộ)
# reach ~0.9 em above the baseline and must not touch the row above.
BASELINE_EM = 0.95
SIG_GAP_ROWS = 5
SEAL_DIAMETER_MM = 34.0
INK_GREY = 22
SEAL_RGB = (206, 38, 44)
PEN_RGB = (28, 48, 150)

# --- fonts --------------------------------------------------------------------------------------
_FONT_DIRS = (
    Path(__file__).resolve().parent / "fonts",
    Path("/usr/share/fonts/truetype"),
    Path("/usr/share/fonts/opentype"),
    Path("/usr/local/share/fonts"),
)
# (sub-directory, regular, bold, italic, bold italic); the first family whose files all exist wins.
_FAMILIES: dict[str, tuple[tuple[str, str, str, str, str], ...]] = {
    "serif": (
        ("freefont", "FreeSerif.ttf", "FreeSerifBold.ttf", "FreeSerifItalic.ttf",
         "FreeSerifBoldItalic.ttf"),
        ("liberation2", "LiberationSerif-Regular.ttf", "LiberationSerif-Bold.ttf",
         "LiberationSerif-Italic.ttf", "LiberationSerif-BoldItalic.ttf"),
        ("dejavu", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
         "DejaVuSerif-BoldItalic.ttf"),
    ),
    # Typewriters have no italics; the italic slot is only a fallback for callers' spans.
    "typewriter": (
        ("freefont", "FreeMono.ttf", "FreeMonoBold.ttf", "FreeMonoOblique.ttf",
         "FreeMonoBoldOblique.ttf"),
        ("noto", "NotoSansMono-Regular.ttf", "NotoSansMono-Bold.ttf", "NotoSansMono-Regular.ttf",
         "NotoSansMono-Bold.ttf"),
    ),
}


@functools.cache
def _family(style: str) -> tuple[Path, Path, Path, Path]:
    for sub, *names in _FAMILIES[style]:
        for base in _FONT_DIRS:
            paths = [base / sub / n for n in names]
            if all(p.is_file() for p in paths):
                return paths[0], paths[1], paths[2], paths[3]
    wanted = ", ".join(f"{sub}/{names[0]}" for sub, *names in _FAMILIES[style])
    raise FileNotFoundError(
        f"No font with Vietnamese coverage for style {style!r} (looked for {wanted}). "
        "Install the Debian package fonts-freefont-ttf (or fonts-dejavu-core / fonts-noto-mono)."
    )


def font_path(style: str = "serif", *, bold: bool = False, italic: bool = False) -> Path:
    """The font file used for ``style`` (``serif`` or ``typewriter``)."""
    _check_style(style)
    return _family(style)[int(bold) + 2 * int(italic)]


@functools.cache
def _font(style: str, bold: bool, italic: bool, px: int) -> ImageFont.FreeTypeFont:
    # BASIC layout: NFC Vietnamese is all precomposed glyphs, and it does not depend on libraqm
    # being present, so pages come out identical on every machine.
    return ImageFont.truetype(
        str(font_path(style, bold=bold, italic=italic)), px, layout_engine=ImageFont.Layout.BASIC
    )


@functools.cache
def _word_width_em(word: str, style: str, bold: bool, italic: bool) -> float:
    # Measured at a large reference size so that line breaks do not depend on the output dpi.
    return _font(style, bold, italic, 200).getlength(word) / 200.0


def _text_width_pt(text: str, *, style: str, size: float, bold: bool, italic: bool) -> float:
    # Word by word (cached) rather than the whole string: wrapping re-measures every prefix.
    words = text.split(" ")
    ems = sum(_word_width_em(w, style, bold, italic) for w in words)
    ems += (len(words) - 1) * _word_width_em(" ", style, bold, italic)
    return ems * size


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, not {style!r}")


# --- page description ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Span:
    """One text fragment on a row of the page; geometry in points/mm, so it is dpi-independent."""

    text: str
    col: tuple[float, float] = (0.0, 1.0)  # column as fractions of the text-block width
    align: str = "left"  # left | center | right | justify
    size: float = BODY_PT
    bold: bool = False
    italic: bool = False
    indent_mm: float = 0.0  # from the column's left edge (left / justify)
    leading: float = 1.35  # row height in em
    space_before: float = 0.0  # pt
    rule: float = 0.0  # draw a rule under the text, this fraction of its width
    mark: str = ""  # "sig_title" / "signer": where the seal and the signature go


Line = str | Span | Sequence[Span]
Row = tuple[Span, ...]


def _as_row(line: Line) -> Row:
    if isinstance(line, str):
        return (Span(line),)
    if isinstance(line, Span):
        return (line,)
    return tuple(line)


def page_text(lines: Iterable[Line]) -> str:
    """Ground truth of a page: every drawn fragment, one per line, rows top to bottom, left to
    right within a row, NFC."""
    out: list[str] = []
    for line in lines:
        for span in sorted(_as_row(line), key=lambda s: s.col[0]):
            text = unicodedata.normalize("NFC", span.text).strip()
            if text:
                out.append(text)
    return "\n".join(out)


def _row_extent(row: Row) -> tuple[float, float, float]:
    """(space before, height, largest size) of a row, in points."""
    size = max(s.size for s in row)
    height = max(s.size * s.leading + (0.3 * s.size if s.rule else 0.0) for s in row)
    return max(s.space_before for s in row), height, size


@functools.lru_cache(maxsize=4096)
def wrap_words(
    text: str, width_pt: float, *, style: str, size: float, bold: bool = False,
    italic: bool = False, first_indent_pt: float = 0.0,
) -> tuple[str, ...]:
    # A little slack keeps hinting differences between 200 and 300 dpi from overflowing the line.
    limit = width_pt * 0.985
    lines: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}" if current else word
        indent = first_indent_pt if not lines else 0.0
        if current and indent + _text_width_pt(
            trial, style=style, size=size, bold=bold, italic=italic
        ) > limit:
            lines.append(current)
            current = word
        else:
            current = trial
    if current:
        lines.append(current)
    return tuple(lines)


def _para(
    text: str, style: str, *, size: float = BODY_PT, bold: bool = False, italic: bool = False,
    align: str = "justify", indent_mm: float = 10.0, col: tuple[float, float] = (0.0, 1.0),
    space_before: float = 5.0, leading: float = 1.35, rule: float = 0.0,
) -> list[Row]:
    """Wrap a paragraph into rows: first-line indent, justified except its last line."""
    if style == "typewriter":
        # A typewriter can neither justify nor slant, and a typist spaces paragraphs by the
        # platen's half-line click, not by 6 pt.
        italic = False
        if align == "justify":
            align = "left"
        space_before *= 0.5
    width = (col[1] - col[0]) * TEXT_W_PT
    indent_pt = indent_mm * PT_PER_MM if align in ("left", "justify") else 0.0
    wrapped = wrap_words(text, width, style=style, size=size, bold=bold, italic=italic,
                    first_indent_pt=indent_pt)
    rows: list[Row] = []
    for i, line in enumerate(wrapped):
        last = i == len(wrapped) - 1
        rows.append((Span(
            line, col=col, align="left" if align == "justify" and last else align, size=size,
            bold=bold, italic=italic, indent_mm=indent_mm if i == 0 else 0.0, leading=leading,
            space_before=space_before if i == 0 else 0.0, rule=rule if last else 0.0,
        ),))
    return rows


# --- rendering ----------------------------------------------------------------------------------
def _page_px(dpi: int) -> tuple[int, int]:
    return round(PAGE_W_MM / 25.4 * dpi), round(PAGE_H_MM / 25.4 * dpi)


def render_page(
    lines: Sequence[Line], *, dpi: int = 300, style: str = "serif", seal: bool = False,
    rng: random.Random | None = None, seal_text: str = "ỦY BAN NHÂN DÂN",
) -> Image.Image:
    """Render a clean, upright A4 page (RGB) at ``dpi``.

    ``lines`` are plain strings (a left-aligned 13 pt body line each) or :class:`Span` rows as
    built by :func:`record_page_lines`. With ``seal`` a red round stamp and a blue signature are
    laid over the signature block (the spans marked ``sig_title`` / ``signer``), multiply-blended
    so the text under them stays legible, above all after a red-channel dropout.
    """
    _check_style(style)
    if dpi < 50:
        raise ValueError(f"dpi {dpi} is not a scanner resolution")
    rng = rng if rng is not None else random.Random(0)
    width, height = _page_px(dpi)
    ink = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(ink)
    px_per_pt = dpi / 72.0
    y_pt = MARGIN_T_MM * PT_PER_MM
    marks: dict[str, tuple[float, float, float, float]] = {}
    for line in lines:
        row = _as_row(line)
        if not row:
            continue
        space, row_h, size = _row_extent(row)
        y_pt += space
        baseline = (y_pt + BASELINE_EM * size) * px_per_pt
        # Typewriter ink varies per line with the ribbon and the strike force.
        row_ink = rng.randint(10, 60) if style == "typewriter" else INK_GREY
        for span in row:
            text = unicodedata.normalize("NFC", span.text).strip()
            if not text:
                continue
            x0, x1 = _draw_span(draw, span, text, baseline, style, px_per_pt, row_ink, rng)
            size_px = span.size * px_per_pt
            if span.rule > 0:
                rule_w = (x1 - x0) * span.rule
                mid = (x0 + x1) / 2
                y_rule = baseline + 0.45 * size_px
                thick = max(1, round(0.7 * px_per_pt))
                draw.rectangle(
                    (mid - rule_w / 2, y_rule, mid + rule_w / 2, y_rule + thick - 1), fill=row_ink
                )
            if span.mark:
                marks[span.mark] = (x0, baseline - 0.72 * size_px, x1, baseline + 0.22 * size_px)
        y_pt += row_h
    page = ink.convert("RGB")
    if seal:
        page = _seal_and_sign(page, marks, dpi, rng, seal_text)
    page.info["dpi"] = (dpi, dpi)
    return page


def _draw_span(
    draw: ImageDraw.ImageDraw, span: Span, text: str, baseline: float, style: str,
    px_per_pt: float, row_ink: int, rng: random.Random,
) -> tuple[float, float]:
    italic = span.italic and style != "typewriter"
    size_px = max(6, round(span.size * px_per_pt))
    font = _font(style, span.bold, italic, size_px)
    col_x0 = (MARGIN_L_MM * PT_PER_MM + span.col[0] * TEXT_W_PT) * px_per_pt
    col_x1 = (MARGIN_L_MM * PT_PER_MM + span.col[1] * TEXT_W_PT) * px_per_pt
    indent = span.indent_mm * PT_PER_MM * px_per_pt
    if style == "typewriter":
        advance = font.getlength("M")
        natural = advance * len(text)
    else:
        natural = font.getlength(text)
    if span.align == "center":
        x = col_x0 + (col_x1 - col_x0 - natural) / 2
    elif span.align == "right":
        x = col_x1 - natural
    else:
        x = col_x0 + indent
    if style == "typewriter":
        _type_glyphs(draw, text, x, baseline, font, advance, row_ink, rng, span.bold)
        return x, x + natural
    words = text.split(" ")
    if span.align == "justify" and len(words) > 1 and natural < col_x1 - x:
        widths = [font.getlength(w) for w in words]
        gap = (col_x1 - x - sum(widths)) / (len(words) - 1)
        cursor = x
        for word, w in zip(words, widths, strict=True):
            draw.text((cursor, baseline), word, font=font, fill=row_ink, anchor="ls")
            cursor += w + gap
        return x, col_x1
    draw.text((x, baseline), text, font=font, fill=row_ink, anchor="ls")
    return x, x + natural


def _type_glyphs(
    draw: ImageDraw.ImageDraw, text: str, x: float, baseline: float,
    font: ImageFont.FreeTypeFont, advance: float, row_ink: int, rng: random.Random, bold: bool,
) -> None:
    # Each type bar lands a little off its ideal position and with its own force; a few strike
    # weakly. Small enough that OCR still reads every glyph.
    jitter = max(0.5, advance * 0.03)
    # Type slugs hit harder than FreeMono's hairline strokes suggest; its bold is heavy enough.
    stroke = 0 if bold else max(1, round(advance / 32))
    for i, ch in enumerate(text):
        if ch == " ":
            continue
        fill = row_ink + rng.randint(-10, 25)
        if rng.random() < 0.04:
            fill += 55
        dx, dy = rng.uniform(-jitter, jitter), rng.uniform(-jitter, jitter)
        draw.text((x + i * advance + dx, baseline + dy), ch, font=font,
                  fill=max(0, min(fill, 150)), anchor="ls", stroke_width=stroke,
                  stroke_fill=max(0, min(fill, 150)))


def _multiply(page: np.ndarray, mask: np.ndarray, x0: int, y0: int, rgb: Sequence[int]) -> None:
    """Multiply-blend ``rgb`` ink with coverage ``mask`` (0..1) into ``page`` at (x0, y0)."""
    h, w = mask.shape
    px0, py0 = max(0, x0), max(0, y0)
    px1, py1 = min(page.shape[1], x0 + w), min(page.shape[0], y0 + h)
    if px1 <= px0 or py1 <= py0:
        return
    m = mask[py0 - y0:py1 - y0, px0 - x0:px1 - x0, None]
    tint = 1.0 - m * (1.0 - np.asarray(rgb, dtype=np.float32) / 255.0)
    region = page[py0:py1, px0:px1].astype(np.float32) * tint
    page[py0:py1, px0:px1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)


def _seal_and_sign(
    page: Image.Image, marks: dict[str, tuple[float, float, float, float]], dpi: int,
    rng: random.Random, seal_text: str,
) -> Image.Image:
    width, height = page.size
    px_per_mm = dpi / 25.4
    if "sig_title" in marks:
        tx0, _, tx1, ty1 = marks["sig_title"]
    else:
        # No signature block marked: sit where one usually is, bottom right.
        cx = (MARGIN_L_MM + (PAGE_W_MM - MARGIN_L_MM - MARGIN_R_MM) * 0.75) * px_per_mm
        tx0, tx1 = cx - 15 * px_per_mm, cx + 15 * px_per_mm
        ty1 = height * 0.70 + 6 * px_per_mm
    title_cx = (tx0 + tx1) / 2
    signer_top = marks["signer"][1] if "signer" in marks else ty1 + 30 * px_per_mm
    arr = np.array(page)
    # Signature first: the stamp is applied over the signature, as in the office.
    sig_w = 42 * px_per_mm
    sig_h = max(8 * px_per_mm, (signer_top - ty1) * 0.62)
    sx0 = title_cx - sig_w * rng.uniform(0.15, 0.3)
    sy0 = ty1 + (signer_top - ty1 - sig_h) * rng.uniform(0.35, 0.6)
    sig = _signature_mask(round(sig_w), round(sig_h), dpi, rng)
    _multiply(arr, sig, round(sx0), round(sy0), PEN_RGB)
    # The stamp covers the left part of the signature and the lower part of the title line.
    radius = SEAL_DIAMETER_MM / 2 * px_per_mm
    cx = title_cx - radius * rng.uniform(0.45, 0.65)
    cy = ty1 + radius * rng.uniform(0.55, 0.7)
    stamp = _seal_mask(round(radius), dpi, seal_text, rng)
    _multiply(arr, stamp, round(cx - stamp.shape[1] / 2), round(cy - stamp.shape[0] / 2), SEAL_RGB)
    return Image.fromarray(arr, "RGB")


def _seal_mask(radius: int, dpi: int, text: str, rng: random.Random) -> np.ndarray:
    size = 2 * radius + 4
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    c = size / 2
    lw = max(2, round(radius * 0.045))
    draw.ellipse((c - radius, c - radius, c + radius, c + radius), outline=255, width=lw)
    inner = radius * 0.66
    draw.ellipse((c - inner, c - inner, c + inner, c + inner), outline=255, width=max(1, lw // 2))
    star_r = radius * 0.30
    star = [
        (c + (star_r if k % 2 == 0 else star_r * 0.4) * math.sin(k * math.pi / 5),
         c - (star_r if k % 2 == 0 else star_r * 0.4) * math.cos(k * math.pi / 5))
        for k in range(10)
    ]
    draw.polygon(star, fill=255)
    # Ring text, glyph by glyph along the circle, upright towards the rim and spread over most
    # of it; decorative only, never in the ground truth.
    ring = f"{text.strip()} ★ "
    ring_r = (radius + inner) / 2 - radius * 0.02
    ref = _font("serif", True, False, 100)
    advances = [ref.getlength(ch) / 100 if ch != "★" else 0.9 for ch in ring]
    glyph_px = max(8, min(round(radius * 0.2), round(2 * math.pi * ring_r * 0.97 / sum(advances))))
    font = _font("serif", True, False, glyph_px)
    total = sum(advances) * glyph_px / ring_r
    angle = -math.pi / 2 - total / 2
    for ch, adv in zip(ring, advances, strict=True):
        half = adv * glyph_px / ring_r / 2
        angle += half
        if ch != " ":
            tile = Image.new("L", (glyph_px * 2, glyph_px * 2), 0)
            tile_draw = ImageDraw.Draw(tile)
            if ch == "★":
                r = glyph_px * 0.3
                tile_draw.ellipse((glyph_px - r, glyph_px - r, glyph_px + r, glyph_px + r),
                                  fill=255)
            else:
                tile_draw.text((glyph_px, glyph_px), ch, font=font, fill=255, anchor="mm")
            tile = tile.rotate(-math.degrees(angle) - 90, resample=Image.Resampling.BILINEAR)
            gx = c + ring_r * math.cos(angle) - glyph_px
            gy = c + ring_r * math.sin(angle) - glyph_px
            mask.paste(255, (round(gx), round(gy)), tile)
        angle += half
    out = np.asarray(mask, dtype=np.float32) / 255.0
    # Uneven stamp-pad ink: a smooth random field plus the stamp pressed a little unevenly.
    np_rng = np.random.default_rng(rng.getrandbits(32))
    noise = cv2.GaussianBlur(np_rng.random((size, size), dtype=np.float32), (0, 0), radius * 0.04)
    noise = (noise - noise.min()) / max(float(noise.max() - noise.min()), 1e-6)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    tilt = rng.uniform(0, 2 * math.pi)
    pressure = 0.85 + 0.15 * ((xx - c) * math.cos(tilt) + (yy - c) * math.sin(tilt)) / radius
    out = np.clip(out * (0.55 + 0.45 * noise) * pressure * 1.15, 0.0, 0.92)
    return cv2.GaussianBlur(out, (0, 0), max(0.5, dpi / 300 * 0.8))


def _signature_mask(width: int, height: int, dpi: int, rng: random.Random) -> np.ndarray:
    # Drawn at 2x and shrunk: cheap anti-aliasing for a ballpoint line.
    ss = 2
    img = Image.new("L", (width * ss, height * ss), 0)
    draw = ImageDraw.Draw(img)
    pen = max(2, round(dpi / 300 * 3.2 * ss))

    def bezier(p0: tuple[float, float], p1: tuple[float, float], p2: tuple[float, float],
               p3: tuple[float, float]) -> list[tuple[float, float]]:
        pts = []
        for k in range(25):
            t = k / 24
            a, b, c, d = (1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t * t * (1 - t), t ** 3
            pts.append((a * p0[0] + b * p1[0] + c * p2[0] + d * p3[0],
                        a * p0[1] + b * p1[1] + c * p2[1] + d * p3[1]))
        return pts

    w, h = width * ss, height * ss
    # Cursive: a trochoid makes the running loops, the first one larger like a capital, then a
    # quick underline stroke.
    loops = rng.randint(3, 6)
    omega = 2 * math.pi * loops
    speed = w * rng.uniform(0.55, 0.7)
    amp_x = speed / omega * rng.uniform(1.3, 1.9)
    amp_y = h * rng.uniform(0.18, 0.26)
    slope = -h * rng.uniform(0.0, 0.25)
    phase = rng.uniform(0, math.pi)
    points: list[tuple[float, float]] = []
    steps = 60 * loops
    for k in range(steps + 1):
        t = k / steps
        big = 1.0 + 0.9 * max(0.0, 1.0 - t * loops)
        points.append((
            w * 0.08 + speed * t - amp_x * big * math.sin(omega * t + phase),
            h * 0.5 + slope * (t - 0.5) - amp_y * big * math.cos(omega * t + phase)
            * (1 + 0.25 * math.sin(5.3 * t)),
        ))
    x, y = points[-1]
    points += bezier(
        (x, y), (x + w * 0.05, y + h * 0.35), (w * 0.15, h * 0.95),
        (w * 0.98, h * rng.uniform(0.65, 0.85)),
    )[1:]
    draw.line(points, fill=255, width=pen, joint="curve")
    img = img.resize((width, height), Image.Resampling.BOX)
    return np.asarray(img, dtype=np.float32) / 255.0 * 0.9


# --- scanner artefacts --------------------------------------------------------------------------
def degrade(
    img: Image.Image, *, rotation: int, skew: float, rng: random.Random, speckle: bool,
    blur: bool, border: bool, dpi: int | None = None, bleed: Image.Image | None = None,
) -> Image.Image:
    """What the scanner does to a clean page, in that order: with ``bleed`` (the clean reverse
    side of the sheet) the reverse's text shows through the paper, mirrored, light grey and
    diffuse; the page lies ``skew`` degrees askew (positive = counter-clockwise, white lid
    around it), is turned ``rotation`` degrees clockwise (lossless), the bed edge shows as a
    dark band, dust speckles, optics blur. Keeps the mode (L or RGB); ``dpi`` defaults to what
    the image says or A4 width implies."""
    if rotation not in (0, 90, 180, 270):
        raise ValueError(f"rotation must be 0, 90, 180 or 270, not {rotation}")
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    if dpi is None:
        info_dpi = img.info.get("dpi")
        dpi = round(info_dpi[0]) if info_dpi else round(min(img.size) / (PAGE_W_MM / 25.4))
    np_rng = np.random.default_rng(rng.getrandbits(64))
    arr = np.array(img)
    white = (255, 255, 255) if arr.ndim == 3 else 255
    # Show-through is in the sheet itself, so it turns with the page; it draws from ``rng``
    # only when asked for, which keeps pages without it identical to what they always were.
    if bleed is not None:
        arr = _show_through(arr, bleed, dpi, rng)
    if skew:
        h, w = arr.shape[:2]
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), skew, 1.0)
        arr = cv2.warpAffine(arr, matrix, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=white)
    if rotation:
        arr = np.ascontiguousarray(np.rot90(arr, k=-(rotation // 90)))
    if border:
        _scanner_border(arr, rng, np_rng)
    if speckle:
        _speckle(arr, dpi, rng, np_rng)
    if blur:
        sigma = rng.uniform(0.35, 0.8) * dpi / 300
        arr = cv2.GaussianBlur(arr, (0, 0), sigma)
    out = Image.fromarray(arr, img.mode)
    out.info["dpi"] = (dpi, dpi)
    return out


def _show_through(
    arr: np.ndarray, reverse: Image.Image, dpi: int, rng: random.Random
) -> np.ndarray:
    h, w = arr.shape[:2]
    back = np.asarray(reverse.convert("L"), dtype=np.float32)
    if back.shape != (h, w):
        back = cv2.resize(back, (w, h), interpolation=cv2.INTER_AREA)
    # Seen through the paper, the reverse reads mirrored left to right; the paper scatters its
    # ink over a fraction of a millimetre and passes only part of it: light grey (about 165-205
    # where the reverse is solid ink, lighter on thin strokes) with soft edges.
    ink = 1.0 - back[:, ::-1] / 255.0
    ink = cv2.GaussianBlur(ink, (0, 0), rng.uniform(0.8, 1.4) * dpi / 300)
    tint = 1.0 - ink * rng.uniform(0.2, 0.35)
    if arr.ndim == 3:
        tint = tint[..., None]
    return np.clip(arr.astype(np.float32) * tint + 0.5, 0, 255).astype(np.uint8)


def _scanner_border(arr: np.ndarray, rng: random.Random, np_rng: np.random.Generator) -> None:
    h, w = arr.shape[:2]
    edges = rng.choice([("right",), ("bottom",), ("left",), ("right", "bottom"), ("left", "top")])
    for edge in edges:
        # A writable view turned so that the band is always the first columns.
        view = {
            "left": arr, "right": arr[:, ::-1],
            "top": arr.swapaxes(0, 1), "bottom": arr[::-1].swapaxes(0, 1),
        }[edge]
        depth = max(2, round((w if edge in ("left", "right") else h) * rng.uniform(0.01, 0.03)))
        band = np_rng.normal(rng.randint(12, 55), 6, size=view.shape[:1] + (depth,))
        band = band.clip(0, 255).astype(np.uint8)
        view[:, :depth] = band[..., None] if view.ndim == 3 else band
        # The page edge casts a short soft shadow rather than a razor edge.
        n = 6
        fade = 0.55 + 0.45 * np.linspace(0.0, 1.0, num=n, dtype=np.float32)[None, :]
        if view.ndim == 3:
            fade = fade[..., None]
        view[:, depth:depth + n] = (view[:, depth:depth + n] * fade).astype(np.uint8)


def _speckle(
    arr: np.ndarray, dpi: int, rng: random.Random, np_rng: np.random.Generator
) -> None:
    h, w = arr.shape[:2]
    area_in2 = (w / dpi) * (h / dpi)
    # Sparse dust: a flatbed shows tens of specks per page, not hundreds.
    dark = int(area_in2 * rng.uniform(0.3, 1.2))
    scale = dpi / 300
    xs = np_rng.integers(0, w, dark)
    ys = np_rng.integers(0, h, dark)
    radii = np.maximum(0, np.round(np_rng.uniform(0.3, 1.6, dark) * scale)).astype(int)
    greys = np_rng.integers(0, 90, dark)
    for x, y, r, g in zip(xs, ys, radii, greys, strict=True):
        colour = (int(g),) * 3 if arr.ndim == 3 else int(g)
        cv2.circle(arr, (int(x), int(y)), int(r), colour, thickness=-1)
    # Salt: single pale pixels, visible only where they hit ink.
    light = int(area_in2 * rng.uniform(20, 60))
    arr[np_rng.integers(0, h, light), np_rng.integers(0, w, light)] = 235


# --- content ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Procedure:
    code: str
    name: str
    level: str  # administrative level that issues the result: "huyện" (district)
    kind: str  # template key


PROCEDURES: tuple[Procedure, ...] = (
    Procedure("1.001612", "Đăng ký thành lập hộ kinh doanh", "huyện", "hkd"),
    Procedure("1.004227", "Cấp giấy phép xây dựng đối với nhà ở riêng lẻ", "huyện", "gpxd"),
    Procedure("2.000889", "Chuyển mục đích sử dụng đất phải được phép của cơ quan nhà nước có "
              "thẩm quyền đối với hộ gia đình, cá nhân", "huyện", "cmd"),
    Procedure("1.001776", "Thực hiện trợ cấp xã hội hàng tháng đối với đối tượng bảo trợ xã hội",
              "huyện", "tcxh"),
)


@dataclass(frozen=True)
class _District:
    name: str
    province: str
    id_prefix: str  # province code that starts a 12-digit citizen id
    communes: tuple[str, ...]


_DISTRICTS = (
    _District("Đông Anh", "thành phố Hà Nội", "001", (
        "xã Uy Nỗ", "xã Vân Hà", "xã Liên Hà", "xã Kim Chung", "xã Hải Bối", "xã Xuân Nộn",
        "xã Nguyên Khê", "xã Cổ Loa", "xã Mai Lâm", "xã Vĩnh Ngọc", "xã Thụy Lâm", "xã Dục Tú")),
    _District("Gia Lâm", "thành phố Hà Nội", "001", (
        "xã Bát Tràng", "xã Kim Lan", "xã Đa Tốn", "xã Dương Xá", "xã Phù Đổng", "xã Cổ Bi")),
    _District("Thủy Nguyên", "thành phố Hải Phòng", "031", (
        "xã Lập Lễ", "xã Tam Hưng", "xã Kỳ Sơn", "xã Hoa Động", "xã Thủy Triều", "xã Lưu Kiếm")),
    _District("Lạng Giang", "tỉnh Bắc Giang", "024", (
        "xã Tân Dĩnh", "xã Yên Mỹ", "xã Hương Lạc", "xã Quang Thịnh", "xã Xuân Hương")),
    _District("Yên Phong", "tỉnh Bắc Ninh", "027", (
        "xã Đông Phong", "xã Yên Trung", "xã Dũng Liệt", "xã Tam Đa", "xã Văn Môn")),
)
_VILLAGES = (
    "thôn Đông", "thôn Đoài", "thôn Thượng", "thôn Trung", "thôn Hạ", "thôn Bắc", "thôn Nam",
    "thôn Ngọc Lôi", "thôn Lỗ Khê", "thôn Đại Vĩ", "thôn Hậu Dưỡng", "xóm Mới", "thôn Cầu Cả",
)
_ROOMS = (
    "phòng khách, bếp, khu vệ sinh và cầu thang", "hai phòng ngủ, một phòng vệ sinh",
    "phòng thờ, sân phơi và phòng kho", "phòng ngủ, phòng sinh hoạt chung",
    "tum thang và bể nước mái",
)
_SURNAMES = ("Nguyễn", "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Phan", "Vũ", "Võ", "Đặng",
             "Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý")
_MIDDLE_M = ("Văn", "Văn", "Đức", "Minh", "Quang", "Hữu", "Thành", "Công", "Xuân", "Đình", "Mạnh")
_MIDDLE_F = ("Thị", "Thị", "Thị Hồng", "Thị Thu", "Thị Minh", "Ngọc", "Thu", "Thị Thanh")
_GIVEN_M = ("Hùng", "Dũng", "Tuấn", "Thắng", "Cường", "Việt", "Hưng", "Lộc", "Trường", "Nghĩa",
            "Đạt", "Hiếu", "Sơn", "Hải", "Tiến", "Khải", "Quyết", "Lượng")
_GIVEN_F = ("Nhung", "Hương", "Lan", "Huệ", "Thủy", "Hằng", "Ngọc", "Trang", "Yến", "Liễu",
            "Nguyệt", "Phượng", "Tuyết", "Oanh", "Thảo", "Ánh", "Duyên", "Hạnh", "Mỹ")


@dataclass(frozen=True)
class _Person:
    name: str
    female: bool
    born: dt.date

    @property
    def title(self) -> str:
        return "Bà" if self.female else "Ông"


def _person(rng: random.Random, *, oldest: int = 1940, youngest: int = 1995) -> _Person:
    female = rng.random() < 0.5
    middle = rng.choice(_MIDDLE_F if female else _MIDDLE_M)
    given = rng.choice(_GIVEN_F if female else _GIVEN_M)
    name = f"{rng.choice(_SURNAMES)} {middle} {given}"
    born = dt.date(rng.randint(oldest, youngest), rng.randint(1, 12), rng.randint(1, 28))
    return _Person(unicodedata.normalize("NFC", name), female, born)


def _citizen_id(person: _Person, district: _District, rng: random.Random) -> str:
    # Căn cước công dân: province code, sex/century digit, year of birth, six random digits.
    century = 0 if person.born.year < 2000 else 2
    return (f"{district.id_prefix}{century + int(person.female)}{person.born.year % 100:02d}"
            f"{rng.randrange(10**6):06d}")


def _vn_date(day: dt.date) -> str:
    # Nghị định 30/2020: days below 10 and months 1-2 take a leading zero, other months do not.
    month = f"{day.month:02d}" if day.month < 3 else str(day.month)
    return f"ngày {day.day:02d} tháng {month} năm {day.year}"


def _decimal(value: float) -> str:
    # Vietnamese decimal comma; whole numbers without a fraction.
    text = f"{value:.1f}".removesuffix(".0")
    return text.replace(".", ",")


def _money(amount: int) -> str:
    return f"{amount:,}".replace(",", ".")


@dataclass
class _Doc:
    """A record's content before pagination; rows are built per style by :func:`_compose`."""

    agency: tuple[str, str]  # parent line (regular), issuing unit (bold)
    number: str
    place_date: str
    title: list[str]
    subtitle: str
    lead: list[tuple[str, str]]  # (kind, text), kinds as in _lead_rows; "?" = may be dropped
    fillers: list[str]  # hand-written provisions, used first
    filler_heading: str
    extras: list[str]  # then parametric entries (parcel corners, floors, ...), as many as needed
    extras_heading: str
    tail: list[tuple[str, str]]
    articles: bool  # number the body "Điều 1.", "Điều 2." ...
    sig_org: list[str]
    sig_title: str
    signer: str
    recipients: list[str]
    seal_text: str


@dataclass(frozen=True)
class _Holder:
    person: _Person
    citizen_id: str  # "" when the paper predates the 12-digit id
    old_id: str  # 9-digit identity card printed instead
    address: str
    commune: str
    village: str


def _id_phrase(holder: _Holder) -> str:
    if holder.citizen_id:
        return f"số định danh cá nhân {holder.citizen_id}"
    return f"chứng minh nhân dân số {holder.old_id}"


def _legal_basis_local(day: dt.date) -> str:
    if day >= dt.date(2016, 1, 1):
        return "Căn cứ Luật Tổ chức chính quyền địa phương ngày 19 tháng 6 năm 2015;"
    return "Căn cứ Luật Tổ chức Hội đồng nhân dân và Ủy ban nhân dân ngày 26 tháng 11 năm 2003;"


def _shuffled(rng: random.Random, items: list[str]) -> list[str]:
    out = list(items)
    rng.shuffle(out)
    return out


def _coordinates(rng: random.Random, count: int) -> list[str]:
    # Parcel corners in the national VN-2000 grid, as land documents list them.
    x, y = rng.uniform(2_330_000, 2_350_000), rng.uniform(580_000, 595_000)
    out = []
    for k in range(1, count + 1):
        step = rng.uniform(4, 25)
        heading = rng.uniform(0, 2 * math.pi)
        x, y = x + step * math.cos(heading), y + step * math.sin(heading)
        out.append(f"Điểm {k}: X = {_decimal2(x)}; Y = {_decimal2(y)}; cạnh {k}-{k + 1} dài "
                   f"{_decimal2(step)} m.")
    return out


def _decimal2(value: float) -> str:
    return f"{value:.2f}".replace(".", ",")


_VSIC = (
    ("4711", "Bán lẻ lương thực, thực phẩm, đồ uống, thuốc lá, thuốc lào chiếm tỷ trọng lớn "
     "trong các cửa hàng kinh doanh tổng hợp"),
    ("4719", "Bán lẻ khác trong các cửa hàng kinh doanh tổng hợp"),
    ("4722", "Bán lẻ thực phẩm trong các cửa hàng chuyên doanh"),
    ("4723", "Bán lẻ đồ uống trong các cửa hàng chuyên doanh"),
    ("4752", "Bán lẻ đồ ngũ kim, sơn, kính và thiết bị lắp đặt khác trong xây dựng trong các "
     "cửa hàng chuyên doanh"),
    ("4759", "Bán lẻ đồ điện gia dụng, giường, tủ, bàn, ghế và đồ nội thất tương tự"),
    ("4761", "Bán lẻ sách, báo, tạp chí, văn phòng phẩm trong các cửa hàng chuyên doanh"),
    ("4771", "Bán lẻ hàng may mặc, giày dép, hàng da và giả da trong các cửa hàng chuyên doanh"),
    ("4781", "Bán lẻ lương thực, thực phẩm, đồ uống, thuốc lá, thuốc lào lưu động hoặc tại chợ"),
    ("4542", "Bảo dưỡng và sửa chữa mô tô, xe máy"),
    ("4543", "Bán phụ tùng và các bộ phận phụ trợ của mô tô, xe máy"),
    ("5610", "Nhà hàng và các dịch vụ ăn uống phục vụ lưu động"),
    ("5630", "Dịch vụ phục vụ đồ uống"),
    ("9620", "Giặt là, làm sạch các sản phẩm dệt và lông thú"),
    ("9631", "Cắt tóc, làm đầu, gội đầu"),
    ("1071", "Sản xuất các loại bánh từ bột"),
    ("1610", "Cưa, xẻ, bào gỗ và bảo quản gỗ"),
    ("3100", "Sản xuất giường, tủ, bàn, ghế"),
    ("4933", "Vận tải hàng hóa bằng đường bộ"),
    ("8299", "Hoạt động dịch vụ hỗ trợ kinh doanh khác còn lại chưa được phân vào đâu"),
)


def _doc_hkd(rng: random.Random, d: _District, day: dt.date, h: _Holder, number: str) -> _Doc:
    p = h.person
    trade = rng.choice((
        ("TẠP HÓA", "Bán lẻ lương thực, thực phẩm, đồ uống, thuốc lá, thuốc lào trong các cửa "
         "hàng kinh doanh tổng hợp"),
        ("VẬT LIỆU XÂY DỰNG", "Bán buôn vật liệu, thiết bị lắp đặt khác trong xây dựng; bán lẻ "
         "xi măng, gạch xây, ngói, đá, cát, sỏi"),
        ("QUÁN CƠM", "Nhà hàng và các dịch vụ ăn uống phục vụ lưu động; dịch vụ ăn uống khác"),
        ("SỬA CHỮA XE MÁY", "Bảo dưỡng, sửa chữa mô tô, xe máy; bán lẻ phụ tùng và các bộ phận "
         "phụ trợ của mô tô, xe máy"),
    ))
    given = p.name.split()[-1]
    shop = f"HỘ KINH DOANH {trade[0]} {given.upper()}"
    capital = rng.choice((50, 80, 100, 150, 200, 300, 500)) * 1_000_000
    holder_doc = (f"Số định danh cá nhân: {h.citizen_id}." if h.citizen_id else
                  f"Chứng minh nhân dân số: {h.old_id}, do Công an {d.province} cấp.")
    lead = [
        ("center", f"Mã số hộ kinh doanh: {d.id_prefix[1:]}H8{rng.randrange(10**6):06d}"),
        ("center_italic", f"Đăng ký lần đầu: {_vn_date(day)}"),
        ("item", f"1. Tên hộ kinh doanh: {shop}"),
        ("item", f"2. Địa điểm kinh doanh: Số {rng.randint(2, 180)}, {h.village}, {h.commune}, "
                 f"huyện {d.name}, {d.province}."),
        ("item", f"3. Ngành, nghề kinh doanh: {trade[1]}."),
        ("item", f"4. Vốn kinh doanh: {_money(capital)} đồng."),
        ("item", f"5. Số lượng lao động: {rng.randint(1, 6)} người."),
        ("item", f"6. Họ và tên đại diện hộ kinh doanh: {p.name.upper()}. "
                 f"Giới tính: {'Nữ' if p.female else 'Nam'}."),
        ("item", f"Sinh ngày: {p.born:%d/%m/%Y}. Dân tộc: Kinh. Quốc tịch: Việt Nam."),
        ("item", holder_doc),
        ("item", f"Nơi đăng ký hộ khẩu thường trú: {h.address}."),
        ("item?", f"Chỗ ở hiện tại: {h.address}."),
    ]
    fillers = [
        "Kê khai và nộp thuế đầy đủ, đúng hạn theo quy định của pháp luật về thuế; thực hiện chế "
        "độ kế toán, hóa đơn, chứng từ theo hướng dẫn của cơ quan thuế.",
        "Chỉ được hoạt động kinh doanh tại địa điểm đã đăng ký; khi thay đổi nội dung đăng ký "
        "phải thông báo với Phòng Tài chính - Kế hoạch trong thời hạn mười ngày làm việc.",
        "Bảo đảm các điều kiện về an toàn thực phẩm, phòng cháy, chữa cháy, vệ sinh môi trường và "
        "trật tự an toàn xã hội tại địa điểm kinh doanh.",
        "Không được sử dụng quá mười lao động; trường hợp sử dụng từ mười lao động trở lên phải "
        "đăng ký thành lập doanh nghiệp theo quy định của pháp luật.",
        "Treo biển hiệu tại địa điểm kinh doanh, ghi rõ tên hộ kinh doanh, địa chỉ và số điện "
        "thoại liên hệ; niêm yết giá hàng hóa, dịch vụ theo quy định.",
        "Khi tạm ngừng kinh doanh từ ba mươi ngày trở lên phải thông báo bằng văn bản cho cơ quan "
        "đăng ký kinh doanh cấp huyện và cơ quan thuế trực tiếp quản lý.",
        "Chấp hành sự kiểm tra, thanh tra của cơ quan nhà nước có thẩm quyền và báo cáo tình hình "
        "hoạt động kinh doanh khi được yêu cầu.",
        "Giữ gìn cảnh quan, không lấn chiếm vỉa hè, lòng đường, hành lang an toàn giao thông để "
        "kinh doanh hoặc để hàng hóa, phương tiện.",
        "Giấy chứng nhận này được lưu giữ tại địa điểm kinh doanh và xuất trình khi cơ quan nhà "
        "nước có thẩm quyền yêu cầu.",
    ]
    deputy = rng.random() < 0.5
    return _Doc(
        agency=(f"UBND HUYỆN {d.name.upper()}", "PHÒNG TÀI CHÍNH - KẾ HOẠCH"),
        number=number, place_date=f"{d.name}, {_vn_date(day)}",
        title=["GIẤY CHỨNG NHẬN ĐĂNG KÝ HỘ KINH DOANH"], subtitle="",
        lead=lead, fillers=_shuffled(rng, fillers),
        filler_heading="Hộ kinh doanh có trách nhiệm:",
        extras=[f"Mã ngành {code}: {name}." for code, name in _shuffled(rng, list(_VSIC))]
        + [f"Kho hàng số {k}: {rng.choice(_VILLAGES)}, {rng.choice(d.communes)}, diện tích "
           f"{rng.randint(20, 90)} m2." for k in range(1, 40)],
        extras_heading="Danh mục ngành, nghề và địa điểm kinh doanh đã đăng ký:",
        tail=[], articles=False,
        sig_org=["KT. TRƯỞNG PHÒNG"] if deputy else [],
        sig_title="PHÓ TRƯỞNG PHÒNG" if deputy else "TRƯỞNG PHÒNG",
        signer=_person(rng, youngest=1985).name,
        recipients=["- Hộ kinh doanh;", "- Chi cục Thuế huyện;", f"- UBND {h.commune};",
                    "- Lưu: VT, TCKH."],
        seal_text=f"PHÒNG TÀI CHÍNH - KẾ HOẠCH ★ HUYỆN {d.name.upper()}",
    )


def _doc_gpxd(rng: random.Random, d: _District, day: dt.date, h: _Holder, number: str) -> _Doc:
    p = h.person
    floors = rng.randint(2, 4)
    footprint = rng.randint(60, 140) + rng.choice((0.0, 0.5))
    designer = _person(rng, youngest=1988).name
    firm = rng.choice(("An Phát", "Hưng Thịnh", "Đức Minh", "Thành Công", "Việt Á", "Trường Sơn"))
    cert_day = day - dt.timedelta(days=rng.randint(400, 4000))
    lead = [
        ("item", f"1. Cấp cho: {p.title} {p.name}, {_id_phrase(h)}."),
        ("item", f"Địa chỉ: {h.address}."),
        ("item", "2. Được phép xây dựng công trình: Nhà ở riêng lẻ."),
        ("item", f"- Theo hồ sơ thiết kế do Công ty TNHH Tư vấn thiết kế xây dựng {firm} lập; "
                 f"chủ nhiệm thiết kế: kiến trúc sư {designer}."),
        ("item", f"- Vị trí xây dựng: thửa đất số {rng.randint(10, 899)}, tờ bản đồ số "
                 f"{rng.randint(1, 60)}, {h.village}, {h.commune}, huyện {d.name}, {d.province}."),
        ("item?", f"- Cốt nền xây dựng công trình: +0,{rng.randint(30, 60)} m so với cốt mặt "
                 "đường hiện trạng."),
        ("item?", f"- Mật độ xây dựng: {rng.randint(60, 90)}%. Hệ số sử dụng đất: "
                 f"{_decimal(rng.randint(18, 36) / 10)}."),
        ("item", f"- Diện tích xây dựng tầng 1: {_decimal(footprint)} m2. Tổng diện tích sàn: "
                 f"{_decimal(footprint * floors)} m2."),
        ("item", f"- Chiều cao công trình: {_decimal(floors * 3.6 + 1.2)} m; số tầng: {floors} "
                 "tầng."),
        ("item", f"3. Giấy tờ về quyền sử dụng đất: Giấy chứng nhận quyền sử dụng đất số "
                 f"{rng.choice('ABC')}{rng.choice('ĐKLMN')} {rng.randrange(10**6):06d} do UBND "
                 f"huyện {d.name} cấp {_vn_date(cert_day)}."),
    ]
    fillers = [
        "Chịu trách nhiệm trước pháp luật nếu xâm phạm các quyền hợp pháp của các chủ sở hữu "
        "liền kề; bồi thường thiệt hại cho công trình lân cận do thi công gây ra.",
        "Thực hiện đúng các quy định của pháp luật về đất đai, về đầu tư xây dựng và nội dung "
        "Giấy phép xây dựng này.",
        f"Thông báo bằng văn bản về ngày khởi công cho cơ quan cấp phép và Ủy ban nhân dân "
        f"{h.commune} trước khi khởi công xây dựng công trình.",
        "Khi điều chỉnh thiết kế làm thay đổi vị trí, diện tích, chiều cao hoặc số tầng của công "
        "trình thì phải đề nghị điều chỉnh giấy phép và chờ quyết định của cơ quan cấp phép.",
        "Bảo đảm an toàn lao động, vệ sinh môi trường, phòng chống cháy nổ trong quá trình thi "
        "công; che chắn công trình, không để vật liệu xây dựng lấn chiếm lòng đường, vỉa hè.",
        "Xuất trình Giấy phép xây dựng khi cơ quan có thẩm quyền kiểm tra; treo biển báo tại "
        "công trường trong suốt thời gian thi công.",
        "Thực hiện việc đấu nối hạ tầng kỹ thuật, thoát nước mưa, nước thải theo hướng dẫn của "
        "Ủy ban nhân dân xã và đơn vị quản lý hạ tầng.",
        "Hoàn thành công trình và báo cáo cơ quan cấp phép để kiểm tra, cập nhật vào hồ sơ quản "
        "lý trật tự xây dựng của địa phương.",
    ]
    tail = [("item", "4. Giấy phép này có hiệu lực khởi công xây dựng trong thời hạn 12 tháng kể "
                     "từ ngày cấp; quá thời hạn trên thì phải đề nghị gia hạn giấy phép xây dựng.")]
    return _Doc(
        agency=("ỦY BAN NHÂN DÂN", f"HUYỆN {d.name.upper()}"),
        number=number, place_date=f"{d.name}, {_vn_date(day)}",
        title=["GIẤY PHÉP XÂY DỰNG"], subtitle="Sử dụng cho nhà ở riêng lẻ",
        lead=lead, fillers=_shuffled(rng, fillers),
        filler_heading="Chủ đầu tư phải thực hiện các nội dung sau:",
        extras=[
            f"Tầng {k}: diện tích sàn {_decimal(footprint)} m2, chiều cao tầng "
            f"{_decimal(rng.choice((3.3, 3.6, 3.9)))} m; bố trí {rooms}."
            for k, rooms in zip(range(1, floors + 1), _shuffled(rng, _ROOMS), strict=False)
        ] + _coordinates(rng, 60),
        extras_heading="Quy mô các tầng và tọa độ mốc giới thửa đất (hệ VN-2000):",
        tail=tail, articles=False,
        sig_org=["KT. CHỦ TỊCH"], sig_title="PHÓ CHỦ TỊCH",
        signer=_person(rng, youngest=1980).name,
        recipients=["- Như trên;", f"- UBND {h.commune};", "- Đội Quản lý trật tự xây dựng;",
                    "- Lưu: VT, KTHT."],
        seal_text=f"ỦY BAN NHÂN DÂN HUYỆN {d.name.upper()} ★ {d.province.upper()}",
    )


def _doc_cmd(rng: random.Random, d: _District, day: dt.date, h: _Holder, number: str) -> _Doc:
    p = h.person
    area = f"{rng.randint(40, 250)},{rng.randint(0, 9)}"
    land_basis = (
        ["Căn cứ Luật Đất đai ngày 29 tháng 11 năm 2013;",
         "Căn cứ Nghị định số 43/2014/NĐ-CP ngày 15 tháng 5 năm 2014 của Chính phủ quy định chi "
         "tiết thi hành một số điều của Luật Đất đai;"]
        if day >= dt.date(2014, 7, 1) else
        ["Căn cứ Luật Đất đai ngày 26 tháng 11 năm 2003;",
         "Căn cứ Nghị định số 181/2004/NĐ-CP ngày 29 tháng 10 năm 2004 của Chính phủ về thi hành "
         "Luật Đất đai;"]
    )
    memo_day = day - dt.timedelta(days=rng.randint(5, 40))
    lead = [
        ("center_bold", f"ỦY BAN NHÂN DÂN HUYỆN {d.name.upper()}"),
        ("basis", _legal_basis_local(day)),
        ("basis", land_basis[0]),
        ("basis?", land_basis[1]),
        ("basis", f"Xét đơn đề nghị của {p.title.lower()} {p.name} và đề nghị của Trưởng phòng "
                  f"Tài nguyên và Môi trường tại Tờ trình số {rng.randint(20, 900)}/TTr-TNMT "
                  f"ngày {memo_day:%d/%m/%Y},"),
        ("center_bold", "QUYẾT ĐỊNH:"),
        ("article", f"Cho phép {p.title.lower()} {p.name}, {_id_phrase(h)}, thường trú tại "
                    f"{h.address}, được chuyển mục đích sử dụng {area} m2 đất từ đất trồng cây "
                    f"hàng năm khác sang đất ở tại nông thôn tại thửa đất số "
                    f"{rng.randint(10, 899)}, tờ bản đồ số {rng.randint(1, 60)}, {h.village}, "
                    f"{h.commune}, huyện {d.name}."),
        ("item", "- Mục đích sử dụng đất: Đất ở tại nông thôn."),
        ("item?", "- Thời hạn sử dụng đất: Lâu dài."),
        ("item?", "- Hình thức sử dụng đất: Nhà nước giao đất có thu tiền sử dụng đất."),
    ]
    fillers = [
        "Giao Phòng Tài nguyên và Môi trường chỉnh lý hồ sơ địa chính, cập nhật biến động đất "
        "đai và hướng dẫn người sử dụng đất thực hiện các thủ tục theo quy định.",
        "Giao Chi cục Thuế huyện xác định và thông báo số tiền sử dụng đất, lệ phí trước bạ mà "
        "người sử dụng đất phải nộp theo quy định của pháp luật.",
        f"{p.title} {p.name} có trách nhiệm nộp tiền sử dụng đất, lệ phí trước bạ theo thông báo "
        "của cơ quan thuế và sử dụng đất đúng mục đích, đúng ranh giới đã được xác định.",
        f"Ủy ban nhân dân {h.commune} có trách nhiệm xác định ranh giới, mốc giới thửa đất trên "
        "thực địa và quản lý chặt chẽ việc sử dụng đất theo quy định.",
        f"Văn phòng đăng ký đất đai chi nhánh huyện {d.name} cấp Giấy chứng nhận quyền sử dụng "
        "đất sau khi người sử dụng đất hoàn thành nghĩa vụ tài chính.",
        "Trường hợp người sử dụng đất không thực hiện nghĩa vụ tài chính trong thời hạn quy định "
        "thì bị xử lý theo quy định của pháp luật về quản lý thuế.",
        "Việc xây dựng công trình trên thửa đất phải tuân thủ quy hoạch chi tiết và được cấp giấy "
        "phép xây dựng theo quy định.",
    ]
    tail = [
        ("article", "Quyết định này có hiệu lực kể từ ngày ký."),
        ("article", f"Chánh Văn phòng HĐND và UBND huyện, Trưởng phòng Tài nguyên và Môi trường, "
                    f"Chi cục trưởng Chi cục Thuế huyện, Chủ tịch UBND {h.commune}, "
                    f"{p.title.lower()} {p.name} và các cơ quan, đơn vị có liên quan chịu trách "
                    "nhiệm thi hành Quyết định này./."),
    ]
    return _Doc(
        agency=("ỦY BAN NHÂN DÂN", f"HUYỆN {d.name.upper()}"),
        number=number, place_date=f"{d.name}, {_vn_date(day)}",
        title=["QUYẾT ĐỊNH"], subtitle="Về việc cho phép chuyển mục đích sử dụng đất",
        lead=lead, fillers=_shuffled(rng, fillers), filler_heading="",
        extras=_coordinates(rng, 80),
        extras_heading="Ranh giới, mốc giới thửa đất được xác định theo hệ tọa độ VN-2000 như "
        "sau:",
        tail=tail, articles=True,
        sig_org=["TM. ỦY BAN NHÂN DÂN"], sig_title="CHỦ TỊCH",
        signer=_person(rng, youngest=1980).name,
        recipients=["- Như Điều {last};", "- Chi cục Thuế huyện;", "- VP đăng ký đất đai;",
                    "- Lưu: VT, TNMT."],
        seal_text=f"ỦY BAN NHÂN DÂN HUYỆN {d.name.upper()} ★ {d.province.upper()}",
    )


def _beneficiary(rng: random.Random, k: int, d: _District, levels: Sequence[int]) -> str:
    person = _person(rng, oldest=1925, youngest=2004)
    amount = _money(rng.choice(levels) * 1000)
    return (f"{k}. {person.title} {person.name}, sinh năm {person.born.year}, "
            f"{rng.choice(_VILLAGES)}, {rng.choice(d.communes)}; mức trợ cấp {amount} "
            "đồng/tháng.")


def _doc_tcxh(rng: random.Random, d: _District, day: dt.date, h: _Holder, number: str) -> _Doc:
    p = h.person
    if day >= dt.date(2021, 7, 1):
        decree = ("Căn cứ Nghị định số 20/2021/NĐ-CP ngày 15 tháng 3 năm 2021 của Chính phủ quy "
                  "định chính sách trợ giúp xã hội đối với đối tượng bảo trợ xã hội;")
    elif day >= dt.date(2014, 1, 1):
        decree = ("Căn cứ Nghị định số 136/2013/NĐ-CP ngày 21 tháng 10 năm 2013 của Chính phủ quy "
                  "định chính sách trợ giúp xã hội đối với đối tượng bảo trợ xã hội;")
    elif day >= dt.date(2007, 5, 1):
        decree = ("Căn cứ Nghị định số 67/2007/NĐ-CP ngày 13 tháng 4 năm 2007 của Chính phủ về "
                  "chính sách trợ giúp các đối tượng bảo trợ xã hội;")
    else:
        decree = ("Căn cứ Nghị định số 07/2000/NĐ-CP ngày 09 tháng 3 năm 2000 của Chính phủ về "
                  "chính sách cứu trợ xã hội;")
    memo_day = day - dt.timedelta(days=rng.randint(5, 30))
    start = day + dt.timedelta(days=20)
    # Monthly allowances in thousand đồng, which rose with the base level over the years.
    levels = (270, 360, 405, 540) if day >= dt.date(2014, 1, 1) else (120, 180, 240, 360)
    lead = [
        ("center_bold", f"CHỦ TỊCH ỦY BAN NHÂN DÂN HUYỆN {d.name.upper()}"),
        ("basis", _legal_basis_local(day)),
        ("basis", decree),
        ("basis", f"Xét đề nghị của Trưởng phòng Lao động - Thương binh và Xã hội tại Tờ trình "
                  f"số {rng.randint(20, 900)}/TTr-LĐTBXH ngày {memo_day:%d/%m/%Y},"),
        ("center_bold", "QUYẾT ĐỊNH:"),
        ("article", f"Trợ cấp xã hội hàng tháng đối với {p.title.lower()} {p.name}, sinh ngày "
                    f"{p.born:%d/%m/%Y}, {_id_phrase(h)}, thường trú tại {h.address}."),
        ("item", f"- Mức trợ cấp hàng tháng: {_money(rng.choice(levels) * 1000)} đồng."),
        ("item?", f"- Thời điểm được hưởng: từ tháng {start.month} năm {start.year}."),
    ]
    fillers = [
        f"Giao Phòng Lao động - Thương binh và Xã hội phối hợp với Ủy ban nhân dân {h.commune} "
        "hướng dẫn, theo dõi và chi trả trợ cấp hàng tháng cho đối tượng đúng quy định.",
        f"Ủy ban nhân dân {h.commune} có trách nhiệm quản lý đối tượng, kịp thời báo cáo khi đối "
        "tượng thay đổi nơi cư trú, không còn đủ điều kiện hưởng hoặc qua đời.",
        "Kinh phí thực hiện trợ cấp được bố trí trong dự toán ngân sách hằng năm của huyện theo "
        "phân cấp quản lý ngân sách hiện hành.",
        "Đối tượng được cấp thẻ bảo hiểm y tế theo quy định của pháp luật về bảo hiểm y tế kể từ "
        "tháng được hưởng trợ cấp xã hội hàng tháng.",
        "Khi đối tượng qua đời, người tổ chức mai táng được hỗ trợ chi phí mai táng theo mức quy "
        "định tại thời điểm phát sinh.",
        "Phòng Tài chính - Kế hoạch có trách nhiệm thẩm định, cấp phát kinh phí chi trả trợ cấp "
        "kịp thời, đúng đối tượng, đúng chế độ.",
    ]
    tail = [
        ("article", "Quyết định này có hiệu lực kể từ ngày ký."),
        ("article", f"Chánh Văn phòng HĐND và UBND huyện, Trưởng phòng Lao động - Thương binh và "
                    f"Xã hội, Trưởng phòng Tài chính - Kế hoạch, Chủ tịch UBND {h.commune} và "
                    f"{p.title.lower()} {p.name} chịu trách nhiệm thi hành Quyết định này./."),
    ]
    return _Doc(
        agency=("ỦY BAN NHÂN DÂN", f"HUYỆN {d.name.upper()}"),
        number=number, place_date=f"{d.name}, {_vn_date(day)}",
        title=["QUYẾT ĐỊNH"], subtitle="Về việc trợ cấp xã hội hàng tháng",
        lead=lead, fillers=_shuffled(rng, fillers), filler_heading="",
        extras=[_beneficiary(rng, k, d, levels) for k in range(1, 60)],
        extras_heading="Phê duyệt danh sách đối tượng được hưởng trợ cấp xã hội hàng tháng cùng "
        "đợt như sau:",
        tail=tail, articles=True,
        sig_org=["KT. CHỦ TỊCH"], sig_title="PHÓ CHỦ TỊCH",
        signer=_person(rng, youngest=1980).name,
        recipients=["- Như Điều {last};", "- Phòng LĐ-TB&XH;", "- Lưu: VT."],
        seal_text=f"ỦY BAN NHÂN DÂN HUYỆN {d.name.upper()} ★ {d.province.upper()}",
    )


_TEMPLATES: dict[str, tuple[str, Callable[..., _Doc]]] = {
    # kind -> (result-number symbol, builder)
    "hkd": ("GCN-TCKH", _doc_hkd),
    "gpxd": ("GPXD", _doc_gpxd),
    "cmd": ("QĐ-UBND", _doc_cmd),
    "tcxh": ("QĐ-UBND", _doc_tcxh),
}


def _balanced_wrap(text: str, width_pt: float, *, style: str, size: float, bold: bool
                   ) -> list[str]:
    """Two lines of about equal width, as clerks break a long agency name ("PHÒNG TÀI CHÍNH -"
    / "KẾ HOẠCH"), rather than a greedy break that strands one word."""
    lines = wrap_words(text, width_pt, style=style, size=size, bold=bold)
    if len(lines) != 2:
        return list(lines)
    words = text.split()

    def cost(k: int) -> float:
        return max(_text_width_pt(" ".join(part), style=style, size=size, bold=bold,
                                  italic=False) for part in (words[:k], words[k:]))

    # A dash ends the first line when it can, and never starts the second.
    at_dash = [k for k in range(1, len(words)) if words[k - 1] == "-" and cost(k) <= width_pt]
    breaks = at_dash or [k for k in range(1, len(words)) if words[k] != "-"]
    best = min(breaks, key=cost)
    return [" ".join(words[:best]), " ".join(words[best:])]


def _header_rows(doc: _Doc, style: str) -> list[Row]:
    left: list[Span] = []
    parent, unit = doc.agency
    # The parent line is bold when it names the issuing council itself.
    parent_bold = parent.startswith("ỦY BAN")
    lw = (HEADER_LEFT[1] - HEADER_LEFT[0]) * TEXT_W_PT
    for text, bold in ((parent, parent_bold), (unit, True)):
        for piece in _balanced_wrap(text, lw, style=style, size=HEADER_PT, bold=bold):
            left.append(Span(piece, col=HEADER_LEFT, align="center", size=HEADER_PT, bold=bold,
                             leading=1.3))
    left[-1] = replace(left[-1], rule=0.4)
    right = [
        Span("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", col=HEADER_RIGHT, align="center",
             size=HEADER_PT, bold=True, leading=1.3),
        Span("Độc lập - Tự do - Hạnh phúc", col=HEADER_RIGHT, align="center", size=BODY_PT,
             bold=True, leading=1.3, rule=1.0),
    ]
    rows: list[Row] = [
        tuple(s for s in pair if s is not None) for pair in zip_longest(left, right)
    ]
    rows.append((
        Span(f"Số: {doc.number}", col=HEADER_LEFT, align="center", size=BODY_PT,
             space_before=9.0),
        Span(doc.place_date, col=HEADER_RIGHT, align="center", size=BODY_PT, italic=True,
             space_before=9.0),
    ))
    return rows


def _lead_rows(kind: str, text: str, style: str, article_no: int | None) -> list[Row]:
    """Rows of one body item; ``kind`` is center_bold, center, center_italic, basis (the italic
    "Căn cứ ..." lines), article ("Điều n. ...") or item (an indented paragraph)."""
    kind = kind.rstrip("?")
    if kind == "center_bold":
        return _para(text, style, bold=True, align="center", space_before=8.0)
    if kind == "center":
        return _para(text, style, align="center", space_before=6.0)
    if kind == "center_italic":
        return _para(text, style, italic=True, align="center", space_before=2.0)
    if kind == "basis":
        return _para(text, style, italic=True, space_before=3.0)
    if kind == "article":
        return _para(f"Điều {article_no}. {text}", style, space_before=6.0)
    return _para(text, style, space_before=4.0)


def _signature_rows(doc: _Doc, style: str, last_article: int) -> list[Row]:
    right = [Span(t, col=SIG_RIGHT, align="center", bold=True) for t in doc.sig_org]
    right.append(Span(doc.sig_title, col=SIG_RIGHT, align="center", bold=True, mark="sig_title"))
    right += [Span("", col=SIG_RIGHT)] * SIG_GAP_ROWS
    right.append(Span(doc.signer, col=SIG_RIGHT, align="center", bold=True, mark="signer"))
    left = [Span("Nơi nhận:", col=SIG_LEFT, size=12.0, bold=True, italic=True)]
    left += [Span(r.format(last=last_article), col=SIG_LEFT, size=11.0)
             for r in doc.recipients]
    rows = [tuple(s for s in pair if s is not None) for pair in zip_longest(left, right)]
    rows[0] = tuple(replace(s, space_before=14.0) for s in rows[0])
    return rows


def _paginate(blocks: Sequence[tuple[list[Row], bool]]) -> list[list[Row]]:
    """Flow rows onto pages; a block flagged True is never split. Pages after the first start
    with their page number, centred at the top (Nghị định 30/2020)."""
    pages: list[list[Row]] = [[]]
    used = 0.0

    def extent(row: Row, at_top: bool) -> float:
        space, height, _ = _row_extent(row)
        return height + (0.0 if at_top else space)

    def new_page() -> None:
        nonlocal used
        number: Row = (Span(str(len(pages) + 1), align="center", leading=2.0),)
        pages.append([number])
        used = extent(number, True)

    for rows, keep in blocks:
        if keep:
            need = sum(extent(r, False) for r in rows)
            if used + need > TEXT_H_PT and pages[-1]:
                new_page()
        for row in rows:
            if used + extent(row, False) > TEXT_H_PT and pages[-1]:
                new_page()
            used += extent(row, not pages[-1])
            pages[-1].append(row)
    return pages


def _compose(doc: _Doc, style: str, n_fillers: int) -> list[list[Row]]:
    blocks: list[tuple[list[Row], bool]] = [(_header_rows(doc, style), True)]
    title = [r for t in doc.title for r in _para(t, style, size=TITLE_PT, bold=True,
                                                 align="center", space_before=0.0)]
    title[0] = tuple(replace(s, space_before=18.0) for s in title[0])
    if doc.subtitle:
        title += _para(doc.subtitle, style, size=TITLE_PT, bold=True, align="center",
                       space_before=0.0, rule=0.35)
    blocks.append((title, True))
    article = 0
    for kind, text in doc.lead:
        if kind.rstrip("?") == "article":
            article += 1
        blocks.append((_lead_rows(kind, text, style, article), False))
    fillers = doc.fillers[:n_fillers]
    if fillers and doc.filler_heading:
        blocks.append((_para(doc.filler_heading, style, space_before=6.0), False))
    for text in fillers:
        if doc.articles:
            article += 1
            blocks.append((_lead_rows("article", text, style, article), False))
        else:
            blocks.append((_lead_rows("item", f"- {text}", style, None), False))
    extras = doc.extras[:max(0, n_fillers - len(doc.fillers))]
    if extras:
        if doc.articles:
            article += 1
            blocks.append((_lead_rows("article", doc.extras_heading, style, article), False))
        else:
            blocks.append((_para(doc.extras_heading, style, space_before=6.0), False))
    for text in extras:
        prefix = "" if text[:1].isdigit() else "- "
        blocks.append((_para(f"{prefix}{text}", style, space_before=2.0), False))
    for kind, text in doc.tail:
        if kind == "article":
            article += 1
        blocks.append((_lead_rows(kind, text, style, article), False))
    blocks.append((_signature_rows(doc, style, article), True))
    return _paginate(blocks)


def _fit(doc: _Doc, style: str, n_pages: int, rng: random.Random) -> list[list[Row]]:
    """Make the document run to exactly ``n_pages`` pages: drop optional lead items (kind ends
    with "?") if even the bare document is too long, add provisions if it is too short, then
    fill the last page most of the way rather than leave the signature block alone."""
    optional = [i for i, (kind, _) in enumerate(doc.lead) if kind.endswith("?")]
    pages = _compose(doc, style, 0)
    while len(pages) > n_pages and optional:
        drop = optional.pop()
        doc = replace(doc, lead=[item for i, item in enumerate(doc.lead) if i != drop])
        optional = [i - (i > drop) for i in optional]
        pages = _compose(doc, style, 0)
    if len(pages) > n_pages:
        raise RuntimeError(f"sample content does not fit on {n_pages} page(s) in {style} style")
    n_fillers = 0
    while len(pages) < n_pages:
        if n_fillers >= len(doc.fillers) + len(doc.extras):
            raise RuntimeError(f"sample content too short for {n_pages} pages in {style} style")
        n_fillers += 1
        pages = _compose(doc, style, n_fillers)
    least = n_fillers
    while n_fillers < min(least + 40, len(doc.fillers) + len(doc.extras)):
        if len(_compose(doc, style, n_fillers + 1)) != n_pages:
            break
        n_fillers += 1
    n_fillers = max(least, n_fillers - rng.randint(0, 2))
    return _compose(doc, style, n_fillers)


@dataclass(frozen=True)
class _Content:
    procedure: Procedure
    result_number: str
    issued_on: dt.date
    holder: _Holder
    doc: _Doc


def _content(rng: random.Random, agency_code: str, procedure: Procedure, with_id: bool,
             issued_on: dt.date | None = None) -> _Content:
    district = _district(agency_code)
    if issued_on is None:
        issued_on = dt.date(2005, 1, 1) + dt.timedelta(days=rng.randrange(6209))
    person = _person(rng)
    commune = rng.choice(district.communes)
    village = rng.choice(_VILLAGES)
    holder = _Holder(
        person=person,
        citizen_id=_citizen_id(person, district, rng) if with_id else "",
        old_id=f"{rng.randint(10, 19):02d}{rng.randrange(10**7):07d}",
        address=f"{village}, {commune}, huyện {district.name}, {district.province}",
        commune=commune, village=village,
    )
    symbol, builder = _TEMPLATES[procedure.kind]
    number = f"{rng.randint(1, 2999)}/{symbol}"
    doc = builder(rng, district, issued_on, holder, number)
    return _Content(procedure, number, issued_on, holder, doc)


def _district(agency_code: str) -> _District:
    if agency_code == DEFAULT_AGENCY:
        return _DISTRICTS[0]
    return _DISTRICTS[zlib.crc32(agency_code.encode()) % len(_DISTRICTS)]


def record_page_lines(
    *, seed: int = 0, style: str = "serif", n_pages: int = 1, agency_code: str = DEFAULT_AGENCY,
    procedure_code: str | None = None,
) -> list[list[Line]]:
    """The rows of each page of one realistic record, ready for :func:`render_page` and
    :func:`page_text` (the last page carries the signature block)."""
    _check_style(style)
    if not 1 <= n_pages <= 3:
        raise ValueError("n_pages must be between 1 and 3")
    rng = random.Random(f"record:{seed}")
    if procedure_code is None:
        procedure = rng.choice(PROCEDURES)
    else:
        matches = [p for p in PROCEDURES if p.code == procedure_code]
        if not matches:
            raise ValueError(f"unknown sample procedure {procedure_code!r}")
        procedure = matches[0]
    content = _content(rng, agency_code, procedure, with_id=True)
    return [list(page) for page in _fit(content.doc, style, n_pages, rng)]


# --- batch --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SamplePage:
    file: str  # file name inside the batch dir holding this page
    page_in_file: int  # 1-based page index inside that file (multi-page TIFF / PDF)
    text: str  # ground truth: exact text drawn, NFC, one line per text line
    rotation: int  # turned clockwise by this; rotate counter-clockwise by it to restore
    skew: float  # degrees, positive = counter-clockwise, in [-5, 5]
    dpi: int
    style: str  # "serif" or "typewriter"
    seal: bool  # red seal + blue signature over the signature block
    bleed: bool = False  # the reverse side's text shows through (see degrade)


def is_hard(page: SamplePage) -> bool:
    """Pages OCR is known to struggle with: a seal over the text, typed text, show-through,
    200 dpi or less, or turned. The benchmark reports these apart from the easy ones."""
    return (page.seal or page.style == "typewriter" or page.bleed or page.dpi < 300
            or page.rotation != 0)


@dataclass(frozen=True)
class SampleRecord:
    record_id: str
    procedure_code: str
    result_number: str
    issued_on: dt.date
    holder_name: str
    holder_id: str
    files_field: str
    pages: tuple[SamplePage, ...]

    @property
    def text(self) -> str:
        return "\n".join(p.text for p in self.pages)


@dataclass(frozen=True)
class SampleBatch:
    batch_dir: Path
    agency_code: str
    batch_id: str
    records: tuple[SampleRecord, ...]
    truth_path: Path | None = None

    def ground_truth(self) -> dict[str, str]:
        """record_id -> the text of its pages, joined with "\\n"."""
        return {r.record_id: r.text for r in self.records}


@dataclass
class _PagePlan:
    style: str
    dpi: int
    rotation: int
    skew: float
    seal: bool
    speckle: bool
    blur: bool
    border: bool
    file: str = ""
    page_in_file: int = 0
    bleed: bool = False


@dataclass
class _FilePlan:
    name: str
    fmt: str  # tif | jpg | png | pdf
    mode: str  # L | RGB
    dpi: int
    pages: list[tuple[int, int]] = field(default_factory=list)  # (record index, page index)


def _skew(rng: random.Random) -> float:
    return round(rng.choice((-1, 1)) * rng.uniform(0.5, 4.0), 2)


def _plan(
    n_records: int, rng: random.Random, dpis: Sequence[int]
) -> tuple[list[list[_PagePlan]], list[_FilePlan], list[str]]:
    """Decide pages, files and manifest ``files`` cells. The first three records are fixed in
    shape so every batch of three or more covers each format, rotation and style."""
    lo, hi = min(dpis), max(dpis)
    records: list[list[_PagePlan]] = []
    files: list[_FilePlan] = []
    cells: list[str] = []
    counter = 0

    def new_file(prefix: str, fmt: str, mode: str, dpi: int) -> _FilePlan:
        nonlocal counter
        counter += 1
        plan = _FilePlan(f"{prefix}_{counter:04d}.{fmt}", fmt, mode, dpi)
        files.append(plan)
        return plan

    def page(style: str, dpi: int, rotation: int, *, seal: bool = False,
             skew: float | None = None) -> _PagePlan:
        return _PagePlan(
            style=style, dpi=dpi, rotation=rotation, skew=_skew(rng) if skew is None else skew,
            seal=seal, speckle=rng.random() < 0.7, blur=rng.random() < 0.5,
            border=rng.random() < 0.5,
        )

    def attach(fplan: _FilePlan, rec: int, idx: int) -> None:
        fplan.pages.append((rec, idx))
        p = records[rec][idx]
        p.file, p.page_in_file = fplan.name, len(fplan.pages)

    fixed = [
        # Two-page printed record in one multi-page greyscale TIFF, second sheet upside down.
        [page("serif", hi, 0), page("serif", hi, 180)],
        # An old typed page scanned to an image-only PDF.
        [page("typewriter", lo, 0, skew=round(rng.uniform(-0.4, 0.4), 2))],
        # Three sheets scanned one by one: a photo JPEG turned sideways, a PNG, a sealed TIFF.
        [page("serif", lo, 90), page("serif", lo, 0),
         page("serif", hi, rng.choice((0, 270)), seal=True)],
    ]
    for rec, pages in enumerate(fixed[:n_records]):
        records.append(pages)
        if rec == 0:
            tif = new_file("scan", "tif", "L", hi)
            attach(tif, rec, 0)
            attach(tif, rec, 1)
            cells.append(tif.name)
        elif rec == 1:
            pdf = new_file("scan", "pdf", "L", lo)
            attach(pdf, rec, 0)
            cells.append(pdf.name)
        else:
            names = []
            for idx, (fmt, mode) in enumerate((("jpg", "RGB"), ("png", "L"), ("tif", "RGB"))):
                fplan = new_file("scan" if fmt == "tif" else "img", fmt, mode, pages[idx].dpi)
                attach(fplan, rec, idx)
                names.append(fplan.name)
            cells.append(";".join(names))

    def random_page(dpi: int, style: str) -> _PagePlan:
        rotation = rng.choices((0, 90, 180, 270), weights=(55, 15, 15, 15))[0]
        return page(style, dpi, rotation)

    # Later records cycle through the remaining shapes, a shared stack first so that any batch
    # of five or more has page ranges cutting one file between two records.
    others = ["multi_tif", "pdf", "singles", "singles"]
    rng.shuffle(others)
    shapes = ["split", *others]
    rec = len(records)
    turn = 0
    while rec < n_records:
        style = "typewriter" if rng.random() < 0.25 else "serif"
        dpi = rng.choice(list(dpis))
        shape = shapes[turn % len(shapes)]
        turn += 1
        if shape == "split" and rec + 2 <= n_records:
            # One scanner stack, two records: ranges in the manifest cut it.
            counts = (rng.randint(1, 2), rng.randint(1, 2))
            tif = new_file("scan", "tif", "L", dpi)
            for k, count in enumerate(counts):
                pages = [random_page(dpi, style) for _ in range(count)]
                records.append(pages)
                first = len(tif.pages) + 1
                for idx in range(count):
                    attach(tif, rec + k, idx)
                last = len(tif.pages)
                cells.append(f"{tif.name}[{first}]" if first == last
                             else f"{tif.name}[{first}-{last}]")
            rec += 2
            continue
        count = rng.randint(1, 3)
        pages = [random_page(dpi, style) for _ in range(count)]
        if rng.random() < 0.6:
            pages[-1].seal = True
        records.append(pages)
        if shape in ("multi_tif", "pdf", "split"):
            fmt = "pdf" if shape == "pdf" else "tif"
            mode = "RGB" if pages[-1].seal else "L"
            fplan = new_file("scan", fmt, mode, dpi)
            for idx in range(count):
                attach(fplan, rec, idx)
            cells.append(fplan.name)
        else:
            names = []
            for idx, pg in enumerate(pages):
                fmt = rng.choice(("tif", "jpg", "png"))
                mode = "RGB" if pg.seal or (fmt == "jpg" and rng.random() < 0.5) else "L"
                fplan = new_file("scan" if fmt == "tif" else "img", fmt, mode, dpi)
                attach(fplan, rec, idx)
                names.append(fplan.name)
            cells.append(";".join(names))
        rec += 1
    return records, files, cells


def _atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    tmp = path.with_name(f".{path.name}.part")
    try:
        with tmp.open("w+b") as fh:  # the multi-page TIFF writer reads back what it wrote
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _save_images(path: Path, fplan: _FilePlan, images: list[Image.Image]) -> None:
    dpi = (fplan.dpi, fplan.dpi)
    images = [im.convert(fplan.mode) if im.mode != fplan.mode else im for im in images]

    def write(fh: io.BufferedWriter) -> None:
        if fplan.fmt == "tif":
            images[0].save(fh, format="TIFF", save_all=True, append_images=images[1:],
                           compression="tiff_lzw", dpi=dpi)
        elif fplan.fmt == "jpg":
            images[0].save(fh, format="JPEG", quality=85, dpi=dpi)
        elif fplan.fmt == "png":
            images[0].save(fh, format="PNG", dpi=dpi, compress_level=3)
        else:
            # Image-only PDF as scanners write it: JPEG pages, page size = pixels / dpi. The
            # internal engine and no dates keep the bytes a function of the seed alone.
            jpegs = []
            for im in images:
                buf = io.BytesIO()
                im.save(buf, format="JPEG", quality=85, dpi=dpi)
                jpegs.append(buf.getvalue())
            fh.write(img2pdf.convert(
                jpegs, layout_fun=img2pdf.get_fixed_dpi_layout_fun(dpi), nodate=True,
                engine=img2pdf.Engine.internal,
            ))

    _atomic_write(path, write)


def _truth_json(batch: SampleBatch, seed: int, truth_dir: Path) -> dict[str, object]:
    return {
        "generator": "pipeline.demo.samples",
        "seed": seed,
        "batch_id": batch.batch_id,
        "agency_code": batch.agency_code,
        # Relative to this file, so that the same seed gives the same truth wherever it runs.
        "batch_dir": os.path.relpath(batch.batch_dir, truth_dir),
        "text_order": "rows top to bottom; fragments in a row left to right; pages joined by \\n",
        "records": [
            {
                "record_id": r.record_id, "procedure_code": r.procedure_code,
                "result_number": r.result_number, "issued_on": r.issued_on.isoformat(),
                "holder_name": r.holder_name, "holder_id": r.holder_id,
                "files_field": r.files_field, "text": r.text,
                "pages": [
                    {"file": p.file, "page_in_file": p.page_in_file, "rotation": p.rotation,
                     "skew": p.skew, "dpi": p.dpi, "style": p.style, "seal": p.seal,
                     # only when set: truth files of batches without show-through stay as
                     # they always were, byte for byte
                     **({"bleed": True} if p.bleed else {}),
                     "text": p.text}
                    for p in r.pages
                ],
            }
            for r in batch.records
        ],
    }


def load_truth(path: Path) -> SampleBatch:
    """Read back the ground truth written by :func:`generate_batch`."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    records = tuple(
        SampleRecord(
            record_id=r["record_id"], procedure_code=r["procedure_code"],
            result_number=r["result_number"], issued_on=dt.date.fromisoformat(r["issued_on"]),
            holder_name=r["holder_name"], holder_id=r["holder_id"], files_field=r["files_field"],
            pages=tuple(SamplePage(**p) for p in r["pages"]),
        )
        for r in data["records"]
    )
    batch_dir = Path(os.path.normpath(Path(path).parent / data["batch_dir"]))
    return SampleBatch(batch_dir, data["agency_code"], data["batch_id"], records,
                       truth_path=Path(path))


def _default_batch_id(seed: int) -> str:
    day = dt.date(2022, 1, 3) + dt.timedelta(days=abs(seed) % 1400)
    return f"B{day:%Y%m%d}-{abs(seed) % 1000:03d}"


def generate_batch(
    batch_dir: Path, *, agency_code: str = DEFAULT_AGENCY, batch_id: str | None = None,
    n_records: int = 3, seed: int = 0, dpis: Sequence[int] = (200, 300),
    vietnamese_headers: bool = True, truth_path: Path | None = None,
) -> SampleBatch:
    """Write a scanner batch (page files + ``manifest.csv``) into ``batch_dir`` and its ground
    truth JSON to ``truth_path`` (default ``<batch_dir parent>/<batch_id>.truth.json``, never
    inside the batch dir). The manifest is written last, as the inbox watcher expects.
    Regenerating into the same dir replaces the files; a dir holding other files is refused."""
    if n_records < 1:
        raise ValueError("n_records must be at least 1")
    if not dpis or any(int(d) < 50 for d in dpis):
        raise ValueError(f"dpis must be scanner resolutions, got {dpis!r}")
    dpis = [int(d) for d in dpis]
    batch_dir = Path(batch_dir)
    batch_id = batch_id or _default_batch_id(seed)
    truth_path = _truth_location(batch_dir, batch_id, truth_path)

    rng = random.Random(f"batch:{seed}:{agency_code}")
    page_plans, file_plans, cells = _plan(n_records, rng, dpis)
    _refuse_strays(batch_dir, [f.name for f in file_plans])
    procedures = list(PROCEDURES)
    rng.shuffle(procedures)
    sequence = rng.sample(range(1, 10000), n_records)

    contents: list[_Content] = []
    record_rows: list[list[list[Row]]] = []
    for i, pages in enumerate(page_plans):
        procedure = procedures[i % len(procedures)]
        # Typed pages are old; an old paper often has no 12-digit id to copy into the manifest.
        issued = None
        if pages[0].style == "typewriter":
            issued = dt.date(2005, 1, 1) + dt.timedelta(days=rng.randrange(1500))
        # The fixed first three: ids on the printed records, none on the typed one.
        with_id = rng.random() < 0.8 if i >= 3 else i != 1
        content = _content(rng, agency_code, procedure, with_id, issued)
        contents.append(content)
        record_rows.append(_fit(content.doc, pages[0].style, len(pages), rng))

    # File by file, so that at most one file's pages are held in memory.
    for fplan in file_plans:
        scans = [
            _scan(record_rows[i][j], page_plans[i][j], random.Random(f"page:{seed}:{i}:{j}"),
                  contents[i].doc.seal_text)
            for i, j in fplan.pages
        ]
        _save_images(batch_dir / fplan.name, fplan, scans)

    records = _sample_records(agency_code, page_plans, contents, record_rows, cells, sequence)
    batch = SampleBatch(batch_dir, agency_code, batch_id, tuple(records), truth_path=truth_path)
    _write_truth_and_manifest(batch, seed, vietnamese_headers)
    return batch


@dataclass(frozen=True)
class _CorpusShape:
    """One record of the benchmark corpus: what its pages are like and how they are saved."""

    style: str
    dpi: int
    rotations: tuple[int, ...]  # one per page
    fmt: str  # tif | jpg | png | pdf; a record's pages share one file
    seal: bool = False
    bleed: bool = False
    clean: bool = False  # upright, not skewed, no dust, blur or scanner border


# Sixteen pages that cover every case the benchmark reports on; the first two are one easy and
# one hard page, so that even a two-page smoke run has both groups.
_CORPUS_SHAPES = (
    _CorpusShape("serif", 300, (0,), "tif", clean=True),
    _CorpusShape("serif", 300, (90,), "jpg", seal=True),
    _CorpusShape("typewriter", 300, (0,), "png"),
    _CorpusShape("serif", 300, (0,), "tif", bleed=True),
    _CorpusShape("serif", 200, (0,), "pdf"),
    _CorpusShape("serif", 300, (180,), "jpg"),
    _CorpusShape("serif", 300, (0, 0), "tif"),  # two sheets in one multi-page TIFF
    _CorpusShape("serif", 300, (270,), "tif", seal=True),
    _CorpusShape("typewriter", 200, (90,), "tif", bleed=True),
    _CorpusShape("serif", 300, (0,), "pdf", seal=True),
    _CorpusShape("serif", 200, (270,), "png"),
    _CorpusShape("serif", 300, (0,), "png", clean=True),
    _CorpusShape("typewriter", 300, (180,), "pdf"),
    _CorpusShape("serif", 200, (0,), "jpg", seal=True, bleed=True),
    _CorpusShape("serif", 300, (0,), "jpg"),
)


def generate_corpus(
    batch_dir: Path, *, n_pages: int = 30, seed: int = 0, agency_code: str = DEFAULT_AGENCY,
    batch_id: str | None = None, truth_path: Path | None = None,
) -> SampleBatch:
    """A benchmark batch of exactly ``n_pages`` pages with controlled variety, written like
    :func:`generate_batch` (page files, ``manifest.csv``, ground truth outside the batch dir).

    Records of one page (a few of two, in a multi-page TIFF) cycle through a fixed list of
    shapes, so every 16 pages hold: clean pages (upright, no skew, no artefacts), seals,
    typewriter pages, show-through, 200 and 300 dpi, all four rotations, TIFF / JPEG / PNG /
    image-only PDF. All but the clean pages lie 0.3-5 degrees askew either way, every fifth
    page 4.5-5 degrees. Each record's pages are of one kind (dpi, seal, colour), so a
    per-record size is a per-kind size. See :func:`is_hard` for the hard pages.
    """
    if not 1 <= n_pages <= 5000:
        raise ValueError("n_pages must be between 1 and 5000")
    batch_dir = Path(batch_dir)
    batch_id = batch_id or f"BENCH-{seed}"
    truth_path = _truth_location(batch_dir, batch_id, truth_path)
    rng = random.Random(f"corpus:{seed}:{agency_code}")

    page_plans: list[list[_PagePlan]] = []
    file_plans: list[_FilePlan] = []
    page_no = 0
    while page_no < n_pages:
        shape = _CORPUS_SHAPES[len(page_plans) % len(_CORPUS_SHAPES)]
        prefix = "img" if shape.fmt in ("jpg", "png") else "scan"
        fplan = _FilePlan(f"{prefix}_{len(file_plans) + 1:04d}.{shape.fmt}", shape.fmt,
                          "RGB" if shape.seal else "L", shape.dpi)
        pages = []
        for idx, rotation in enumerate(shape.rotations[:n_pages - page_no]):
            skew = 0.0
            if not shape.clean:
                least = 4.5 if (page_no + idx) % 5 == 4 else 0.3  # every fifth near the limit
                skew = round(rng.choice((-1, 1)) * rng.uniform(least, 5.0), 2)
            pages.append(_PagePlan(
                style=shape.style, dpi=shape.dpi, rotation=rotation, skew=skew, seal=shape.seal,
                speckle=not shape.clean, blur=not shape.clean and rng.random() < 0.5,
                border=not shape.clean and rng.random() < 0.5, file=fplan.name,
                page_in_file=idx + 1, bleed=shape.bleed,
            ))
            fplan.pages.append((len(page_plans), idx))
        page_plans.append(pages)
        file_plans.append(fplan)
        page_no += len(pages)
    _refuse_strays(batch_dir, [f.name for f in file_plans])

    procedures = list(PROCEDURES)
    rng.shuffle(procedures)
    sequence = rng.sample(range(1, 10000), len(page_plans))
    contents: list[_Content] = []
    record_rows: list[list[list[Row]]] = []
    reverses: list[list[Line]] = []
    for i, pages in enumerate(page_plans):
        style = pages[0].style
        # Typed pages are old, as in generate_batch.
        issued = (dt.date(2005, 1, 1) + dt.timedelta(days=rng.randrange(1500))
                  if style == "typewriter" else None)
        content = _content(rng, agency_code, procedures[i % len(procedures)], rng.random() < 0.8,
                           issued)
        contents.append(content)
        record_rows.append(_fit(content.doc, style, len(pages), rng))
        # The back of the sheet carries another document of the same office.
        back_seed = rng.randrange(10**9)
        reverses.append(record_page_lines(seed=back_seed, style=style, agency_code=agency_code)[0]
                        if pages[0].bleed else [])

    for fplan in file_plans:
        scans = [
            _scan(record_rows[i][j], page_plans[i][j],
                  random.Random(f"corpus-page:{seed}:{i}:{j}"), contents[i].doc.seal_text,
                  reverses[i])
            for i, j in fplan.pages
        ]
        _save_images(batch_dir / fplan.name, fplan, scans)

    records = _sample_records(agency_code, page_plans, contents, record_rows,
                              [f.name for f in file_plans], sequence)
    batch = SampleBatch(batch_dir, agency_code, batch_id, tuple(records), truth_path=truth_path)
    _write_truth_and_manifest(batch, seed, vietnamese_headers=True)
    return batch


def generate_stack(
    batch_dir: Path, *, n_pages: int, seed: int = 0, agency_code: str = DEFAULT_AGENCY,
    batch_id: str | None = None, truth_path: Path | None = None, dpi: int = 300,
) -> SampleBatch:
    """A batch of one record whose ``n_pages`` pages are one multi-page greyscale TIFF, as a
    sheet feeder writes a long stack; for memory checks. Three scanned pages repeat, and the
    file is written page by page, so generating it holds three pages in memory however long
    the stack is."""
    if n_pages < 1:
        raise ValueError("n_pages must be at least 1")
    batch_dir = Path(batch_dir)
    batch_id = batch_id or f"STACK-{seed}"
    truth_path = _truth_location(batch_dir, batch_id, truth_path)
    name = "stack_0001.tif"
    _refuse_strays(batch_dir, [name])
    rng = random.Random(f"stack:{seed}:{agency_code}")
    content = _content(rng, agency_code, rng.choice(PROCEDURES), True)
    rows = _fit(content.doc, "serif", 3, rng)
    distinct = [
        _PagePlan(style="serif", dpi=dpi, rotation=0, skew=_skew(rng), seal=False, speckle=True,
                  blur=rng.random() < 0.5, border=False)
        for _ in rows
    ]
    scans = [_scan(r, plan, random.Random(f"stack-page:{seed}:{k}"), content.doc.seal_text)
             for k, (r, plan) in enumerate(zip(rows, distinct, strict=True))]

    def write(fh: io.BufferedWriter) -> None:
        with TiffImagePlugin.AppendingTiffWriter(fh) as tiff:
            for n in range(n_pages):
                scans[n % len(scans)].save(tiff, format="TIFF", compression="tiff_lzw",
                                           dpi=(dpi, dpi))
                tiff.newFrame()

    _atomic_write(batch_dir / name, write)
    plans = [replace(distinct[n % len(distinct)], file=name, page_in_file=n + 1)
             for n in range(n_pages)]
    page_rows = [rows[n % len(rows)] for n in range(n_pages)]
    records = _sample_records(agency_code, [plans], [content], [page_rows], [name],
                              [rng.randrange(1, 10000)])
    batch = SampleBatch(batch_dir, agency_code, batch_id, tuple(records), truth_path=truth_path)
    _write_truth_and_manifest(batch, seed, vietnamese_headers=True)
    return batch


def _truth_location(batch_dir: Path, batch_id: str, truth_path: Path | None) -> Path:
    """Where the ground truth goes (default ``<batch_dir parent>/<batch_id>.truth.json``);
    creates both folders. The truth never lives in the batch dir: the pipeline must not see it."""
    truth_path = Path(truth_path) if truth_path else batch_dir.parent / f"{batch_id}.truth.json"
    if truth_path.resolve().is_relative_to(batch_dir.resolve()):
        raise ValueError(f"{truth_path}: the ground truth must not live in the batch dir")
    batch_dir.mkdir(parents=True, exist_ok=True)
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    return truth_path


def _refuse_strays(batch_dir: Path, names: Iterable[str]) -> None:
    # A batch dir must hold exactly what the manifest names; refuse to mix in another batch.
    ours = {*names, "manifest.csv"}
    stray = sorted(p.name for p in batch_dir.iterdir() if p.name not in ours)
    if stray:
        raise FileExistsError(
            f"{batch_dir} already holds files this batch would not list: {stray[:5]}; "
            "generate into an empty or new directory."
        )


# The grey of the aged paper the typed pages of the 2000s are on (white is 255).
OLD_PAPER = 222


def on_paper(img: Image.Image, paper: int) -> Image.Image:
    """``img`` printed on a sheet of grey ``paper``: the sheet's tone darkens print and paper
    alike."""
    if paper >= 255:
        return img
    tinted = np.asarray(img, np.float32) * (paper / 255) + 0.5
    out = Image.fromarray(tinted.astype(np.uint8), img.mode)
    out.info.update(img.info)
    return out


def _scan(rows: Sequence[Line], plan: _PagePlan, rng: random.Random, seal_text: str,
          reverse: Sequence[Line] = ()) -> Image.Image:
    """One page as the scanner saves it, a typed one on grey paper; ``reverse`` is what is
    printed on the back of the sheet, shown through when ``plan.bleed``."""
    clean = render_page(rows, dpi=plan.dpi, style=plan.style, seal=plan.seal, rng=rng,
                        seal_text=seal_text)
    if not plan.seal:
        # Only a sealed page needs colour; grey halves the work.
        clean = clean.convert("L")
    if plan.style == "typewriter":
        clean = on_paper(clean, OLD_PAPER)
    back = (render_page(reverse, dpi=plan.dpi, style=plan.style, rng=rng).convert("L")
            if plan.bleed else None)
    return degrade(clean, rotation=plan.rotation, skew=plan.skew, rng=rng, speckle=plan.speckle,
                   blur=plan.blur, border=plan.border, dpi=plan.dpi, bleed=back)


def _sample_records(
    agency_code: str, page_plans: Sequence[Sequence[_PagePlan]], contents: Sequence[_Content],
    record_rows: Sequence[Sequence[Sequence[Row]]], cells: Sequence[str], sequence: Sequence[int],
) -> list[SampleRecord]:
    records = []
    for i, (pages, content) in enumerate(zip(page_plans, contents, strict=True)):
        day = content.issued_on
        records.append(SampleRecord(
            record_id=f"{agency_code}-{day:%y%m%d}-{sequence[i]:04d}",
            procedure_code=content.procedure.code,
            result_number=content.result_number,
            issued_on=day,
            holder_name=content.holder.person.name,
            holder_id=content.holder.citizen_id,
            files_field=cells[i],
            pages=tuple(
                SamplePage(file=p.file, page_in_file=p.page_in_file,
                           text=page_text(record_rows[i][j]), rotation=p.rotation,
                           skew=p.skew, dpi=p.dpi, style=p.style, seal=p.seal, bleed=p.bleed)
                for j, p in enumerate(pages)
            ),
        ))
    return records


def _write_truth_and_manifest(batch: SampleBatch, seed: int, vietnamese_headers: bool) -> None:
    assert batch.truth_path is not None
    truth = json.dumps(_truth_json(batch, seed, batch.truth_path.parent), ensure_ascii=False,
                       indent=2)
    truth += "\n"
    _atomic_write(batch.truth_path, lambda fh: fh.write(truth.encode("utf-8")))
    # The manifest comes last: the inbox watcher takes a batch with a manifest as complete.
    _write_manifest(batch.batch_dir / "manifest.csv", batch.records, vietnamese_headers)


def _write_manifest(path: Path, records: Sequence[SampleRecord], vietnamese: bool) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(VIETNAMESE_HEADERS if vietnamese else ENGLISH_HEADERS)
    for i, r in enumerate(records):
        # Clerks mostly type dd/mm/yyyy; some rows come from a system export in ISO form.
        issued = r.issued_on.isoformat() if i % 3 == 1 else f"{r.issued_on:%d/%m/%Y}"
        writer.writerow([
            r.record_id, r.procedure_code, r.result_number, issued, r.holder_name, r.holder_id,
            "có" if vietnamese else "true", r.files_field,
        ])
    data = buf.getvalue().encode("utf-8-sig" if vietnamese else "utf-8")
    _atomic_write(path, lambda fh: fh.write(data))
