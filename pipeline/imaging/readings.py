"""Tesseract's readings of OCR views, kept for the archive to take instead of reading again.

A drafted manifest reads each record's first page (:mod:`pipeline.drafting.reading`) as the
archive's OCR will: the same view (:func:`pipeline.imaging.ocr.ocr_view` of the same cleaned
page), languages and segmentation mode. Tesseract's answer is asked for as the archive asks for
it (a text-only PDF page, the text and the hOCR, from one run: ``tesseract.read_page``) and kept in a store
(``DATA/work/readings``, ``Settings.readings_dir``) under a key made of the view's file (its
pixels and resolution), languages and mode.
When that page is archived, the archive's OCR (:func:`pipeline.imaging.ocr.ocr_record`) takes the
reading out of the store instead of running Tesseract on the page a second time (issue 19: about
2 CPU s a record, the most of what a draft costs). Any difference in what would be read (a
page cleaned otherwise, another language) is another key: a reading is never used for a view it
was not made from. Readings no archive takes are dropped after a while (:func:`sweep`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline._exec import tesseract

log = logging.getLogger(__name__)

SUFFIXES = (".pdf", ".txt", ".hocr")
# A reading no archive took within this long is dropped: its batch was most likely removed from
# the inbox, and the reading holds the page's text. Should the batch come after all, the archive
# reads the page itself.
KEEP_SECONDS = 30 * 86400
# what a crash left half written or half taken (".reading-*", ".taken-*")
LEFTOVER_SECONDS = 86400
PREFIX = "page"  # a reading's files: <key>/page.pdf, page.txt, page.hocr


def view_key(view: Path, languages: Sequence[str], psm: int) -> str:
    """What identifies a reading: the view's file (written by :func:`pipeline.imaging.ocr.save_view`,
    so one view is always the same bytes) and how Tesseract was asked to read it. The bytes,
    not the decoded pixels: 3 ms a page instead of 17. A view written otherwise (another Pillow)
    misses, and the archive reads the page itself."""
    digest = hashlib.sha256(json.dumps([list(languages), psm]).encode())
    with view.open("rb") as fh:
        digest.update(hashlib.file_digest(fh, "sha256").digest())
    return digest.hexdigest()


def read(view: Path, languages: Sequence[str], store: Path) -> Path:
    """The prefix of Tesseract's reading of ``view`` (``prefix.pdf``, ``.txt``, ``.hocr``): the
    one kept in ``store``, or read now and kept there."""
    kept = store / view_key(view, languages, tesseract.PAGE_SEGMENTATION_MODE)
    if not kept.is_dir():
        store.mkdir(parents=True, exist_ok=True)
        # written whole beside the store's entries, synced, then renamed: an entry is never
        # half there. The rename itself is not synced: lost in a power cut, it only costs a
        # second reading, and the synced files are a leftover for sweep()
        fresh = Path(tempfile.mkdtemp(prefix=".reading-", dir=store))
        tesseract.read_page(view, languages, fresh / PREFIX)
        for suffix in SUFFIXES:
            with (fresh / PREFIX).with_suffix(suffix).open("rb") as fh:
                os.fsync(fh.fileno())
        try:
            fresh.rename(kept)
        except OSError:
            shutil.rmtree(fresh)  # the same page read meanwhile by another draft: its stays
            if not kept.is_dir():
                raise
    return kept / PREFIX


def take(view: Path, languages: Sequence[str], psm: int, store: Path, output_pdf: Path,
         output_text: Path) -> bool:
    """Move the reading kept for ``view`` out of ``store`` to the archive's reading of the page
    (``output_pdf``, its hOCR beside it, ``output_text``); False when there is none.

    Taken, not copied: the archive holds the reading from then on, and the store does not grow
    with every batch drafted. Two processes archiving the same view at once: one takes it, the
    other reads the page itself.
    """
    if not (store.is_dir() and any(store.iterdir())):
        return False  # no draft waits: no page pays for its key (hashing the view file)
    kept = store / view_key(view, languages, psm)
    taken = store / f".taken-{kept.name}-{os.getpid()}"
    try:
        kept.rename(taken)
    except OSError:  # none kept, taken meanwhile, or a crash's leftover of that name in the way
        return False
    reading = taken / PREFIX
    try:
        shutil.copyfile(reading.with_suffix(".pdf"), output_pdf)
        shutil.copyfile(reading.with_suffix(".hocr"), Path(output_pdf).with_suffix(".hocr"))
        shutil.copyfile(reading.with_suffix(".txt"), output_text)
    except OSError:
        return False  # Tesseract reads the page, and its files replace any copied here
    finally:
        shutil.rmtree(taken, ignore_errors=True)
    return True


def sweep(store: Path, now: float | None = None) -> int:
    """Drop the readings of ``store`` no archive took within :data:`KEEP_SECONDS` and what a
    crash left; how many. Ages count from each entry's last rename (its ctime): a reading from
    when it was kept, a half-taken one from when it was taken."""
    now = time.time() if now is None else now
    dropped = 0
    for entry in store.iterdir() if store.is_dir() else ():
        try:
            age = now - entry.stat().st_ctime
        except FileNotFoundError:
            continue  # taken meanwhile
        if age > (LEFTOVER_SECONDS if entry.name.startswith(".") else KEEP_SECONDS):
            shutil.rmtree(entry, ignore_errors=True)
            dropped += 1
    if dropped:
        log.info("%s: %d readings no archive took were dropped", store, dropped)
    return dropped
