"""OCRmyPDF plugin loaded into our OCR child process.

- OCR reads the lightest channel of each pixel of a colour page: black print stays black while
  a red seal or a blue signature over it turns light; the page image in the PDF keeps its colours.
- Tesseract's hOCR and text of each page are copied to ``DIGITIZE_HOCR_DIR`` so the parent can
  read the word confidences without a second OCR pass, and each page's text by its page number
  (OCRmyPDF's sidecar runs the pages it skipped together, so its pages cannot be told apart).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from ocrmypdf import hookimpl
from ocrmypdf.builtin_plugins.tesseract_ocr import TesseractOcrEngine
from PIL import Image

from pipeline.cleanup import dropout

HOCR_DIR_ENV = "DIGITIZE_HOCR_DIR"
COLOUR_DROPOUT_ENV = "DIGITIZE_COLOUR_DROPOUT"


class ConfidenceKeepingTesseract(TesseractOcrEngine):
    @staticmethod
    def generate_hocr(input_file, output_hocr, output_text, options) -> None:  # noqa: ANN001
        TesseractOcrEngine.generate_hocr(input_file, output_hocr, output_text, options)
        target = os.environ.get(HOCR_DIR_ENV)
        if target:
            # named "<page:06d>_ocr_hocr.hocr" and ".txt" by OCRmyPDF's page context
            for produced in (output_hocr, output_text):
                shutil.copyfile(produced, Path(target) / Path(produced).name)


@hookimpl
def get_ocr_engine(options):  # noqa: ANN001, ANN201
    return ConfidenceKeepingTesseract()


@hookimpl
def filter_ocr_image(page, image: Image.Image) -> Image.Image:  # noqa: ANN001
    if os.environ.get(COLOUR_DROPOUT_ENV) == "1" and image.mode in ("RGB", "RGBA"):
        gray = Image.fromarray(dropout(np.asarray(image.convert("RGB"))))
        gray.info.update(image.info)  # OCRmyPDF reads the page's dpi from it
        return gray
    return image
