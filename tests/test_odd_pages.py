"""Odd pages that once stopped a batch, and PDFs that carry more than a scan.

A page too thin, too small or too long for the cleanup, a PDF page without area, a PDF that qpdf
repairs but poppler cannot render, and a PDF with embedded files or actions that start programs
or open other files: each is refused from what the file declares, before any decoding, with the
rule that quarantines its record, and the rest of the batch goes on.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import img2pdf
import numpy as np
import pikepdf
import pytest
from conftest import digitize as run_digitize
from conftest import import_reference
from PIL import Image

from pipeline._exec import poppler
from pipeline.demo import content, samples
from pipeline.errors import ToolMissingError
from pipeline.intake import pages

AGENCY = content.DEFAULT_AGENCY
DPI = {"dpi": (300, 300)}


# --- file makers ------------------------------------------------------------------------------
def write_png(path: Path, width: int, height: int) -> Path:
    Image.new("L", (width, height), 255).save(path, **DPI)
    return path


def _blank_pdf(width_pt: float = 595, height_pt: float = 842) -> pikepdf.Pdf:
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(width_pt, height_pt))
    return pdf


def write_boxed_pdf(path: Path, media_box: list[object], crop_box: list[object] | None = None
                    ) -> Path:
    """One page whose MediaBox (and CropBox) is written exactly as given, valid or not."""
    with _blank_pdf() as pdf:
        pdf.pages[0].obj.MediaBox = pikepdf.Array(media_box)
        if crop_box is not None:
            pdf.pages[0].obj.CropBox = pikepdf.Array(crop_box)
        pdf.save(path)
    return path


def write_truncated_pdf(path: Path) -> Path:
    """A one-page scan PDF cut in half, as an interrupted copy leaves it: qpdf rebuilds it from
    the objects before the cut (the pages come first in a file pikepdf writes), while poppler
    finds no cross-reference table and gives up."""
    buffer = io.BytesIO()
    Image.new("L", (300, 400), 255).save(buffer, "PNG", **DPI)
    with pikepdf.open(io.BytesIO(img2pdf.convert(buffer.getvalue()))) as pdf:
        whole = io.BytesIO()
        pdf.save(whole, object_stream_mode=pikepdf.ObjectStreamMode.disable)
    data = whole.getvalue()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_image_pdf(path: Path, width_pt: float, height_pt: float, image_px: int) -> Path:
    """A page of ``width_pt`` x ``height_pt`` drawing one image ``image_px`` pixels wide and high:
    its scan resolution, as the pipeline reads it, is the image's pixels over the page's inches.
    The image is declared only; nothing decodes it before the size checks."""
    with _blank_pdf(width_pt, height_pt) as pdf:
        image = pdf.make_stream(b"\xff" * 16, Type=pikepdf.Name.XObject,
                                Subtype=pikepdf.Name.Image, Width=image_px, Height=image_px,
                                ColorSpace=pikepdf.Name.DeviceGray, BitsPerComponent=8)
        page = pdf.pages[0]
        page.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image))
        page.Contents = pdf.make_stream(f"q {width_pt} 0 0 {height_pt} 0 0 cm /Im0 Do Q".encode())
        pdf.save(path)
    return path


def _action(kind: str, **entries: object) -> pikepdf.Dictionary:
    return pikepdf.Dictionary(Type=pikepdf.Name.Action, S=pikepdf.Name(kind), **entries)


def _link(pdf: pikepdf.Pdf, action: pikepdf.Dictionary) -> pikepdf.Object:
    return pdf.make_indirect(pikepdf.Dictionary(
        Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Link, Rect=[60, 700, 200, 720], A=action))


def _embedded_file(pdf: pikepdf.Pdf) -> None:
    pdf.attachments["ghi-chu.txt"] = pikepdf.AttachedFileSpec(pdf, b"noi dung",
                                                              mime_type="text/plain")


def _launch_link(pdf: pikepdf.Pdf) -> None:
    action = _action("/Launch", F=pikepdf.String("cmd.exe"))
    pdf.pages[0].obj.Annots = pdf.make_indirect(pikepdf.Array([_link(pdf, action)]))


def _gotor_bookmark(pdf: pikepdf.Pdf) -> None:
    """A bookmark (the second, under the first) that opens another file."""
    outlines = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Outlines))
    first = pdf.make_indirect(pikepdf.Dictionary(
        Title=pikepdf.String("Trang 1"), Parent=outlines,
        A=_action("/GoTo", D=[pdf.pages[0].obj, pikepdf.Name.Fit])))
    child = pdf.make_indirect(pikepdf.Dictionary(
        Title=pikepdf.String("Phụ lục"), Parent=first,
        A=_action("/GoToR", F=pikepdf.String("phu-luc.pdf"), D=[0, pikepdf.Name.Fit])))
    first.First = first.Last = child
    outlines.First = outlines.Last = first
    pdf.Root.Outlines = outlines


def _file_attachment_annotation(pdf: pikepdf.Pdf) -> None:
    spec = pikepdf.AttachedFileSpec(pdf, b"noi dung", filename="ghi-chu.txt").obj
    annot = pdf.make_indirect(pikepdf.Dictionary(
        Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.FileAttachment, Rect=[60, 700, 80, 720],
        FS=spec, Contents=pikepdf.String("ghi chú")))
    pdf.pages[0].obj.Annots = pdf.make_indirect(pikepdf.Array([annot]))


def _associated_file_on_page(pdf: pikepdf.Pdf) -> None:
    spec = pikepdf.AttachedFileSpec(pdf, b"<xml/>", filename="du-lieu.xml").obj
    pdf.pages[0].obj.AF = pikepdf.Array([spec])


def _javascript_after_goto(pdf: pikepdf.Pdf) -> None:
    """A harmless-looking link whose action chain ends in JavaScript."""
    script = _action("/JavaScript", JS=pikepdf.String("app.alert('x')"))
    action = _action("/GoTo", D=[pdf.pages[0].obj, pikepdf.Name.Fit],
                     Next=pikepdf.Array([_action("/GoTo", D=[pdf.pages[0].obj,
                                                              pikepdf.Name.Fit], Next=script)]))
    pdf.pages[0].obj.Annots = pdf.make_indirect(pikepdf.Array([_link(pdf, action)]))


def _gotoe_on_page_open(pdf: pikepdf.Pdf) -> None:
    action = _action("/GoToE", T=pikepdf.Dictionary(R=pikepdf.Name.C, N=pikepdf.String("x")))
    pdf.pages[0].obj.AA = pikepdf.Dictionary(O=action)


def _import_data_open_action(pdf: pikepdf.Pdf) -> None:
    pdf.Root.OpenAction = _action("/ImportData", F=pikepdf.String("du-lieu.fdf"))


def write_active_pdf(path: Path, add: Callable[[pikepdf.Pdf], None]) -> Path:
    with _blank_pdf() as pdf:
        add(pdf)
        pdf.save(path)
    return path


# --- images: sides checked from the header -----------------------------------------------------
@pytest.mark.parametrize(("width", "height", "rule"), [
    (1, 50_000, "image_too_large"),  # also under 16 px: the memory limit is checked first
    (2, 2, "file_readable"),
    (40_000, 20, "image_too_large"),
    (15, 3000, "file_readable"),
])
def test_image_side_limits(tmp_path: Path, width: int, height: int, rule: str) -> None:
    path = write_png(tmp_path / "trang.png", width, height)
    for read in (lambda: pages.page_count(path), lambda: pages.load_page(path, 1, 300)):
        with pytest.raises(pages.PageReadError) as caught:
            read()
        assert caught.value.rule == rule
        message = str(caught.value)
        assert message.startswith("trang.png: trang 1 ") and f"{width} x {height}" in message
        if rule == "file_readable":
            assert "quét lại" in message


def test_smallest_and_largest_sides_pass(tmp_path: Path) -> None:
    for width, height in ((16, 16), (30_000, 16)):
        path = write_png(tmp_path / f"{width}.png", width, height)
        assert pages.page_count(path) == 1
        image, dpi = pages.load_page(path, 1, 250)
        assert image.shape[:2] == (height, width) and dpi == 300


def test_every_tiff_frame_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "nhieu-trang.tif"
    Image.new("L", (800, 1100), 255).save(path, save_all=True, **DPI,
                                          append_images=[Image.new("L", (2, 2), 255)])
    with pytest.raises(pages.PageReadError, match=r"nhieu-trang.tif: trang 2 chỉ có 2 x 2") as c:
        pages.page_count(path)
    assert c.value.rule == "file_readable"
    assert pages.load_page(path, 1, 300)[0].shape == (1100, 800)  # grey: one channel


# --- PDF page boxes, at the dpi the page will be rendered at -----------------------------------
def test_pdf_page_without_area(tmp_path: Path) -> None:
    """Once a ZeroDivisionError working out the page's scan resolution."""
    path = write_boxed_pdf(tmp_path / "kho-rong.pdf", [0, 0, 0, 842])
    for read in (lambda: pages.page_count(path), lambda: pages.load_page(path, 1, 300)):
        with pytest.raises(pages.PageReadError, match="kho-rong.pdf: trang 1 có khổ giấy 0 x 842"
                           ) as caught:
            read()
        assert caught.value.rule == "file_readable" and "quét lại" in str(caught.value)


@pytest.mark.parametrize("media_box", [
    [0, 0, 595], [0, 0, pikepdf.Name("/A4"), 842], [0, 0, pikepdf.String("595"), 842]])
def test_pdf_media_box_without_four_numbers(tmp_path: Path, media_box: list[object]) -> None:
    """qpdf quietly makes such a page US Letter; the page is named all the same."""
    path = tmp_path / "kho-hong.pdf"
    with _blank_pdf() as pdf:
        pdf.add_blank_page(page_size=(595, 842))
        pdf.pages[1].obj.MediaBox = pikepdf.Array(media_box)
        pdf.save(path)
    with pytest.raises(pages.PageReadError, match="kho-hong.pdf: trang 2 không ghi khổ giấy") as c:
        pages.page_count(path)
    assert c.value.rule == "file_readable"
    with pytest.raises(pages.PageReadError, match="trang 2"):
        pages.load_page(path, 2, 300)
    assert pages.load_page(path, 1, 72)[0].shape == (842, 595, 3)


def test_pdf_page_without_media_box(tmp_path: Path) -> None:
    path = tmp_path / "khong-kho.pdf"
    with _blank_pdf() as pdf:
        del pdf.pages[0].obj["/MediaBox"]
        pdf.save(path)
    with pytest.raises(pages.PageReadError, match="khong-kho.pdf: trang 1 không ghi khổ giấy"):
        pages.page_count(path)


def test_pdf_reversed_corners_are_a_page(tmp_path: Path) -> None:
    """The PDF standard lets a rectangle name any two opposite corners; every reader takes it."""
    for name, box in (("dao.pdf", [595, 842, 0, 0]), ("am.pdf", [0, 0, -595, -842])):
        path = write_boxed_pdf(tmp_path / name, box)
        assert pages.page_count(path) == 1
        image, dpi = pages.load_page(path, 1, 72)
        assert image.shape == (842, 595, 3) and dpi == 72


@pytest.mark.parametrize(("media_box", "crop_box", "fallback_dpi", "rule", "shown"), [
    ([0, 0, 3, 3], None, 300, "file_readable", "13 x 13 điểm ảnh khi dựng ở 300 dpi"),
    # 30 inches is a poster, not too big on paper, but at 1200 dpi too long a side for memory
    ([0, 0, 30 * 72, 842], None, 1200, "image_too_large", "36000 x 14034"),
    ([0, 0, 595, 842], [1000, 1000, 1200, 1200], 300, "file_readable", "CropBox"),
    ([0, 0, 595, 842], [0, 0, 0, 842], 300, "file_readable", "CropBox"),
])
def test_pdf_page_size_at_its_dpi(tmp_path: Path, media_box: list[object],
                                  crop_box: list[object] | None, fallback_dpi: int, rule: str,
                                  shown: str) -> None:
    path = write_boxed_pdf(tmp_path / "trang.pdf", media_box, crop_box)
    with pytest.raises(pages.PageReadError, match=shown) as caught:
        pages.page_count(path, fallback_dpi=fallback_dpi)
    assert caught.value.rule == rule
    with pytest.raises(pages.PageReadError, match=shown):
        pages.load_page(path, 1, fallback_dpi)
    if fallback_dpi > 300:
        assert pages.page_count(path) == 1  # at the default 300 dpi it fits


def test_pdf_page_rendered_at_its_scan_resolution(tmp_path: Path) -> None:
    """A 100-point page drawing a 40,000-pixel image is a 28,800 dpi scan: 40,000 pixels a side
    when rendered, although its paper size is small."""
    path = write_image_pdf(tmp_path / "anh-lon.pdf", 100, 100, 40_000)
    with pytest.raises(pages.PageTooLargeError, match="khi dựng ở 28800 dpi"):
        pages.page_count(path)
    with pytest.raises(pages.PageTooLargeError):
        pages.load_page(path, 1, 300)
    with pytest.raises(pages.PageTooLargeError):
        pages.render_pdf_page(path, 1, 28_800)


# --- a scanner's PDF page is read as the pixels it holds ---------------------------------------
def write_scan_pdf(path: Path, pixels: np.ndarray) -> bytes:
    """A scanner's PDF: the image as a 300 dpi JPEG, drawn over the whole page by img2pdf (the
    JPEG's bytes as they are). Returns the JPEG."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", **DPI)
    path.write_bytes(img2pdf.convert(buffer.getvalue()))
    return buffer.getvalue()


@pytest.fixture
def poppler_calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The PDFs poppler is asked to render, rendered all the same."""
    calls: list[Path] = []
    render = pages.convert_from_path

    def counted(path: Path, *args: object, **kwargs: object) -> list[Image.Image]:
        calls.append(Path(path))
        return render(path, *args, **kwargs)

    monkeypatch.setattr(pages, "convert_from_path", counted)
    return calls


@pytest.mark.parametrize("channels", [1, 3])
def test_a_scanners_pdf_page_is_read_as_the_pixels_it_holds(
        tmp_path: Path, channels: int, poppler_calls: list[Path]) -> None:
    rng = np.random.default_rng(channels)
    pixels = rng.integers(0, 256, (330, 250, channels)[:3 if channels == 3 else 2], np.uint8)
    image = write_scan_pdf(tmp_path / "quet.pdf", pixels)
    got, dpi = pages.load_page(tmp_path / "quet.pdf", 1, 200)
    assert dpi == 300 and not poppler_calls
    # the very samples of the JPEG, as Pillow decodes that file; a grey one stays 2-D
    assert np.array_equal(got, np.asarray(Image.open(io.BytesIO(image))))


def _turned(pdf: pikepdf.Pdf) -> None:
    pdf.pages[0].obj.Rotate = 90


def _drawn_over(pdf: pikepdf.Pdf) -> None:
    """A black square 20 pt wide in the page's lower left corner, over the scan."""
    pdf.pages[0].contents_add(pdf.make_stream(b"0 g 0 0 20 20 re f"), prepend=False)


def _unnamed(pdf: pikepdf.Pdf) -> None:
    """``Do`` without the image's name: a broken page is poppler's to render or refuse."""
    pdf.pages[0].Contents = pdf.make_stream(b"q 60 0 0 79.2 0 0 cm Do Q")


def _scan_as(mode: str, fmt: str, **save: object) -> Callable[[pikepdf.Pdf], None]:
    """The scan again, white, as img2pdf embeds an image of ``mode`` saved as ``fmt``."""
    def change(pdf: pikepdf.Pdf) -> None:
        buffer = io.BytesIO()
        Image.new(mode, (250, 330), "white").save(buffer, fmt, **DPI, **save)
        with pikepdf.open(io.BytesIO(img2pdf.convert(buffer.getvalue()))) as other:
            ((name, image),) = other.pages[0].images.items()
            pdf.pages[0].Resources.XObject[name] = pdf.copy_foreign(image)
    return change


# deflated: qpdf would inflate it whole, however large, before Pillow saw its size
_deflated = _scan_as("L", "PNG")
# CCITT G4: a filter whose decoding is poppler's own
_bilevel = _scan_as("1", "TIFF", compression="group4")


def _mislabelled(pdf: pikepdf.Pdf) -> None:
    """The image's dictionary says 250 x 330 pixels, its JPEG holds twice as many each way: a
    decoder trusting the header would allocate what the page's checks never saw."""
    buffer = io.BytesIO()
    Image.new("L", (500, 660), 255).save(buffer, "JPEG")
    (image,) = pdf.pages[0].images.values()
    image.write(buffer.getvalue(), filter=pikepdf.Name.DCTDecode)


@pytest.mark.parametrize("change",
                         [_turned, _drawn_over, _unnamed, _deflated, _mislabelled, _bilevel])
def test_a_pdf_page_that_is_more_than_one_upright_scan_is_rendered(
        tmp_path: Path, change: Callable[[pikepdf.Pdf], None], poppler_calls: list[Path]) -> None:
    path = tmp_path / "quet.pdf"
    write_scan_pdf(path, np.full((330, 250), 255, np.uint8))
    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        change(pdf)
        pdf.save(path)
    got, dpi = pages.load_page(path, 1, 200)
    assert poppler_calls == [path] and dpi == 300
    assert got.shape[:2] == ((250, 330) if change is _turned else (330, 250))
    corner = got[-80:, :80]
    assert (corner < 50).all() if change is _drawn_over else (corner > 200).all()


# --- a PDF qpdf repairs and poppler cannot read ------------------------------------------------
def test_truncated_pdf_poppler_cannot_read(tmp_path: Path) -> None:
    path = write_truncated_pdf(tmp_path / "cat-ngang.pdf")
    with pikepdf.open(path) as pdf:  # what made the file pass registration before
        assert len(pdf.pages) == 1
    with pytest.raises(pages.PageReadError, match="cat-ngang.pdf: tệp PDF hỏng.*poppler") as c:
        pages.page_count(path)
    assert c.value.rule == "file_readable"
    # read directly (as a stack's pages are), the renderer's failure is a PageReadError too
    for read in (lambda: pages.load_page(path, 1, 300), lambda: pages.render_pdf_page(path, 1, 72)):
        with pytest.raises(pages.PageReadError, match="cat-ngang.pdf: trình dựng trang") as c:
            read()
        assert c.value.rule == "file_readable"


def test_pdf_page_count_disagreement(tmp_path: Path) -> None:
    """A page tree whose /Count is wrong: qpdf counts the pages, poppler believes the count and
    would never render the last page."""
    with _blank_pdf() as pdf:
        for _ in range(2):
            pdf.add_blank_page(page_size=(595, 842))
        whole = io.BytesIO()
        pdf.save(whole)
    path = tmp_path / "dem-sai.pdf"
    path.write_bytes(whole.getvalue().replace(b"/Count 3", b"/Count 2"))
    with pytest.raises(pages.PageReadError, match=r"dem-sai.pdf: .*\(3 và 2\)") as caught:
        pages.page_count(path)
    assert caught.value.rule == "file_readable"


def test_poppler_failures_while_rendering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pdf2image import exceptions

    path = write_boxed_pdf(tmp_path / "trang.pdf", [0, 0, 595, 842])

    def failing(error: Exception) -> Callable[..., list[Image.Image]]:
        def convert(*args: object, **kwargs: object) -> list[Image.Image]:
            raise error
        return convert

    for error in (exceptions.PDFSyntaxError("Syntax Error: bad content stream"),
                  exceptions.PDFPopplerTimeoutError("Run poppler timeout."),
                  exceptions.PDFPageCountError("Unable to get page count.\nI/O Error")):
        monkeypatch.setattr(pages, "convert_from_path", failing(error))
        with pytest.raises(pages.PageReadError, match="trang.pdf: trình dựng trang"):
            pages.load_page(path, 1, 300)
    monkeypatch.setattr(pages, "convert_from_path", lambda *a, **k: [])
    with pytest.raises(pages.PageReadError, match="không cho ra ảnh"):
        pages.render_pdf_page(path, 1, 72)
    # a missing poppler is the machine's problem, not the file's
    monkeypatch.setattr(pages, "convert_from_path",
                        failing(exceptions.PDFInfoNotInstalledError("no pdfinfo")))
    with pytest.raises(ToolMissingError):
        pages.load_page(path, 1, 300)


def test_a_machine_without_poppler_is_told_at_registration(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissingError, match="pdftotext is not installed.*scripts/setup.sh"):
        poppler.probe()


# --- active content ----------------------------------------------------------------------------
@pytest.mark.parametrize(("add", "named"), [
    (_embedded_file, "tệp đính kèm"),
    (_launch_link, "hành động mở chương trình (Launch)"),
    (_gotor_bookmark, "liên kết mở tệp khác (GoToR)"),
    (_file_attachment_annotation, "tệp đính kèm"),
    (_associated_file_on_page, "tệp đính kèm"),
    (_javascript_after_goto, "JavaScript"),
    (_gotoe_on_page_open, "liên kết mở tệp đính kèm (GoToE)"),
    (_import_data_open_action, "hành động nhập dữ liệu (ImportData)"),
], ids=lambda v: getattr(v, "__name__", "").strip("_") or None)
def test_active_content_is_refused(tmp_path: Path, add: Callable[[pikepdf.Pdf], None],
                                   named: str) -> None:
    path = write_active_pdf(tmp_path / "hoat-dong.pdf", add)
    with pytest.raises(pages.PdfActiveContentError) as caught:
        pages.page_count(path)
    assert caught.value.rule == "pdf_active_content"
    assert str(caught.value).startswith("hoat-dong.pdf: PDF chứa ") and named in str(caught.value)


def test_harmless_links_and_bookmarks_pass(tmp_path: Path) -> None:
    """Links within the file or to a web address, bookmarks, and an action chain that loops on
    itself (the walk must end): none of it runs or opens anything."""
    def add(pdf: pikepdf.Pdf) -> None:
        page = pdf.pages[0].obj
        goto = pdf.make_indirect(_action("/GoTo", D=[page, pikepdf.Name.Fit]))
        goto.Next = goto
        uri = _action("/URI", URI=pikepdf.String("https://dichvucong.gov.vn"))
        page.Annots = pdf.make_indirect(pikepdf.Array([_link(pdf, goto), _link(pdf, uri)]))
        outlines = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Outlines))
        item = pdf.make_indirect(pikepdf.Dictionary(Title=pikepdf.String("Trang 1"),
                                                    Parent=outlines, A=goto))
        item.Next = item  # a sibling loop, as a broken editor writes it
        outlines.First = outlines.Last = item
        pdf.Root.Outlines = outlines
        pdf.Root.OpenAction = pikepdf.Array([page, pikepdf.Name.Fit])

    assert pages.page_count(write_active_pdf(tmp_path / "lien-ket.pdf", add)) == 1


# --- one batch: the odd records before a good one ----------------------------------------------
@pytest.mark.slow
def test_odd_files_do_not_stop_the_batch(tmp_path: Path) -> None:
    data = tmp_path / "var"
    batch = data / "inbox" / AGENCY / "B-ODD"
    batch.mkdir(parents=True)
    source = samples.generate_batch(tmp_path / "source" / "B", agency_code=AGENCY,
                                    batch_id="SRC", n_records=1, seed=21, dpis=(300,),
                                    truth_path=tmp_path / "source" / "truth.json")
    good = source.records[0]
    scan, _ = pages.load_page(source.batch_dir / good.pages[0].file, good.pages[0].page_in_file,
                              300)
    Image.fromarray(np.asarray(scan)).save(batch / "trang-tot.png", **DPI)
    odd = {  # record id -> (file, quarantine reason)
        "ODD-THIN": (write_png(batch / "soc-dai.png", 1, 50_000), "image_too_large"),
        "ODD-DOT": (write_png(batch / "cham.png", 2, 2), "image_unreadable"),
        "ODD-WIDE": (write_png(batch / "dai-ngang.png", 40_000, 20), "image_too_large"),
        "ODD-NO-AREA": (write_boxed_pdf(batch / "kho-rong.pdf", [0, 0, 0, 842]),
                        "image_unreadable"),
        "ODD-TRUNCATED": (write_truncated_pdf(batch / "cat-ngang.pdf"), "image_unreadable"),
        "ODD-EMBEDDED": (write_active_pdf(batch / "dinh-kem.pdf", _embedded_file),
                         "pdf_active_content"),
        "ODD-LAUNCH": (write_active_pdf(batch / "mo-chuong-trinh.pdf", _launch_link),
                       "pdf_active_content"),
    }
    rows = [(rid, f"{n}/ODD", path.name) for n, (rid, (path, _)) in enumerate(odd.items(), 1)]
    rows.append((good.record_id, good.result_number, "trang-tot.png"))  # after the odd ones
    (batch / "manifest.csv").write_text(
        "record_id,procedure_code,result_number,issued_on,holder_name,still_valid,files\n"
        + "".join(f"{rid},{good.procedure_code},{number},{good.issued_on:%d/%m/%Y},"
                  f"{good.holder_name},có,{files}\n" for rid, number, files in rows),
        encoding="utf-8")
    import_reference(data)
    env = {**os.environ, "DIGITIZE_DATA_DIR": str(data)}
    env.pop("DIGITIZE_DB_URL", None)
    run = run_digitize("run", str(batch), "--json", env=env)
    assert run.returncode == 3, run.stderr[-3000:]
    results = {out["record_id"]: out for out in map(json.loads, run.stdout.splitlines())}
    assert set(results) == {*odd, good.record_id}
    archived = results[good.record_id]
    assert archived["status"] == "archived", archived["errors"]
    assert Path(archived["pdf"]).is_file()
    # the notes are found by the record they name, whatever the note files are called
    notes = {}
    for note in (data / "quarantine").rglob("*.txt"):
        text = note.read_text(encoding="utf-8")
        notes[text.splitlines()[0].removeprefix("Hồ sơ: ")] = text
    for rid, (path, reason) in odd.items():
        out = results[rid]
        assert (out["status"], out["reason"]) == ("quarantined", reason), out
        assert any(path.name in message for message in out["errors"]), out["errors"]
        assert f"Lý do: {reason}" in notes[rid] and path.name in notes[rid]
    assert good.record_id not in notes


@pytest.mark.parametrize("mode", ["L", "RGB", "1", "P", "CMYK", "LA", "I;16"])
def test_every_scanner_mode_reads_as_pillows_grey_or_rgb(mode: str) -> None:
    """``to_array`` takes grey and RGB pages without Pillow's convert (issue 15's CPU): a page
    scanned in grey or black and white stays one channel, Pillow's "L"; any other mode is
    Pillow's RGB, white under transparency; 16-bit grey is scaled down, not clipped."""
    rng = np.random.default_rng(7)
    rgb = Image.fromarray(rng.integers(0, 256, (37, 23, 3), dtype=np.uint8))
    if mode == "I;16":
        grey = rng.integers(0, 65536, (37, 23), dtype=np.uint16)
        img16 = Image.fromarray(grey)
        assert img16.mode.startswith("I")
        got = pages.to_array(img16)
        assert got.dtype == np.uint8 and np.array_equal(got, (grey / 257).astype(np.uint8))
        return
    img = rgb.convert(mode)
    got = pages.to_array(img)
    assert got.dtype == np.uint8
    if mode in ("L", "1"):
        assert np.array_equal(got, np.asarray(img.convert("L")))
    elif mode == "LA":  # laid over white where transparent
        white = Image.alpha_composite(Image.new("RGBA", img.size, "white"), img.convert("RGBA"))
        assert np.array_equal(got, np.asarray(white.convert("RGB")))
    else:
        assert np.array_equal(got, np.asarray(img.convert("RGB")))
