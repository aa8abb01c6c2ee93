"""Text quality measures shared by the tests and the benchmarks."""

from __future__ import annotations

import re
import unicodedata

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
