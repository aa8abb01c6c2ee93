"""Poppler: the text a PDF page carries, as a reader's search would find it (``pdftotext``), and
the page as a reader shows it (``pdftoppm``)."""

from __future__ import annotations

import unicodedata
from pathlib import Path

from pipeline._exec import run


def probe() -> str:
    """Poppler's version (``pdftotext -v``, on stderr), or ToolMissingError with the install hint:
    a batch fails at registration rather than on its first born-digital page."""
    out = run(["pdftotext", "-v"]).stderr.decode("utf-8", "replace")
    return out.split()[2] if out.startswith("pdftotext version ") else out.strip()


def page_text(pdf: Path, page: int, timeout: float = 120, *, raw: bool = False) -> str:
    """The text of page ``page`` (1-based), NFC like every text the pipeline keeps; with ``raw``
    in the order the page draws it rather than as it is laid out."""
    args = ["pdftotext", "-enc", "UTF-8", *(["-raw"] if raw else []), "-f", str(page), "-l", str(page),
            str(pdf), "-"]
    out = run(args, timeout=timeout).stdout.decode("utf-8", "replace")
    # pdftotext ends every page with a form feed; the caller joins pages with its own
    return unicodedata.normalize("NFC", out.removesuffix("\f"))


def render_png(pdf: Path, page: int, dpi: int, *, gray: bool = False, timeout: float = 120) -> bytes:
    """Page ``page`` (1-based) as a PNG at ``dpi``, turned as its /Rotate says."""
    args = ["pdftoppm", "-r", str(dpi), *(["-gray"] if gray else []), "-png", "-f", str(page),
            "-l", str(page), str(pdf)]
    return run(args, timeout=timeout).stdout
