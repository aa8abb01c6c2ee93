"""A result's manifest fields found on its first page, from the layout Tesseract gives.

A first page laid out as Nghị định 30/2020 says has a two-column header (the agency left, the
national motto right), then on one row the number left ("Số: 712/GPXD") and the place and date
right ("Đông Anh, ngày 19 tháng 11 năm 2005"), then the title in capitals with its subject
below ("QUYẾT ĐỊNH" / "Về việc ..."), then the body naming the holder ("Cấp cho: Bà ...",
"Họ và tên: ...", "Chủ hộ: ...", "... đối với ông ...") and their id. Tesseract often reads the
two header columns as one line; a line is cut into its columns where its words leave a gap wider
than the text is high.

Each field comes with a confidence (0-1: the lowest Tesseract word confidence of the words it
was read from, lowered where the reading had to be repaired or the layout is not the usual one)
and those words. A field that is not found, or found twice with different values, is left empty:
an empty cell is checked by the clerk, a wrong one may not be.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from rapidfuzz import fuzz, process

from pipeline.checks.crosscheck import DIGIT_LOOKALIKES, dates_on_page
from pipeline.checks.validate import Procedure
from pipeline.config import DRAFT_SURE
from pipeline.imaging.hocr import Box, Line, Page, Word
from pipeline.text import fold, tokens

FIELDS = ("procedure_code", "result_number", "issued_on", "holder_name", "holder_id")
# at or above this a field is taken as read; below it the clerk is asked to look
CONFIDENT = DRAFT_SURE
HEADER_LINES = 12  # the number and date row is among the first lines of a page
FIRST_YEAR = 1975

# --- procedure matching: how a title must resemble a catalogue name --------------------------
TITLE_WORD_SIMILARITY = 80  # an OCR slip in a title word still finds the catalogue's word
MATCH_MIN = 0.3  # below this no catalogue name is the title's
MATCH_SURE = 0.45
MATCH_MARGIN = 0.08  # the best name must lead the next by this to be taken without review
CANDIDATES = 3


@dataclass(frozen=True)
class Field:
    value: str = ""
    confidence: float = 0.0
    source: str = ""  # the words it was read from, as Tesseract read them
    candidates: tuple[str, ...] = ()  # for a procedure that is not sure: the best few codes

    @property
    def sure(self) -> bool:
        return bool(self.value) and self.confidence >= CONFIDENT


EMPTY = Field()


@dataclass(frozen=True)
class PageFields:
    procedure_code: Field = EMPTY
    result_number: Field = EMPTY
    issued_on: Field = EMPTY
    holder_name: Field = EMPTY
    holder_id: Field = EMPTY

    def get(self, name: str) -> Field:
        value: Field = getattr(self, name)
        return value


# --- layout ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    """One column's part of a line: its words, and where each starts in ``text``."""

    words: tuple[Word, ...]
    text: str = field(init=False)
    starts: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        starts, at = [], 0
        for word in self.words:
            starts.append(at)
            at += len(word.text) + 1
        object.__setattr__(self, "text", " ".join(w.text for w in self.words))
        object.__setattr__(self, "starts", tuple(starts))

    @property
    def left(self) -> int:
        return self.words[0].box.left

    @property
    def right(self) -> int:
        return self.words[-1].box.right

    @property
    def box(self) -> Box:
        return Box(self.left, min(w.box.top for w in self.words), self.right,
                   max(w.box.bottom for w in self.words))

    def words_in(self, start: int, end: int) -> tuple[Word, ...]:
        """The words that the characters ``start:end`` of ``text`` fall on."""
        return tuple(w for w, s in zip(self.words, self.starts, strict=True)
                     if s < end and s + len(w.text) > start)


def segments(line: Line) -> list[Segment]:
    """The line cut into columns where a gap between words is wider than one and a half times
    the line's height (a word space is a third of it)."""
    height = max(1, line.box.bottom - line.box.top)
    parts: list[list[Word]] = []
    for word in line.words:
        if not word.text.strip():
            continue
        if parts and word.box.left - parts[-1][-1].box.right <= 1.5 * height:
            parts[-1].append(word)
        else:
            parts.append([word])
    return [Segment(tuple(p)) for p in parts]


def _confidence(words: Iterable[Word]) -> float:
    values = [w.confidence for w in words]
    if not values:
        return 0.0
    # a word without a confidence is one Tesseract did not vouch for
    return min((v if v is not None else 50) for v in values) / 100


def _source(words: Iterable[Word]) -> str:
    return " ".join(w.text for w in words)


def _letters_upper(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum(c.isupper() for c in letters) / len(letters) if len(letters) >= 4 else 0.0


# --- result number -------------------------------------------------------------------------------
_D = r"[0-9OoIl|\]\[!]"
# stray marks before the label (a speck read as "'" or ".") are skipped
_NUMBER_LABEL = re.compile(r"^\W*(S\S{0,2}?)\s*[:;.,]?\s*(?=" + _D + ")")
# Ð (eth) is what Tesseract often reads for Đ, sometimes beside it (QĐÐ)
_NUMBER = re.compile(
    rf"({_D}{{1,5}})\s*/\s*([0-9A-ZĐÐ&]+(?:\s*[-.]\s*[0-9A-ZĐÐ&]+)*)(?=[\s,.;:]|$)")
_NUMBER_LABEL_FOLDED = {"so", "s0", "s6", "se", "sa", "sb"}
# Tesseract's confidence in a field that a second, different reading of its line confirms
AGREED = 0.9
# a field that only one of two readings gives, or that two readings give differently
ONE_READING = 0.6


@dataclass(frozen=True)
class _Number:
    value: str
    start: int
    end: int
    repaired: bool  # a letter was read for a digit, or Ð for Đ


def _label_word(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", fold(text))


def _number_in(text: str) -> _Number | None:
    """``Số: 712/GPXD`` at the start of ``text``: the number, O read as 0 and l as 1."""
    label = _NUMBER_LABEL.match(text)
    if not label or _label_word(label[1]) not in _NUMBER_LABEL_FOLDED:
        return None
    number = _NUMBER.match(text, label.end())
    if not number:
        return None
    digits = number[1].lower().translate(DIGIT_LOOKALIKES)
    symbol = re.sub(r"\s+", "", number[2])
    repaired = digits != number[1] or "Ð" in symbol
    symbol = symbol.replace("ĐÐ", "Đ").replace("Ð", "Đ")
    return _Number(f"{int(digits)}/{symbol}", number.start(), number.end(), repaired)


def result_number(header: Sequence[Segment]) -> tuple[Field, Segment | None]:
    """``Số: 712/GPXD``: the first header segment that starts with the label and a number."""
    for seg in header:
        number = _number_in(seg.text)
        if number is None:
            continue
        confidence = _confidence(seg.words_in(number.start, number.end))
        if number.repaired:
            confidence = min(confidence, ONE_READING)  # probably right, worth a look
        return Field(number.value, confidence, _source(seg.words_in(0, number.end))), seg
    # the label alone: the number after it is there but not legible
    labelled = next((seg for seg in header if _NUMBER_LABEL.match(seg.text + "0")
                     and _label_word(seg.text.split()[0]) in _NUMBER_LABEL_FOLDED), None)
    return EMPTY, labelled


# --- issue date --------------------------------------------------------------------------------
# Tesseract writes a zero it reads with a stroke through as Ø, which the cross-check's dates
# do not take for a digit
_SLASHED_ZERO = str.maketrans("Øø", "00")


def _date_in(text: str, today: dt.date) -> dt.date | None:
    text = text.translate(_SLASHED_ZERO)
    days = {d for d in dates_on_page(text) if d.year >= FIRST_YEAR and d <= today} \
        if "ngay" in fold(text) else set()
    return days.pop() if len(days) == 1 else None


def issued_on(header: Sequence[Segment], today: dt.date) -> tuple[Field, Segment | None]:
    """The header's "<place>, ngày 19 tháng 11 năm 2005": the one date on a header segment that
    names a day; none if the header gives two different ones."""
    found: dict[dt.date, Segment] = {}
    for seg in header:
        day = _date_in(seg.text, today)
        if day:
            found.setdefault(day, seg)
    if len(found) != 1:
        dated = [seg for seg in header if "ngay" in fold(seg.text) and "nam" in fold(seg.text)]
        return EMPTY, dated[0] if len(dated) == 1 and not found else None
    (day, seg), = found.items()
    figures = [w for w in seg.words if re.search(r"\d", w.text)]
    confidence = _confidence(figures)
    if any(c in "".join(w.text for w in figures) for c in "OoIl|][!"):
        confidence *= 0.8
    return Field(f"{day:%d/%m/%Y}", confidence, seg.text), seg


Reread = Callable[[Box, float], str]
# enlargements of a line read again: as it is, then (where the readings differ) half again
REREAD_SCALES = (1.0, 1.5)


def confirmed(first: Field, seg: Segment | None, parse: Callable[[str], str | None],
              reread: Reread, prefer_again: bool = False) -> Field:
    """``first`` weighed against its line read again alone (``parse`` finds the field in a
    reading): the same value is sure. Otherwise the line is read a third time, enlarged, and
    the value most readings give is proposed for review with the readings named; between
    readings that all differ, a second reading's if ``prefer_again`` (it is read the better
    way), else the first."""
    if seg is None:
        return first
    readings: list[tuple[str, str | None]] = []
    for scale in REREAD_SCALES:
        text = reread(seg.box, scale)
        readings.append((text, parse(text)))
        if readings[0][1] and readings[0][1] == first.value:
            return replace(first, confidence=max(first.confidence, AGREED))
    again = [value for _, value in readings if value]
    votes = [*([first.value] if first.value else []), *again]
    if not votes:
        return first
    order = [*again, first.value] if prefer_again else [first.value, *again]
    value = max(votes, key=lambda v: (votes.count(v), -order.index(v)))
    confidence = min(first.confidence, ONE_READING) if first.value else ONE_READING
    return Field(value, confidence,
                 " | đọc lại: ".join([first.source or seg.text, *(t for t, _ in readings)]))


# --- title and procedure -------------------------------------------------------------------------
def _centred(line: Line, left: int, right: int) -> bool:
    middle = (line.box.left + line.box.right) / 2
    return abs(middle - (left + right) / 2) <= 0.08 * (right - left)


def title_block(lines: Sequence[Line], after: int) -> tuple[str, tuple[Word, ...]]:
    """The title in capitals after line ``after`` and the subject lines centred under it
    ("Về việc ...", "Sử dụng cho ..."), up to a line with a figure or a line in capitals."""
    wide = [ln for ln in lines if len(ln.words) >= 3] or list(lines)
    left = min(ln.box.left for ln in wide)
    right = max(ln.box.right for ln in wide)
    for i in range(after + 1, min(len(lines), after + 6)):
        if _letters_upper(lines[i].text) < 0.8:
            continue
        block = [lines[i]]
        for line in lines[i + 1:i + 4]:
            capitals = _letters_upper(line.text) >= 0.8
            if capitals and block[-1] is lines[i] and _centred(line, left, right):
                block.append(line)  # a title wrapped onto a second line
                continue
            if capitals or re.search(r"\d", line.text) or not _centred(line, left, right):
                break
            block.append(line)
        words = tuple(w for ln in block for w in ln.words)
        return " ".join(ln.text for ln in block), words
    return "", ()


def _vocabulary_words(text: str, vocabulary: Sequence[str]) -> set[str]:
    """The title's folded words that the catalogue's names use, an OCR slip put right."""
    known = set(vocabulary)
    out = set()
    for word in tokens(text):
        if word in known:
            out.add(word)
        elif len(word) >= 4:
            hit = process.extractOne(word, vocabulary, scorer=fuzz.ratio,
                                     score_cutoff=TITLE_WORD_SIMILARITY)
            if hit:
                out.add(hit[0])
    return out


def match_procedure(title: str, words: Sequence[Word], procedures: Mapping[str, Procedure],
                    level: str, issued: dt.date | None = None) -> Field:
    """The catalogue entry at the agency's ``level`` (valid on ``issued`` when known) whose name
    shares most words with the title, by F1 over folded words (title words no name uses do not
    count: "Quyết định", "Về việc"); the best few as candidates."""
    usable = {code: p for code, p in procedures.items() if level in p.levels
              and not (issued and p.valid_from and p.valid_from > issued)
              and not (issued and p.valid_to and p.valid_to < issued)}
    if not title or not usable:
        return EMPTY
    names = {code: set(tokens(p.name)) for code, p in usable.items()}
    vocabulary = sorted(set().union(*names.values()))
    said = _vocabulary_words(title, vocabulary)
    if not said:
        return EMPTY
    scores = []
    for code, name in names.items():
        shared = len(said & name)
        score = 2 * shared / (len(said) + len(name)) if shared else 0.0
        scores.append((score, code))
    scores.sort(key=lambda s: (-s[0], s[1]))
    best, code = scores[0]
    if best < MATCH_MIN:
        return EMPTY
    runner_up = scores[1][0] if len(scores) > 1 else 0.0
    candidates = tuple(c for s, c in scores[:CANDIDATES] if s >= MATCH_MIN)
    sure = best >= MATCH_SURE and best - runner_up >= MATCH_MARGIN
    confidence = min(_confidence(words), 0.95) if sure else min(0.5, best)
    return Field(code, round(confidence, 2), title, candidates if not sure else ())


# --- holder --------------------------------------------------------------------------------------
_LABELS = (("cap", "cho"), ("ho", "va", "ten"), ("chu", "ho"))
_TITLES = {"ong", "ba"}
_STRIP = ",.;:)(\"'"


def _name_word(text: str) -> bool:
    core = text.strip(_STRIP)
    return bool(core) and core.isalpha() and core[0].isupper()


def _name_after(words: Sequence[Word], i: int) -> tuple[str, tuple[Word, ...]] | None:
    """The name that starts at ``words[i]``: capitalised words up to punctuation or a word in
    lower case, two to six of them."""
    taken: list[Word] = []
    for word in words[i:i + 6]:
        if not _name_word(word.text):
            break
        taken.append(word)
        if word.text[-1] in _STRIP:
            break
    if not 2 <= len(taken) <= 6:
        return None
    parts = [w.text.strip(_STRIP) for w in taken]
    name = " ".join(parts)
    return (name.title() if name.isupper() else name), tuple(taken)


def _unglued(words: Sequence[Word]) -> list[Word]:
    """Words that OCR joined with a stray mark (``Nguyễn'Thu``) apart again."""
    out = []
    for word in words:
        parts = re.split(r"(?<=\w)['`’\"](?=\w)", word.text)
        out += [Word(part, word.box, word.confidence) for part in parts] if len(parts) > 1 \
            else [word]
    return out


def _name_confidence(words: Sequence[Word]) -> float:
    # Tesseract loses or swaps the marks under capitals (ĐẶNG read ĐĂNG) with high word
    # confidences: a name printed in capitals is always worth a look
    if all(w.text.strip(_STRIP).isupper() for w in words):
        return min(_confidence(words), ONE_READING)
    return _confidence(words)


def holder_name(body: Sequence[Word]) -> Field:
    """The holder after a label ("Cấp cho", "Họ và tên ...:", "Chủ hộ") or else after the first
    "ông"/"bà" that a capitalised name follows."""
    body = _unglued(body)
    folded = [fold(w.text).strip(_STRIP) for w in body]
    for i in range(len(body)):
        for label in _LABELS:
            if tuple(folded[i:i + len(label)]) != label:
                continue
            # "Họ và tên đại diện hộ kinh doanh: ..." - the name comes after the colon
            j = i + len(label)
            for k in range(j - 1, min(len(body), j + 6)):
                if body[k].text.endswith(":"):
                    j = k + 1
                    break
            if j < len(body) and folded[j] in _TITLES:
                j += 1
            found = _name_after(body, j)
            if found:
                return Field(found[0], _name_confidence(found[1]),
                             _source((*body[i:j], *found[1])))
    for i, word in enumerate(folded):
        if word in _TITLES:
            found = _name_after(body, i + 1)
            if found:
                # no label says this person holds the result: likely, not certain
                return Field(found[0], min(_name_confidence(found[1]), 0.85),
                             _source((body[i], *found[1])))
    return EMPTY


# a run of digits, perhaps cut by OCR spaces, that is no part of a date, a figure ("300.000",
# "12,5") or a longer number; a full stop after it ends the sentence
_ID_RUN = re.compile(r"(?<![\d/])(?<!\d[.,])(\d[\d ]{7,14}\d(?:-\d{3})?)(?![\d/]|[.,]\d|-\d)")
# what names the id before it, and the lengths it may have
_ID_LABELS = (
    (("dinh", "danh"), {12}), (("can", "cuoc"), {12}), (("cccd",), {12}),
    (("chung", "minh"), {9, 12}), (("cmnd",), {9, 12}),
    (("ma", "so", "thue"), {10, 13}), (("mst",), {10, 13}),
)
_ID_LENGTHS = {9, 10, 12, 13}
_LABEL_REACH = 6  # words between a label and its number


def _id_label(before: Sequence[str]) -> set[int] | None:
    for label, lengths in _ID_LABELS:
        for k in range(len(before) - len(label) + 1):
            if tuple(before[k:k + len(label)]) == label:
                return lengths
    return None


def holder_id(body: Sequence[Word]) -> Field:
    """The first number shaped like a person's or a business's id: 12 digits (citizen id), 9
    (old identity card), 10 or 13 (tax code, ``0101234567-001``). Sure only after a label that
    names an id of that length; a bare number of the shape is only proposed."""
    segment = Segment(tuple(body))
    folded = [fold(w.text).strip(_STRIP) for w in body]
    index = {s: k for k, s in enumerate(segment.starts)}
    unlabelled: list[Field] = []
    for run in _ID_RUN.finditer(segment.text):
        value = run[1].replace(" ", "")
        digits = value.replace("-", "")
        if len(digits) not in _ID_LENGTHS or ("-" in value and len(digits) != 13):
            continue
        words = segment.words_in(run.start(1), run.end(1))
        first = index.get(segment.text.rfind(" ", 0, run.start(1)) + 1, 0)
        lengths = _id_label(folded[max(0, first - _LABEL_REACH):first])
        shape = len(digits) if "-" not in value else 13
        if lengths and shape in lengths:
            return Field(value, _confidence(words),
                         _source((*body[max(0, first - 4):first], *words)))
        if lengths:
            continue  # an id of the wrong length after its label: a digit lost or added
        unlabelled.append(Field(value, min(0.5, _confidence(words)), _source(words)))
    return unlabelled[0] if len(unlabelled) == 1 else EMPTY


# --- the page ------------------------------------------------------------------------------------
def header_end(lines: Sequence[Line]) -> int:
    """The index of the header's last line: the row of the number or of the place and date,
    else the motto's; -1 for a page without the usual header."""
    motto = -1
    for i, line in enumerate(lines[:HEADER_LINES]):
        text = fold(line.text)
        if any(_NUMBER_LABEL.match(seg.text) for seg in segments(line)) \
                or ("ngay" in text and "thang" in text and "nam" in text):
            return i
        if "hanh phuc" in text:
            motto = i
    return motto


def read_fields(page: Page, procedures: Mapping[str, Procedure], level: str,
                today: dt.date | None = None, reread: Reread | None = None) -> PageFields:
    """Every field of the page; an empty :class:`PageFields` for a page without text. With
    ``reread`` (a line's box and an enlargement -> its text read again alone, upright) the
    number and the date are each confirmed by reading their line again (:func:`confirmed`);
    the date's line is in italics (Nghị định 30/2020), which the readings again, leaned back,
    read better."""
    today = today or dt.date.today()
    lines = [ln for ln in page.lines if ln.words]
    if not lines:
        return PageFields()
    end = header_end(lines)
    header = [seg for ln in lines[:max(end + 1, 1)] for seg in segments(ln)]
    number, number_seg = result_number(header)
    issued, date_seg = issued_on(header, today)
    if reread is not None:
        def number_in(text: str) -> str | None:
            found = _number_in(text)
            return found.value if found else None

        def date_in(text: str) -> str | None:
            day = _date_in(text, today)
            return f"{day:%d/%m/%Y}" if day else None

        number = confirmed(number, number_seg, number_in, reread)
        issued = confirmed(issued, date_seg, date_in, reread, prefer_again=True)
    title, title_words = title_block(lines, end)
    issued_day = dt.datetime.strptime(issued.value, "%d/%m/%Y").date() if issued.value else None
    body = [w for ln in lines[end + 1:] for w in ln.words if w.text.strip()]
    return PageFields(
        procedure_code=match_procedure(title, title_words, procedures, level, issued_day),
        result_number=number, issued_on=issued, holder_name=holder_name(body),
        holder_id=holder_id(body))
