"""A record's PDF/A made from its pages and Tesseract's readings of them (``ocr.ocr_record``):
pages not to be read stay in the file without text, a page Tesseract cannot read holds the
record naming the page, and a page that cannot be PDF/A holds it with the reason, nothing
written. Real Tesseract, pikepdf's PDF/A validator, poppler."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pikepdf
import pytest
from pikepdf.pdfa import validate_written

from pipeline._exec import poppler, tesseract
from pipeline.config import load_settings
from pipeline.demo import render
from pipeline.errors import OcrFailedError, PdfaCheckError
from pipeline.imaging import compose, ocr
from pipeline.models import ManifestRow

ROW = ManifestRow(line=2, record_id="HS-0001", procedure_code="1.004227")
NUMBER = "712/GPXD"


def _pages(work: Path, count: int) -> list[Path]:
    """``count`` composed pages of a permit at 200 dpi, each with its OCR view."""
    profile = load_settings().scanner_profile
    parts = []
    for n in range(1, count + 1):
        page = np.asarray(render.render_page(["GIẤY PHÉP XÂY DỰNG", f"Số: {NUMBER}"], dpi=200,
                                             rng=random.Random(n)).convert("RGB"))
        ocr.write_view(page, 200, profile.ocr.colour_dropout, work, n)
        parts.append(work / f"page-{n}.pdf")
        compose.page_pdf(page, 200, parts[-1])
    return parts


def test_only_the_pages_asked_are_read_and_every_page_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = _pages(tmp_path, 3)
    read: list[str] = []
    real_read_page = tesseract.read_page

    def counted(image: Path, *args: object, **kwargs: object) -> None:
        read.append(image.name)
        real_read_page(image, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tesseract, "read_page", counted)
    out = ocr.ocr_record(ocr.OcrRequest(parts, tmp_path / "record.pdf", tmp_path, ROW,
                                        "000.00.12.H12", "B1", ocr_pages=[1, 3]),
                         load_settings().scanner_profile, 2)
    assert sorted(read) == ["000001.tif", "000003.tif"]
    assert validate_written(out.pdf, "2b").verdict == "pass"
    assert [NUMBER in poppler.page_text(out.pdf, n) for n in (1, 2, 3)] == [True, False, True]
    first, second, third = out.text.split("\f")
    assert NUMBER in first and second == "" and NUMBER in third
    assert out.pages[1] is None and out.pages[0] and out.pages[0].mean_confidence
    with pikepdf.open(out.pdf) as pdf:
        assert pdf.open_metadata()["dc:identifier"] == ROW.record_id
        assert len(pdf.pages) == 3


def test_a_page_tesseract_cannot_read_holds_the_record_naming_it(tmp_path: Path) -> None:
    parts = _pages(tmp_path, 2)
    (tmp_path / ocr.VIEW_DIR / "000002.tif").write_bytes(b"not an image")
    with pytest.raises(OcrFailedError) as caught:
        ocr.ocr_record(ocr.OcrRequest(parts, tmp_path / "record.pdf", tmp_path, ROW,
                                      "000.00.12.H12", "B1"), load_settings().scanner_profile, 1)
    assert "HS-0001" in str(caught.value) and "trang 2" in str(caught.value)
    assert not (tmp_path / "record.pdf").exists()


def test_a_page_tesseract_does_not_finish_in_time_holds_the_record_naming_it(
        tmp_path: Path) -> None:
    parts = _pages(tmp_path, 2)
    profile = load_settings().scanner_profile
    # no real Tesseract reads a page in 50 ms: the profile's limit, not a stand-in, stops it
    hurried = profile.model_copy(update={
        "ocr": profile.ocr.model_copy(update={"page_timeout_seconds": 0.05})})
    with pytest.raises(OcrFailedError) as caught:
        ocr.ocr_record(ocr.OcrRequest(parts, tmp_path / "record.pdf", tmp_path, ROW,
                                      "000.00.12.H12", "B1", ocr_pages=[2]), hurried, 1)
    message = str(caught.value)
    assert "HS-0001" in message and "trang 2" in message
    assert "0.05 giây" in message and "ocr.page_timeout_seconds" in message
    assert not (tmp_path / "record.pdf").exists()


def _cmyk_page(path: Path) -> Path:
    """A one-page PDF painted in DeviceCMYK, which an sRGB output intent does not cover."""
    with pikepdf.new() as pdf:
        pdf.add_blank_page(page_size=(595, 842))
        pdf.pages[0].Contents = pdf.make_stream(b"0 0 0 1 k 72 72 200 100 re f")
        pdf.save(path)
    return path


@pytest.mark.parametrize("kept", [True, False])
def test_a_page_that_cannot_be_pdfa_holds_the_record_with_the_reason(tmp_path: Path,
                                                                      kept: bool) -> None:
    part = _cmyk_page(tmp_path / "issued.pdf")
    request = ocr.OcrRequest([part], tmp_path / "record.pdf", tmp_path, ROW, "000.00.12.H12",
                             "B1", ocr_pages=[], kept={1: "issued.pdf"} if kept else None)
    with pytest.raises(OcrFailedError if kept else PdfaCheckError) as caught:
        ocr.ocr_record(request, load_settings().scanner_profile, 1)
    message = str(caught.value)
    assert "HS-0001" in message and "PDF/A-2b" in message
    if kept:
        assert "'issued.pdf'" in message and "ocr.born_digital: redo" in message
    assert not (tmp_path / "record.pdf").exists()
