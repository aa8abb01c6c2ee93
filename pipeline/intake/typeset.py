"""Fonts and line wrapping for printed sheets (cover sheets, and the demo's generated pages).

Needs a serif and a monospace font that cover Vietnamese: GNU FreeFont (Debian
``fonts-freefont-ttf``) is preferred, DejaVu / Liberation 2 / Noto Mono are fallbacks.
Liberation 1.x (Debian ``fonts-liberation``) lacks ơ/ư and is never used.
"""

from __future__ import annotations

import functools
from pathlib import Path

from PIL import ImageFont

STYLES = ("serif", "typewriter")

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


def check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, not {style!r}")


def font_path(style: str = "serif", *, bold: bool = False, italic: bool = False) -> Path:
    """The font file used for ``style`` (``serif`` or ``typewriter``)."""
    check_style(style)
    return _family(style)[int(bold) + 2 * int(italic)]


@functools.cache
def font(style: str, bold: bool, italic: bool, px: int) -> ImageFont.FreeTypeFont:
    """The font of ``style`` at ``px`` pixels."""
    # BASIC layout: NFC Vietnamese is all precomposed glyphs, and it does not depend on libraqm
    # being present, so pages come out identical on every machine.
    return ImageFont.truetype(
        str(font_path(style, bold=bold, italic=italic)), px, layout_engine=ImageFont.Layout.BASIC
    )


@functools.cache
def _word_width_em(word: str, style: str, bold: bool, italic: bool) -> float:
    # Measured at a large reference size so that line breaks do not depend on the output dpi.
    return font(style, bold, italic, 200).getlength(word) / 200.0


def text_width_pt(text: str, *, style: str, size: float, bold: bool, italic: bool) -> float:
    """The width of ``text`` set at ``size`` points, in points."""
    # Word by word (cached) rather than the whole string: wrapping re-measures every prefix.
    words = text.split(" ")
    ems = sum(_word_width_em(w, style, bold, italic) for w in words)
    ems += (len(words) - 1) * _word_width_em(" ", style, bold, italic)
    return ems * size


@functools.lru_cache(maxsize=4096)
def wrap_words(
    text: str, width_pt: float, *, style: str, size: float, bold: bool = False,
    italic: bool = False, first_indent_pt: float = 0.0,
) -> tuple[str, ...]:
    """``text`` broken into lines of at most ``width_pt`` points, the first indented by
    ``first_indent_pt``; a single word wider than the line gets a line of its own."""
    # A little slack keeps hinting differences between 200 and 300 dpi from overflowing the line.
    limit = width_pt * 0.985
    lines: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}" if current else word
        indent = first_indent_pt if not lines else 0.0
        if current and indent + text_width_pt(
            trial, style=style, size=size, bold=bold, italic=italic
        ) > limit:
            lines.append(current)
            current = word
        else:
            current = trial
    if current:
        lines.append(current)
    return tuple(lines)
