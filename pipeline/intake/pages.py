"""Reading page images out of scanner files, one page at a time.

Multi-page TIFFs and image-only PDFs are opened per page (TIFF: seek; PDF: poppler renders just
the requested page), so a 300-page file never sits whole in memory. A PDF page that draws its
own visible text (a document issued electronically) is told apart from a scan by
:func:`pdf_text_layer`.

Every page is measured from what its file declares (image header, PDF page boxes at the dpi the
page will be rendered at) before anything is decoded, and a PDF is searched for active content
and asked of poppler too: an odd or hostile file is a PageReadError naming it, whose ``rule``
quarantines its record, never a crash of the batch.
"""

from __future__ import annotations

import contextlib
import math
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pikepdf
from pdf2image import convert_from_path
from pdf2image.exceptions import (
    PDFPageCountError,
    PDFPopplerTimeoutError,
    PDFSyntaxError,
    PopplerNotInstalledError,
)
from PIL import Image, ImageSequence, UnidentifiedImageError

from pipeline import _exec
from pipeline.errors import ToolMissingError

SUPPORTED_SUFFIXES = {".tif", ".tiff", ".jpg", ".jpeg", ".png", ".pdf"}

# The largest page we decode: A1 at 400 dpi (~124 million pixels) fits, and its RGB array (~370 MB)
# still leaves the cleanup room on a worker. A bigger declared size is a corrupt or crafted file.
MAX_PAGE_PIXELS = 150_000_000
# A0 is 46.8 inches tall; a PDF page beyond this would rasterise to billions of pixels.
MAX_PAGE_INCHES = 50.0
# Pillow's own guard stays on as a backstop; it warns above this and refuses above twice this.
Image.MAX_IMAGE_PIXELS = MAX_PAGE_PIXELS
# A page's sides in pixels, as decoded or as poppler will render it. The pixel limit alone lets
# a 1 x 50,000 strip through, and the cleanup, which scales every page down to look at it, then
# fails on a side that scales to nothing. No scanned page is under 16 pixels a side; the long
# side of an A0 sheet at 600 dpi (28,080) still fits under the upper bound.
MIN_PAGE_SIDE = 16
MAX_PAGE_SIDE = 30_000
# The scan resolution a PDF page without an image is rendered at when the caller does not say
# (the scanner profiles' fallback_dpi default).
DEFAULT_PDF_DPI = 300
# Poppler is asked for the page count of every PDF when it is registered (see _poppler_pages),
# and renders one page at a time; a file that keeps it busy longer than this is crafted or broken.
POPPLER_INFO_TIMEOUT = 60
POPPLER_RENDER_TIMEOUT = 600

# PDF actions that run something, reach outside the file or send data when the file is opened
# or clicked, as the archivist reads them. GoTo (within the file) and URI links are harmless.
_ACTIVE_ACTIONS = {
    "/JavaScript": "JavaScript",
    "/Launch": "hành động mở chương trình (Launch)",
    "/GoToR": "liên kết mở tệp khác (GoToR)",
    "/GoToE": "liên kết mở tệp đính kèm (GoToE)",
    "/ImportData": "hành động nhập dữ liệu (ImportData)",
    "/SubmitForm": "hành động gửi biểu mẫu (SubmitForm)",
    "/ResetForm": "hành động xóa biểu mẫu (ResetForm)",
}
_EMBEDDED_FILES = "tệp đính kèm"
# Objects visited looking for actions (outline items, chained actions): a real document has
# a few thousand bookmarks at most; beyond this the file is built to make the walk endless.
_MAX_ACTION_WALK = 100_000
_MAX_TREE_DEPTH = 64  # page-tree levels searched for an inherited MediaBox

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
    """A page file cannot be decoded (empty, truncated, not an image, encrypted).

    ``rule`` names the manifest problem it becomes (see pipeline.intake.ingest.resolve_pages), and
    so the typed error of :mod:`pipeline.errors` its record is held with.
    """

    rule = "file_readable"

    def __init__(self, message: str, rule: str | None = None) -> None:
        super().__init__(message)
        if rule is not None:
            self.rule = rule


class PageTooLargeError(PageReadError):
    rule = "image_too_large"


class PdfActiveContentError(PageReadError):
    rule = "pdf_active_content"


def _check_pixels(path: Path, width: int, height: int, page: int) -> None:
    if width * height > MAX_PAGE_PIXELS:
        raise PageTooLargeError(
            f"{path.name}: trang {page} khai báo {width} x {height} điểm ảnh "
            f"({width * height / 1e6:.0f} triệu), quá giới hạn {MAX_PAGE_PIXELS / 1e6:.0f} triệu")


def _check_size(path: Path, width: int, height: int, page: int, dpi: int | None = None) -> None:
    """Refuse a page whose size in pixels (decoded, or rendered at ``dpi``) no scan has.

    The upper limits come first: they are what keeps memory safe, and a 1 x 50,000 strip
    breaks both, so it is refused as too large."""
    rendered = f" khi dựng ở {dpi} dpi" if dpi else ""
    if max(width, height) > MAX_PAGE_SIDE:
        raise PageTooLargeError(
            f"{path.name}: trang {page} có {width} x {height} điểm ảnh{rendered}, cạnh dài quá "
            f"giới hạn {MAX_PAGE_SIDE} điểm ảnh")
    _check_pixels(path, width, height, page)
    if min(width, height) < MIN_PAGE_SIDE:
        raise PageReadError(
            f"{path.name}: trang {page} chỉ có {width} x {height} điểm ảnh{rendered}, quá nhỏ để "
            f"là một trang quét (mỗi cạnh ít nhất {MIN_PAGE_SIDE} điểm ảnh): tệp hỏng hoặc không "
            "phải bản quét, cần quét lại trang")


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


class _ActionWalk:
    """Follows PDF actions through their ``/Next`` chains (one action or an array of them).

    One budget serves the whole file, and indirect objects already seen are skipped, so that a
    chain looping on itself or a file built of millions of actions cannot stall registration.
    """

    def __init__(self) -> None:
        self.budget = _MAX_ACTION_WALK

    @property
    def exhausted(self) -> bool:
        return self.budget <= 0

    def spend(self) -> bool:
        self.budget -= 1
        return self.budget > 0

    def kinds(self, action: object) -> list[str]:
        """The archivist's names of the active actions in ``action`` and the actions after it."""
        found: list[str] = []
        todo, seen = [action], set()
        while todo and self.spend():
            item = todo.pop()
            if isinstance(item, list | pikepdf.Array):
                todo.extend(item)
                continue
            if not isinstance(item, pikepdf.Dictionary):
                continue
            if item.is_indirect:
                if item.objgen in seen:
                    continue
                seen.add(item.objgen)
            if str(item.get("/S")) in _ACTIVE_ACTIONS:
                found.append(_ACTIVE_ACTIONS[str(item.get("/S"))])
            todo.append(item.get("/Next"))
        return found

    def triggered(self, triggers: object) -> list[str]:
        """The active actions of an additional-actions (``/AA``) dictionary: trigger -> action."""
        triggers = _dictionary(triggers)
        return self.kinds(list(triggers.values()))


def _outline_actions(outlines: object, walk: _ActionWalk) -> list[str]:
    """The active actions behind the bookmarks (outline items, each with children and siblings)."""
    found: list[str] = []
    todo, seen = [_dictionary(outlines).get("/First")], set()
    while todo and walk.spend():
        item = todo.pop()
        if not isinstance(item, pikepdf.Dictionary):
            continue
        if item.is_indirect:
            if item.objgen in seen:
                continue
            seen.add(item.objgen)
        found += walk.kinds(item.get("/A"))
        todo += [item.get("/Next"), item.get("/First")]
    return found


def _active_content(pdf: pikepdf.Pdf) -> list[str]:
    """What in the PDF would run, reach outside the file or take input: JavaScript, actions that
    start a program or open another file, embedded files, automatic actions, form fields.

    An archival scan has none of these; any one of them found anywhere refuses the file, so the
    walk looks wherever a reader would act on them (catalogue, bookmarks, pages, annotations).
    """
    root, found, walk = pdf.Root, [], _ActionWalk()
    names = _dictionary(root.get("/Names"))
    if "/JavaScript" in names:
        found.append("JavaScript")
    if "/EmbeddedFiles" in names or "/AF" in root:
        found.append(_EMBEDDED_FILES)
    opening = walk.kinds(root.get("/OpenAction")) + walk.triggered(root.get("/AA"))
    if opening or "/AA" in root:
        found += ["hành động tự chạy khi mở", *opening]
    form = _dictionary(root.get("/AcroForm"))
    fields = form.get("/Fields")
    if (isinstance(fields, pikepdf.Array) and len(fields)) or "/XFA" in form:
        found.append("biểu mẫu điền được")
    found += _outline_actions(root.get("/Outlines"), walk)
    for page in pdf.pages:
        if "/AF" in page.obj:
            found.append(_EMBEDDED_FILES)
        if "/AA" in page.obj:
            found += ["hành động tự chạy khi mở trang", *walk.triggered(page.obj.get("/AA"))]
        annots = page.obj.get("/Annots")
        for annot in annots if isinstance(annots, pikepdf.Array) else []:
            if not isinstance(annot, pikepdf.Dictionary) or not walk.spend():
                continue
            if annot.get("/Subtype") == "/Widget":
                found.append("biểu mẫu điền được")
            if annot.get("/Subtype") == "/FileAttachment" or "/AF" in annot:
                found.append(_EMBEDDED_FILES)
            if "/AA" in annot:
                found += ["hành động tự chạy trong chú thích", *walk.triggered(annot.get("/AA"))]
            found += walk.kinds(annot.get("/A"))
    if walk.exhausted:
        found.append(f"hơn {_MAX_ACTION_WALK} hành động/dấu trang (tệp bất thường)")
    return list(dict.fromkeys(found))


def _inherited(page: pikepdf.Dictionary, key: str) -> object:
    """A page attribute as the page tree gives it: the page's own, else its nearest ancestor's."""
    node: object = page
    for _ in range(_MAX_TREE_DEPTH):
        if not isinstance(node, pikepdf.Dictionary):
            return None
        if key in node:
            return node[key]
        node = node.get("/Parent")
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, int | Decimal) and not isinstance(value, bool)


def _rectangle(value: object) -> tuple[float, float, float, float] | None:
    """A PDF rectangle as (left, bottom, right, top); None unless it is four numbers.

    The PDF standard lets a rectangle name any two opposite corners and readers normalise it,
    so reversed (or negative) corners are no fault; only a rectangle without area is.
    """
    if not isinstance(value, pikepdf.Array) or len(value) != 4:
        return None
    numbers = list(value)
    if not all(_is_number(v) for v in numbers):
        return None
    x0, y0, x1, y1 = (float(v) for v in numbers)
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def _rendered_pixels(points: float, dpi: int) -> int:
    return math.ceil(points * dpi / 72)  # as pdftoppm sizes its output


def _scan_dpi(page: pikepdf.Page, width_pt: float, fallback_dpi: int) -> int:
    """The resolution of the scan embedded in an image-only PDF page, from its size on paper."""
    images = list(page.images.values())
    pixels = images[0].get("/Width") if images else None
    if not _is_number(pixels) or int(pixels) <= 0:
        return fallback_dpi
    return max(72, round(int(pixels) / (width_pt / 72)))


def _unsized(path: Path, n: int | None) -> PageReadError:
    page = f"trang {n}" if n else "một trang"
    return PageReadError(
        f"{path.name}: {page} không ghi khổ giấy hợp lệ (MediaBox thiếu hoặc không phải 4 số): "
        "tệp PDF hỏng, cần xuất lại tệp hoặc quét lại trang")


def _check_unsized_pages(path: Path, pdf: pikepdf.Pdf, only: int | None = None) -> None:
    """Refuse a page (``only``, else any) whose MediaBox is missing or not four numbers.

    qpdf (12 and later) gives such a page a US Letter MediaBox as it opens the file, and says so
    only in a warning naming the page object; poppler would take Letter too. Either way the
    scan's size on paper, hence its resolution, is made up.
    """
    numbers = {page.obj.objgen: n for n, page in enumerate(pdf.pages, start=1)}
    for warning in pdf.get_warnings():
        if "MediaBox" not in warning:
            continue
        page = re.search(r"object (\d+) (\d+)\b", warning)
        n = numbers.get((int(page[1]), int(page[2]))) if page else None
        if only is None or n in (None, only):
            raise _unsized(path, n)


def _check_pdf_page(path: Path, page: pikepdf.Page, n: int, *, dpi: int | None = None,
                    fallback_dpi: int = DEFAULT_PDF_DPI) -> int:
    """Refuse page ``n`` before poppler renders it: no usable MediaBox, too big on paper, too
    big or too small in pixels at the dpi it will be rendered at (``dpi``, else its scan's
    resolution, else ``fallback_dpi``), nothing left visible in its CropBox. Returns that dpi."""
    box = _rectangle(_inherited(page.obj, "/MediaBox"))
    if box is None:  # what a qpdf older than 12 leaves as it was (see _check_unsized_pages)
        raise _unsized(path, n)
    width, height = box[2] - box[0], box[3] - box[1]
    if width <= 0 or height <= 0:
        raise PageReadError(
            f"{path.name}: trang {n} có khổ giấy {width:g} x {height:g} pt (MediaBox), tức là "
            "không có diện tích: tệp PDF hỏng, cần xuất lại tệp hoặc quét lại trang")
    unit = page.obj.get("/UserUnit", 1)
    unit = float(unit) if _is_number(unit) and unit > 0 else 1.0
    inches = (width * unit / 72, height * unit / 72)
    if max(inches) > MAX_PAGE_INCHES:
        raise PageTooLargeError(
            f"{path.name}: trang {n} khổ {inches[0]:.0f} x {inches[1]:.0f} inch, quá giới hạn "
            f"{MAX_PAGE_INCHES:.0f} inch")
    dpi = dpi or _scan_dpi(page, width, fallback_dpi)
    # poppler renders the MediaBox and ignores UserUnit; the inch limit above does count it
    _check_size(path, _rendered_pixels(width, dpi), _rendered_pixels(height, dpi), n, dpi)
    # A malformed CropBox is ignored by every reader (they show the MediaBox), so it is no fault;
    # a well-formed one outside the page leaves nothing to read.
    crop = _rectangle(_inherited(page.obj, "/CropBox"))
    if crop is not None:
        shown = (max(0.0, min(crop[2], box[2]) - max(crop[0], box[0])),
                 max(0.0, min(crop[3], box[3]) - max(crop[1], box[1])))
        if min(_rendered_pixels(side, dpi) for side in shown) < MIN_PAGE_SIDE:
            raise PageReadError(
                f"{path.name}: trang {n} chỉ hiển thị {shown[0]:g} x {shown[1]:g} pt (CropBox), "
                "trình đọc PDF sẽ thấy trang trống: tệp PDF hỏng, cần xuất lại tệp hoặc quét "
                "lại trang")
    return dpi


def _poppler_said(text: str) -> str:
    """The last thing poppler wrote (its reason comes last), short enough for a message."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "không rõ lý do"


def _poppler_pages(path: Path) -> int:
    """Pages in the PDF as poppler, which renders it, counts them.

    pikepdf (qpdf) rebuilds damaged files that poppler refuses, a truncated file without its
    trailer among them; asked only at render time, such a file would pass registration and
    fail at its first page. A pdfinfo run costs about 10 ms a file.
    """
    try:
        # absolute, so that a file name starting with "-" is not read as an option
        proc = _exec.run(["pdfinfo", str(path.absolute())], check=False,
                         timeout=POPPLER_INFO_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise PageReadError(
            f"{path.name}: poppler không đọc xong tệp PDF trong {POPPLER_INFO_TIMEOUT} giây: "
            "tệp hỏng") from exc
    # the last one: a document title spanning lines cannot pass for the count
    counts = re.findall(r"^Pages:\s+(\d+)\s*$", proc.stdout.decode("utf-8", "replace"), re.M)
    if proc.returncode != 0 or not counts:
        raise PageReadError(
            f"{path.name}: tệp PDF hỏng, trình dựng trang (poppler) không mở được "
            f"({_poppler_said(proc.stderr.decode('utf-8', 'replace'))})")
    return int(counts[-1])


def _pdf_page_count(path: Path, fallback_dpi: int) -> int:
    try:
        pdf = pikepdf.open(path)
    except pikepdf.PasswordError as exc:
        raise PageReadError(f"{path.name}: PDF có mật khẩu", rule="pdf_encrypted") from exc
    with pdf:
        if pdf.is_encrypted:
            raise PageReadError(f"{path.name}: PDF được mã hóa (giới hạn quyền sao chép/in)",
                                rule="pdf_encrypted")
        active = _active_content(pdf)
        if active:
            raise PdfActiveContentError(f"{path.name}: PDF chứa {', '.join(active)}")
        # Checked on the page boxes before any page is rasterised, so memory stays low.
        _check_unsized_pages(path, pdf)
        for n, page in enumerate(pdf.pages, start=1):
            _check_pdf_page(path, page, n, fallback_dpi=fallback_dpi)
        count = len(pdf.pages)
    rendered = _poppler_pages(path)
    if rendered != count:
        raise PageReadError(
            f"{path.name}: tệp PDF hỏng, hai trình đọc thấy số trang khác nhau ({count} và "
            f"{rendered}), không biết trang nào là trang thật")
    return count


def page_count(path: Path, fallback_dpi: int = DEFAULT_PDF_DPI) -> int:
    """Pages in the file, after the checks that need no decoding (size, encryption, scripts).

    ``fallback_dpi`` is what a PDF page without a scan in it will be rendered at.
    """
    try:
        if path.stat().st_size == 0:
            raise PageReadError(f"{path.name}: tệp rỗng (0 byte)")
        if path.suffix.lower() == ".pdf":
            return _pdf_page_count(path, fallback_dpi)
        with _open_image(path) as img:
            count = 0
            for count, frame in enumerate(ImageSequence.Iterator(img), start=1):
                _check_size(path, *frame.size, count)
            return count
    except (OSError, UnidentifiedImageError, pikepdf.PdfError, ValueError, EOFError) as exc:
        raise PageReadError(f"{path.name}: {exc}") from exc


def to_array(img: Image.Image) -> np.ndarray:
    """The page's 8-bit pixels: 2-D for a page scanned in grey or black and white, RGB for any
    other scanner image mode.

    A grey page stays one channel: cleanup would find its three equal channels and keep one
    anyway, after a pass over the page to check them (with the copy to RGB, 19 ms of CPU a page
    at 300 dpi, issue 15). 16-bit grey is scaled down (Pillow's convert would clip it to white);
    transparent pixels (palette PNG with alpha, RGBA) are paper, so they are laid over white,
    not black.
    """
    if img.mode.startswith("I"):
        return (np.asarray(img, dtype=np.float64) / 257).clip(0, 255).astype(np.uint8)
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        return np.asarray(Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
                          .convert("RGB"))
    # Grey (most scans) and RGB without Pillow's convert, a copy of its own before the array's
    if img.mode == "L" or img.mode == "RGB":
        return np.asarray(img)
    return np.asarray(img.convert("L" if img.mode == "1" else "RGB"))


@contextlib.contextmanager
def _reading(path: Path, page_in_file: int) -> Iterator[None]:
    """What a broken file raises while one of its pages is read becomes a PageReadError."""
    try:
        yield
    except (OSError, UnidentifiedImageError, pikepdf.PdfError, ValueError, EOFError,
            IndexError) as exc:
        raise PageReadError(f"{path.name} page {page_in_file}: {exc}") from exc


def _render(path: Path, page_in_file: int, dpi: int) -> np.ndarray:
    """Poppler's rendering of one page, whatever poppler's complaint a PageReadError."""
    try:
        images = convert_from_path(path, dpi=dpi, first_page=page_in_file,
                                   last_page=page_in_file, timeout=POPPLER_RENDER_TIMEOUT)
    except PopplerNotInstalledError as exc:
        raise ToolMissingError(f"poppler (pdfinfo, pdftoppm) is not installed. "
                               f"{_exec.INSTALL_HINT}") from exc
    except (PDFPageCountError, PDFSyntaxError, PDFPopplerTimeoutError) as exc:
        raise PageReadError(
            f"{path.name}: trình dựng trang (poppler) không dựng được trang {page_in_file} "
            f"({_poppler_said(str(exc))}): tệp PDF hỏng") from exc
    if len(images) != 1:
        raise PageReadError(
            f"{path.name}: trình dựng trang (poppler) không cho ra ảnh của trang {page_in_file}: "
            "tệp PDF hỏng")
    return np.asarray(images[0].convert("RGB"))


# What a scanner's PDF page is: one image drawn over the whole page, nothing else. Its pixels
# are decoded as they are, not rendered by poppler at the resolution they already have: 0.30
# CPU s a 300 dpi page (poppler's rendering and its output read through a pipe) against 0.06,
# and the very pixels the file holds (issue 15). Only a grey or RGB JPEG, as a scanner writes
# it: Pillow reads its size from its header before decoding it, where a deflated image would
# be inflated whole by qpdf first, however large it inflates; anything else is rendered.
_PLACEMENT_SLACK_PT = 0.01


def _scan_pixels(page: pikepdf.Page, dpi: int) -> np.ndarray | None:
    """The pixels of an image-only page as :func:`to_array` gives them, when the page is one
    upright JPEG over its whole MediaBox with the pixels poppler would render at ``dpi`` (to
    one pixel); None for any other page, which is rendered."""
    box = _rectangle(_inherited(page.obj, "/MediaBox"))
    rotate = _inherited(page.obj, "/Rotate")
    if box is None or (rotate is not None and (not _is_number(rotate) or int(rotate) % 360)):
        return None
    try:
        ops = [(str(op), operands) for operands, op in pikepdf.parse_content_stream(page)]
    except pikepdf.PdfError:
        return None
    if [op for op, _ in ops] not in (["q", "cm", "Do", "Q"], ["cm", "Do"]):
        return None
    (_, matrix), (_, drawn) = [entry for entry in ops if entry[0] in ("cm", "Do")]
    placed = (box[2] - box[0], 0, 0, box[3] - box[1], box[0], box[1])
    if len(matrix) != 6 or len(drawn) != 1 or not all(
            _is_number(v) and abs(float(v) - want) <= _PLACEMENT_SLACK_PT
            for v, want in zip(matrix, placed, strict=True)):
        return None
    resources = page.obj.get("/Resources")
    xobjects = resources.get("/XObject") if isinstance(resources, pikepdf.Dictionary) else None
    image = (xobjects.get(drawn[0]) if isinstance(xobjects, pikepdf.Dictionary)
             and isinstance(drawn[0], pikepdf.Name) else None)
    if (not isinstance(image, pikepdf.Stream) or image.get("/Subtype") != pikepdf.Name.Image
            or any(key in image for key in ("/SMask", "/Mask", "/Decode", "/ImageMask"))):
        return None
    try:
        scan = pikepdf.PdfImage(image)
        if (scan.filters != [pikepdf.Name.DCTDecode] or scan.mode not in ("L", "RGB")
                or scan.bits_per_component != 8
                or abs(scan.width - _rendered_pixels(placed[0], dpi)) > 1
                or abs(scan.height - _rendered_pixels(placed[3], dpi)) > 1):
            return None
        with scan.as_pil_image() as pixels:  # the JPEG's header read, not yet decoded
            if pixels.size != (scan.width, scan.height) or pixels.mode != scan.mode:
                return None
            return to_array(pixels)
    # what poppler may still read: a damaged stream, or a JPEG larger than pikepdf's decoding
    # limit, is poppler's to refuse or to render, in its own words
    except (pikepdf.PdfError, pikepdf.UnsupportedImageTypeError, pikepdf.InvalidPdfImageError,
            Image.DecompressionBombError, OSError, ValueError):
        return None


def render_pdf_page(path: Path, page_in_file: int, dpi: int) -> np.ndarray:
    """Page ``page_in_file`` (1-based) of a PDF rendered at ``dpi`` as an RGB uint8 array."""
    with _reading(path, page_in_file):
        with pikepdf.open(path) as pdf:
            _check_unsized_pages(path, pdf, page_in_file)
            _check_pdf_page(path, pdf.pages[page_in_file - 1], page_in_file, dpi=dpi)
        return _render(path, page_in_file, dpi)


def load_page(path: Path, page_in_file: int, fallback_dpi: int) -> tuple[np.ndarray, int]:
    """Page ``page_in_file`` (1-based) of ``path`` as a uint8 array (:func:`to_array`: 2-D for a
    grey image, else RGB; a PDF page its scan's pixels when it is nothing else
    (:func:`_scan_pixels`), else rendered in RGB), and its dpi."""
    with _reading(path, page_in_file):
        if path.suffix.lower() == ".pdf":
            with pikepdf.open(path) as pdf:
                _check_unsized_pages(path, pdf, page_in_file)
                page = pdf.pages[page_in_file - 1]
                dpi = _check_pdf_page(path, page, page_in_file, fallback_dpi=fallback_dpi)
                pixels = _scan_pixels(page, dpi)
            return (_render(path, page_in_file, dpi) if pixels is None else pixels), dpi
        with _open_image(path) as img:
            img.seek(page_in_file - 1)
            _check_size(path, *img.size, page_in_file)
            dpi_info = img.info.get("dpi")
            dpi = round(float(dpi_info[0])) if dpi_info and dpi_info[0] else fallback_dpi
            # JPEGs without density report 1 or 72 dpi; a scan is never that coarse.
            if dpi < 100:
                dpi = fallback_dpi
            return to_array(img), dpi


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
