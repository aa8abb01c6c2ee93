"""A drafted page's reading is the archive's (issue 19, :mod:`pipeline.imaging.readings`): what
the draft keeps for a first page is what the archive's own Tesseract call gives for the view it
writes of that page, so the archive takes it instead of reading the page again; and it is never
taken for any other view, language or mode. Real Tesseract, poppler.
The archive taking it in a real run: tests/test_manifest_watch.py."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image
from test_manifest_draft import _write_page

from pipeline._exec import poppler, tesseract
from pipeline.config import load_settings
from pipeline.drafting import reading
from pipeline.imaging import cleanup, hocr, ocr, readings
from pipeline.intake import pages

PSM = tesseract.PAGE_SEGMENTATION_MODE


def _words(path: Path) -> list[tuple[str, hocr.Box, int | None]]:
    return [(w.text, w.box, w.confidence) for w in hocr.read_page(path).words]


def test_the_archive_takes_the_drafts_reading_of_its_view_and_of_no_other(tmp_path: Path) -> None:
    page = tmp_path / "hs-01.png"
    truth = _write_page(page, 11, "serif", 200, "tcxh", 0.5, False)
    profile = load_settings(data_dir=tmp_path / "var").scanner_profile
    languages = profile.languages
    store = tmp_path / "readings"
    layout = reading.read_layout(page, 1, profile, store)
    assert truth["result_number"] in " ".join(w.text for w in layout.page.words)
    (kept,) = store.iterdir()
    assert sorted(p.name for p in kept.iterdir()) == ["page.hocr", "page.pdf", "page.txt"]

    # the view the archive writes of the page (pipeline.record._clean_page), and what the
    # archive's own Tesseract call (pipeline.imaging.ocr._read) reads on it
    image, dpi = pages.load_page(page, 1, profile.fallback_dpi)
    ocr.write_view(cleanup.clean_page(image, dpi, profile.cleanup).image, dpi,
                   profile.ocr.colour_dropout, tmp_path, 1)
    view = tmp_path / ocr.VIEW_DIR / "000001.tif"
    own, taken = tmp_path / "own", tmp_path / "taken"
    own.mkdir()
    taken.mkdir()
    tesseract.read_page(view, languages, own / "000001_ocr_tess")
    assert readings.take(view, languages, PSM, store, taken / "000001_ocr_tess.pdf",
                         taken / "000001.txt")
    assert (taken / "000001.txt").read_text(encoding="utf-8") == \
        (own / "000001_ocr_tess.txt").read_text(encoding="utf-8")
    assert _words(taken / "000001_ocr_tess.hocr") == _words(own / "000001_ocr_tess.hocr")
    assert poppler.page_text(taken / "000001_ocr_tess.pdf", 1) == \
        poppler.page_text(own / "000001_ocr_tess.pdf", 1)
    # taken, not copied: a second archive of the page reads it itself
    assert list(store.iterdir()) == []
    assert not readings.take(view, languages, PSM, store, taken / "again.pdf", taken / "again.txt")

    # kept again; one pixel changed, another language or another mode is another reading
    readings.read(view, languages, store)
    with Image.open(view) as written:
        pixels, view_dpi = np.array(written), written.info["dpi"]
    pixels[0, 0] = 255 - pixels[0, 0]
    changed = tmp_path / "changed.tif"
    Image.fromarray(pixels).save(changed, dpi=view_dpi)
    for other, langs, psm in ((changed, languages, PSM), (view, [*languages, "eng"], PSM),
                              (view, languages, 6)):
        assert not readings.take(other, langs, psm, store, taken / "x.pdf", taken / "x.txt")
    assert len(list(store.iterdir())) == 1
    assert not (taken / "x.pdf").exists()


def test_readings_no_archive_took_are_dropped_after_30_days_leftovers_after_a_day(
        tmp_path: Path) -> None:
    store = tmp_path / "readings"
    for name in ("a" * 64, "b" * 64, ".reading-x", ".taken-y-1"):
        (store / name).mkdir(parents=True)
        (store / name / "page.txt").write_text("Số: 712/GPXD", encoding="utf-8")
    now = time.time()
    assert readings.sweep(store, now) == 0 and len(list(store.iterdir())) == 4
    assert readings.sweep(store, now + 2 * 86400) == 2  # the leftovers of a crash
    assert sorted(p.name for p in store.iterdir()) == ["a" * 64, "b" * 64]
    assert readings.sweep(store, now + 29 * 86400) == 0
    assert readings.sweep(store, now + 31 * 86400) == 2 and list(store.iterdir()) == []
    assert readings.sweep(tmp_path / "none") == 0  # no draft was ever made here


def test_a_crash_leftover_in_the_way_leaves_the_reading_for_the_next_take(tmp_path: Path) -> None:
    view, store = tmp_path / "view.tif", tmp_path / "readings"
    view.write_bytes(b"the bytes of a view")
    key = readings.view_key(view, ["vie"], PSM)
    leftover = store / f".taken-{key}-{os.getpid()}"  # a crashed take by a process of our pid
    for entry in (store / key, leftover):
        entry.mkdir(parents=True)
        for suffix in readings.SUFFIXES:
            (entry / f"page{suffix}").write_text(entry.name, encoding="utf-8")
    out_pdf, out_txt = tmp_path / "000001_ocr_tess.pdf", tmp_path / "000001.txt"
    assert not readings.take(view, ["vie"], PSM, store, out_pdf, out_txt)
    assert (store / key).is_dir() and not out_txt.exists()
    shutil.rmtree(leftover)
    assert readings.take(view, ["vie"], PSM, store, out_pdf, out_txt)
    assert out_txt.read_text(encoding="utf-8") == key and out_pdf.with_suffix(".hocr").is_file()
