"""Post-correction of Tesseract's words by a Vietnamese word list: Tesseract's TSV (lines, words
and their confidences), the word list (pyvi's), and the correction of low-confidence words."""

from __future__ import annotations

import re
import unicodedata
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import util as importlib_util
from pathlib import Path

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from pipeline.demo.ocr_errors import strip_marks
from pipeline.imaging import ocr

LOW_CONFIDENCE = ocr.LOW_WORD_CONFIDENCE  # 60: a word / line below this is re-read or corrected


class MissingRequirement(RuntimeError):
    """A candidate needs something that is not installed."""


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


def wordlist_text(path: Path | None) -> tuple[str, str]:
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
    text, source = wordlist_text(path)
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


def oov_share(lex: Lexicon, texts: Iterable[str]) -> float | None:
    """The share of the words of ``texts`` (letters only) that are no syllable of ``lex``."""
    words = [m[2].lower() for text in texts for w in text.split()
             if (m := _CORE.match(w)) and m[2] and _LETTERS.fullmatch(m[2])]
    return sum(w not in lex.syllables for w in words) / len(words) if words else None
