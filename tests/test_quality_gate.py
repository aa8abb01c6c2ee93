"""Page quality flags, blank pages kept but not OCR'd, and the OCR confidence gate."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pikepdf
import pytest
import yaml
from conftest import import_reference
from PIL import Image

from pipeline.batch import run_batch
from pipeline.config import PROJECT_DIR, Settings, load_settings
from pipeline.demo import layout, render
from pipeline.imaging import cleanup
from pipeline.models import RecordStatus
from pipeline.store import archive

AGENCY = "000.00.12.H12"


@pytest.fixture(scope="module")
def text_page() -> tuple[np.ndarray, str]:
    (lines,) = layout.record_page_lines(seed=6, style="serif", n_pages=1)
    page = render.render_page(lines, dpi=300, style="serif", rng=random.Random(6))
    return np.asarray(page.convert("RGB")), layout.page_text(lines)


def test_flags_of_good_blank_faded_blurred_dark_and_coarse_pages(
        text_page: tuple[np.ndarray, str]) -> None:
    page, _ = text_page
    assert cleanup.assess(page, 300) == []
    assert cleanup.assess(np.full_like(page, 255), 300) == ["blank"]
    faded = (255 - (255 - page.astype(np.float32)) * 0.35).astype(np.uint8)
    assert cleanup.assess(faded, 300) == ["too_light"]
    assert cleanup.assess(cv2.GaussianBlur(page, (0, 0), 2.5), 300) == ["blurred"]
    assert cleanup.assess((page * 0.5).astype(np.uint8), 300) == ["too_dark"]
    coarse = cv2.resize(page, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    assert cleanup.assess(coarse, 150) == ["low_dpi"]


def _batch(root: Path, page: np.ndarray) -> Path:
    batch = root / "scans" / AGENCY / "B-GATE"
    batch.mkdir(parents=True)
    Image.fromarray(page).save(batch / "p1.png", dpi=(300, 300))
    Image.new("RGB", (page.shape[1], page.shape[0]), "white").save(batch / "p2.png", dpi=(300, 300))
    (batch / "manifest.csv").write_text(
        "record_id,procedure_code,result_number,issued_on,files\n"
        "HS-0001,1.004227,12/GPXD,05/03/2019,p1.png;p2.png\n", encoding="utf-8")
    return batch


@pytest.mark.slow
def test_blank_page_is_flagged_kept_and_not_ocred(reference_settings: Settings, tmp_path: Path,
                                                  text_page: tuple[np.ndarray, str]) -> None:
    page, _ = text_page
    summary = run_batch(reference_settings, _batch(tmp_path, page))
    (record,) = summary.records
    assert record.status is RecordStatus.archived
    first, blank = record.pages
    assert first.flags == [] and first.confidence and first.confidence > 80
    assert blank.flags == ["blank"] and blank.confidence is None
    with pikepdf.open(record.pdf_path) as pdf:
        assert len(pdf.pages) == 2
    text = [subprocess.run(["pdftotext", "-f", str(n), "-l", str(n), record.pdf_path, "-"],
                           capture_output=True, text=True, check=True).stdout.strip()
            for n in (1, 2)]
    assert len(text[0]) > 500 and text[1] == ""


@pytest.mark.slow
def test_poorly_read_record_is_held_for_the_archivist(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      text_page: tuple[np.ndarray, str]) -> None:
    """The threshold is the scanner profile's: one set above what any page reaches."""
    profile = yaml.safe_load((PROJECT_DIR / "scanner_profiles" / "default.yaml").read_text())
    profile.update(name="strict")
    profile["ocr"]["min_mean_confidence"] = 99.5
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "strict.yaml").write_text(yaml.safe_dump(profile), encoding="utf-8")
    monkeypatch.setenv("DIGITIZE_PROFILES_DIR", str(tmp_path / "profiles"))
    monkeypatch.setenv("DIGITIZE_PROFILE", "strict")
    monkeypatch.setenv("DIGITIZE_DATA_DIR", str(tmp_path / "var"))
    settings = load_settings()
    import_reference(settings.data_dir)
    page, _ = text_page
    summary = run_batch(settings, _batch(tmp_path, page))
    (record,) = summary.records
    assert record.status is RecordStatus.quarantined and record.reason == "ocr_low_confidence"
    (message,) = record.errors
    assert message.startswith("Hồ sơ HS-0001 (dòng 2 của manifest.csv): chữ đọc được kém, chưa lưu "
                              "trữ — trang 1")
    assert "< 100" in message and "trang 2" not in message
    held = settings.dir("quarantine") / AGENCY / "B-GATE"
    name = archive.record_name(AGENCY, "HS-0001")
    assert (held / f"{name}.pdf").is_file()
    assert json.loads((held / f"{name}.json").read_text())["reason"] == "ocr_low_confidence"
    assert not list(settings.dir("archive").rglob("*.pdf"))


def test_words_with_vietnamese_marks_are_recognised() -> None:
    from pipeline.imaging.ocr import has_diacritics

    assert all(map(has_diacritics, ["Hà", "đất", "Nỗ", "ưu", "Đông"]))
    assert not any(map(has_diacritics, ["Loa", "VT", "12/GPXD", ""]))
