"""The archived page is faithful to the paper and reads well, end to end on real Tesseract and
OCRmyPDF: each page is generated (pipeline.demo.samples), scanned (``defects.degrade``), cleaned
(``cleanup.clean_page``), composed (``compose.page_pdf``), given its OCR view
(``ocr.write_view``) and archived as a one-page PDF/A-2b record (``ocr.ocr_record``), as the
record's run does (``pipeline.record``).

- A red seal over the text and a blue signature stay in colour in the archived PDF.
- The text under the seal reads within 2 % CER.
- A typed page with show-through on grey paper reads within 3 % CER.
- A page scanned in grey, with a seal, stays grey in the archive and under 250 KB.
- PDF/A-2b holds for every page kind, by pikepdf's PDF/A validator (``pikepdf.pdfa``, the one
  OCRmyPDF checks its own output with) on the archived file, after our XMP; ``ocr_record``
  checks our own part of it (pdfaid, output intent, pages, record id) and raises otherwise.

Generated pages are upright and square (no skew, turn or scanner border): the cleanup leaves
them where they are, and the scan, the cleaned page and the archived page line up.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import pikepdf
import pytest
from pikepdf.pdfa import validate_written
from test_compose import _colour_photo_page, _photo_page, _scan

from pipeline.config import load_settings
from pipeline.demo import bench_measure, content, layout, render
from pipeline.demo.quality import cer
from pipeline.imaging import cleanup, compose, hocr, ocr
from pipeline.models import ManifestRow

DPI = 300
ROW = ManifestRow(line=2, record_id="HS-0001", procedure_code="1.004227")
ARCHIVE_BYTES = 250_000
SEALED = 2  # the seed of the sealed record, scanned in colour and in grey

Rows = Sequence[tuple[layout.Span, ...]]


@dataclass(frozen=True)
class Page:
    scan: np.ndarray  # RGB, as pages.load_page reads every scan
    rows: Rows  # what the generator drew ([] for a picture)
    image: np.ndarray  # the cleaned page
    kind: compose.PageKind
    out: ocr.OcrOutput
    work: Path  # OCR work folder: the hOCR is in work/hocr

    @property
    def truth(self) -> str:
        return layout.page_text(self.rows)


def _archived(scan: np.ndarray, rows: Rows, work: Path, *, clean: bool = True,
              **cleanup_changes: bool) -> Page:
    """``scan`` through the pipeline's stages into an archived record; a synthetic picture
    (``clean=False``) is taken as a cleaned page as it is."""
    profile = load_settings().scanner_profile
    image = scan
    if clean:
        cleaned = cleanup.clean_page(scan, DPI, profile.cleanup.model_copy(update=cleanup_changes))
        assert (cleaned.rotation, cleaned.skew) == (0, 0.0)  # still lines up with the scan
        image = cleaned.image
    part = work / "page.pdf"
    kind = compose.page_pdf(image, DPI, part)
    ocr.write_view(image, DPI, profile.ocr.colour_dropout, work, 1)
    out = ocr.ocr_record(ocr.OcrRequest([part], work / "archived.pdf", work, ROW,
                                        content.DEFAULT_AGENCY, "B1"), profile, 1)
    return Page(scan, rows, image, kind, out, work)


# Each page is made and archived once per module, when a test first asks for it.
PAGES: dict[str, Callable[[Path], Page]] = {
    # a decision with a red seal over the signer's title and a blue signature
    "sealed": lambda work: _archived(*_scan(SEALED, "serif", seal=True), work),
    # an old typed page on grey paper, scanned in grey; the reverse's lines fall between its own
    "typed": lambda work: _archived(*_scan(12, "typewriter", grey=True, paper=222,
                                           reverse_seed=1012), work),
    # the same, the reverse's lines falling on its own
    "typed, show-through on the lines": lambda work: _archived(
        *_scan(11, "typewriter", grey=True, paper=222, reverse_seed=1011), work),
    # a sealed page scanned in grey, on grey paper with show-through, by a profile that keeps
    # the paper's tone (with flatten_illumination it turns white and the page bitonal)
    "grey sealed": lambda work: _archived(
        *_scan(SEALED, "serif", seal=True, grey=True, paper=222, reverse_seed=1002), work,
        flatten_illumination=False),
    "plain": lambda work: _archived(*_scan(3, "serif", grey=True), work),
    "grey photo": lambda work: _archived(_photo_page(), [], work, clean=False),
    "colour photo": lambda work: _archived(_colour_photo_page(), [], work, clean=False),
}


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Page]:
    @functools.cache
    def page(name: str) -> Page:
        return PAGES[name](tmp_path_factory.mktemp(name.replace(" ", "-").replace(",", "")))
    return page


def _row_boxes(rows: Rows, style: str) -> list[tuple[int, int, int, int] | None]:
    """Where each row's text lies on the page at DPI (x0, y0, x1, y1), or None for a row with
    none: the page drawn with only that row's text (the others drawn empty keep the layout), at
    100 dpi, which is plenty to tell rows 6 mm apart."""
    empty = [tuple(replace(span, text="") for span in row) for row in rows]
    boxes: list[tuple[int, int, int, int] | None] = []
    for n, row in enumerate(rows):
        alone = render.render_page([*empty[:n], row, *empty[n + 1:]], dpi=100, style=style)
        ys, xs = np.nonzero(np.asarray(alone.convert("L")) < 128)
        boxes.append(None if len(ys) == 0 else (
            int(xs.min()) * 3, int(ys.min()) * 3, int(xs.max() + 1) * 3, int(ys.max() + 1) * 3))
    return boxes


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _words_in(path: Path, boxes: list[tuple[int, int, int, int]], pad: int) -> str:
    """The words Tesseract read (hOCR file ``path``) whose centre lies within one of ``boxes``
    widened by ``pad`` px, in its reading order."""
    words = []
    for word in hocr.read_page(path).words:
        x, y = (word.box.left + word.box.right) / 2, (word.box.top + word.box.bottom) / 2
        if any(b[0] - pad <= x <= b[2] + pad and b[1] - pad <= y <= b[3] + pad for b in boxes):
            words.append(word.text)
    return " ".join(words)


def _colour_operators(page: pikepdf.Page) -> list[str]:
    """Every image in a colour space other than grey and every fill or stroke colour set other
    than a grey, on the page and in the forms it draws."""
    found = []

    def visit(content: pikepdf.Object, resources: pikepdf.Object) -> None:
        for operands, operator in pikepdf.parse_content_stream(content):
            op = str(operator)
            if op in ("k", "K", "cs", "CS", "sc", "SC", "scn", "SCN") or (
                    op in ("rg", "RG") and len({float(v) for v in operands}) > 1):
                found.append(f"{op} {list(operands)}")
        for name, xobject in resources.get("/XObject", {}).items():
            if xobject.Subtype == "/Form":
                visit(xobject, xobject.get("/Resources", pikepdf.Dictionary()))
            elif not xobject.get("/ImageMask", False) and xobject.ColorSpace != "/DeviceGray":
                found.append(f"{name} in {xobject.ColorSpace}")

    visit(page.obj, page.Resources)
    return found


@pytest.mark.slow
def test_red_seal_and_blue_signature_stay_in_colour(archived: Callable[[str], Page]) -> None:
    """Measured as the benchmark does (pipeline.demo.bench): the strongly red and strongly blue
    pixels of the scan, at 100 dpi, against the archived PDF rendered by poppler."""
    page = archived("sealed")
    assert page.kind is compose.PageKind.mixed
    aligned = bench_measure.align_marks(page.scan, DPI, bench_measure.render_rgb(page.out.pdf, 1))
    assert aligned is not None, "the seal and signature not found on the archived page"
    red, blue = bench_measure.colour_kept(*aligned)
    assert red is not None and red >= 0.90, red
    assert blue is not None and blue >= 0.80, blue


@pytest.mark.slow
def test_text_under_the_seal_reads(archived: Callable[[str], Page]) -> None:
    """CER of the rows of text the seal overlaps (whole rows: the generator tells where each
    row is drawn, the seal is where the page is strongly red), read from the archived record's
    hOCR against the generator's text of those rows."""
    page = archived("sealed")
    ys, xs = np.nonzero(bench_measure.strongly_red(page.image))
    seal = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    under = [(row, box) for row, box in zip(page.rows, _row_boxes(page.rows, "serif"),
                                            strict=True) if box is not None and _overlaps(box, seal)]
    truth = layout.page_text([row for row, _ in under])
    assert len(under) >= 2 and len(truth) > 20, truth
    read = _words_in(page.work / "hocr" / "000001_ocr_hocr.hocr", [box for _, box in under],
                     pad=10)
    assert cer(truth, read) <= 0.02, (truth, read)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["typed", "typed, show-through on the lines"])
def test_typed_page_with_show_through_on_grey_paper_reads(archived: Callable[[str], Page],
                                                          name: str) -> None:
    page = archived(name)
    assert cer(page.truth, page.out.text) <= 0.03


@pytest.mark.slow
def test_grey_page_stays_grey_and_small(archived: Callable[[str], Page]) -> None:
    page = archived("grey sealed")
    assert page.kind is compose.PageKind.gray
    with pikepdf.open(page.out.pdf) as pdf:
        assert _colour_operators(pdf.pages[0]) == []
    assert page.out.pdf.stat().st_size < ARCHIVE_BYTES
    # the seal is still grey, neither lost nor turned black: where the colour page is strongly
    # red, away from the print, the archived page shows a grey between paper and print
    colour = np.asarray(render.render_page(page.rows, dpi=DPI, seal=True,
                                            rng=random.Random(SEALED)))
    near_print = cv2.dilate((cleanup.dropout(colour) < 128).astype(np.uint8),
                            np.ones((5, 5), np.uint8)) > 0
    seal = bench_measure.strongly_red(colour) & ~near_print
    shown = bench_measure.render_rgb(page.out.pdf, 1)[..., 0][seal]
    grey = np.count_nonzero((shown > 60) & (shown < 190)) / len(shown)
    assert len(shown) > 5000 and grey > 0.8, grey


@pytest.mark.slow
@pytest.mark.parametrize(("name", "kind"), [
    ("plain", compose.PageKind.bitonal), ("grey sealed", compose.PageKind.gray),
    ("grey photo", compose.PageKind.gray), ("colour photo", compose.PageKind.colour),
    ("sealed", compose.PageKind.mixed)])
def test_every_page_kind_is_pdfa_2b(archived: Callable[[str], Page], name: str,
                                    kind: compose.PageKind) -> None:
    page = archived(name)
    assert page.kind is kind
    report = validate_written(page.out.pdf, "2b")
    assert report.passed, report.summary()
