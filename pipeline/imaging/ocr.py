"""OCR: cleaned page images of one record -> one searchable PDF/A-2b with the record in XMP."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pikepdf
import pikepdf.pdfa
from PIL import Image

from pipeline._exec import poppler, tesseract
from pipeline.config import ScannerProfile
from pipeline.errors import OcrFailedError, PdfaCheckError, RecordError
from pipeline.imaging import hocr, readings
from pipeline.imaging.cleanup import binarised, dropout, to_gray
from pipeline.models import ManifestRow
from pipeline.text import has_diacritics


@dataclass(frozen=True)
class OcrOutput:
    pdf: Path
    text: str  # plain text of all pages, pages separated by form feeds
    pages: list[PageOcrStats | None]


@dataclass(frozen=True)
class PageOcrStats:
    mean_confidence: float | None
    low_confidence_words: int
    low_confidence_with_diacritics: int


LOW_WORD_CONFIDENCE = 60
VIEW_DIR = "ocr-view"
READ_DIR = "hocr"  # in a record's work folder: Tesseract's reading of each page (_reading)


def grey_view(image: np.ndarray, colour_dropout: bool) -> np.ndarray:
    """The cleaned page in grey; with ``colour_dropout`` coloured ink is made light (the lightest
    channel of each pixel), so that a seal or a signature does not hide the print under it."""
    return dropout(image) if colour_dropout else to_gray(image)


def ocr_view(image: np.ndarray, dpi: int, colour_dropout: bool) -> tuple[np.ndarray, int]:
    """What OCR reads of a cleaned page, and at what resolution: its grey view binarised at
    Otsu's level, at the scan's resolution.

    Chosen by ``python -m pipeline.demo.ocr_candidates`` (issue 15) on 48 benchmark pages of seed 0
    and 48 of seed 1: 0.82 and 0.84 % CER where the grey view read at 1.43 and 1.16 %, at 0.95x
    its CPU, and the result number or date missed on 5 and 4 first pages of 45 where the grey
    view missed 9 and 5. Read in grey, the reverse side's print showing through was taken for
    stray punctuation and garbled runs; binarised, it falls on the paper's side of the level.
    Binarising only the pages found to show through read 0.69 and 0.81 % but missed the number
    or date on 10 and 5 first pages, and needs a detector tuned on these very pages.
    """
    return binarised(grey_view(image, colour_dropout)), dpi


def write_view(image: np.ndarray, dpi: int, colour_dropout: bool, work_dir: Path, page_no: int
               ) -> None:
    """Write what OCR reads of page ``page_no`` (``ocr_view``) into ``work_dir``.

    Not the archived page rendered again: a mixed page's background is 100 dpi, and the
    rendering cost 0.14 CPU s/page more than writing this for no better text.
    An uncompressed TIFF: it keeps the dpi and costs nothing to write.
    """
    folder = work_dir / VIEW_DIR
    folder.mkdir(exist_ok=True)
    save_view(*ocr_view(image, dpi, colour_dropout), folder / f"{page_no:06d}.tif")


def save_view(view: np.ndarray, dpi: int, path: Path) -> None:
    """An OCR view as the file Tesseract reads: the same view is always the same bytes, which
    is how a drafted page's reading is found again (:mod:`pipeline.imaging.readings`)."""
    Image.fromarray(view).save(path, dpi=(dpi, dpi))


def page_stats(read_dir: Path, page_count: int) -> list[PageOcrStats | None]:
    """Word confidences per page from Tesseract's hOCR; None for a page that was not OCR'd."""
    out: list[PageOcrStats | None] = []
    for n in range(1, page_count + 1):
        path = _reading(read_dir, n).with_suffix(".hocr")
        if not path.exists():
            out.append(None)
            continue
        words = [(word.confidence, word.text) for word in hocr.read_page(path).words
                 if word.confidence is not None]
        low = [text for conf, text in words if conf < LOW_WORD_CONFIDENCE]
        mean = round(sum(c for c, _ in words) / len(words), 1) if words else None
        out.append(PageOcrStats(mean, len(low), sum(has_diacritics(w) for w in low)))
    return out


def _source_date() -> dt.datetime | None:
    """The reproducible-builds ``SOURCE_DATE_EPOCH``, if set: the time every PDF claims to be
    made at, so that the same scans make byte-identical PDFs whenever they are processed."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch.isdigit() else None


def _record_xmp(pdf: pikepdf.Pdf, row: ManifestRow, agency_code: str, batch_id: str) -> None:
    """The record's fields in the file's XMP (DocInfo follows): Dublin Core is predefined in
    XMP, so PDF/A needs no extension schema for them."""
    issued = row.issued_on.isoformat() if row.issued_on else row.issued_on_raw
    with pdf.open_metadata(set_pikepdf_as_editor=False) as meta:
        meta["dc:title"] = f"{row.result_number or row.record_id} - {row.procedure_code}"
        meta["dc:creator"] = [agency_code]
        meta["dc:description"] = (f"Kết quả giải quyết TTHC {row.procedure_code}, hồ sơ "
                                  f"{row.record_id}, ngày ban hành {issued}")
        meta["pdf:Keywords"] = (f"{row.record_id}, {row.procedure_code}, {row.result_number}, "
                                f"{issued}")
        meta["dc:identifier"] = row.record_id
        meta["dc:source"] = f"{agency_code}/{batch_id}"
        meta["dc:type"] = {"Kết quả giải quyết thủ tục hành chính"}
        if row.issued_on:
            meta["dc:date"] = [row.issued_on.isoformat()]
        meta["dc:language"] = ["vi"]


def _dated(pdf: pikepdf.Pdf) -> None:
    """The file's dates: now, or with ``SOURCE_DATE_EPOCH`` set, that time, so that a record
    redone after a crash is the very file an uninterrupted run would have archived."""
    when = (_source_date() or dt.datetime.now(dt.UTC)).isoformat()
    with pdf.open_metadata(set_pikepdf_as_editor=False) as meta:
        for key in ("xmp:CreateDate", "xmp:ModifyDate", "xmp:MetadataDate"):
            meta[key] = when


def verify_pdfa(pdf_path: Path, record_id: str, expected_pages: int) -> None:
    """The archived file must be PDF/A-2B with an output intent and every page present."""
    try:
        with pikepdf.open(pdf_path) as pdf:
            meta = pdf.open_metadata()
            part, conformance = meta.get("pdfaid:part"), meta.get("pdfaid:conformance")
            intents = pdf.Root.get("/OutputIntents")
            pages = len(pdf.pages)
            identifier = meta.get("dc:identifier")
    except pikepdf.PdfError as exc:
        raise PdfaCheckError(record_id, f"Hồ sơ {record_id}: tệp PDF/A tạo ra bị hỏng ({exc}). "
                             "Xóa tệp tạm rồi Clear để chạy lại.") from exc
    problems = []
    if (part, conformance) != ("2", "B"):
        problems.append(f"pdfaid {part}/{conformance} thay vì 2/B")
    if not intents:
        problems.append("thiếu OutputIntent")
    if pages != expected_pages:
        problems.append(f"{pages} trang thay vì {expected_pages}")
    if identifier != record_id:
        problems.append("thiếu mã hồ sơ trong XMP")
    if problems:
        raise PdfaCheckError(record_id, f"Hồ sơ {record_id}: tệp PDF không đạt PDF/A-2b "
                             f"({'; '.join(problems)}). Báo cho quản trị hệ thống.")


def _page_texts(out_pdf: Path, read_dir: Path, page_count: int, kept: Mapping[int, str]
                ) -> str:
    """The record's text, pages separated by form feeds: a kept page's own text as the archived
    file carries it, Tesseract's for an OCR'd page, nothing for a page neither (blank)."""
    texts = []
    for n in range(1, page_count + 1):
        ocr_text = _reading(read_dir, n).with_suffix(".txt")
        if n in kept:
            texts.append(poppler.page_text(out_pdf, n))
        elif ocr_text.exists():
            texts.append(ocr_text.read_text(encoding="utf-8").removesuffix("\f"))
        else:
            texts.append("")
    return "\f".join(texts)


@dataclass(frozen=True)
class OcrRequest:
    """One record to OCR: its pages, each an image-only PDF, and the record they are."""

    parts: list[Path]  # one one-page PDF per page of the record, in order
    out_pdf: Path  # the PDF/A-2b to write
    work_dir: Path  # where ``write_view`` put each page's view; Tesseract's readings go here too
    row: ManifestRow  # the record's fields, for its XMP and the messages
    agency_code: str
    batch_id: str
    ocr_pages: list[int] | None = None  # 1-based; None: all but the kept ones
    kept: Mapping[int, str] | None = None  # born-digital pages archived as issued -> their file
    readings: Path | None = None  # drafted pages' readings to take (pipeline.imaging.readings)


def ocr_record(request: OcrRequest, profile: ScannerProfile, jobs: int) -> OcrOutput:
    """Read the record's pages in Vietnamese and write them, each under its text, as one
    verified PDF/A-2b.

    Each page to read is read from its view, written by ``write_view`` into ``work_dir``:
    Tesseract's text-only PDF page is laid over the composed page (pikepdf), and the file is
    made PDF/A-2b by pikepdf's PDF/A module, which validates what it writes. ``ocr_pages``
    limits reading to those pages, e.g. to skip blank ones; every page is kept in the PDF.
    ``kept`` names the born-digital pages (page -> source file), archived as they are, with
    their own text.

    Not through OCRmyPDF, which did the same with the same Tesseract run and cost 0.1 CPU s a
    page of Python around it, a tenth of what Tesseract's reading costs (issue 15): its
    pipeline inspects, converts and validates a PDF whose every part we make ourselves.
    """
    row, kept = request.row, request.kept or {}
    pages = range(1, len(request.parts) + 1)
    asked = pages if request.ocr_pages is None else request.ocr_pages
    to_read = [n for n in asked if n not in kept]
    read_dir = request.work_dir / READ_DIR
    read_dir.mkdir(exist_ok=True)
    with ThreadPoolExecutor(max(1, min(jobs, len(to_read)))) as pool:
        list(pool.map(lambda n: _read(request, profile, n), to_read))
    with pikepdf.new() as pdf:
        for n, part in enumerate(request.parts, start=1):
            with pikepdf.open(part) as one:
                pdf.pages.extend(one.pages)
            if n in to_read:
                with pikepdf.open(_reading(read_dir, n).with_suffix(".pdf")) as text:
                    _lay_over(pdf.pages[-1], text.pages[0])
        _record_xmp(pdf, row, request.agency_code, request.batch_id)
        pikepdf.pdfa.prepare(pdf, "2b")
        _dated(pdf)
        try:
            # written beside the destination, validated, then renamed into place
            pikepdf.pdfa.save(pdf, request.out_pdf, "2b", repair=False, deterministic_id=True)
        except pikepdf.pdfa.PdfaError as exc:
            raise _not_pdfa(row, kept, exc.report.summary()) from exc
    verify_pdfa(request.out_pdf, row.record_id, len(request.parts))
    text = _page_texts(request.out_pdf, read_dir, len(request.parts), kept)
    return OcrOutput(request.out_pdf, text, page_stats(read_dir, len(request.parts)))


def _lay_over(page: pikepdf.Page, text: pikepdf.Page) -> None:
    """Draw the text-only page ``text`` over ``page``, fitted to it, as ``/OCR``: not with
    pikepdf's ``add_overlay``, which names it at random, and the archived file's SHA-256 must
    not depend on the run that made it."""
    layer = text.as_form_xobject()
    name = page.add_resource(layer, pikepdf.Name.XObject, name=pikepdf.Name.OCR)
    placed = page.calc_form_xobject_placement(layer, name, pikepdf.Rectangle(page.trimbox))
    page.contents_add(b"q\n", prepend=True)
    page.contents_add(b"Q\n" + placed)
    page.contents_coalesce()


def _reading(read_dir: Path, page_no: int) -> Path:
    """The prefix of Tesseract's reading of page ``page_no``: ``.pdf``, ``.txt``, ``.hocr``."""
    return read_dir / f"{page_no:06d}_ocr_hocr"


def _read(request: OcrRequest, profile: ScannerProfile, page_no: int) -> None:
    """Tesseract's reading of the page's view, or the one a draft made of it."""
    view = request.work_dir / VIEW_DIR / f"{page_no:06d}.tif"
    prefix = _reading(request.work_dir / READ_DIR, page_no)
    if request.readings and readings.take(view, profile.languages,
                                          tesseract.PAGE_SEGMENTATION_MODE, request.readings,
                                          prefix.with_suffix(".pdf"), prefix.with_suffix(".txt")):
        return
    row = request.row
    try:
        tesseract.read_page(view, profile.languages, prefix,
                            timeout=profile.ocr.page_timeout_seconds)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = (f"quá {exc.timeout:g} giây (ocr.page_timeout_seconds)"
                  if isinstance(exc, subprocess.TimeoutExpired)
                  else " ".join(exc.stderr.decode("utf-8", "replace").split())[-300:])
        raise OcrFailedError(row.record_id, (
            f"Hồ sơ {row.record_id} ({row.where_inline}): Tesseract không đọc được trang "
            f"{page_no} ({detail}). Kiểm tra ảnh quét của trang rồi Clear để chạy lại.")) from exc


def _not_pdfa(row: ManifestRow, kept: Mapping[int, str], findings: str) -> RecordError:
    if not kept:
        return PdfaCheckError(row.record_id, (
            f"Hồ sơ {row.record_id} ({row.where_inline}): tệp tạo ra không đạt PDF/A-2b "
            f"({' '.join(findings.split())[:500]}). Báo cho quản trị hệ thống."))
    pages = ", ".join(f"trang {n} (tệp '{name}')" for n, name in sorted(kept.items()))
    return OcrFailedError(row.record_id, (
        f"Hồ sơ {row.record_id} ({row.where_inline}): các trang văn bản điện tử {pages} được giữ "
        "nguyên (ocr.born_digital: keep) nhưng không chuyển được sang PDF/A-2b như vốn có "
        f"({' '.join(findings.split())[:300]}). Xin cơ quan ban hành bản PDF/A, hoặc đặt "
        "ocr.born_digital: redo trong cấu hình máy quét để nhận dạng lại chúng như bản quét, "
        "rồi Clear để chạy lại."))
