"""Page layout of the generated records: rows of text fragments on an A4 page laid out as
Nghị định 30/2020 says (two-column header, title, body paragraphs, signature block), flowed onto
as many pages as asked.

Ground truth convention (:func:`page_text`): one line per text line actually drawn, NFC, in
row-major reading order: rows top to bottom, and within a visual row the fragments left to right
(so the two-column header reads "UBND HUYỆN …", "CỘNG HÒA …", "PHÒNG …", "Độc lập …", and the
"Nơi nhận:" list interleaves with the signature block row by row). This is the order Tesseract
produces with ``--psm 6``. The seal ring text and the signature scribble are never in the truth.
A record's text is its pages' texts joined with "\\n".
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import zip_longest

from pipeline.demo.content import DEFAULT_AGENCY, PROCEDURES, Doc, record_content
from pipeline.intake.typeset import check_style, text_width_pt, wrap_words

# --- page geometry (A4, margins of Nghị định 30/2020: left 30-35 mm, right 15-20 mm) ----------
PAGE_W_MM, PAGE_H_MM = 210.0, 297.0
MARGIN_L_MM, MARGIN_R_MM, MARGIN_T_MM, MARGIN_B_MM = 30.0, 20.0, 20.0, 20.0
PT_PER_MM = 72.0 / 25.4
TEXT_W_PT = (PAGE_W_MM - MARGIN_L_MM - MARGIN_R_MM) * PT_PER_MM
TEXT_H_PT = (PAGE_H_MM - MARGIN_T_MM - MARGIN_B_MM) * PT_PER_MM
# Header columns: the national title at 12 pt bold needs ~88 mm, so the agency block gets the rest
# and wraps long unit names onto two lines, as clerks do.
HEADER_LEFT = (0.0, 0.40)
HEADER_RIGHT = (0.40, 1.0)
SIG_LEFT = (0.0, 0.5)
SIG_RIGHT = (0.5, 1.0)
BODY_PT = 13.0
TITLE_PT = 14.0
HEADER_PT = 12.0
# Baseline sits this many em below the row top: Vietnamese capitals with stacked marks (Ễ, Ộ)
# reach ~0.9 em above the baseline and must not touch the row above.
BASELINE_EM = 0.95
SIG_GAP_ROWS = 5


# --- page description ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Span:
    """One text fragment on a row of the page; geometry in points/mm, so it is dpi-independent."""

    text: str
    col: tuple[float, float] = (0.0, 1.0)  # column as fractions of the text-block width
    align: str = "left"  # left | center | right | justify
    size: float = BODY_PT
    bold: bool = False
    italic: bool = False
    indent_mm: float = 0.0  # from the column's left edge (left / justify)
    leading: float = 1.35  # row height in em
    space_before: float = 0.0  # pt
    rule: float = 0.0  # draw a rule under the text, this fraction of its width
    mark: str = ""  # "sig_title" / "signer": where the seal and the signature go


Line = str | Span | Sequence[Span]
Row = tuple[Span, ...]


def as_row(line: Line) -> Row:
    if isinstance(line, str):
        return (Span(line),)
    if isinstance(line, Span):
        return (line,)
    return tuple(line)


def page_text(lines: Iterable[Line]) -> str:
    """Ground truth of a page: every drawn fragment, one per line, rows top to bottom, left to
    right within a row, NFC."""
    out: list[str] = []
    for line in lines:
        for span in sorted(as_row(line), key=lambda s: s.col[0]):
            text = unicodedata.normalize("NFC", span.text).strip()
            if text:
                out.append(text)
    return "\n".join(out)


def row_extent(row: Row) -> tuple[float, float, float]:
    """(space before, height, largest size) of a row, in points."""
    size = max(s.size for s in row)
    height = max(s.size * s.leading + (0.3 * s.size if s.rule else 0.0) for s in row)
    return max(s.space_before for s in row), height, size


def _para(
    text: str, style: str, *, size: float = BODY_PT, bold: bool = False, italic: bool = False,
    align: str = "justify", indent_mm: float = 10.0, col: tuple[float, float] = (0.0, 1.0),
    space_before: float = 5.0, leading: float = 1.35, rule: float = 0.0,
) -> list[Row]:
    """Wrap a paragraph into rows: first-line indent, justified except its last line."""
    if style == "typewriter":
        # A typewriter can neither justify nor slant, and a typist spaces paragraphs by the
        # platen's half-line click, not by 6 pt.
        italic = False
        if align == "justify":
            align = "left"
        space_before *= 0.5
    width = (col[1] - col[0]) * TEXT_W_PT
    indent_pt = indent_mm * PT_PER_MM if align in ("left", "justify") else 0.0
    wrapped = wrap_words(text, width, style=style, size=size, bold=bold, italic=italic,
                    first_indent_pt=indent_pt)
    rows: list[Row] = []
    for i, line in enumerate(wrapped):
        last = i == len(wrapped) - 1
        rows.append((Span(
            line, col=col, align="left" if align == "justify" and last else align, size=size,
            bold=bold, italic=italic, indent_mm=indent_mm if i == 0 else 0.0, leading=leading,
            space_before=space_before if i == 0 else 0.0, rule=rule if last else 0.0,
        ),))
    return rows


# --- a record laid out on pages -------------------------------------------------------------------
def _balanced_wrap(text: str, width_pt: float, *, style: str, size: float, bold: bool
                   ) -> list[str]:
    """Two lines of about equal width, as clerks break a long agency name ("PHÒNG TÀI CHÍNH -"
    / "KẾ HOẠCH"), rather than a greedy break that strands one word."""
    lines = wrap_words(text, width_pt, style=style, size=size, bold=bold)
    if len(lines) != 2:
        return list(lines)
    words = text.split()

    def cost(k: int) -> float:
        return max(text_width_pt(" ".join(part), style=style, size=size, bold=bold,
                                 italic=False) for part in (words[:k], words[k:]))

    # A dash ends the first line when it can, and never starts the second.
    at_dash = [k for k in range(1, len(words)) if words[k - 1] == "-" and cost(k) <= width_pt]
    breaks = at_dash or [k for k in range(1, len(words)) if words[k] != "-"]
    best = min(breaks, key=cost)
    return [" ".join(words[:best]), " ".join(words[best:])]


def _header_rows(doc: Doc, style: str) -> list[Row]:
    left: list[Span] = []
    parent, unit = doc.agency
    # The parent line is bold when it names the issuing council itself.
    parent_bold = parent.startswith("ỦY BAN")
    lw = (HEADER_LEFT[1] - HEADER_LEFT[0]) * TEXT_W_PT
    for text, bold in ((parent, parent_bold), (unit, True)):
        for piece in _balanced_wrap(text, lw, style=style, size=HEADER_PT, bold=bold):
            left.append(Span(piece, col=HEADER_LEFT, align="center", size=HEADER_PT, bold=bold,
                             leading=1.3))
    left[-1] = replace(left[-1], rule=0.4)
    right = [
        Span("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", col=HEADER_RIGHT, align="center",
             size=HEADER_PT, bold=True, leading=1.3),
        Span("Độc lập - Tự do - Hạnh phúc", col=HEADER_RIGHT, align="center", size=BODY_PT,
             bold=True, leading=1.3, rule=1.0),
    ]
    rows: list[Row] = [
        tuple(s for s in pair if s is not None) for pair in zip_longest(left, right)
    ]
    rows.append((
        Span(f"Số: {doc.number}", col=HEADER_LEFT, align="center", size=BODY_PT,
             space_before=9.0),
        Span(doc.place_date, col=HEADER_RIGHT, align="center", size=BODY_PT, italic=True,
             space_before=9.0),
    ))
    return rows


def _lead_rows(kind: str, text: str, style: str, article_no: int | None) -> list[Row]:
    """Rows of one body item; ``kind`` is center_bold, center, center_italic, basis (the italic
    "Căn cứ ..." lines), article ("Điều n. ...") or item (an indented paragraph)."""
    kind = kind.rstrip("?")
    if kind == "center_bold":
        return _para(text, style, bold=True, align="center", space_before=8.0)
    if kind == "center":
        return _para(text, style, align="center", space_before=6.0)
    if kind == "center_italic":
        return _para(text, style, italic=True, align="center", space_before=2.0)
    if kind == "basis":
        return _para(text, style, italic=True, space_before=3.0)
    if kind == "article":
        return _para(f"Điều {article_no}. {text}", style, space_before=6.0)
    return _para(text, style, space_before=4.0)


def _signature_rows(doc: Doc, style: str, last_article: int) -> list[Row]:
    right = [Span(t, col=SIG_RIGHT, align="center", bold=True) for t in doc.sig_org]
    right.append(Span(doc.sig_title, col=SIG_RIGHT, align="center", bold=True, mark="sig_title"))
    right += [Span("", col=SIG_RIGHT)] * SIG_GAP_ROWS
    right.append(Span(doc.signer, col=SIG_RIGHT, align="center", bold=True, mark="signer"))
    left = [Span("Nơi nhận:", col=SIG_LEFT, size=12.0, bold=True, italic=True)]
    left += [Span(r.format(last=last_article), col=SIG_LEFT, size=11.0)
             for r in doc.recipients]
    rows = [tuple(s for s in pair if s is not None) for pair in zip_longest(left, right)]
    rows[0] = tuple(replace(s, space_before=14.0) for s in rows[0])
    return rows


def _paginate(blocks: Sequence[tuple[list[Row], bool]]) -> list[list[Row]]:
    """Flow rows onto pages; a block flagged True is never split. Pages after the first start
    with their page number, centred at the top (Nghị định 30/2020)."""
    pages: list[list[Row]] = [[]]
    used = 0.0

    def extent(row: Row, at_top: bool) -> float:
        space, height, _ = row_extent(row)
        return height + (0.0 if at_top else space)

    def new_page() -> None:
        nonlocal used
        number: Row = (Span(str(len(pages) + 1), align="center", leading=2.0),)
        pages.append([number])
        used = extent(number, True)

    for rows, keep in blocks:
        if keep:
            need = sum(extent(r, False) for r in rows)
            if used + need > TEXT_H_PT and pages[-1]:
                new_page()
        for row in rows:
            if used + extent(row, False) > TEXT_H_PT and pages[-1]:
                new_page()
            used += extent(row, not pages[-1])
            pages[-1].append(row)
    return pages


def _compose(doc: Doc, style: str, n_fillers: int) -> list[list[Row]]:
    blocks: list[tuple[list[Row], bool]] = [(_header_rows(doc, style), True)]
    title = [r for t in doc.title for r in _para(t, style, size=TITLE_PT, bold=True,
                                                 align="center", space_before=0.0)]
    title[0] = tuple(replace(s, space_before=18.0) for s in title[0])
    if doc.subtitle:
        title += _para(doc.subtitle, style, size=TITLE_PT, bold=True, align="center",
                       space_before=0.0, rule=0.35)
    blocks.append((title, True))
    article = 0
    for kind, text in doc.lead:
        if kind.rstrip("?") == "article":
            article += 1
        blocks.append((_lead_rows(kind, text, style, article), False))
    fillers = doc.fillers[:n_fillers]
    if fillers and doc.filler_heading:
        blocks.append((_para(doc.filler_heading, style, space_before=6.0), False))
    for text in fillers:
        if doc.articles:
            article += 1
            blocks.append((_lead_rows("article", text, style, article), False))
        else:
            blocks.append((_lead_rows("item", f"- {text}", style, None), False))
    extras = doc.extras[:max(0, n_fillers - len(doc.fillers))]
    if extras:
        if doc.articles:
            article += 1
            blocks.append((_lead_rows("article", doc.extras_heading, style, article), False))
        else:
            blocks.append((_para(doc.extras_heading, style, space_before=6.0), False))
    for text in extras:
        prefix = "" if text[:1].isdigit() else "- "
        blocks.append((_para(f"{prefix}{text}", style, space_before=2.0), False))
    for kind, text in doc.tail:
        if kind == "article":
            article += 1
        blocks.append((_lead_rows(kind, text, style, article), False))
    blocks.append((_signature_rows(doc, style, article), True))
    return _paginate(blocks)


def fit(doc: Doc, style: str, n_pages: int, rng: random.Random) -> list[list[Row]]:
    """Make the document run to exactly ``n_pages`` pages: drop optional lead items (kind ends
    with "?") if even the bare document is too long, add provisions if it is too short, then
    fill the last page most of the way rather than leave the signature block alone."""
    optional = [i for i, (kind, _) in enumerate(doc.lead) if kind.endswith("?")]
    pages = _compose(doc, style, 0)
    while len(pages) > n_pages and optional:
        drop = optional.pop()
        doc = replace(doc, lead=[item for i, item in enumerate(doc.lead) if i != drop])
        optional = [i - (i > drop) for i in optional]
        pages = _compose(doc, style, 0)
    if len(pages) > n_pages:
        raise RuntimeError(f"sample content does not fit on {n_pages} page(s) in {style} style")
    n_fillers = 0
    while len(pages) < n_pages:
        if n_fillers >= len(doc.fillers) + len(doc.extras):
            raise RuntimeError(f"sample content too short for {n_pages} pages in {style} style")
        n_fillers += 1
        pages = _compose(doc, style, n_fillers)
    least = n_fillers
    while n_fillers < min(least + 40, len(doc.fillers) + len(doc.extras)):
        if len(_compose(doc, style, n_fillers + 1)) != n_pages:
            break
        n_fillers += 1
    n_fillers = max(least, n_fillers - rng.randint(0, 2))
    return _compose(doc, style, n_fillers)


def record_page_lines(
    *, seed: int = 0, style: str = "serif", n_pages: int = 1, agency_code: str = DEFAULT_AGENCY,
    procedure_code: str | None = None,
) -> list[list[Line]]:
    """The rows of each page of one realistic record, ready for
    :func:`pipeline.demo.render.render_page` and :func:`page_text` (the last page carries the
    signature block)."""
    check_style(style)
    if not 1 <= n_pages <= 3:
        raise ValueError("n_pages must be between 1 and 3")
    rng = random.Random(f"record:{seed}")
    if procedure_code is None:
        procedure = rng.choice(PROCEDURES)
    else:
        matches = [p for p in PROCEDURES if p.code == procedure_code]
        if not matches:
            raise ValueError(f"unknown sample procedure {procedure_code!r}")
        procedure = matches[0]
    content = record_content(rng, agency_code, procedure, with_id=True)
    return [list(page) for page in fit(content.doc, style, n_pages, rng)]
