"""Reading Tesseract's hOCR (pipeline.imaging.hocr) on real Tesseract output: a generated page
with two known lines of Vietnamese, read with ``vie`` at the pipeline's page segmentation mode."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from pipeline import _exec
from pipeline._exec import tesseract
from pipeline.imaging import hocr, ocr

DPI = 300
SIZE = (1500, 420)
LINES = ("Quyết định cấp giấy phép xây dựng", "Ủy ban nhân dân huyện Nghĩa Đàn")
ORIGINS = ((100, 100), (100, 240))
# the serif the sample pages are printed in (Debian fonts-freefont-ttf, scripts/setup.sh)
FONT = Path("/usr/share/fonts/truetype/freefont/FreeSerif.ttf")

# the hOCR of the page, and where each line's ink was drawn (left, top, right, bottom)
TwoLines = tuple[Path, list[tuple[float, float, float, float]]]


def _read_with_tesseract(image: Image.Image, out_base: Path) -> Path:
    image.save(out_base.with_suffix(".png"), dpi=(DPI, DPI))
    # pipeline._exec.tesseract has no hOCR call (the pipeline gets it through OCRmyPDF), so the
    # same command line is run through the one place child programs are started
    _exec.run(["tesseract", str(out_base.with_suffix(".png")), str(out_base), "-l", "vie",
               "--psm", str(tesseract.PAGE_SEGMENTATION_MODE), "hocr"])
    return out_base.with_suffix(".hocr")


@pytest.fixture(scope="module")
def two_lines(tmp_path_factory: pytest.TempPathFactory) -> TwoLines:
    font = ImageFont.truetype(str(FONT), 60, layout_engine=ImageFont.Layout.BASIC)
    image = Image.new("L", SIZE, 255)
    draw = ImageDraw.Draw(image)
    drawn = []
    for text, origin in zip(LINES, ORIGINS, strict=True):
        draw.text(origin, text, font=font, fill=0)
        drawn.append(draw.textbbox(origin, text, font=font))
    return _read_with_tesseract(image, tmp_path_factory.mktemp("hocr") / "page"), drawn


def test_the_lines_come_in_order_with_their_words(two_lines: TwoLines) -> None:
    path, drawn = two_lines
    page = hocr.read_page(path)
    assert (page.width, page.height, page.dpi) == (*SIZE, DPI)
    assert [line.text for line in page.lines] == list(LINES)
    assert [[w.text for w in line.words] for line in page.lines] == [t.split() for t in LINES]
    for line, (x0, y0, x1, y1) in zip(page.lines, drawn, strict=True):
        # pixels of the image read: the line lies where it was drawn, its words inside it
        assert x0 - 5 <= line.box.left < line.box.right <= x1 + 5
        assert y0 - 5 <= line.box.top < line.box.bottom <= y1 + 5
        assert line.baseline is not None
        for word in line.words:
            assert line.box.left <= word.box.left < word.box.right <= line.box.right
            assert line.box.top <= word.box.top < word.box.bottom <= line.box.bottom
        lefts = [w.box.left for w in line.words]
        assert lefts == sorted(lefts)
    assert 0 < page.lines[0].box.bottom < page.lines[1].box.top < page.height


def test_confidences_are_tesseracts_and_text_is_nfc(two_lines: TwoLines) -> None:
    words = hocr.read_page(two_lines[0]).words
    assert all(w.confidence is not None and 0 <= w.confidence <= 100 for w in words)
    assert all(unicodedata.is_normalized("NFC", w.text) for w in words)
    # a word with a tone mark (and đ) is one word, its marks on its letters
    assert {"Quyết", "định", "Nghĩa", "Đàn"} <= {w.text for w in words}


def test_decomposed_text_reads_composed(two_lines: TwoLines, tmp_path: Path) -> None:
    decomposed = tmp_path / "nfd.hocr"
    decomposed.write_text(unicodedata.normalize("NFD", two_lines[0].read_text(encoding="utf-8")),
                          encoding="utf-8")
    assert hocr.read_page(decomposed) == hocr.read_page(two_lines[0])


def test_page_stats_reads_the_same_words(two_lines: TwoLines, tmp_path: Path) -> None:
    (tmp_path / "000001_ocr_hocr.hocr").write_bytes(two_lines[0].read_bytes())
    confidences = [w.confidence for w in hocr.read_page(two_lines[0]).words]
    first, second = ocr.page_stats(tmp_path, 2)
    assert second is None  # no hOCR: the page was not OCR'd
    assert first is not None
    assert first.mean_confidence == round(sum(confidences) / len(confidences), 1)


def test_an_empty_page_has_no_lines(tmp_path: Path) -> None:
    path = _read_with_tesseract(Image.new("L", (800, 600), 255), tmp_path / "blank")
    assert hocr.read_page(path) == hocr.Page(800, 600, DPI, ())


@pytest.mark.parametrize("damage", ["truncated", "garbage", "no page"])
def test_a_file_that_is_not_hocr_is_named(two_lines: TwoLines, tmp_path: Path,
                                          damage: str) -> None:
    good = two_lines[0].read_bytes()
    bad = tmp_path / "000001_ocr_hocr.hocr"
    bad.write_bytes({"truncated": good[: len(good) // 2],
                     "garbage": b"\x00\xff\xfe not hOCR at all",
                     "no page": b"<html><body><p>Tesseract crashed</p></body></html>"}[damage])
    with pytest.raises(hocr.UnreadableHocrError, match="not valid hOCR") as raised:
        hocr.read_page(bad)
    assert str(bad) in str(raised.value) and raised.value.path == bad
