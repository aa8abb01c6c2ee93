"""OCR candidates on the benchmark's pages, and their errors sorted by cause (issue 15).

    python -m pipeline.demo.ocr_candidates [--pages N] [--seed S] [--out DIR] [--only NAME,...]
                                      [--wordlist PATH]

A benchmark tool, not a pipeline stage: nothing in the pipeline imports it.

One run generates the corpus exactly as ``pipeline.demo.bench`` does
(:func:`pipeline.demo.samples.generate_corpus`), cleans every page once with the real cleanup and the
default scanner profile, and writes each page's OCR view with :func:`pipeline.imaging.ocr.write_view`,
as ``bench.phase_tesseract`` does (what the ``chosen`` candidate reads), and the grey view it is
made from (:func:`pipeline.imaging.ocr.grey_view`), which the other candidates vary. Then every
candidate reads every page, one page after another in this one process, Tesseract with
``OMP_THREAD_LIMIT=1`` and OpenCV on one thread:

- **CPU seconds per page**: Tesseract's (children's rusage) plus this process's own for what
  the candidate does in Python (a view derived from the page, a second pass, a correction).
  Writing the page's own view is not counted (the pipeline writes it anyway). A Tesseract run
  on the same input image with the same model and mode as one already made is not repeated:
  its result and its CPU seconds are taken over (a candidate that leaves a page's view as it is,
  or builds on the chosen first pass, is charged that pass's CPU as if it had run it);
- **CER** pooled per page class with ``bench``'s grouping (:data:`pipeline.demo.bench.CER_GROUPS`);
- **errors by cause** (:func:`classify_errors`): the truth's and the OCR's words aligned, each
  wrong truth word put down to one cause.

It writes ``OUT/candidates.json`` and ``OUT/candidates.md`` and prints the markdown. A
candidate that needs something not installed (Tesseract language data, a word list) stops
the run before anything is read, naming what to install.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import re
import resource
import subprocess
import sys
import time
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import util as importlib_util
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from pipeline._exec import tesseract
from pipeline.checks import crosscheck
from pipeline.demo import bench, samples
from pipeline.demo.quality import cer
from pipeline.imaging import cleanup, compose, ocr
from pipeline.intake import pages
from pipeline.models import ManifestRow
from pipeline.store.archive import atomic_write_bytes

log = logging.getLogger("pipeline.demo.ocr_candidates")

CHOSEN = "chosen"
LOW_CONFIDENCE = ocr.LOW_WORD_CONFIDENCE  # 60: a word / line below this is re-read or corrected
CPU_BUDGET = 1.3  # "within the speed budget": at most 30 % more CPU per page than the chosen one
# Where each language's data comes from (Debian packages).
LANGUAGE_PACKAGES = {"vie": "tesseract-ocr-vie", "Vietnamese": "tesseract-ocr-script-viet"}
# The page classes reported, bench's groups; the markdown's CER columns.
GROUPS = bench.CER_GROUPS
MD_CER_GROUPS = ("all", "hard", "typewriter", "seal", "dpi200", "bleed")
MD_GROUP_LABELS = {"all": "all", "hard": "hard", "easy": "easy", "typewriter": "typewriter",
                   "seal": "seal", "dpi200": "200 dpi", "bleed": "show-through"}


# --- error causes -------------------------------------------------------------------------------
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


# --- Tesseract's output ---------------------------------------------------------------------------
@dataclass
class TsvWord:
    text: str
    conf: float


@dataclass
class TsvLine:
    key: tuple[int, int, int, int]  # page, block, paragraph, line
    box: tuple[int, int, int, int]  # left, top, width, height
    words: list[TsvWord] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    @property
    def confidence(self) -> float:
        return sum(w.conf for w in self.words) / len(self.words) if self.words else 0.0


def parse_tsv(tsv: str) -> list[TsvLine]:
    """The text lines of Tesseract's TSV, in reading order, with their words' confidences."""
    lines: dict[tuple[int, int, int, int], TsvLine] = {}
    for raw in tsv.splitlines()[1:]:
        cols = raw.split("\t")
        if len(cols) < 12:
            continue
        level = int(cols[0])
        key = (int(cols[1]), int(cols[2]), int(cols[3]), int(cols[4]))
        box = (int(cols[6]), int(cols[7]), int(cols[8]), int(cols[9]))
        if level == 4:
            lines.setdefault(key, TsvLine(key, box))
        elif level == 5 and cols[11].strip():
            line = lines.setdefault(key, TsvLine(key, box))
            line.words.append(TsvWord(cols[11].strip(), float(cols[10])))
    return [line for line in lines.values() if line.words]


def tsv_text(lines: Iterable[TsvLine]) -> str:
    return "\n".join(line.text for line in lines)


# --- running Tesseract ----------------------------------------------------------------------------
def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


@dataclass
class OcrRun:
    text: str | None  # None: Tesseract failed on the page
    tsv: str
    cpu_seconds: float  # Tesseract's
    wall_seconds: float


def run_tesseract(image: Path, out_base: Path, lang: str, psm: int, *,
                  outputs: Sequence[str] = ("txt", "tsv")) -> OcrRun:
    """``tesseract IMAGE OUT_BASE -l LANG --psm PSM txt tsv`` on one thread."""
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    t0, cpu0 = time.perf_counter(), _cpu(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(["tesseract", str(image), str(out_base), "-l", lang, "--psm", str(psm),
                           *outputs], capture_output=True, text=True, env=env)
    cpu = _cpu(resource.RUSAGE_CHILDREN) - cpu0
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        log.warning("tesseract exit %d on %s: %s", proc.returncode, image,
                    " | ".join(proc.stderr.strip().splitlines()[-3:]))
        return OcrRun(None, "", cpu, wall)

    def read(ext: str) -> str:
        path = out_base.with_name(out_base.name + "." + ext)
        return path.read_text(encoding="utf-8") if path.exists() else ""

    return OcrRun(read("txt") if "txt" in outputs else "", read("tsv"), cpu, wall)


def _save_view(image: np.ndarray, dpi: int, path: Path) -> None:
    """As ``ocr.write_view`` saves: an uncompressed TIFF that keeps the dpi."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, dpi=(dpi, dpi))


# --- pages and what candidates see of them --------------------------------------------------------
@dataclass
class Page:
    n: int
    dpi: int
    view_path: Path  # the OCR view ocr.write_view wrote: what the pipeline reads
    grey_path: Path  # the grey view (ocr.grey_view) it is made from, which candidates vary
    view: np.ndarray  # the grey view
    colour: np.ndarray | None  # the cleaned page, where it has colour (else its grey is the view)


# A candidate's input: the view to read (image, dpi) or None for the page's own view.
ViewFn = Callable[[Page], tuple[np.ndarray, int] | None]


def _odd(n: float) -> int:
    k = max(3, round(n))
    return k if k % 2 else k + 1


def view_grey(page: Page) -> tuple[np.ndarray, int] | None:
    """No colour drop-out: the cleaned page in plain grey (luma)."""
    return None if page.colour is None else (cleanup.to_gray(page.colour), page.dpi)


def view_as_it_is(page: Page) -> tuple[np.ndarray, int] | None:
    """The grey view itself (the pipeline's OCR view before it was binarised)."""
    return None


def view_otsu(page: Page) -> tuple[np.ndarray, int] | None:
    return cleanup.binarised(page.view), page.dpi


def view_otsu_upscaled(page: Page) -> tuple[np.ndarray, int] | None:
    """200 dpi pages upscaled to 300 dpi first, then every page binarised (Otsu)."""
    view, dpi = view_upscaled(page) or (page.view, page.dpi)
    return cleanup.binarised(view), dpi


SAUVOLA_WINDOW_MM = 4.0
SAUVOLA_K = 0.34
SAUVOLA_R = 128.0


def sauvola(gray: np.ndarray, dpi: int, window_mm: float = SAUVOLA_WINDOW_MM, k: float = SAUVOLA_K,
            r: float = SAUVOLA_R) -> np.ndarray:
    """Sauvola's threshold T = m (1 + k (s / R - 1)) over a window, from box filters (neither
    opencv-contrib's ximgproc nor scikit-image is installed)."""
    w = _odd(window_mm / 25.4 * dpi)
    f = gray.astype(np.float32)
    mean = cv2.boxFilter(f, -1, (w, w), borderType=cv2.BORDER_REPLICATE)
    sq = cv2.boxFilter(f * f, -1, (w, w), borderType=cv2.BORDER_REPLICATE)
    std = np.sqrt(np.maximum(sq - mean * mean, 0))
    threshold = mean * (1 + k * (std / r - 1))
    return np.where(f > threshold, 255, 0).astype(np.uint8)


def view_sauvola(page: Page) -> tuple[np.ndarray, int] | None:
    return sauvola(page.view, page.dpi), page.dpi


SHOW_THROUGH_RATIO = 0.4  # light-grey pixels away from any ink, per ink pixel, above this
BACKGROUND = 235
INK = 128
INK_REACH_MM = 0.25  # a letter's grey edge lies this close to its dark core


def shows_through(gray: np.ndarray, dpi: int) -> bool:
    """Many light-grey pixels (150-234) that are not the grey edge of a dark letter (farther
    than 0.25 mm from any pixel below 128): on the bench pages 0.8-1.3 per dark pixel on
    show-through pages and at most 0.11 on the others (tuned on seed 0's pages)."""
    dark = (gray < INK).astype(np.uint8)
    reach = max(1, round(INK_REACH_MM / 25.4 * dpi))
    near = cv2.dilate(dark, cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                                      (2 * reach + 1, 2 * reach + 1)))
    far = np.count_nonzero((gray >= 150) & (gray < BACKGROUND) & (near == 0))
    return far > SHOW_THROUGH_RATIO * max(np.count_nonzero(dark), 1)


def suppress_show_through(gray: np.ndarray, dpi: int) -> tuple[np.ndarray, float | None]:
    """Whiten the reverse side's print where :func:`shows_through`: stretch the page's levels
    so that the Otsu threshold of its non-paper pixels (between the print and the light grey)
    turns white; the print's strokes keep their grey edges. Returns the page (the same array
    where it found nothing to do) and the level, or None."""
    if not shows_through(gray, dpi):
        return gray, None
    ink = gray[gray < BACKGROUND]
    level, _ = cv2.threshold(ink.reshape(1, -1), 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    level = max(float(level), 1.0)
    lut = np.clip(np.arange(256, dtype=np.float32) * 255.0 / level, 0, 255).astype(np.uint8)
    return cv2.LUT(gray, lut), level


def view_show_through(page: Page) -> tuple[np.ndarray, int] | None:
    out, level = suppress_show_through(page.view, page.dpi)
    return None if level is None else (out, page.dpi)


def view_show_through_otsu_upscaled(page: Page) -> tuple[np.ndarray, int] | None:
    """On the pages the show-through test finds: 200 dpi upscaled to 300, then Otsu; the other
    pages' grey view as it is."""
    _, level = suppress_show_through(page.view, page.dpi)
    return None if level is None else view_otsu_upscaled(page)


def view_show_through_otsu(page: Page) -> tuple[np.ndarray, int] | None:
    """Otsu binarisation on the pages the show-through test finds (see
    :func:`suppress_show_through`); the other pages' view as it is."""
    _, level = suppress_show_through(page.view, page.dpi)
    return None if level is None else view_otsu(page)


SEAL_CHROMA = 48  # channel spread of a coloured pixel
SEAL_LIGHT = 128  # its lightest channel above this: coloured ink alone, no print under it


def view_seal_white(page: Page) -> tuple[np.ndarray, int] | None:
    """A stronger drop-out: coloured pixels whose lightest channel is light (a seal or a pen
    stroke with no print under it) turn white; print under the ink stays dark in every channel,
    so it is kept."""
    if page.colour is None:
        return None
    img = page.colour
    lightest = np.maximum(np.maximum(img[..., 0], img[..., 1]), img[..., 2])
    darkest = np.minimum(np.minimum(img[..., 0], img[..., 1]), img[..., 2])
    mask = ((lightest - darkest) > SEAL_CHROMA) & (lightest > SEAL_LIGHT)
    out = page.view.copy()
    out[mask] = 255
    return out, page.dpi


def view_archived_render(page: Page) -> tuple[np.ndarray, int] | None:
    """What OCR read before issue 15: the archived page (compose.page_pdf) rendered again as
    OCRmyPDF's pypdfium rasteriser did, at the page's highest image resolution but 200 dpi at
    least (a mixed page's background is 100 dpi); a black-and-white page rendered in grey, then
    made 1-bit by Pillow (which dithers the anti-aliased edges); a colour one in RGB, then
    its lightest channel."""
    import pypdfium2

    image = page.colour if page.colour is not None else np.repeat(page.view[..., None], 3, 2)
    pdf = page.grey_path.with_name(f"{page.n:06d}-archived.pdf")
    kind = compose.page_pdf(image, page.dpi, pdf)
    dpi = max(200, page.dpi if kind is not compose.PageKind.mixed else compose.BACKGROUND_DPI)
    document = pypdfium2.PdfDocument(str(pdf))
    try:
        grey = kind in (compose.PageKind.bitonal, compose.PageKind.gray)
        rendered = document[0].render(scale=dpi / 72, grayscale=grey).to_pil()
    finally:
        document.close()
    if kind is compose.PageKind.bitonal:
        return np.asarray(rendered.convert("L").convert("1").convert("L")), dpi
    if grey:
        return np.asarray(rendered.convert("L")), dpi
    return cleanup.dropout(np.asarray(rendered.convert("RGB"))), dpi


UPSCALE_TO = 300


def view_upscaled(page: Page) -> tuple[np.ndarray, int] | None:
    if page.dpi >= UPSCALE_TO:
        return None
    factor = UPSCALE_TO / page.dpi
    return (cv2.resize(page.view, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC),
            UPSCALE_TO)


# --- word list for post-correction ----------------------------------------------------------------
PYVI_WORDS = "pyvi/models/words.txt"
WORDLIST_HINT = ("post-correction needs a Vietnamese word list: pass --wordlist PATH (pyvi's "
                 "models/words.txt, or a pyvi wheel, e.g. from `pip download pyvi --no-deps`), "
                 "or install pyvi (`pip install --no-deps pyvi`, MIT, ships models/words.txt)")
# Syllables whose tone sits on either vowel of a closing oa / oe / uy: hòa / hoà, thụy / thuỵ.
_TONE_PAIR = re.compile(r"(?<![qQ])([oOuU])([\u0300\u0301\u0303\u0309\u0323]?)([aAeEyY])"
                        r"([\u0300\u0301\u0303\u0309\u0323]?)$")


def tone_placements(syllable: str) -> set[str]:
    """A syllable in both tone placements for oa / oe / uy (old ``hòa``, new ``hoà``)."""
    nfd = unicodedata.normalize("NFD", syllable)
    m = _TONE_PAIR.search(nfd)
    if not m or not (m[2] or m[4]) or (m[1].lower(), m[3].lower()) not in (("o", "a"), ("o", "e"),
                                                                            ("u", "y")):
        return {syllable}
    tone = m[2] or m[4]
    head = nfd[:m.start()]
    return {unicodedata.normalize("NFC", head + m[1] + tone + m[3]),
            unicodedata.normalize("NFC", head + m[1] + m[3] + tone)}


def canonical(word: str) -> str:
    """One spelling per syllable for look-ups: lower case, the tone of oa / oe / uy on the first
    vowel (the larger code point of the two spellings)."""
    out = []
    for s in word.lower().split():
        variants = tone_placements(s)
        out.append(max(variants) if len(variants) > 1 else s)
    return " ".join(out)


@dataclass
class Lexicon:
    source: str
    syllables: set[str]  # every spelling, lower case
    words: set[str]  # canonical, lower case, syllables joined by a space
    syllable_list: list[str] = field(default_factory=list)


def _wordlist_text(path: Path | None) -> tuple[str, str]:
    if path is None:
        spec = importlib_util.find_spec("pyvi")
        if spec is None or not spec.submodule_search_locations:
            raise MissingRequirement(WORDLIST_HINT)
        path = Path(next(iter(spec.submodule_search_locations))) / "models" / "words.txt"
    if not path.is_file():
        raise MissingRequirement(f"{path} not found; {WORDLIST_HINT}")
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            try:
                return wheel.read(PYVI_WORDS).decode("utf-8"), f"{path}!{PYVI_WORDS}"
            except KeyError as exc:
                raise MissingRequirement(f"{path} has no {PYVI_WORDS}; {WORDLIST_HINT}") from exc
    return path.read_text(encoding="utf-8"), str(path)


def load_lexicon(path: Path | None) -> Lexicon:
    text, source = _wordlist_text(path)
    entries = [unicodedata.normalize("NFC", line.strip()).lower()
               for line in text.splitlines() if line.strip()]
    syllables = {v for entry in entries for s in entry.split() for v in tone_placements(s)}
    words = {canonical(entry) for entry in entries}
    return Lexicon(source, syllables, words, sorted(syllables))


_CORE = re.compile(r"^(\W*)(.*?)(\W*)$")
_LETTERS = re.compile(r"[^\W\d_]+")


def _recase(like: str, word: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def correct_word(lex: Lexicon, word: str, prev: str | None, nxt: str | None, *,
                 context_only: bool = False) -> str:
    """A low-confidence OCR word checked against the syllables: one that is none is replaced by
    the syllable one edit away, preferring one that makes a dictionary word with a neighbour,
    then one that differs only in its marks; left as it is when that does not settle it. With
    ``context_only`` a word that is a syllable may be replaced by another spelling of its
    letters (marks only) that makes a dictionary word with a neighbour where it makes none."""
    m = _CORE.match(word)
    assert m is not None
    lead, core, trail = m.groups()
    if not core or not _LETTERS.fullmatch(core):
        return word
    lower = core.lower()

    def in_context(candidate: str) -> bool:
        return any(n and canonical(f"{a} {b}") in lex.words
                   for n, (a, b) in ((prev, (prev, candidate)), (nxt, (candidate, nxt))))

    if lower in lex.syllables:
        if not context_only or in_context(lower):
            return word
        bare = strip_marks(lower)
        options = [c for c, _, _ in process.extract(lower, lex.syllable_list,
                                                    scorer=Levenshtein.distance, score_cutoff=1,
                                                    limit=None)
                   if c != lower and strip_marks(c) == bare and in_context(c)]
        options = list({canonical(c): c for c in options}.values())
        return lead + _recase(core, options[0]) + trail if len(options) == 1 else word
    if context_only:
        return word
    found = [c for c, _, _ in process.extract(lower, lex.syllable_list, scorer=Levenshtein.distance,
                                              score_cutoff=1, limit=None)]
    if not found:
        return word
    # one per syllable: the spelling nearest the word read, else the tone on the first vowel
    # (hòa, thụy: the larger code point), as the documents write it
    by_spelling: dict[str, str] = {}
    for c in found:
        key = canonical(c)
        old = by_spelling.get(key)
        if old is None or (Levenshtein.distance(lower, c), c != max(tone_placements(c))) < (
                Levenshtein.distance(lower, old), old != max(tone_placements(old))):
            by_spelling[key] = c
    bare = strip_marks(lower)
    scored = sorted(((2 * in_context(c) + (strip_marks(c) == bare), c)
                     for c in by_spelling.values()), reverse=True)
    best_score = scored[0][0]
    best = [c for s, c in scored if s == best_score]
    if len(best) != 1:
        return word
    return lead + _recase(core, best[0]) + trail


def _core(word: str) -> str:
    m = _CORE.match(word)
    return m[2].lower() if m else ""


def post_correct(lex: Lexicon, lines: Sequence[TsvLine], *, context_only: bool = False
                 ) -> tuple[list[TsvLine], int]:
    """The page's lines with their low-confidence words corrected, and how many were changed."""
    changed = 0
    out = []
    for line in lines:
        cores = [_core(w.text) for w in line.words]
        fixed = []
        for k, w in enumerate(line.words):
            new = w.text
            if w.conf < LOW_CONFIDENCE:
                prev = cores[k - 1] if k > 0 and cores[k - 1] else None
                nxt = cores[k + 1] if k + 1 < len(cores) and cores[k + 1] else None
                new = correct_word(lex, w.text, prev, nxt, context_only=context_only)
                changed += new != w.text
            fixed.append(TsvWord(new, w.conf))
        out.append(TsvLine(line.key, line.box, fixed))
    return out, changed


# --- candidates -----------------------------------------------------------------------------------
class MissingRequirement(RuntimeError):
    """A candidate needs something that is not installed."""


@dataclass
class Context:
    out: Path
    lexicon_path: Path | None
    cache: dict[tuple[int, str, str, int], OcrRun] = field(default_factory=dict)
    lexicon: Lexicon | None = None


@dataclass
class Outcome:
    text: str | None
    note: dict[str, int] = field(default_factory=dict)


# A second stage over the chosen first pass: (context, page, first pass, candidate) -> outcome.
PostFn = Callable[["Context", Page, OcrRun, "Candidate"], Outcome]


@dataclass(frozen=True)
class Candidate:
    name: str
    description: str
    lang: str = "vie"
    psm: int = tesseract.PAGE_SEGMENTATION_MODE
    view: ViewFn | None = None  # None: the page's OCR view as written
    post: PostFn | None = None  # reads the first pass (lang, psm, view) and makes the text
    second_lang: str | None = None  # the second pass's model
    needs_wordlist: bool = False

    @property
    def languages(self) -> set[str]:
        langs = set(self.lang.split("+"))
        if self.second_lang:
            langs |= set(self.second_lang.split("+"))
        return langs


LINE_PAD = 0.3  # of a line's height, around its crop for the second pass


def _second_pass(ctx: Context, page: Page, first: OcrRun, cand: Candidate,
                 binarise: bool) -> Outcome:
    lines = parse_tsv(first.tsv)
    low = [k for k, line in enumerate(lines) if line.confidence < LOW_CONFIDENCE]
    if not low:
        return Outcome(tsv_text(lines), {"lines_low": 0, "lines_replaced": 0})
    folder = ctx.out / "runs" / cand.name / f"{page.n:06d}-lines"
    folder.mkdir(parents=True, exist_ok=True)
    listing = []
    h_img, w_img = page.view.shape
    for k in low:
        left, top, width, height = lines[k].box
        pad = max(4, round(height * LINE_PAD))
        crop = page.view[max(0, top - pad):min(h_img, top + height + pad),
                         max(0, left - pad):min(w_img, left + width + pad)]
        if binarise:
            _, crop = cv2.threshold(crop, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        path = folder / f"{k:04d}.png"
        Image.fromarray(crop).save(path, dpi=(page.dpi, page.dpi))
        listing.append(str(path))
    (folder / "list.txt").write_text("\n".join(listing) + "\n", encoding="utf-8")
    run = run_tesseract(folder / "list.txt", folder / "second", cand.second_lang or "vie", 7,
                        outputs=("tsv",))
    again: dict[int, list[TsvLine]] = {}
    for line in parse_tsv(run.tsv):
        again.setdefault(line.key[0], []).append(line)
    replaced = 0
    for image_no, k in enumerate(low, start=1):
        redo = again.get(image_no, [])
        words = [w for line in redo for w in line.words]
        if not words:
            continue
        confidence = sum(w.conf for w in words) / len(words)
        if confidence > lines[k].confidence:
            lines[k] = TsvLine(lines[k].key, lines[k].box, words)
            replaced += 1
    return Outcome(tsv_text(lines), {"lines_low": len(low), "lines_replaced": replaced})


def post_second_pass_model(ctx: Context, page: Page, first: OcrRun, cand: Candidate) -> Outcome:
    return _second_pass(ctx, page, first, cand, binarise=False)


def post_second_pass_otsu(ctx: Context, page: Page, first: OcrRun, cand: Candidate) -> Outcome:
    return _second_pass(ctx, page, first, cand, binarise=True)


def _lexicon(ctx: Context) -> Lexicon:
    if ctx.lexicon is None:
        ctx.lexicon = load_lexicon(ctx.lexicon_path)
    return ctx.lexicon


def post_correct_words(ctx: Context, page: Page, first: OcrRun, cand: Candidate) -> Outcome:
    lines, changed = post_correct(_lexicon(ctx), parse_tsv(first.tsv))
    return Outcome(tsv_text(lines), {"words_changed": changed})


def post_correct_context(ctx: Context, page: Page, first: OcrRun, cand: Candidate) -> Outcome:
    lex = _lexicon(ctx)
    lines, changed = post_correct(lex, parse_tsv(first.tsv))
    # then the words that are syllables, by their (corrected) neighbours
    lines, more = post_correct(lex, lines, context_only=True)
    return Outcome(tsv_text(lines), {"words_changed": changed + more})


CANDIDATES: tuple[Candidate, ...] = (
    Candidate(CHOSEN, "vie, psm 4, the pipeline's OCR view (ocr.ocr_view): the grey view "
              "binarised at Otsu's level"),
    Candidate("grey-view", "the grey view as it is: the cleaned page in grey, colour dropped by "
              "the lightest channel (the OCR view before issue 15's choice)", view=view_as_it_is),
    Candidate("archived-render", "the OCR before issue 15: the archived page rendered again by "
              "OCRmyPDF's pypdfium rasteriser (200 dpi at least; black-and-white pages in grey, "
              "then 1-bit by Pillow)", view=view_archived_render),
    Candidate("psm3", "page segmentation mode 3 (fully automatic)", psm=3),
    Candidate("psm6", "page segmentation mode 6 (one uniform block of text)", psm=6),
    Candidate("grey", "no colour drop-out: the cleaned page in plain grey (luma)", view=view_grey),
    Candidate("seal-white", "stronger drop-out: coloured pixels whose lightest channel > 128 "
              "turn white (seal and pen strokes with no print under them)", view=view_seal_white),
    Candidate("sauvola", f"grey view binarised, Sauvola (window {SAUVOLA_WINDOW_MM:g} mm, "
              f"k {SAUVOLA_K}, R {SAUVOLA_R:g}; own box-filter code: no opencv-contrib, "
              "no scikit-image)", view=view_sauvola),
    Candidate("show-through", "show-through suppression: on pages with much light grey away "
              "from the letters, levels stretched so the Otsu level between the print and the "
              "light grey turns white",
              view=view_show_through),
    Candidate("show-through-otsu", "Otsu binarisation on the pages the show-through test "
              "finds, the grey view as it is on the others", view=view_show_through_otsu),
    Candidate("show-through-otsu-up", "on the pages the show-through test finds: 200 dpi "
              "upscaled to 300, then Otsu; the grey view as it is on the others",
              view=view_show_through_otsu_upscaled),
    Candidate("upscale200", "200 dpi pages upscaled to 300 dpi (INTER_CUBIC), dpi updated",
              view=view_upscaled),
    Candidate("otsu-upscale200", "200 dpi pages upscaled to 300 dpi, then every page "
              "binarised (Otsu)", view=view_otsu_upscaled),
    Candidate("viet", "the `Vietnamese` script model (tesseract-ocr-script-viet) alone",
              lang="Vietnamese"),
    Candidate("vie+viet", "vie+Vietnamese", lang="vie+Vietnamese"),
    Candidate("pass2-viet", "chosen, then lines of mean word confidence < 60 re-read by "
              "`Vietnamese` (psm 7 on the line crop); the line with the higher mean kept",
              post=post_second_pass_model, second_lang="Vietnamese"),
    Candidate("pass2-otsu", "chosen, then lines of mean word confidence < 60 re-read by vie on "
              "the Otsu-binarised line crop (psm 7); the line with the higher mean kept",
              post=post_second_pass_otsu, second_lang="vie"),
    Candidate("postcorrect", "chosen, then words of confidence < 60 that are no Vietnamese "
              "syllable replaced by the syllable one edit away (pyvi word list), by context",
              post=post_correct_words, needs_wordlist=True),
    Candidate("postcorrect-ctx", "postcorrect, and low-confidence syllables re-marked where "
              "another spelling of their letters makes a listed word with a neighbour",
              post=post_correct_context, needs_wordlist=True),
)
BY_NAME = {c.name: c for c in CANDIDATES}


def check_requirements(cands: Iterable[Candidate], lexicon_path: Path | None) -> None:
    """Raise MissingRequirement naming what to install for every candidate that cannot run."""
    installed = tesseract.languages()
    problems = []
    for cand in cands:
        for lang in sorted(cand.languages - installed):
            package = LANGUAGE_PACKAGES.get(lang, f"the Tesseract data for {lang!r}")
            problems.append(f"candidate {cand.name!r} needs Tesseract language data {lang!r}: "
                            f"install the Debian package {package} "
                            f"(apt-get install -y {package})")
        if cand.needs_wordlist:
            try:
                _wordlist_text(lexicon_path)
            except MissingRequirement as exc:
                problems.append(f"candidate {cand.name!r}: {exc}")
    if problems:
        raise MissingRequirement("; ".join(problems))


def _ocr(ctx: Context, page: Page, key: str, image: Path, lang: str, psm: int,
         cand_name: str) -> tuple[OcrRun, float]:
    """Tesseract on ``image``, or the result of the same run made before (and its CPU seconds,
    to charge: 0.0 where this call's own run is measured by the rusage around it)."""
    cached = ctx.cache.get((page.n, key, lang, psm))
    if cached is not None:
        return cached, cached.cpu_seconds
    base = ctx.out / "runs" / cand_name / f"{page.n:06d}"
    base.parent.mkdir(parents=True, exist_ok=True)
    run = run_tesseract(image, base, lang, psm)
    ctx.cache[(page.n, key, lang, psm)] = run
    return run, 0.0


@dataclass
class PageResult:
    n: int
    cer: float | None
    cpu_seconds: float
    wall_seconds: float
    reused_seconds: float  # of cpu_seconds, taken over from an identical earlier run
    note: dict[str, int]
    text: str | None = field(default=None, repr=False)


def run_candidate(ctx: Context, cand: Candidate, page: Page, truth: str) -> PageResult:
    self0, child0 = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    note: dict[str, int] = {}
    key, image = "view", page.view_path
    if cand.view is not None:
        derived = cand.view(page)
        key, image = "grey-view", page.grey_path
        if derived is not None and not (derived[0].shape == page.view.shape
                                        and np.array_equal(derived[0], page.view)):
            key = cand.name
            image = ctx.out / "views" / cand.name / f"{page.n:06d}.tif"
            _save_view(derived[0], derived[1], image)
            note["pages_changed"] = 1
    first, reused = _ocr(ctx, page, key, image, cand.lang, cand.psm, cand.name)
    outcome = Outcome(first.text)
    if cand.post is not None and first.text is not None:
        outcome = cand.post(ctx, page, first, cand)
    wall = time.perf_counter() - t0
    cpu = (_cpu(resource.RUSAGE_SELF) - self0) + (_cpu(resource.RUSAGE_CHILDREN) - child0) + reused
    note.update(outcome.note)
    return PageResult(page.n, cer(truth, outcome.text) if outcome.text is not None else None,
                      cpu, wall + (first.wall_seconds if reused else 0.0), reused, note,
                      outcome.text)


# --- the run ---------------------------------------------------------------------------------------
def prepare_pages(out: Path, n_pages: int, seed: int) -> tuple[samples.SampleBatch, list[Page]]:
    """The bench corpus, each page cleaned once and its OCR view written."""
    batch = samples.generate_corpus(out / "corpus" / samples.DEFAULT_AGENCY / f"BENCH-{seed}",
                                    n_pages=n_pages, seed=seed,
                                    truth_path=out / "corpus" / bench.TRUTH_NAME)
    profile = bench._settings(out / "settings", None).scanner_profile
    prepared = []
    (out / "views").mkdir(parents=True, exist_ok=True)
    for n, sample in enumerate(bench._corpus_pages(batch), start=1):
        image, dpi = pages.load_page(batch.batch_dir / sample.file, sample.page_in_file,
                                     profile.fallback_dpi)
        cleaned = cleanup.clean_page(image, dpi, profile.cleanup)
        ocr.write_view(cleaned.image, dpi, profile.ocr.colour_dropout, out / "views", n)
        path = out / "views" / ocr.VIEW_DIR / f"{n:06d}.tif"
        view = ocr.grey_view(cleaned.image, profile.ocr.colour_dropout)
        grey_path = out / "views" / "grey-view" / f"{n:06d}.tif"
        _save_view(view, dpi, grey_path)
        colour = cleaned.image
        if colour.ndim == 2 or (np.array_equal(colour[..., 0], colour[..., 1])
                                and np.array_equal(colour[..., 1], colour[..., 2])):
            colour = None
        prepared.append(Page(n, dpi, path, grey_path, view, colour))
        log.info("page %d: %s, %d dpi, %s%s%s", n, sample.style, dpi,
                 "seal, " if sample.seal else "", "show-through, " if sample.bleed else "",
                 "colour" if colour is not None else "grey")
    return batch, prepared


def aggregate(rows: Sequence[bench.PageRow], name: str, results: Sequence[PageResult],
              errors: Sequence[ErrorCounts]) -> dict[str, Any]:
    n = len(results)
    by_group: dict[str, dict[str, Any]] = {}
    for group in GROUPS:
        members = {r.n for r in bench.select(rows, group)}
        total = ErrorCounts()
        for result, counts in zip(results, errors, strict=True):
            if result.n in members:
                total.add(counts)
        by_group[group] = {"pages": len(members), **total.as_dict()}
    notes: dict[str, int] = {}
    for r in results:
        for k, v in r.note.items():
            notes[k] = notes.get(k, 0) + v
    return {
        "name": name, "description": BY_NAME[name].description if name in BY_NAME else "",
        "lang": BY_NAME[name].lang, "psm": BY_NAME[name].psm,
        "cer": {g: bench.pooled_cer(bench.select(rows, g), name) for g in GROUPS},
        "cpu_seconds_per_page": sum(r.cpu_seconds for r in results) / n if n else None,
        "wall_seconds_per_page": sum(r.wall_seconds for r in results) / n if n else None,
        "reused_cpu_seconds_per_page": sum(r.reused_seconds for r in results) / n if n else None,
        "notes": notes,
        "errors": by_group,
        "pages": [{k: v for k, v in asdict(r).items() if k != "text"} for r in results],
    }


def pick(report_rows: Sequence[dict[str, Any]]) -> dict[str, str | None]:
    """The lowest CER on all pages, and the lowest within the CPU budget of the chosen one."""
    scored = [r for r in report_rows if r["cer"]["all"] is not None]
    best = min(scored, key=lambda r: r["cer"]["all"])["name"] if scored else None
    chosen = next((r for r in report_rows if r["name"] == CHOSEN), None)
    within = None
    if chosen is not None:
        budget = chosen["cpu_seconds_per_page"] * CPU_BUDGET
        ok = [r for r in scored if r["cpu_seconds_per_page"] <= budget]
        within = min(ok, key=lambda r: r["cer"]["all"])["name"] if ok else None
    return {"best_cer": best, "best_within_budget": within}


def _pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f} %"


def fields_missed(batch: samples.SampleBatch, texts: Sequence[str | None]) -> dict[str, Any]:
    """On how many records' first pages the cross-check (the pipeline's own,
    :func:`pipeline.checks.crosscheck.check_first_page`) misses the result number or the issue date
    that the record has: what a misread digit costs, which CER hides."""
    missed = []
    first = 1  # texts are in corpus order: records in manifest order, then their pages
    for rec in batch.records:
        row = ManifestRow(line=2, record_id=rec.record_id, procedure_code=rec.procedure_code,
                          result_number=rec.result_number, issued_on=rec.issued_on)
        if crosscheck.check_first_page(row, texts[first - 1] or ""):
            missed.append(first)
        first += len(rec.pages)
    return {"missed": len(missed), "first_pages": len(batch.records), "pages": missed}


def render(report: dict[str, Any]) -> str:
    meta = report["corpus"]
    rows = report["candidates"]
    chosen = next((r for r in rows if r["name"] == CHOSEN), None)
    lines = [
        f"# OCR candidates: {meta['pages']} pages, seed {meta['seed']}",
        "",
        f"`{' '.join(report['environment']['command'])}`  ",
        f"{report['environment']['tesseract']}; {report['environment']['cpus']} CPUs, load "
        f"{report['environment']['load_average'][0]:.2f} at start; Tesseract with "
        "OMP_THREAD_LIMIT=1, one page at a time.  ",
        "Pages: " + ", ".join(f"{report['classes'][g]} {MD_GROUP_LABELS[g]}" for g in GROUPS),
        "",
        "| candidate | CER " + " | CER ".join(MD_GROUP_LABELS[g] for g in MD_CER_GROUPS)
        + " | number or date missed | CPU s/page | × chosen | notes |",
        "|---" * (len(MD_CER_GROUPS) + 5) + "|",
    ]
    for r in rows:
        ratio = (r["cpu_seconds_per_page"] / chosen["cpu_seconds_per_page"]
                 if chosen and chosen["cpu_seconds_per_page"] else None)
        notes = ", ".join(f"{k} {v}" for k, v in r["notes"].items())
        missed = r["fields_missed"]
        lines.append(f"| {r['name']} | " + " | ".join(_pct(r["cer"][g]) for g in MD_CER_GROUPS)
                     + f" | {missed['missed']} of {missed['first_pages']}"
                     + f" | {r['cpu_seconds_per_page']:.2f} | "
                     + ("–" if ratio is None else f"{ratio:.2f}") + f" | {notes} |")
    picks = report["picks"]
    lines += ["", f"Lowest CER on all pages: **{picks['best_cer']}**. Lowest within +30 % CPU of "
              f"the chosen one: **{picks['best_within_budget']}**.", ""]
    lines += ["Candidates:", ""] + [f"- `{r['name']}`: {r['description']}" for r in rows]

    def cause_table(title: str, columns: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
        out = ["", title, "", "| cause | " + " | ".join(c for c, _ in columns) + " |",
               "|---" * (len(columns) + 1) + "|"]
        for cause in (*CAUSES, "extra"):
            cells = [f"{e['words'][cause]} ({_pct(e['share_of_truth_words'][cause], 1)})"
                     for _, e in columns]
            out.append(f"| {CAUSE_LABELS[cause]} | " + " | ".join(cells) + " |")
        out.append("| wrong truth words | " + " | ".join(
            f"{e['wrong_words']} of {e['truth_words']}" for _, e in columns) + " |")
        out.append("| lines lost / out of place | " + " | ".join(
            f"{e['lost_lines']} / {e['moved_lines']}" for _, e in columns) + " |")
        return out

    if chosen is not None:
        lines += cause_table(
            "Errors of `chosen` by cause and page class: truth words (share of the class's truth "
            "words):", [(MD_GROUP_LABELS[g], chosen["errors"][g]) for g in GROUPS
                        if chosen["errors"][g]["pages"]])
    causes = (*CAUSES, "extra")
    lines += ["", "Errors by cause, every candidate, all pages: truth words (share of the truth "
              "words):", "",
              "| candidate | " + " | ".join(CAUSE_LABELS[c] for c in causes)
              + " | wrong truth words | lines lost / out of place |",
              "|---" * (len(causes) + 3) + "|"]
    for r in rows:
        e = r["errors"]["all"]
        lines.append(f"| {r['name']} | " + " | ".join(
            f"{e['words'][c]} ({_pct(e['share_of_truth_words'][c], 1)})" for c in causes)
            + f" | {e['wrong_words']} of {e['truth_words']} | {e['lost_lines']} / "
            f"{e['moved_lines']} |")
    lex = report.get("wordlist")
    if lex:
        lines += ["", f"Word list: {lex['source']}: {lex['entries']} entries, {lex['syllables']} "
                  f"syllable spellings; {_pct(lex['truth_oov'], 1)} of the truth's words are "
                  "no syllable in it (names, abbreviations)."]
    return "\n".join(lines) + "\n"


def _environment(argv: Sequence[str]) -> dict[str, Any]:
    tessdata = Path("/usr/share/tesseract-ocr/5/tessdata")
    return {
        "cpus": len(os.sched_getaffinity(0)), "load_average": os.getloadavg(),
        "python": platform.python_version(), "platform": platform.platform(),
        "tesseract": bench._first_line(["tesseract", "--version"]),
        "traineddata": {p.name: p.stat().st_size for p in sorted(tessdata.glob("*.traineddata"))}
        if tessdata.is_dir() else {},
        "command": ["python", "-m", "pipeline.demo.ocr_candidates", *argv],
    }


def _truth_oov(lex: Lexicon, rows: Sequence[bench.PageRow]) -> float | None:
    words = [m[2].lower() for row in rows for w in row.truth.split()
             if (m := _CORE.match(w)) and m[2] and _LETTERS.fullmatch(m[2])]
    return sum(w not in lex.syllables for w in words) / len(words) if words else None


def run(out: Path, *, n_pages: int, seed: int, names: Sequence[str], lexicon_path: Path | None,
        argv: Sequence[str]) -> dict[str, Any]:
    cands = [BY_NAME[n] for n in names]
    check_requirements(cands, lexicon_path)
    cv2.setNumThreads(1)
    started = dt.datetime.now().isoformat(timespec="seconds")
    environment = _environment(argv)
    log.info("generating and cleaning %d pages into %s", n_pages, out)
    batch, prepared = prepare_pages(out, n_pages, seed)
    rows = bench.build_rows(batch)
    ctx = Context(out=out, lexicon_path=lexicon_path)
    if any(c.needs_wordlist for c in cands):
        _lexicon(ctx)  # loaded once, as a worker would, before anything is timed
    report_rows = []
    texts: dict[str, list[str | None]] = {}
    for cand in cands:
        results = []
        for page, row in zip(prepared, rows, strict=True):
            result = run_candidate(ctx, cand, page, row.truth)
            row.results[cand.name] = bench.Measured(cer=result.cer, seconds=result.cpu_seconds)
            results.append(result)
        errors = [classify_errors(row.truth, r.text or "")[0]
                  for row, r in zip(rows, results, strict=True)]
        texts[cand.name] = [r.text for r in results]
        summary = aggregate(rows, cand.name, results, errors)
        summary["fields_missed"] = fields_missed(batch, [r.text for r in results])
        report_rows.append(summary)
        log.info("%s: CER %s, %.2f CPU s/page", cand.name, _pct(summary["cer"]["all"]),
                 summary["cpu_seconds_per_page"])
    wordlist = None
    if ctx.lexicon is not None:
        wordlist = {"source": ctx.lexicon.source, "entries": len(ctx.lexicon.words),
                    "syllables": len(ctx.lexicon.syllables),
                    "truth_oov": _truth_oov(ctx.lexicon, rows)}
    environment["load_average_end"] = os.getloadavg()
    report = {
        "tool": "pipeline.demo.ocr_candidates", "started_at": started,
        "finished_at": dt.datetime.now().isoformat(timespec="seconds"),
        "environment": environment, "corpus": bench._corpus_meta(batch, seed),
        "classes": {g: len(bench.select(rows, g)) for g in GROUPS},
        "cpu_budget_vs_chosen": CPU_BUDGET, "low_confidence": LOW_CONFIDENCE,
        "wordlist": wordlist,
        "candidates": report_rows,
        "picks": pick(report_rows),
        "page_classes": [{"n": r.n, "style": r.style, "dpi": r.dpi, "seal": r.seal,
                          "bleed": r.bleed, "hard": r.hard, "chars": r.chars} for r in rows],
    }
    for name, page_texts in texts.items():
        folder = out / "texts" / name
        folder.mkdir(parents=True, exist_ok=True)
        for n, text in enumerate(page_texts, start=1):
            (folder / f"{n:06d}.txt").write_text(text or "", encoding="utf-8")
    bench._write_json(out / "candidates.json", report)
    table = render(report)
    atomic_write_bytes(out / "candidates.md", table.encode())
    print(table)
    return report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline.demo.ocr_candidates",
        description="OCR candidates (views, models, second pass, post-correction) on the "
                    "benchmark's pages, with their errors sorted by cause.")
    p.add_argument("--pages", type=int, default=16, help="corpus pages (default 16)")
    p.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder, new or empty (default var/ocr-candidates/<timestamp>)")
    p.add_argument("--only", default=None,
                   help="comma-separated candidates to run (default all): "
                        + ", ".join(c.name for c in CANDIDATES))
    p.add_argument("--wordlist", type=Path, default=None,
                   help="Vietnamese word list for post-correction: a words.txt (one word a line) "
                        "or a pyvi wheel; default pyvi's, if pyvi is installed")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    bench.start_logging()
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else list(BY_NAME)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown or not names:
        print(f"unknown candidate(s) {unknown}; known: {', '.join(BY_NAME)}", file=sys.stderr)
        return 2
    if args.pages < 1:
        print("--pages must be at least 1", file=sys.stderr)
        return 2
    out = (args.out or Path("var") / "ocr-candidates"
           / dt.datetime.now().strftime("%Y%m%d-%H%M%S")).resolve()
    if bench.used(out):
        return 2
    try:
        check_requirements([BY_NAME[n] for n in names], args.wordlist)
    except MissingRequirement as exc:
        print(f"cannot run: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    run(out, n_pages=args.pages, seed=args.seed, names=names, lexicon_path=args.wordlist,
        argv=argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
