"""Vietnamese text as the pipeline compares it: NFC values, and folded forms that ignore case,
tone marks and đ.

Clerks type with or without Vietnamese input, files copied from a Mac carry decomposed (NFD)
names, and OCR loses or misreads tone marks: ``Giấy phép xây dựng``, ``GIẤY PHÉP XÂY DỰNG`` and
``Giay phep xay dung`` must match wherever text is matched (column headers, the cross-check of a
first page, duplicates, search). The folded forms are also stored (archive file names, run
names), so a change to them renames files: keep them as they are.
"""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[0-9a-z_]+")


def nfc(text: str) -> str:
    """``text`` in Unicode NFC without surrounding whitespace: how every value read from a file
    or a folder name is kept."""
    return unicodedata.normalize("NFC", text).strip()


def strip_marks(text: str, compatibility: bool = False) -> str:
    """``text`` without tone marks or other combining marks and with đ/Đ as d/D; case and
    spacing kept.

    ``compatibility`` also turns compatibility characters into their plain forms (NFKD:
    ligatures, full-width and superscript letters and digits), for a name made ASCII; matching
    keeps them (NFD), so that the folded forms already stored stay the same.
    """
    decomposed = unicodedata.normalize("NFKD" if compatibility else "NFD",
                                       text.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def fold(text: str) -> str:
    """Lower case, no tone marks, đ as d, runs of whitespace as one space and none at the ends:
    ``'  Đông   Anh '`` -> ``'dong anh'``; the same for NFC and NFD input."""
    # lower() first: it can itself make a combining mark ("İ" -> "i" + dot above)
    return " ".join(strip_marks(text.lower()).split())


def tokens(text: str) -> list[str]:
    """The folded words: runs of ASCII letters, digits and ``_``; punctuation and any letter
    without an ASCII base separate them. ``'Mã TTHC (*)'`` -> ``['ma', 'tthc']``."""
    return _WORD.findall(fold(text))


def has_diacritics(word: str) -> bool:
    """Whether ``word`` carries a tone mark, a hat, a breve, a horn or is spelt with đ."""
    decomposed = unicodedata.normalize("NFD", word)
    return "đ" in word.lower() or any(unicodedata.combining(c) for c in decomposed)
