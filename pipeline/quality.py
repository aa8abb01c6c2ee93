"""Text quality measures shared by the tests and the benchmarks."""

from __future__ import annotations

import re
import unicodedata

from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein

_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFC with all whitespace removed: line breaks and spacing are layout, not content."""
    return _SPACE.sub("", unicodedata.normalize("NFC", text))


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate: edit distance over the reference's length (whitespace ignored)."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return Levenshtein.distance(ref, hyp) / len(ref)


def in_reference_order(reference: str, hypothesis: str) -> str:
    """The hypothesis's lines sorted by where each one best matches in the reference.

    A decree's two-column header and signature block have no single reading order: OCR may read
    them column by column or line by line. Reordering whole lines (never characters) before the
    CER keeps every misread, dropped or extra character an error while not counting the choice
    of column order as one (the idea of the "flexible character accuracy" measure).
    """
    ref = normalise(reference)
    placed = []
    for index, line in enumerate(hypothesis.splitlines()):
        text = normalise(line)
        if not text:
            continue
        where = fuzz.partial_ratio_alignment(text, ref)
        placed.append((where.dest_start if where else len(ref), index, line))
    return "\n".join(line for *_, line in sorted(placed))


def flexible_cer(reference: str, hypothesis: str) -> float:
    return cer(reference, in_reference_order(reference, hypothesis))
