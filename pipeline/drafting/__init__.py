"""Manifest drafting (issue 19): each record's manifest row proposed from its own first page.

The first page is read as the OCR stage reads it (cleanup, OCR view, Tesseract hOCR:
:mod:`pipeline.drafting.reading`), its fields are found in the layout Tesseract gives
(:mod:`pipeline.drafting.fields`) and a batch's rows are written as a draft manifest with a
confidence and the words read beside each field (:mod:`pipeline.drafting.draft`);
``digitize manifest draft`` is :mod:`pipeline.drafting.commands`.
"""
