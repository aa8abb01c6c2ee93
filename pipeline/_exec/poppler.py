"""Poppler's ``pdftotext``: the text a PDF page carries, as a reader's search would find it."""

from __future__ import annotations

import unicodedata
from pathlib import Path

from pipeline._exec import run


def page_text(pdf: Path, page: int, timeout: float = 120) -> str:
    """The text of page ``page`` (1-based), NFC like every text the pipeline keeps."""
    out = run(["pdftotext", "-enc", "UTF-8", "-f", str(page), "-l", str(page), str(pdf), "-"],
              timeout=timeout).stdout.decode("utf-8", "replace")
    # pdftotext ends every page with a form feed; the caller joins pages with its own
    return unicodedata.normalize("NFC", out.removesuffix("\f"))
