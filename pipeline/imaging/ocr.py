"""OCR: cleaned page images of one record -> one searchable PDF/A-2b with the record in XMP."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pikepdf
from PIL import Image

from pipeline._exec import ocrmypdf as ocrmypdf_exec
from pipeline._exec import poppler
from pipeline.config import ScannerProfile
from pipeline.errors import OcrFailedError, PdfaCheckError
from pipeline.imaging import hocr
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

    Not the archived page rendered again, as OCRmyPDF would: a mixed page's background is
    100 dpi, and the rendering cost 0.14 CPU s/page more than writing this for no better text.
    An uncompressed TIFF: it keeps the dpi and costs nothing to write.
    """
    folder = work_dir / VIEW_DIR
    folder.mkdir(exist_ok=True)
    save_view(*ocr_view(image, dpi, colour_dropout), folder / f"{page_no:06d}.tif")


def save_view(view: np.ndarray, dpi: int, path: Path) -> None:
    """An OCR view as the file Tesseract reads: the same view is always the same bytes, which
    is how a drafted page's reading is found again (:mod:`pipeline.imaging.readings`)."""
    Image.fromarray(view).save(path, dpi=(dpi, dpi))


def page_stats(hocr_dir: Path, page_count: int) -> list[PageOcrStats | None]:
    """Word confidences per page from Tesseract's hOCR; None for a page that was not OCR'd."""
    out: list[PageOcrStats | None] = []
    for n in range(1, page_count + 1):
        path = hocr_dir / f"{n:06d}_ocr_hocr.hocr"
        if not path.exists():
            out.append(None)
            continue
        words = [(word.confidence, word.text) for word in hocr.read_page(path).words
                 if word.confidence is not None]
        low = [text for conf, text in words if conf < LOW_WORD_CONFIDENCE]
        mean = round(sum(c for c, _ in words) / len(words), 1) if words else None
        out.append(PageOcrStats(mean, len(low), sum(has_diacritics(w) for w in low)))
    return out


def _metadata(row: ManifestRow, agency_code: str) -> dict[str, str]:
    issued = row.issued_on.isoformat() if row.issued_on else row.issued_on_raw
    return {
        "title": f"{row.result_number or row.record_id} - {row.procedure_code}",
        "author": agency_code,
        "subject": f"Kết quả giải quyết TTHC {row.procedure_code}, hồ sơ {row.record_id}, "
                   f"ngày ban hành {issued}",
        "keywords": f"{row.record_id}, {row.procedure_code}, {row.result_number}, {issued}",
    }


def _source_date() -> dt.datetime | None:
    """The reproducible-builds ``SOURCE_DATE_EPOCH``, if set: the time every PDF claims to be
    made at, so that the same scans make byte-identical PDFs whenever they are processed."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch.isdigit() else None


def _name_ocr_layers(pdf: pikepdf.Pdf) -> None:
    """Rename OCRmyPDF's text layers (``/OCR-<random>``) after their page and order.

    The random names are the only part of a PDF, besides its dates and ``/ID``, that differs
    between two runs over the same scans; the archived file's SHA-256 must not depend on it.
    """
    for page_no, page in enumerate(pdf.pages, start=1):
        xobjects = page.obj.get("/Resources", pikepdf.Dictionary()).get("/XObject")
        if xobjects is None:
            continue
        contents = page.obj.get("/Contents")
        streams = list(contents) if isinstance(contents, pikepdf.Array) else [contents]
        data = [s.read_bytes() for s in streams]
        joined = b"\n".join(data)
        old_names = sorted((k for k in xobjects if k.startswith("/OCR-")),
                           key=lambda k: joined.find(k.encode() + b" "))
        renames = {old: f"/OCR-p{page_no}-{n}" for n, old in enumerate(old_names, start=1)}
        for old, new in renames.items():
            xobjects[new] = xobjects[old]
            del xobjects[old]
        for stream, raw in zip(streams, data, strict=True):
            changed = raw
            for old, new in renames.items():
                # the random 22-character suffix cannot occur in a content stream by chance
                changed = changed.replace(old.encode() + b" ", new.encode() + b" ")
            if changed != raw:
                stream.write(changed)  # compressed again when the file is saved


def add_record_xmp(pdf_path: Path, row: ManifestRow, agency_code: str, batch_id: str) -> None:
    """Dublin Core fields are predefined in XMP, so PDF/A needs no extension schema for them.

    The file is saved with a content-derived ``/ID`` and deterministic layer names, and with
    ``SOURCE_DATE_EPOCH`` set also with fixed dates: a record redone after a crash is then the
    very file an uninterrupted run would have archived.
    """
    pinned = _source_date()
    with pikepdf.open(pdf_path, allow_overwriting_input=True) as pdf:
        with pdf.open_metadata(set_pikepdf_as_editor=pinned is None) as meta:
            meta["dc:identifier"] = row.record_id
            meta["dc:source"] = f"{agency_code}/{batch_id}"
            meta["dc:type"] = {"Kết quả giải quyết thủ tục hành chính"}
            if row.issued_on:
                meta["dc:date"] = [row.issued_on.isoformat()]
            meta["dc:language"] = ["vi"]
            if pinned is not None:
                for key in ("xmp:CreateDate", "xmp:ModifyDate", "xmp:MetadataDate"):
                    meta[key] = pinned.isoformat()
        _name_ocr_layers(pdf)
        # qpdf keeps the first half of an existing /ID, which OCRmyPDF drew at random
        if "/ID" in pdf.trailer:
            del pdf.trailer["/ID"]
        pdf.save(pdf_path, deterministic_id=True)


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


def _page_texts(out_pdf: Path, hocr_dir: Path, page_count: int, kept: Mapping[int, str]) -> str:
    """The record's text, pages separated by form feeds: a kept page's own text as the archived
    file carries it, Tesseract's for an OCR'd page, nothing for a page neither (blank)."""
    texts = []
    for n in range(1, page_count + 1):
        ocr_text = hocr_dir / f"{n:06d}_ocr_hocr.txt"
        if n in kept:
            texts.append(poppler.page_text(out_pdf, n))
        elif ocr_text.exists():
            texts.append(ocr_text.read_text(encoding="utf-8").removesuffix("\f"))
        else:
            texts.append("")
    return "\f".join(texts)


@dataclass(frozen=True)
class OcrRequest:
    """One record to OCR: its pages as an image-only PDF, and the record they are."""

    image_pdf: Path  # one page per page of the record
    page_count: int
    out_pdf: Path  # the PDF/A-2b to write
    work_dir: Path  # where ``write_view`` put each page's view; OCRmyPDF's hOCR goes here too
    row: ManifestRow  # the record's fields, for its XMP and the messages
    agency_code: str
    batch_id: str
    ocr_pages: list[int] | None = None  # 1-based; None: all
    kept: Mapping[int, str] | None = None  # born-digital pages archived as issued -> their file
    readings: Path | None = None  # drafted pages' readings to take (pipeline.imaging.readings)


def ocr_record(request: OcrRequest, profile: ScannerProfile, jobs: int) -> OcrOutput:
    """OCR the record's image-only PDF in Vietnamese; write and verify the PDF/A-2b.

    Each page to OCR is read from its view, written by ``write_view`` into ``work_dir``.
    ``ocr_pages`` limits OCR to those pages, e.g. to skip blank ones; every page is kept in the
    PDF. ``kept`` names the born-digital pages (page -> source file) to archive as they are,
    with their own text, instead of OCR'ing them.
    """
    row, out_pdf, kept = request.row, request.out_pdf, request.kept or {}
    hocr_dir = request.work_dir / "hocr"
    hocr_dir.mkdir(exist_ok=True)
    job = ocrmypdf_exec.OcrJob(
        input_pdf=str(request.image_pdf), output_pdf=str(out_pdf), hocr_dir=str(hocr_dir),
        view_dir=str(request.work_dir / VIEW_DIR), languages=profile.languages, jobs=jobs,
        pages=",".join(map(str, request.ocr_pages)) if request.ocr_pages is not None else None,
        keep_text=bool(kept), readings_dir=str(request.readings) if request.readings else None,
        **_metadata(row, request.agency_code),
    )
    try:
        ocrmypdf_exec.make_pdfa(job)
    except ocrmypdf_exec.OcrmypdfError as exc:
        hint = "Kiểm tra ảnh quét rồi Clear để chạy lại."
        if kept:
            pages = ", ".join(f"trang {n} (tệp '{name}')" for n, name in sorted(kept.items()))
            hint = (f"Các trang văn bản điện tử {pages} được giữ nguyên (ocr.born_digital: keep) "
                    "nhưng không chuyển được sang PDF/A-2b như vốn có. Xin cơ quan ban hành bản "
                    "PDF/A, hoặc đặt ocr.born_digital: redo trong cấu hình máy quét để nhận dạng "
                    "lại chúng như bản quét, rồi Clear để chạy lại.")
        raise OcrFailedError(row.record_id, f"Hồ sơ {row.record_id} ({row.where_inline}): OCR không "
                             f"thành công ({exc}). {hint}") from exc
    add_record_xmp(out_pdf, row, request.agency_code, request.batch_id)
    verify_pdfa(out_pdf, row.record_id, request.page_count)
    text = _page_texts(out_pdf, hocr_dir, request.page_count, kept)
    return OcrOutput(out_pdf, text, page_stats(hocr_dir, request.page_count))
