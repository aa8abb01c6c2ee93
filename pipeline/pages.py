"""Reading page images out of scanner files, one page at a time.

Multi-page TIFFs and image-only PDFs are opened per page (TIFF: seek; PDF: poppler renders just
the requested page), so a 300-page file never sits whole in memory. A PDF page that draws its
own visible text (a document issued electronically) is told apart from a scan by
:func:`pdf_text_layer`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pikepdf
from pdf2image import convert_from_path
from PIL import Image, ImageSequence, UnidentifiedImageError

SUPPORTED_SUFFIXES = {".tif", ".tiff", ".jpg", ".jpeg", ".png", ".pdf"}

# The largest page we decode: A1 at 400 dpi (~124 million pixels) fits, and its RGB array (~370 MB)
# still leaves the cleanup room on a worker. A bigger declared size is a corrupt or crafted file.
MAX_PAGE_PIXELS = 150_000_000
# A0 is 46.8 inches tall; a PDF page beyond this would rasterise to billions of pixels.
MAX_PAGE_INCHES = 50.0
# Pillow's own guard stays on as a backstop; it warns above this and refuses above twice this.
Image.MAX_IMAGE_PIXELS = MAX_PAGE_PIXELS

# PDF actions that run something when the file is opened or clicked.
_ACTIVE_ACTIONS = {"/JavaScript", "/Launch", "/SubmitForm", "/ImportData", "/ResetForm"}

# Fewer visible characters than this on a PDF page are a page number or a stamp that scanning
# software printed over a scan, not the text of a document issued electronically.
MIN_BORN_DIGITAL_GLYPHS = 50
_SHOW_TEXT = {"Tj", "TJ", "'", '"'}
# 3 paints nothing (the OCR layer of a searchable scan), 7 only clips
_INVISIBLE_RENDER_MODES = {3, 7}
# fonts without outlines that Tesseract and OCRmyPDF draw their OCR text layer in
_GLYPHLESS_FONTS = {"glyphlessfont", "occulta"}
_MAX_FORM_DEPTH = 8  # forms drawing forms: deeper is a crafted loop, not a document


class PageReadError(Exception):
    """A page file cannot be decoded (empty, truncated, not an image).

    ``rule`` names the manifest problem it becomes (see pipeline.ingest.resolve_pages).
    """

    rule = "file_readable"


class PageTooLargeError(PageReadError):
    rule = "image_too_large"


class PdfEncryptedError(PageReadError):
    rule = "pdf_encrypted"


class PdfActiveContentError(PageReadError):
    rule = "pdf_active_content"


def _check_pixels(path: Path, width: int, height: int, page: int) -> None:
    if width * height > MAX_PAGE_PIXELS:
        raise PageTooLargeError(
            f"{path.name}: trang {page} khai báo {width} x {height} điểm ảnh "
            f"({width * height / 1e6:.0f} triệu), quá giới hạn {MAX_PAGE_PIXELS / 1e6:.0f} triệu")


def _open_image(path: Path) -> Image.Image:
    """Open an image reading its header only; a size past Pillow's guard is ours to report."""
    try:
        return Image.open(path)
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(found[1]) if found else 2 * MAX_PAGE_PIXELS
        raise PageTooLargeError(
            f"{path.name}: ảnh khai báo {pixels / 1e6:.0f} triệu điểm ảnh, quá giới hạn "
            f"{MAX_PAGE_PIXELS / 1e6:.0f} triệu") from exc


def _active_content(pdf: pikepdf.Pdf) -> list[str]:
    """What in the PDF would run or take input: JavaScript, automatic actions, form fields."""
    def is_active(action: object) -> bool:
        return isinstance(action, pikepdf.Dictionary) and action.get("/S") in _ACTIVE_ACTIONS

    root, found = pdf.Root, []
    names = root.get("/Names")
    if isinstance(names, pikepdf.Dictionary) and "/JavaScript" in names:
        found.append("JavaScript")
    if is_active(root.get("/OpenAction")) or "/AA" in root:
        found.append("hành động tự chạy khi mở")
    form = root.get("/AcroForm")
    if isinstance(form, pikepdf.Dictionary) and (len(form.get("/Fields", [])) or "/XFA" in form):
        found.append("biểu mẫu điền được")
    for page in pdf.pages:
        if "/AA" in page.obj:
            found.append("hành động tự chạy khi mở trang")
        for annot in page.obj.get("/Annots", []):
            if annot.get("/Subtype") == "/Widget":
                found.append("biểu mẫu điền được")
            if is_active(annot.get("/A")) or "/AA" in annot:
                found.append("JavaScript/hành động trong chú thích")
    return sorted(set(found))


def _pdf_page_count(path: Path) -> int:
    try:
        pdf = pikepdf.open(path)
    except pikepdf.PasswordError as exc:
        raise PdfEncryptedError(f"{path.name}: PDF có mật khẩu") from exc
    with pdf:
        if pdf.is_encrypted:
            raise PdfEncryptedError(f"{path.name}: PDF được mã hóa (giới hạn quyền sao chép/in)")
        active = _active_content(pdf)
        if active:
            raise PdfActiveContentError(f"{path.name}: PDF chứa {', '.join(active)}")
        # Checked on the MediaBox before any page is rasterised, so memory stays low.
        for n, page in enumerate(pdf.pages, start=1):
            box = [float(v) for v in page.mediabox]
            unit = float(page.obj.get("/UserUnit", 1))
            width, height = (abs(box[2] - box[0]) * unit / 72, abs(box[3] - box[1]) * unit / 72)
            if max(width, height) > MAX_PAGE_INCHES:
                raise PageTooLargeError(
                    f"{path.name}: trang {n} khổ {width:.0f} x {height:.0f} inch, quá giới hạn "
                    f"{MAX_PAGE_INCHES:.0f} inch")
        return len(pdf.pages)


def page_count(path: Path) -> int:
    """Pages in the file, after the checks that need no decoding (size, encryption, scripts)."""
    try:
        if path.stat().st_size == 0:
            raise PageReadError(f"{path.name}: tệp rỗng (0 byte)")
        if path.suffix.lower() == ".pdf":
            return _pdf_page_count(path)
        with _open_image(path) as img:
            count = 0
            for count, frame in enumerate(ImageSequence.Iterator(img), start=1):
                _check_pixels(path, *frame.size, count)
            return count
    except (OSError, UnidentifiedImageError, pikepdf.PdfError, ValueError, EOFError) as exc:
        raise PageReadError(f"{path.name}: {exc}") from exc


def _pdf_page_dpi(path: Path, page_in_file: int, fallback_dpi: int) -> int:
    """The resolution of the scan embedded in an image-only PDF page, from its size on paper."""
    with pikepdf.open(path) as pdf:
        page = pdf.pages[page_in_file - 1]
        images = list(page.images.values())
        if not images:
            return fallback_dpi
        width_pt = float(page.mediabox[2]) - float(page.mediabox[0])
        return max(72, round(int(images[0].Width) / (width_pt / 72)))


def to_rgb(img: Image.Image) -> np.ndarray:
    """8-bit RGB of any scanner image mode.

    16-bit grey is scaled down (Pillow's convert would clip it to white); transparent pixels
    (palette PNG with alpha, RGBA) are paper, so they are laid over white, not black.
    """
    if img.mode.startswith("I"):
        grey = (np.asarray(img, dtype=np.float64) / 257).clip(0, 255).astype(np.uint8)
        return np.stack([grey] * 3, axis=-1)
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        return np.asarray(Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
                          .convert("RGB"))
    return np.asarray(img.convert("RGB"))


@contextlib.contextmanager
def _reading(path: Path, page_in_file: int) -> Iterator[None]:
    """What a broken file raises while one of its pages is read becomes a PageReadError."""
    try:
        yield
    except (OSError, UnidentifiedImageError, pikepdf.PdfError, ValueError, EOFError) as exc:
        raise PageReadError(f"{path.name} page {page_in_file}: {exc}") from exc


def render_pdf_page(path: Path, page_in_file: int, dpi: int) -> np.ndarray:
    """Page ``page_in_file`` (1-based) of a PDF rendered at ``dpi`` as an RGB uint8 array."""
    with _reading(path, page_in_file):
        (img,) = convert_from_path(path, dpi=dpi, first_page=page_in_file, last_page=page_in_file)
        return np.asarray(img.convert("RGB"))


def load_page(path: Path, page_in_file: int, fallback_dpi: int) -> tuple[np.ndarray, int]:
    """Page ``page_in_file`` (1-based) of ``path`` as an RGB uint8 array, and its dpi."""
    with _reading(path, page_in_file):
        if path.suffix.lower() == ".pdf":
            dpi = _pdf_page_dpi(path, page_in_file, fallback_dpi)
            return render_pdf_page(path, page_in_file, dpi), dpi
        with _open_image(path) as img:
            img.seek(page_in_file - 1)
            _check_pixels(path, *img.size, page_in_file)
            dpi_info = img.info.get("dpi")
            dpi = round(float(dpi_info[0])) if dpi_info and dpi_info[0] else fallback_dpi
            # JPEGs without density report 1 or 72 dpi; a scan is never that coarse.
            if dpi < 100:
                dpi = fallback_dpi
            return to_rgb(img), dpi


@dataclass(frozen=True)
class TextLayer:
    """The visible text a PDF page draws itself (not counting an image of text)."""

    glyphs: int  # characters drawn visibly
    fonts_embedded: bool  # every font they are drawn in is embedded, as PDF/A requires

    @property
    def born_digital(self) -> bool:
        return self.glyphs >= MIN_BORN_DIGITAL_GLYPHS


def _dictionary(value: object) -> pikepdf.Dictionary:
    """``value`` if it is a dictionary; an empty one for what a malformed file has instead."""
    return value if isinstance(value, pikepdf.Dictionary) else pikepdf.Dictionary()


def _font_facts(font: object) -> tuple[int, bool]:
    """Bytes per character code (0: a glyphless OCR font, which paints nothing) and whether the
    font program is embedded in the file."""
    if not isinstance(font, pikepdf.Dictionary):
        return 1, False
    # a subset font is named "ABCDEF+Name"
    if str(font.get("/BaseFont", "")).lstrip("/").split("+")[-1].lower() in _GLYPHLESS_FONTS:
        return 0, True
    if font.get("/Subtype") == "/Type3":
        return 1, True  # its glyphs are content streams of the file itself
    composite = font.get("/Subtype") == "/Type0"
    descendants = font.get("/DescendantFonts")
    described = _dictionary(descendants[0]) if composite and descendants else font
    descriptor = _dictionary(described.get("/FontDescriptor"))
    embedded = any(key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3"))
    # composite fonts in PDFs are Identity-H (two bytes a character) all but always
    return (2 if composite else 1), embedded


def _text_layer(content: pikepdf.Object, resources: object, depth: int = 0) -> TextLayer:
    """Walk a content stream (and the forms it draws) for visibly drawn text.

    The text render mode and the font are tracked through ``q``/``Q``: a searchable scan draws
    its OCR text in mode 3 (invisible) or in a glyphless font, and that text is no document's own.
    """
    resources = _dictionary(resources)
    fonts, forms = _dictionary(resources.get("/Font")), _dictionary(resources.get("/XObject"))
    glyphs, embedded = 0, True
    mode, (width, font_embedded) = 0, (1, False)  # text before any Tf: malformed, not embedded
    saved: list[tuple[int, tuple[int, bool]]] = []
    for instruction in pikepdf.parse_content_stream(content):
        op, operands = str(instruction.operator), instruction.operands
        if op == "q":
            saved.append((mode, (width, font_embedded)))
        elif op == "Q" and saved:
            mode, (width, font_embedded) = saved.pop()
        elif op == "Tr" and operands and isinstance(operands[0], int | Decimal):
            mode = int(operands[0])
        elif op == "Tf" and operands:
            width, font_embedded = _font_facts(fonts.get(str(operands[0])))
        elif op in _SHOW_TEXT and operands and width and mode not in _INVISIBLE_RENDER_MODES:
            shown = operands[-1]
            strings = shown if isinstance(shown, pikepdf.Array) else [shown]
            count = sum(len(bytes(s)) for s in strings if isinstance(s, pikepdf.String)) // width
            glyphs += count
            embedded = embedded and (font_embedded or not count)
        elif op == "Do" and operands and depth < _MAX_FORM_DEPTH:
            form = forms.get(str(operands[0]))
            if isinstance(form, pikepdf.Stream) and form.get("/Subtype") == "/Form":
                inner = _text_layer(form, form.get("/Resources", resources), depth + 1)
                glyphs += inner.glyphs
                embedded = embedded and inner.fonts_embedded
    return TextLayer(glyphs, embedded)


def pdf_text_layer(path: Path, page_in_file: int) -> TextLayer:
    """The visible text page ``page_in_file`` (1-based) of a PDF draws, from its content."""
    with _reading(path, page_in_file), pikepdf.open(path) as pdf:
        page = pdf.pages[page_in_file - 1].obj
        return _text_layer(page, page.get("/Resources"))
