"""OCR errors sorted by cause (issue 15): the truth's and the OCR's words of a page aligned, and
each wrong truth word put down to one cause (lost line, garbled run, tone mark, đ/d, vowel mark,
punctuation, case, split/merge, reading order, other)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz.distance import Levenshtein

CAUSES = ("lost_line", "garbled_run", "tone_mark", "d_stroke", "vowel_mark", "punctuation",
          "case", "split_merge", "reading_order", "other")
CAUSE_LABELS = {
    "lost_line": "lost line", "garbled_run": "garbled run (3+ words)", "tone_mark": "tone mark",
    "d_stroke": "đ/d", "vowel_mark": "vowel mark (â ă ê ô ơ ư)", "split_merge": "split/merge",
    "punctuation": "punctuation only (stray or lost . , : ' -)", "case": "letter case only",
    "reading_order": "reading order", "other": "other single word",
    "extra": "extra words (no truth word)",
}
# Tone marks: grave, acute, tilde, hook above, dot below. The vowel marks (circumflex, breve,
# horn) make other letters, not other tones.
_TONES = frozenset("\u0300\u0301\u0303\u0309\u0323")
GARBLED_RUN = 3  # this many consecutive wrong words (or more) are a garbled run
LOST_LINE_SIMILARITY = 0.5  # a line none of whose words is right, read as less like it than this
MOVED_LINE_SIMILARITY = 0.8  # a line found elsewhere at least this much like it is out of place
MOVED_LINE_MIN_CHARS = 4  # shorter lines ("-", "1.") are found anywhere: never out of place
SPLIT_MERGE_COST = 0.2  # the alignment's price for joining two words, over their distance


def strip_tones(word: str) -> str:
    """``word`` without its tone marks (its vowel marks and đ kept)."""
    return unicodedata.normalize(
        "NFC", "".join(c for c in unicodedata.normalize("NFD", word) if c not in _TONES))


def fold_d(word: str) -> str:
    return word.replace("đ", "d").replace("Đ", "D")


def strip_marks(word: str) -> str:
    """``word`` in bare Latin letters: no tone, no vowel mark, đ as d."""
    return "".join(c for c in unicodedata.normalize("NFD", fold_d(word))
                   if not unicodedata.combining(c))


def strip_punctuation(word: str) -> str:
    """``word`` without punctuation and symbols (Unicode categories P* and S*)."""
    return "".join(c for c in word if unicodedata.category(c)[0] not in "PS")


def word_cause(truth: str, read: str) -> str | None:
    """Why ``read`` is not ``truth``, one word against one; None if it is. Its letters are
    compared without punctuation: a word whose letters are right but whose punctuation is not
    (a speck read as a colon) is ``punctuation``, one right but for upper / lower case is
    ``case``; one whose letters are wrong is put down to its letters, whatever its punctuation
    (and case: marks are compared in the case read)."""
    if truth == read:
        return None
    truth, read = strip_punctuation(truth), strip_punctuation(read)
    if truth == read:
        return "punctuation"
    if truth.lower() == read.lower():
        return "case"
    if strip_tones(truth) == strip_tones(read):
        return "tone_mark"
    if fold_d(truth) == fold_d(read):
        return "d_stroke"
    if strip_tones(fold_d(truth)) == strip_tones(fold_d(read)):
        return "tone_mark"  # a tone and đ/d at once: the tone counts
    if strip_marks(truth) == strip_marks(read):
        return "vowel_mark"
    return "other"


@dataclass
class ErrorCounts:
    """Wrong truth words by cause, out of ``truth_words``; ``extra`` OCR words match none."""

    truth_words: int = 0
    extra: int = 0
    lost_lines: int = 0  # lines, not words
    moved_lines: int = 0  # lines, not words
    causes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CAUSES, 0))

    @property
    def wrong(self) -> int:
        return sum(self.causes.values())

    def add(self, other: ErrorCounts) -> None:
        self.truth_words += other.truth_words
        self.extra += other.extra
        self.lost_lines += other.lost_lines
        self.moved_lines += other.moved_lines
        for cause, n in other.causes.items():
            self.causes[cause] += n

    def as_dict(self) -> dict[str, Any]:
        def share(n: int) -> float | None:
            return round(n / self.truth_words, 5) if self.truth_words else None

        return {"truth_words": self.truth_words, "wrong_words": self.wrong,
                "lost_lines": self.lost_lines, "moved_lines": self.moved_lines,
                "words": {**self.causes, "extra": self.extra},
                "share_of_truth_words": {**{c: share(n) for c, n in self.causes.items()},
                                         "extra": share(self.extra)}}


def _words(text: str) -> tuple[list[str], list[int]]:
    """A text's words and the line each is on."""
    words: list[str] = []
    lines: list[int] = []
    for n, line in enumerate(unicodedata.normalize("NFC", text).splitlines()):
        for word in line.split():
            words.append(word)
            lines.append(n)
    return words, lines


def _blocks(truth: Sequence[str], read: Sequence[str]) -> list[tuple[int, int, int, int]]:
    """The stretches where the word alignment is not equal: (truth from, to, OCR from, to)."""
    out: list[list[int]] = []
    for op in Levenshtein.opcodes(truth, read):
        if op.tag == "equal":
            continue
        if out and out[-1][1] == op.src_start and out[-1][3] == op.dest_start:
            out[-1][1], out[-1][3] = op.src_end, op.dest_end
        else:
            out.append([op.src_start, op.src_end, op.dest_start, op.dest_end])
    return [(a, b, c, d) for a, b, c, d in out]


def _similarity(a: str, b: str) -> float:
    return Levenshtein.normalized_similarity(a, b)


def _align_block(truth: Sequence[str], read: Sequence[str]
                 ) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Word pairs of one stretch, by a small dynamic programme over characters: one truth word to
    one OCR word, to none (lost), none to one (extra), two to one (merged), one to two (split)."""
    m, n = len(truth), len(read)
    inf = float("inf")
    cost = [[inf] * (n + 1) for _ in range(m + 1)]
    back: list[list[tuple[int, int] | None]] = [[None] * (n + 1) for _ in range(m + 1)]
    cost[0][0] = 0.0
    for i in range(m + 1):
        for j in range(n + 1):
            here = cost[i][j]
            if here == inf:
                continue
            steps: list[tuple[int, int, float]] = [(1, 0, 1.0), (0, 1, 1.0)]
            if i < m and j < n:
                steps.append((1, 1, Levenshtein.normalized_distance(truth[i], read[j])))
            if i + 1 < m and j < n:
                steps.append((2, 1, Levenshtein.normalized_distance(truth[i] + truth[i + 1], read[j])
                              + SPLIT_MERGE_COST))
            if i < m and j + 1 < n:
                steps.append((1, 2, Levenshtein.normalized_distance(truth[i], read[j] + read[j + 1])
                              + SPLIT_MERGE_COST))
            for di, dj, c in steps:
                if i + di <= m and j + dj <= n and here + c < cost[i + di][j + dj]:
                    cost[i + di][j + dj] = here + c
                    back[i + di][j + dj] = (di, dj)
    pairs: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    i, j = m, n
    while i or j:
        step = back[i][j]
        assert step is not None
        di, dj = step
        pairs.append((tuple(range(i - di, i)), tuple(range(j - dj, j))))
        i, j = i - di, j - dj
    return pairs[::-1]


def _find_moved(line_text: str, size: int, free: list[bool], read: Sequence[str]
                ) -> list[int] | None:
    """A run of OCR words not matched yet that reads as ``line_text``, or None."""
    best: tuple[float, list[int]] | None = None
    n = len(read)
    for start in range(n):
        if not free[start]:
            continue
        for length in range(max(1, size - 1), size + 2):
            span = list(range(start, start + length))
            if span[-1] >= n or not all(free[k] for k in span):
                break
            score = _similarity(line_text, "".join(read[k] for k in span))
            if score >= MOVED_LINE_SIMILARITY and (best is None or score > best[0]):
                best = (score, span)
    return best[1] if best else None


def classify_errors(truth_text: str, ocr_text: str) -> tuple[ErrorCounts, list[str | None]]:
    """Each truth word of a page: None if read right, else its error's cause (:data:`CAUSES`).

    The truth's and the OCR's words are aligned (Levenshtein opcodes on the word lists); every
    stretch that is not equal is then looked at, in this order:

    - **reading order**: a truth line (4+ characters) not matched in place whose text turns up
      among the OCR words not matched (similarity >= 0.8): read, but elsewhere;
    - within each stretch the words are paired by a small alignment over characters (one to
      one, lost, extra, two to one, one to two), and then
    - **lost line**: a truth line none of whose words is right and whose paired OCR text is
      less than half like it, case aside (nothing, or something else read in its place);
    - **split/merge**: two truth words read as one or one as two, the letters all right;
    - one word against one: **punctuation** (its letters right, its punctuation not), **case**
      (right but for upper / lower case), and on the letters alone **tone mark** (right once
      the tone marks are taken off both), **đ/d** (right once đ is read as d), **vowel mark**
      (right in bare letters), or other;
    - **garbled run**: 3+ consecutive truth words all "other" (or lost), as one run.

    OCR words paired with no truth word are counted apart as ``extra`` (e.g. the seal's ring
    text, the reverse side's print read, speckle read as punctuation).
    """
    truth, truth_line = _words(truth_text)
    read, _ = _words(ocr_text)
    causes: list[str | None] = [None] * len(truth)
    counts = ErrorCounts(truth_words=len(truth))
    blocks = _blocks(truth, read)
    in_block = [False] * len(truth)
    free = [False] * len(read)  # OCR words not matched equal nor taken by a moved line
    for a, b, c, d in blocks:
        for i in range(a, b):
            in_block[i] = True
        for j in range(c, d):
            free[j] = True
    line_words: dict[int, list[int]] = {}
    for i, line in enumerate(truth_line):
        line_words.setdefault(line, []).append(i)

    # reading order: whole lines found elsewhere
    for members in line_words.values():
        unmatched = [i for i in members if in_block[i]]
        text = "".join(truth[i] for i in members)
        if len(unmatched) * 2 < len(members) or len(text) < MOVED_LINE_MIN_CHARS:
            continue
        span = _find_moved(text, len(members), free, read)
        if span is None:
            continue
        for k in span:
            free[k] = False
        for i in unmatched:
            causes[i] = "reading_order"
        counts.moved_lines += 1

    # the rest, stretch by stretch
    paired: dict[int, str] = {}  # truth word -> the OCR text paired with it
    for a, b, c, d in blocks:
        t_idx = [i for i in range(a, b) if causes[i] is None]
        o_idx = [j for j in range(c, d) if free[j]]
        for t_part, o_part in _align_block([truth[i] for i in t_idx], [read[j] for j in o_idx]):
            ts = [t_idx[k] for k in t_part]
            os_ = [o_idx[k] for k in o_part]
            if not ts:
                counts.extra += len(os_)
                continue
            got = " ".join(read[j] for j in os_)
            for i in ts:
                paired[i] = got if len(ts) == 1 else got + "\x00"  # shared by a merge
            if not os_:
                cause: str | None = "other"
            elif len(ts) == 1 and len(os_) == 1:
                cause = word_cause(truth[ts[0]], read[os_[0]])
            else:
                joined_t = "".join(truth[i] for i in ts)
                joined_o = "".join(read[j] for j in os_)
                cause = "split_merge" if joined_t == joined_o else "other"
            for i in ts:
                causes[i] = cause

    # lost lines
    for members in line_words.values():
        if any(causes[i] in (None, "reading_order") for i in members):
            continue
        text = "".join(truth[i] for i in members)
        got = "".join(dict.fromkeys(paired.get(i, "") for i in members)).replace("\x00", "")
        if _similarity(text.lower(), got.replace(" ", "").lower()) < LOST_LINE_SIMILARITY:
            for i in members:
                causes[i] = "lost_line"
            counts.lost_lines += 1

    # garbled runs
    i = 0
    while i < len(causes):
        if causes[i] != "other":
            i += 1
            continue
        j = i
        while j < len(causes) and causes[j] == "other":
            j += 1
        if j - i >= GARBLED_RUN:
            for k in range(i, j):
                causes[k] = "garbled_run"
        i = j

    for cause in causes:
        if cause is not None:
            counts.causes[cause] += 1
    return counts, causes
