"""OCRmyPDF plugin loaded into our OCR child process.

- OCR reads the page's OCR view (``pipeline.imaging.ocr.ocr_view``: the cleaned page at its scan
  resolution, coloured ink made light, binarised) instead of a rendering of the archival page:
  a mixed page's background is 100 dpi, and rendering costs more than reading the file. The
  archived page keeps its colours.
- A page whose view Tesseract read before, for a drafted manifest, is not read again: its
  reading is taken from ``DIGITIZE_READINGS_DIR`` (:mod:`pipeline.imaging.readings`).
- Tesseract's hOCR and text of each page are copied to ``DIGITIZE_HOCR_DIR`` so the parent can
  read the word confidences without a second OCR pass, and each page's text by its page number
  (OCRmyPDF's sidecar runs the pages it skipped together, so its pages cannot be told apart).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ocrmypdf import hookimpl
from ocrmypdf.builtin_plugins.tesseract_ocr import TesseractOcrEngine

from pipeline.imaging import readings

HOCR_DIR_ENV = "DIGITIZE_HOCR_DIR"
VIEW_DIR_ENV = "DIGITIZE_OCR_VIEW_DIR"
READINGS_DIR_ENV = "DIGITIZE_READINGS_DIR"


class ConfidenceKeepingTesseract(TesseractOcrEngine):
    @staticmethod
    def generate_pdf(input_file, output_pdf, output_text, options) -> None:  # noqa: ANN001
        store = os.environ.get(READINGS_DIR_ENV)
        if not (store and readings.take(Path(input_file), options.languages,
                                        options.tesseract.pagesegmode, Path(store),
                                        Path(output_pdf), Path(output_text))):
            TesseractOcrEngine.generate_pdf(input_file, output_pdf, output_text, options)
        target = os.environ.get(HOCR_DIR_ENV)
        hocr = Path(output_pdf).with_suffix(".hocr")
        # none when Tesseract gave up on the page (timeout, "Empty page!!"): no confidences
        if target and hocr.is_file():
            # "<page:06d>_ocr_tess.pdf" by OCRmyPDF's page context; the hOCR beside it is
            # Tesseract's own, asked for with the "hocr" config (pipeline._exec.ocrmypdf)
            page = Path(output_pdf).name[:6]
            shutil.copyfile(hocr, Path(target) / f"{page}_ocr_hocr.hocr")
            shutil.copyfile(output_text, Path(target) / f"{page}_ocr_hocr.txt")


@hookimpl
def get_ocr_engine(options):  # noqa: ANN001, ANN201
    return ConfidenceKeepingTesseract()


@hookimpl
def rasterize_pdf_page(input_file: Path, output_file: Path, pageno: int) -> Path:
    # OCRmyPDF fits the text layer to the page whatever the image's resolution, and reads the
    # resolution from the file's own dpi tag
    view = Path(os.environ[VIEW_DIR_ENV]) / f"{pageno:06d}.tif"
    if not view.is_file():
        raise FileNotFoundError(f"no OCR view {view} for page {pageno} of {input_file}")
    shutil.copyfile(view, output_file)
    return Path(output_file)
