"""Drawing a laid-out page into an image: printed or typed text, and over the signature block a
red round seal and a blue signature."""

from __future__ import annotations

import math
import random
import unicodedata
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pipeline.demo.layout import (
    BASELINE_EM,
    MARGIN_L_MM,
    MARGIN_R_MM,
    MARGIN_T_MM,
    PAGE_H_MM,
    PAGE_W_MM,
    PT_PER_MM,
    TEXT_W_PT,
    Line,
    Span,
    as_row,
    row_extent,
)
from pipeline.intake import typeset

SEAL_DIAMETER_MM = 34.0
INK_GREY = 22
SEAL_RGB = (206, 38, 44)
PEN_RGB = (28, 48, 150)


def _page_px(dpi: int) -> tuple[int, int]:
    return round(PAGE_W_MM / 25.4 * dpi), round(PAGE_H_MM / 25.4 * dpi)


def render_page(
    lines: Sequence[Line], *, dpi: int = 300, style: str = "serif", seal: bool = False,
    rng: random.Random | None = None, seal_text: str = "ỦY BAN NHÂN DÂN",
) -> Image.Image:
    """Render a clean, upright A4 page (RGB) at ``dpi``.

    ``lines`` are plain strings (a left-aligned 13 pt body line each) or :class:`Span` rows as
    built by :func:`pipeline.demo.layout.record_page_lines`. With ``seal`` a red round stamp and
    a blue signature are laid over the signature block (the spans marked ``sig_title`` /
    ``signer``), multiply-blended so the text under them stays legible, above all after a
    red-channel dropout.
    """
    typeset.check_style(style)
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
        row = as_row(line)
        if not row:
            continue
        space, row_h, size = row_extent(row)
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
    font = typeset.font(style, span.bold, italic, size_px)
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
    ref = typeset.font("serif", True, False, 100)
    advances = [ref.getlength(ch) / 100 if ch != "★" else 0.9 for ch in ring]
    glyph_px = max(8, min(round(radius * 0.2), round(2 * math.pi * ring_r * 0.97 / sum(advances))))
    font = typeset.font("serif", True, False, glyph_px)
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
