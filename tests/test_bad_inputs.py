"""The bad-input corpus: every kind of broken, hostile or merely unusual input a batch can hold.

``write_corpus`` puts all the cases into ONE batch with a few good records. The batch goes once
through ``digitize run`` and once through the batch DAG (``airflow dags test``): every bad record
ends quarantined with its reason and a message naming its file, every valid-but-unusual record
(16-bit, CMYK, palette with alpha, 1-bit without dpi, odd file names) is archived, and nothing
crashes. The checks on single files are fast unit tests on the same generated files.
"""

from __future__ import annotations

import codecs
import io
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import unicodedata
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pikepdf
import pytest
from conftest import MigrateAirflow, import_reference
from conftest import digitize as run_digitize
from fontTools import subset
from fontTools.ttLib import TTFont
from PIL import Image
from sqlalchemy import select

from pipeline.cli import airflow_env
from pipeline.config import PROJECT_DIR, Settings, load_settings
from pipeline.demo import samples
from pipeline.demo.quality import cer
from pipeline.intake import ingest, pages, typeset
from pipeline.store import archive, warehouse

AGENCY = "000.00.12.H12"
SQL_NAME = "Robert'); DROP TABLE records;--"
FORMULA_NAME = '=HYPERLINK("http://example.com/x","Bấm vào đây")'
# a file name with spaces, decomposed (as a Mac writes it) on disk, composed in the manifest
NFD_NAME = unicodedata.normalize("NFD", "Giấy chứng nhận số 7 – bản quét.jpg")
LONG_NAME = ("Quyết định cấp giấy phép xây dựng nhà ở riêng lẻ cho hộ gia đình "
             "ông bà Nguyễn Văn Thành phường Đông Hải ") * 2
LONG_NAME = LONG_NAME[:150].strip() + ".png"


@dataclass(frozen=True)
class Case:
    record_id: str
    files: str  # the manifest's Tệp cell
    outcome: str  # "archived" or the quarantine reason
    names: str = ""  # what the reason must mention: the file as the manifest names it
    holder_name: str = "Nguyễn Văn An"


# --- file makers ------------------------------------------------------------------------------
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_huge_png(path: Path, side: int = 40_000) -> None:
    """A valid, all-white 1-bit PNG of side x side pixels, written row by row (~200 KB)."""
    packer = zlib.compressobj(9)
    row = b"\x00" + b"\xff" * ((side + 7) // 8)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", body)
                     + _chunk(b"IEND", b""))


def _one_page_pdf(width_pt: float = 595, height_pt: float = 842) -> pikepdf.Pdf:
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(width_pt, height_pt))
    return pdf


def write_encrypted_pdf(path: Path) -> None:
    with _one_page_pdf() as pdf:
        pdf.save(path, encryption=pikepdf.Encryption(owner="chu-so-huu", user="mat-khau"))


def write_javascript_pdf(path: Path) -> None:
    with _one_page_pdf() as pdf:
        action = pdf.make_indirect(pikepdf.Dictionary(S=pikepdf.Name.JavaScript,
                                                      JS=pikepdf.String("app.alert('x')")))
        pdf.Root.Names = pikepdf.Dictionary(JavaScript=pikepdf.Dictionary(
            Names=pikepdf.Array([pikepdf.String("x"), action])))
        pdf.Root.OpenAction = action
        pdf.save(path)


def write_form_pdf(path: Path) -> None:
    with _one_page_pdf() as pdf:
        field = pdf.make_indirect(pikepdf.Dictionary(
            Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Widget, FT=pikepdf.Name.Tx,
            T=pikepdf.String("ho_ten"), Rect=pikepdf.Array([100, 700, 300, 720]),
            P=pdf.pages[0].obj))
        pdf.pages[0].obj.Annots = pikepdf.Array([field])
        pdf.Root.AcroForm = pikepdf.Dictionary(Fields=pikepdf.Array([field]))
        pdf.save(path)


def write_poster_pdf(path: Path) -> None:
    """A page of 200 x 200 inches: 60,000 x 60,000 pixels if it were rasterised at 300 dpi."""
    with _one_page_pdf(200 * 72, 200 * 72) as pdf:
        pdf.save(path)


def _to_unicode_cmap(codes: dict[str, int]) -> bytes:
    """The ToUnicode map of a two-byte font: what a reader's search and copy-paste go by."""
    pairs = "\n".join(f"<{code:04X}> <{ord(char):04X}>" for char, code in codes.items())
    return (
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def /CMapType 2 def\n"
        "1 begincodespacerange <0000> <FFFF> endcodespacerange\n"
        f"{len(codes)} beginbfchar\n{pairs}\nendbfchar\n"
        "endcmap CMapName currentdict /CMap defineresource pop end end\n").encode()


def write_born_digital_pdf(path: Path, lines: list[str]) -> None:
    """A PDF as an office program exports it: Vietnamese text drawn in an embedded TrueType font
    (a subset, Identity-H, with a ToUnicode map) and no image at all."""
    font = TTFont(typeset.font_path("serif"))
    glyph_of = font.getBestCmap()
    chars = sorted(set("".join(lines)))
    codes = {c: font.getGlyphID(glyph_of[ord(c)]) for c in chars}  # code = glyph id
    scale = 1000 / font["head"].unitsPerEm
    widths = [v for c in chars for v in (codes[c], [round(font["hmtx"][glyph_of[ord(c)]][0] * scale)])]
    options = subset.Options()
    options.retain_gids = True
    options.drop_tables.append("FFTM")
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[ord(c) for c in chars])
    subsetter.subset(font)
    program = io.BytesIO()
    font.save(program)
    with pikepdf.new() as pdf:
        name = pikepdf.Name("/AAAAAB+FreeSerif")
        descriptor = pdf.make_indirect(pikepdf.Dictionary(
            Type=pikepdf.Name.FontDescriptor, FontName=name, Flags=4, ItalicAngle=0,
            FontBBox=[-1000, -300, 2000, 1000], Ascent=900, Descent=-300, CapHeight=700, StemV=80,
            FontFile2=pdf.make_stream(program.getvalue())))
        glyphs = pdf.make_indirect(pikepdf.Dictionary(
            Type=pikepdf.Name.Font, Subtype=pikepdf.Name.CIDFontType2, BaseFont=name,
            CIDSystemInfo=pikepdf.Dictionary(Registry=pikepdf.String("Adobe"),
                                             Ordering=pikepdf.String("Identity"), Supplement=0),
            FontDescriptor=descriptor, CIDToGIDMap=pikepdf.Name.Identity, W=widths))
        type0 = pdf.make_indirect(pikepdf.Dictionary(
            Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type0, BaseFont=name,
            Encoding=pikepdf.Name("/Identity-H"), DescendantFonts=[glyphs],
            ToUnicode=pdf.make_stream(_to_unicode_cmap(codes))))
        shown = " T*\n".join("<" + "".join(f"{codes[c]:04X}" for c in line) + "> Tj" for line in lines)
        pdf.add_blank_page(page_size=(595, 842))
        page = pdf.pages[0]
        page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=type0))
        page.Contents = pdf.make_stream(f"BT /F1 12 Tf 17 TL 60 770 Td\n{shown}\nET".encode())
        pdf.save(path)


def write_standard_font_pdf(path: Path, lines: list[str], render_mode: int = 0,
                            font: str = "/Helvetica") -> None:
    """A text PDF in a font it does not embed (one of the 14 every reader has), drawn in
    ``render_mode`` (3: invisible, as the OCR text layer of a searchable scan)."""
    with _one_page_pdf() as pdf:
        page = pdf.pages[0]
        page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=pikepdf.Dictionary(
            Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name(font),
            Encoding=pikepdf.Name.WinAnsiEncoding)))
        shown = " T*\n".join(f"({line}) Tj" for line in lines)
        page.Contents = pdf.make_stream(
            f"BT {render_mode} Tr /F1 12 Tf 17 TL 60 770 Td\n{shown}\nET".encode("cp1252"))
        pdf.save(path)


def born_digital_lines(rec: samples.SampleRecord) -> list[str]:
    """The first page of ``rec`` issued electronically: its number and date as the cross-check
    looks for them."""
    day = rec.issued_on
    return ["ỦY BAN NHÂN DÂN HUYỆN ĐÔNG HẢI",
            "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM - Độc lập - Tự do - Hạnh phúc",
            f"Số: {rec.result_number}",
            f"Đông Hải, ngày {day:%d} tháng {day:%m} năm {day:%Y}",
            "GIẤY CHỨNG NHẬN",
            f"Chứng nhận {rec.holder_name} đã được giải quyết thủ tục {rec.procedure_code}.",
            "Văn bản này được ký số và phát hành điện tử; bản giấy không có giá trị thay thế."]


def appendix_lines(rec: samples.SampleRecord) -> list[str]:
    return ["PHỤ LỤC",
            f"Kèm theo văn bản số {rec.result_number}",
            "Danh mục giấy tờ đã nộp: đơn đề nghị, bản sao thẻ căn cước, sơ đồ vị trí thửa đất.",
            "Phụ lục này được lập và phát hành điện tử cùng văn bản."]


def _truncated(data: bytes, keep: float) -> bytes:
    return data[: int(len(data) * keep)]


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _palette_with_transparent_black_paper(rgb: np.ndarray) -> Image.Image:
    """16 grey levels; the paper's index is transparent *black*, as design tools export it, so
    a reader that drops the alpha instead of laying it over white gets a black page."""
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    image = Image.fromarray((grey // 16).astype(np.uint8), "P")
    palette = [v for i in range(16) for v in (i * 17,) * 3]
    palette[15 * 3: 16 * 3] = [0, 0, 0]
    image.putpalette(palette)
    image.info["transparency"] = 15
    return image


def good_pages(source: Path, count: int) -> list[tuple[samples.SampleRecord, np.ndarray]]:
    """``count`` distinct printed pages with known metadata (page 1 of each sample record)."""
    batch = samples.generate_batch(source / "B", agency_code=AGENCY, batch_id="SRC",
                                   n_records=count, seed=21, dpis=(300,),
                                   truth_path=source / "truth.json")
    out = []
    for rec in batch.records:
        page = rec.pages[0]
        image, _ = pages.load_page(batch.batch_dir / page.file, page.page_in_file, 300)
        out.append((rec, image))
    return out


def write_corpus(batch_dir: Path, work: Path) -> list[Case]:
    """Every bad-input case plus the unusual-but-valid ones, in one batch; returns the cases.

    The manifest itself is UTF-16 with a BOM and ``;`` separated, as Excel's "Unicode text".
    """
    batch_dir.mkdir(parents=True)
    work.mkdir(parents=True, exist_ok=True)
    good = good_pages(work / "source", 9)
    template = good[0][0]
    dpi = {"dpi": (300, 300)}
    cases: list[Case] = []

    def add(record_id: str, files: str, outcome: str, names: str = "", **kw: str) -> None:
        cases.append(Case(record_id, files, outcome, names, **kw))

    # valid input, archived
    (rec16, rgb16), (rec_cmyk, rgb_cmyk), (rec_pal, rgb_pal), (rec_1bit, rgb_1bit), \
        (rec_nfd, rgb_nfd), (rec_long, rgb_long), (rec_digital, _), (rec_mixed, rgb_mixed), \
        (rec_nofont, _) = good
    grey16 = np.asarray(Image.fromarray(rgb16).convert("L")).astype(np.uint16) * 257
    Image.fromarray(grey16).save(batch_dir / "xam-16bit.png", **dpi)
    Image.fromarray(rgb_cmyk).convert("CMYK").save(batch_dir / "cmyk.tif", compression="tiff_lzw", **dpi)
    _palette_with_transparent_black_paper(rgb_pal).save(batch_dir / "bang-mau-trong-suot.png", **dpi)
    bits = Image.fromarray(rgb_1bit).convert("L").point(lambda v: 255 if v > 150 else 0)
    bits.convert("1", dither=Image.Dither.NONE).save(batch_dir / "den-trang-khong-dpi.tif",
                                                      compression="group4")
    Image.fromarray(rgb_nfd).save(batch_dir / NFD_NAME, quality=90, **dpi)
    Image.fromarray(rgb_long).save(batch_dir / LONG_NAME, **dpi)
    # issued electronically (the profile's ocr.born_digital decides): alone, after a scanned page,
    # and in a font the file does not embed (so it cannot be PDF/A as it is: taken as a scan)
    write_born_digital_pdf(batch_dir / "ban-dien-tu.pdf", born_digital_lines(rec_digital))
    Image.fromarray(rgb_mixed).save(batch_dir / "trang-quet.png", **dpi)
    write_born_digital_pdf(batch_dir / "phu-luc-dien-tu.pdf", appendix_lines(rec_mixed))
    day = rec_nofont.issued_on
    write_standard_font_pdf(batch_dir / "khong-nhung-phong.pdf", [
        # the 14 standard fonts have no Đ: the cross-check reads đ and d alike
        "UY BAN NHAN DAN HUYEN DONG HAI", f"So: {rec_nofont.result_number.replace('Đ', 'D')}",
        f"Dong Hai, ngay {day:%d/%m/%Y}", "GIAY CHUNG NHAN - van ban dien tu, phong chu khong nhung"])
    goods = {rec16: ("xam-16bit.png", SQL_NAME), rec_cmyk: ("cmyk.tif", FORMULA_NAME),
             rec_pal: ("bang-mau-trong-suot.png", rec_pal.holder_name),
             rec_1bit: ("den-trang-khong-dpi.tif", rec_1bit.holder_name),
             rec_nfd: (unicodedata.normalize("NFC", NFD_NAME), rec_nfd.holder_name),
             rec_long: (LONG_NAME, rec_long.holder_name),
             rec_digital: ("ban-dien-tu.pdf", rec_digital.holder_name),
             rec_mixed: ("trang-quet.png;phu-luc-dien-tu.pdf", rec_mixed.holder_name),
             rec_nofont: ("khong-nhung-phong.pdf", rec_nofont.holder_name)}

    # broken files, quarantined
    (batch_dir / "rong.tif").write_bytes(b"")
    add("BAD-ZERO", "rong.tif", "image_unreadable", "rong.tif")
    scan = Image.fromarray(good[0][1])
    (batch_dir / "cat-do.tif").write_bytes(_truncated(_encoded(scan, "TIFF", **dpi), 0.5))
    add("BAD-TRUNC-TIF", "cat-do.tif", "image_unreadable", "cat-do.tif")
    (batch_dir / "cat-do.jpg").write_bytes(_truncated(_encoded(scan, "JPEG", quality=80, **dpi), 0.4))
    add("BAD-TRUNC-JPG", "cat-do.jpg", "image_unreadable", "cat-do.jpg")
    (batch_dir / "ghi-chu.tif").write_text("Đây là ghi chú, không phải ảnh quét.\n", encoding="utf-8")
    add("BAD-TEXT-TIF", "ghi-chu.tif", "image_unreadable", "ghi-chu.tif")
    write_encrypted_pdf(batch_dir / "mat-khau.pdf")
    add("BAD-ENCRYPTED", "mat-khau.pdf", "pdf_encrypted", "mat-khau.pdf")
    write_javascript_pdf(batch_dir / "javascript.pdf")
    add("BAD-JS", "javascript.pdf", "pdf_active_content", "javascript.pdf")
    write_form_pdf(batch_dir / "bieu-mau.pdf")
    add("BAD-FORM", "bieu-mau.pdf", "pdf_active_content", "bieu-mau.pdf")
    write_huge_png(batch_dir / "khong-lo.png")
    add("BAD-HUGE-IMG", "khong-lo.png", "image_too_large", "khong-lo.png")
    write_poster_pdf(batch_dir / "ap-phich.pdf")
    add("BAD-HUGE-PDF", "ap-phich.pdf", "image_too_large", "ap-phich.pdf")

    # paths leading out of the batch: each names a real scan, which must never be read
    outside = work / "ngoai-lo.tif"
    scan.save(outside, **dpi)
    (batch_dir.parent.parent / "x.tif").write_bytes(outside.read_bytes())
    add("BAD-UP", "../../x.tif", "path_outside_batch", "../../x.tif")
    add("BAD-ABS", str(outside), "path_outside_batch", str(outside))
    (batch_dir / "lien-ket.tif").symlink_to(outside)
    add("BAD-LINK", "lien-ket.tif", "path_outside_batch", "lien-ket.tif")

    # one record id on two rows: both held, whatever their files
    for n, colour in ((1, "white"), (2, "lightgrey")):
        Image.new("RGB", (400, 560), colour).save(batch_dir / f"trung-ma-{n}.png", **dpi)
        add("BAD-DUP-ID", f"trung-ma-{n}.png", "duplicate_source", "BAD-DUP-ID")

    for rec, (name, holder) in goods.items():
        add(rec.record_id, name, "archived", holder_name=holder)

    header = ["record_id", "procedure_code", "result_number", "issued_on", "holder_name",
              "still_valid", "files"]
    by_id = {rec.record_id: rec for rec in goods}
    lines = [";".join(header)]
    for case in cases:
        rec = by_id.get(case.record_id, template)
        number = rec.result_number if case.record_id in by_id else f"{len(lines)}/BAD"
        values = [case.record_id, rec.procedure_code, number, f"{rec.issued_on:%d/%m/%Y}",
                  case.holder_name, "có", case.files]
        lines.append(";".join('"' + v.replace('"', '""') + '"' for v in values))
    (batch_dir / "manifest.csv").write_bytes(codecs.BOM_UTF16_LE + ("\r\n".join(lines) + "\r\n")
                                             .encode("utf-16-le"))
    return cases


# --- fast checks on the generated files ----------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Case]]:
    root = tmp_path_factory.mktemp("corpus")
    batch = root / "inbox" / AGENCY / "B-CORPUS"
    return batch, write_corpus(batch, root / "work")


def test_every_case_is_planned_with_its_problem(corpus: tuple[Path, list[Case]]) -> None:
    batch, cases = corpus
    plan = ingest.plan_batch(batch)
    assert "lien-ket.tif" not in plan.files  # never read through the link
    planned = [(r.record_id, [p.rule for p in r.problems], [p.message for p in r.problems])
               for r in plan.records]
    assert [rid for rid, _, _ in planned] == [c.record_id for c in cases]
    # decided at ingest, before any decoding; the truncated files only fail when decoded
    at_ingest = {"BAD-ZERO": "file_readable", "BAD-TEXT-TIF": "file_readable",
                 "BAD-ENCRYPTED": "pdf_encrypted", "BAD-JS": "pdf_active_content",
                 "BAD-FORM": "pdf_active_content", "BAD-HUGE-IMG": "image_too_large",
                 "BAD-HUGE-PDF": "image_too_large", "BAD-UP": "path_outside_batch",
                 "BAD-ABS": "path_outside_batch", "BAD-LINK": "path_outside_batch"}
    for (rid, rules, messages), case in zip(planned, cases, strict=True):
        if rid in at_ingest:
            assert rules == [at_ingest[rid]], (rid, messages)
            assert case.names in messages[0] and messages[0].startswith("Dòng "), messages
        else:
            assert rules == [], (rid, messages)
    nfd_record = next(r for r in plan.records if r.row.files_raw.startswith("Giấy"))
    assert [p.file for p in nfd_record.pages] == [NFD_NAME]  # the name on disk


def test_unusual_images_decode_to_the_page(corpus: tuple[Path, list[Case]]) -> None:
    batch, _ = corpus
    # grey and black-and-white scans stay one channel, the others are RGB
    for name, expected_dpi, ndim in (("xam-16bit.png", 300, 2), ("cmyk.tif", 300, 3),
                                     ("bang-mau-trong-suot.png", 300, 3),
                                     ("den-trang-khong-dpi.tif", 250, 2)):
        image, dpi = pages.load_page(batch / name, 1, fallback_dpi=250)
        assert image.dtype == np.uint8 and image.ndim == ndim, name
        assert dpi == expected_dpi, name
        # white paper with dark print: neither clipped to white (16-bit) nor black (alpha)
        paper = np.percentile(image, 60)
        assert paper > 200 and image.min() < 80, (name, paper, image.min())


def test_huge_image_is_refused_from_its_header(corpus: tuple[Path, list[Case]]) -> None:
    batch, _ = corpus
    with pytest.raises(pages.PageTooLargeError, match="khong-lo.png"):
        pages.page_count(batch / "khong-lo.png")
    with pytest.raises(pages.PageTooLargeError, match="ap-phich.pdf: trang 1 khổ 200 x 200 inch"):
        pages.page_count(batch / "ap-phich.pdf")
    with pytest.raises(pages.PageTooLargeError):
        pages.load_page(batch / "khong-lo.png", 1, 300)


def test_born_digital_pages_are_told_from_scans(tmp_path: Path) -> None:
    """Visible text in the file's own fonts is a document issued electronically; an OCR text
    layer over a scan (invisible, or in a glyphless font) is not, nor is a short stamp."""
    sentence = "Chứng nhận hộ kinh doanh đã đăng ký theo Giấy chứng nhận số 12/GCN-UBND."
    ascii_sentence = "Chung nhan ho kinh doanh da dang ky theo Giay chung nhan so 12/GCN-UBND."
    write_born_digital_pdf(tmp_path / "embedded.pdf", [sentence])
    write_standard_font_pdf(tmp_path / "standard.pdf", [ascii_sentence])
    write_standard_font_pdf(tmp_path / "ocr-layer.pdf", [ascii_sentence], render_mode=3)
    write_standard_font_pdf(tmp_path / "glyphless.pdf", [ascii_sentence], font="/GlyphLessFont")
    write_standard_font_pdf(tmp_path / "stamp.pdf", ["Trang 1/3"])
    with _one_page_pdf() as pdf:  # the text drawn by a form, as PDF stampers and imposers do
        font = pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1,
                                  BaseFont=pikepdf.Name.Helvetica)
        form = pdf.make_stream(f"BT /F1 12 Tf 60 770 Td ({ascii_sentence}) Tj ET".encode(),
                               Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Form,
                               BBox=[0, 0, 595, 842],
                               Resources=pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font)))
        pdf.pages[0].Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Fm1=form))
        pdf.pages[0].Contents = pdf.make_stream(b"q /Fm1 Do Q")
        pdf.save(tmp_path / "form.pdf")
    with _one_page_pdf() as pdf:
        pdf.save(tmp_path / "blank.pdf")
    layers = {p.stem: pages.pdf_text_layer(p, 1) for p in tmp_path.glob("*.pdf")}
    assert layers["embedded"] == pages.TextLayer(len(sentence), fonts_embedded=True)
    assert layers["standard"] == layers["form"] == pages.TextLayer(len(ascii_sentence), False)
    assert layers["embedded"].born_digital and layers["form"].born_digital
    for scan_like in ("ocr-layer", "glyphless", "blank"):
        assert layers[scan_like].glyphs == 0, scan_like
    assert layers["stamp"].glyphs == 9 and not layers["stamp"].born_digital


def test_path_checks(tmp_path: Path) -> None:
    row = ingest.ManifestRow(line=2, files_raw="../../x.tif;/etc/passwd;C:\\scan\\a.tif;ok.tif[1-2]")
    items, problems = ingest.parse_files_field(row)
    assert items == [("ok.tif", 1, 2)]
    assert [p.rule for p in problems] == ["path_outside_batch"] * 3
    assert "'../../x.tif'" in problems[0].message


# --- the corpus through `digitize run` and through the DAG ---------------------------------------
_RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[2:]).returncode\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)


def _stored(url: str) -> dict[str, tuple[str, str | None, str | None]]:
    r = warehouse.records
    with warehouse.engine_for(url).connect() as conn:
        return {row.record_id: (row.status, row.reason, row.holder_name)
                for row in conn.execute(select(r.c.record_id, r.c.status, r.c.reason, r.c.holder_name))}


def _check_warehouse(url: str, cases: list[Case]) -> None:
    stored = _stored(url)
    for case in cases:
        status, reason, holder = stored[case.record_id]
        if case.outcome == "archived":
            assert (status, reason) == ("archived", None), case
            assert holder == case.holder_name  # SQL-looking and formula text verbatim
        else:
            assert (status, reason) == ("quarantined", case.outcome), case
    # the default profile keeps born-digital pages as issued; one whose font is not embedded
    # is read as a scan, and the archivist is told so
    record_of = {case.files: case.record_id for case in cases}
    digital, mixed, no_font = (record_of["ban-dien-tu.pdf"],
                               record_of["trang-quet.png;phu-luc-dien-tu.pdf"],
                               record_of["khong-nhung-phong.pdf"])
    r, p = warehouse.records, warehouse.pages
    with warehouse.engine_for(url).connect() as conn:
        encoding = {(row.record_id, row.page_no): row.encoding for row in conn.execute(
            select(r.c.record_id, p.c.page_no, p.c.encoding).join(p, p.c.record_pk == r.c.id)
            .where(r.c.record_id.in_((digital, mixed, no_font))))}
        warnings = conn.execute(select(r.c.warnings).where(r.c.record_id == no_font)).scalar()
    assert encoding[(digital, 1)] == encoding[(mixed, 2)] == "born_digital", encoding
    assert "born_digital" not in (encoding[(mixed, 1)], encoding[(no_font, 1)]), encoding
    assert "'khong-nhung-phong.pdf'" in warnings and "không nhúng phông chữ" in warnings, warnings


@pytest.mark.slow
def test_corpus_through_digitize_run(tmp_path: Path) -> None:
    data = tmp_path / "var"
    batch = data / "inbox" / AGENCY / "B-CORPUS"
    cases = write_corpus(batch, tmp_path / "work")
    import_reference(data)
    env = {**os.environ, "DIGITIZE_DATA_DIR": str(data)}
    env.pop("DIGITIZE_DB_URL", None)
    rss_file = tmp_path / "maxrss"
    run = subprocess.run([sys.executable, "-c", _RSS_WRAPPER, str(rss_file), sys.executable, "-m",
                          "pipeline.cli", "run", str(batch), "--json"],
                         env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 3, run.stderr[-3000:]
    # refused before decoding: the 40,000 x 40,000 image and the 200-inch page never took memory
    peak_mb = int(rss_file.read_text()) / 1024
    assert peak_mb < 600, peak_mb
    results = defaultdict(list)
    for line in run.stdout.splitlines():
        out = json.loads(line)
        results[out["record_id"]].append(out)
    assert sum(map(len, results.values())) == len(cases)
    for case in cases:
        out = results[case.record_id].pop(0)  # the two BAD-DUP-ID rows end alike
        if case.outcome == "archived":
            assert out["status"] == "archived", (case, out["errors"])
            assert Path(out["pdf"]).is_file()
        else:
            assert (out["status"], out["reason"]) == ("quarantined", case.outcome), (case, out)
            assert any(case.names in m for m in out["errors"]), (case, out["errors"])
            note = (data / "quarantine" / AGENCY / "B-CORPUS"
                    / f"{archive.record_name(AGENCY, case.record_id)}.txt")
            assert case.outcome in note.read_text(encoding="utf-8")
    url = f"sqlite:///{(data / 'warehouse.sqlite').resolve()}"
    _check_warehouse(url, cases)
    assert (batch / "manifest.csv").is_file()  # held for review, scans untouched

    # the same scan in another batch: held as a duplicate source, not archived twice
    second = data / "inbox" / AGENCY / "B-AGAIN"
    second.mkdir()
    good = next(c for c in cases if c.outcome == "archived" and c.files == "cmyk.tif")
    (second / "lan-hai.tif").write_bytes((batch / "cmyk.tif").read_bytes())
    row = next(r for r in ingest.read_manifest(batch) if r.record_id == good.record_id)
    (second / "manifest.csv").write_text(
        "record_id,procedure_code,result_number,issued_on,still_valid,files\n"
        f"REPEAT-1,{row.procedure_code},{row.result_number},{row.issued_on_raw},có,lan-hai.tif\n",
        encoding="utf-8")
    again = run_digitize("run", str(second), "--json", env=env)
    assert again.returncode == 3, again.stderr[-3000:]
    (out,) = map(json.loads, again.stdout.splitlines())
    assert (out["status"], out["reason"]) == ("quarantined", "duplicate_source")
    assert any(good.record_id in m for m in out["errors"]), out["errors"]


@pytest.mark.slow
@pytest.mark.airflow
def test_corpus_through_the_batch_dag(reference_settings: Settings, tmp_path: Path,
                                      migrate_airflow: MigrateAirflow) -> None:
    settings = reference_settings
    batch = settings.dir("inbox") / AGENCY / "B-CORPUS"
    cases = write_corpus(batch, tmp_path / "work")
    env = airflow_env(settings)
    airflow = str(Path(sys.executable).with_name("airflow"))
    migrate_airflow(env)
    subprocess.run([airflow, "pools", "set", "ocr", "2", "OCR"], env=env, check=True,
                   capture_output=True)
    run = subprocess.run([airflow, "dags", "test", "digitize_batch", "--conf",
                          json.dumps({"batch_dir": str(batch)})],
                         env=env, capture_output=True, text=True, timeout=900)
    log = run.stdout + run.stderr
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as conn:
        states = defaultdict(list)
        for name, state, tries in conn.execute("select rendered_map_index, state, try_number "
                                               "from task_instance where task_id = 'process_record'"):
            states[name].append(state)
            # a data problem fails at once; only an unexpected crash would be retried
            assert tries == 1, (name, state, log[-3000:])
        others = dict(conn.execute("select task_id, state from task_instance "
                                   "where task_id != 'process_record'").fetchall())
    assert others["register"] == "success" and others["finalize"] == "failed", (others, log[-3000:])
    for case in cases:
        expected = "success" if case.outcome == "archived" else "failed"
        assert expected in states[case.record_id], (case, states[case.record_id])
    assert sum(map(len, states.values())) == len(cases)
    _check_warehouse(settings.warehouse_url, cases)


def _pdf_text(pdf: Path, page: int) -> str:
    return subprocess.run(["pdftotext", "-enc", "UTF-8", "-f", str(page), "-l", str(page), str(pdf),
                           "-"], capture_output=True, text=True, check=True).stdout.removesuffix("\f")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["keep", "redo"])
def test_born_digital_pdf_is_kept_as_issued_or_ocr_redone(mode: str, tmp_path: Path) -> None:
    """``ocr.born_digital``: keep archives the page as issued, with its exact text; redo turns it
    into an image and OCRs it like a scan. A record mixing a scan and such a page works either way."""
    data = tmp_path / "var"
    batch = data / "inbox" / AGENCY / "B-DIGITAL"
    batch.mkdir(parents=True)
    (digital, _), (mixed, scan) = good_pages(tmp_path / "source", 2)
    write_born_digital_pdf(batch / "ban-dien-tu.pdf", born_digital_lines(digital))
    Image.fromarray(scan).save(batch / "trang-quet.png", dpi=(300, 300))
    write_born_digital_pdf(batch / "phu-luc.pdf", appendix_lines(mixed))
    issued = {"DIGITAL-1": (digital, "ban-dien-tu.pdf"), "MIXED-1": (mixed, "trang-quet.png;phu-luc.pdf")}
    (batch / "manifest.csv").write_text(
        "record_id,procedure_code,result_number,issued_on,holder_name,still_valid,files\n" + "".join(
            f"{rid},{rec.procedure_code},{rec.result_number},{rec.issued_on:%d/%m/%Y},"
            f"{rec.holder_name},có,{files}\n" for rid, (rec, files) in issued.items()),
        encoding="utf-8")
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    shutil.copy(PROJECT_DIR / "scanner_profiles" / "default.yaml", profiles)
    (profiles / f"{mode}.yaml").write_text(
        f"base: default\nname: {mode}\nocr:\n  born_digital: {mode}\n", encoding="utf-8")
    # (record, page in the record, the text of the born-digital source of that page)
    born_digital = [("DIGITAL-1", 1, _pdf_text(batch / "ban-dien-tu.pdf", 1)),
                    ("MIXED-1", 2, _pdf_text(batch / "phu-luc.pdf", 1))]
    url = import_reference(data)
    env = {**os.environ, "DIGITIZE_DATA_DIR": str(data), "DIGITIZE_PROFILES_DIR": str(profiles),
           "DIGITIZE_PROFILE": mode}
    env.pop("DIGITIZE_DB_URL", None)
    run = run_digitize("run", str(batch), "--json", env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    results = {o["record_id"]: o for o in map(json.loads, run.stdout.splitlines())}
    r, p = warehouse.records, warehouse.pages
    with warehouse.engine_for(url).connect() as conn:
        stored = {row.record_id: row for row in conn.execute(select(r))}
        page_rows = {(row.record_id, row.page_no): row for row in conn.execute(
            select(r.c.record_id, p.c.page_no, p.c.encoding, p.c.confidence)
            .join(p, p.c.record_pk == r.c.id))}
    for rid, page_no, original in born_digital:
        pdf = Path(results[rid]["pdf"])
        with pikepdf.open(pdf) as doc:
            meta = doc.open_metadata()
            assert (meta["pdfaid:part"], meta["pdfaid:conformance"]) == ("2", "B")
            assert "/OutputIntents" in doc.Root
            page = doc.pages[page_no - 1]
            images = list(page.images)
            fonts = {str(f.get("/BaseFont")) for f in page.Resources.get("/Font", {}).values()}
        archived = _pdf_text(pdf, page_no)
        text = stored[rid].text.split("\f")[page_no - 1]
        row = page_rows[(rid, page_no)]
        if mode == "keep":
            # not rasterised: the page is still drawn by its own font, its text exactly as issued
            assert not images and "/AAAAAB+FreeSerif" in fonts, (images, fonts)
            assert archived == original == text
            assert (row.encoding, row.confidence) == ("born_digital", None)
            # exact text: the cross-check finds the number and the date, where OCR of this very
            # page can miss them (Tesseract read "ngày 12 tháng 07" as "ngày I2 tháng Ø7")
            assert stored[rid].warnings is None, stored[rid].warnings
        else:
            assert images and "/AAAAAB+FreeSerif" not in fonts, (images, fonts)
            assert row.encoding != "born_digital" and row.confidence is not None
            assert cer(original, text) < 0.05 and cer(original, archived) < 0.05
    scanned = page_rows[("MIXED-1", 1)]
    assert scanned.encoding != "born_digital" and scanned.confidence is not None


def test_sql_looking_text_is_stored_verbatim(warehouse_url: str, tmp_path: Path) -> None:
    """Values travel as bound parameters: SQLite and PostgreSQL store them as written."""
    from pipeline.errors import MissingFileError
    from pipeline.models import ManifestRow, RecordPlan, RecordTask
    from pipeline.record import quarantine

    settings = load_settings(data_dir=tmp_path / "var", db_url=warehouse_url)
    warehouse.migrate(warehouse_url)
    with warehouse.engine_for(warehouse_url).begin() as conn:
        conn.execute(warehouse.agencies.insert().values(code=AGENCY, name=FORMULA_NAME))
        conn.execute(warehouse.batches.insert().values(
            agency_code=AGENCY, batch_id="B-SQL", source_dir=str(tmp_path), manifest_sha256="0" * 64,
            status="running", record_count=1))
        batch_pk = warehouse.pk_of(conn, warehouse.batches, agency_code=AGENCY, batch_id="B-SQL")
    row = ManifestRow(line=2, record_id="SQL-1", procedure_code="1.004227", holder_name=SQL_NAME,
                      result_number="1'; DELETE FROM batches; --", files_raw="a.tif")
    task = RecordTask(agency_code=AGENCY, batch_id="B-SQL", batch_dir=str(tmp_path),
                      batch_pk=batch_pk, record=RecordPlan(row=row), sources={})
    quarantine(settings, task, MissingFileError("SQL-1", "thiếu tệp 'a.tif'"))
    r = warehouse.records
    with warehouse.engine_for(warehouse_url).connect() as conn:
        stored = conn.execute(select(r.c.holder_name, r.c.result_number)).one()
        assert conn.execute(select(warehouse.batches.c.id)).scalars().all() == [batch_pk]
    assert tuple(stored) == (SQL_NAME, "1'; DELETE FROM batches; --")
