"""A batch against the reference data, end to end: catalogue rules quarantine with reasons and a
Data Docs link, the first page is cross-checked against the manifest, and a paper scanned again
is held as a probable duplicate. Real Tesseract, OCRmyPDF and great-expectations."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from urllib.parse import unquote

import pytest
from conftest import edit_manifest
from sqlalchemy import select

from pipeline.batch import run_batch
from pipeline.checks import crosscheck, duplicates
from pipeline.config import Settings
from pipeline.demo import defects, layout, render, samples
from pipeline.errors import BatchError
from pipeline.models import ManifestRow, RecordStatus
from pipeline.registration import register_batch
from pipeline.reporting import dashboard
from pipeline.store import archive, warehouse

AGENCY = "000.00.12.H12"


def test_a_batch_before_the_reference_data_is_refused(settings: Settings, tmp_path: Path) -> None:
    batch = samples.generate_batch(tmp_path / AGENCY / "B-NOREF", agency_code=AGENCY,
                                   batch_id="B-NOREF", n_records=1, seed=2)
    with pytest.raises(BatchError, match="chưa có trong danh mục cơ quan.*digitize agencies import"):
        register_batch(settings, batch.batch_dir)


@pytest.mark.parametrize("read", [
    "Đông Anh, ngày l5 tháng l] năm 2017",  # Tesseract on a typewriter page of the stack test
    "Đông Anh, ngày 15 tháng lÌ năm 2017",
    "ngày [5 tháng !1 năm 2O17",
    "Hà Nội, 15/11/2017",
])
def test_a_date_read_with_letters_for_digits_is_still_the_date(read: str) -> None:
    assert dt.date(2017, 11, 15) in crosscheck.dates_on_page(read)


@pytest.mark.parametrize("read", ["ngày 15 tháng 12 năm 2017", "ngày l5 tháng l] năm 2016",
                                  "ngày ]] tháng 11 năm 2017"])
def test_a_date_read_with_other_digits_is_another_date(read: str) -> None:
    assert dt.date(2017, 11, 15) not in crosscheck.dates_on_page(read)


def test_the_first_page_is_cross_checked_against_the_row(tmp_path: Path) -> None:
    (record,) = samples.generate_batch(tmp_path / AGENCY / "B-X", agency_code=AGENCY,
                                       batch_id="B-X", n_records=1, seed=4).records
    text = record.pages[0].text
    number, issued = record.result_number, record.issued_on
    # what OCR does to a page: tone marks lost, spaces around the slash, O for a zero
    noisy = text.replace("ngày", "ngay").replace(number, number.replace("/", " / ")).replace(
        f"năm {issued.year}", f"năm {issued.year}".replace("0", "O"))
    row = ManifestRow(line=2, record_id="HS-1", result_number=number, issued_on=issued)
    assert crosscheck.check_first_page(row, noisy) == []
    wrong = row.model_copy(update={"result_number": "9999/GPXD",
                                   "issued_on": issued + dt.timedelta(days=1)})
    first, second = crosscheck.check_first_page(wrong, noisy)
    assert first == ("Hồ sơ HS-1 (dòng 2 của manifest.csv): không thấy số, ký hiệu '9999/GPXD' "
                     "trên trang đầu. Đối chiếu bản quét với dòng manifest: có thể đã quét nhầm "
                     "giấy tờ hoặc ghi nhầm số.")
    assert second == ("Hồ sơ HS-1 (dòng 2 của manifest.csv): không thấy ngày ban hành "
                      f"{issued + dt.timedelta(days=1):%d/%m/%Y} trên trang đầu. Đối chiếu bản "
                      "quét với dòng manifest: có thể đã quét nhầm giấy tờ hoặc ghi nhầm ngày.")


@pytest.mark.slow
def test_catalogue_rules_quarantine_with_reasons_and_the_rest_is_archived(
        reference_settings: Settings, tmp_path: Path) -> None:
    settings = reference_settings
    batch = samples.generate_batch(tmp_path / AGENCY / "B-CAT", agency_code=AGENCY,
                                   batch_id="B-CAT", n_records=4, seed=12,
                                   vietnamese_headers=False)
    good, renumbered, unknown, expired = (r.record_id for r in batch.records)
    edit_manifest(batch.batch_dir, {
        1: {"result_number": "9999/XX-UBND"},
        2: {"procedure_code": "1.004272"},
        3: {"still_valid": "không"},
    })
    summary = run_batch(settings, batch.batch_dir)
    by_id = {r.record_id: r for r in summary.records}
    assert by_id[good].status is RecordStatus.archived and by_id[good].warnings == []
    assert by_id[renumbered].status is RecordStatus.archived
    (warning,) = by_id[renumbered].warnings
    assert "không thấy số, ký hiệu '9999/XX-UBND' trên trang đầu" in warning
    assert (by_id[unknown].status, by_id[unknown].reason) == (RecordStatus.quarantined,
                                                              "catalogue_mismatch")
    assert "Mã gần nhất trong danh mục: 1.004227 (Cấp giấy phép xây dựng" in by_id[unknown].errors[0]
    assert (by_id[expired].status, by_id[expired].reason) == (RecordStatus.quarantined,
                                                              "result_expired")
    # the quarantine note links the batch's Data Docs, which exist
    held = settings.dir("quarantine") / AGENCY / "B-CAT"
    note = json.loads((held / f"{archive.record_name(AGENCY, unknown)}.json").read_text(encoding="utf-8"))
    link = note["messages"][-1]
    # served by the Airflow API server behind its login, not a file:// path on this machine
    prefix = (f"Chi tiết kết quả kiểm tra dữ liệu của lô: {settings.ui_base_url.rstrip('/')}"
              f"/digitize/kiem-tra/{AGENCY}/B-CAT/")
    assert link.startswith(prefix)
    page = dashboard.validation_docs_dir(settings) / AGENCY / "B-CAT" / unquote(link.removeprefix(prefix))
    docs = page.read_text(encoding="utf-8")
    assert "Data documentation compiled by Great Expectations" in docs
    assert all(column in docs for column in ("procedure_code", "still_valid", "B-CAT"))
    with warehouse.engine_for(settings.warehouse_url).connect() as conn:
        run = conn.execute(select(warehouse.validation_runs)).mappings().one()
        warnings = conn.execute(select(warehouse.records.c.warnings).where(
            warehouse.records.c.record_id == renumbered)).scalar_one()
    assert run["success"] is False and run["unsuccessful"] == 2 and run["docs_url"] in link
    assert warnings == warning


def _scan(seed: int, dpi: int, skew: float, path: Path) -> None:
    (lines,) = layout.record_page_lines(seed=seed, procedure_code="1.004227")
    rng = random.Random(seed)
    page = render.render_page(lines, dpi=dpi, style="serif", rng=rng)
    defects.degrade(page, rotation=0, skew=skew, rng=rng, speckle=True, blur=False,
                    border=False, dpi=dpi).save(path, dpi=(dpi, dpi))


def _batch(root: Path, batch_id: str, rows: list[tuple[str, int, int, float]], extra: str = ""
           ) -> Path:
    folder = root / AGENCY / batch_id
    folder.mkdir(parents=True)
    lines = ["record_id,procedure_code,result_number,issued_on,files,not_duplicate_of"]
    for record_id, seed, dpi, skew in rows:
        _scan(seed, dpi, skew, folder / f"{record_id}.png")
        lines.append(f"{record_id},1.004227,,05/03/2019,{record_id}.png,"
                     f"{extra if record_id.endswith('R') else ''}")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.mark.slow
def test_a_paper_scanned_again_is_held_as_a_probable_duplicate(
        reference_settings: Settings, tmp_path: Path) -> None:
    settings = reference_settings
    first = run_batch(settings, _batch(tmp_path, "B-FIRST", [("HS-A", 31, 300, 1.5)]))
    assert first.records[0].status is RecordStatus.archived
    # the same paper at another dpi and skew under a new id, and another paper of that template
    second = _batch(tmp_path, "B-SECOND", [("HS-AR", 31, 200, -2.5), ("HS-B", 32, 300, 1.5)])
    summary = run_batch(settings, second)
    rescan, other = summary.records
    assert other.status is RecordStatus.archived
    assert (rescan.status, rescan.reason) == (RecordStatus.quarantined, "probable_duplicate")
    assert rescan.errors[0].startswith("Hồ sơ HS-AR (dòng 2 của manifest.csv): có thể là bản quét "
                                       "lại của hồ sơ "
                                       f"HS-A (cơ quan {AGENCY}) đã lưu trữ tại {first.records[0].pdf_path}")
    assert (settings.dir("quarantine") / AGENCY / "B-SECOND"
            / f"{archive.record_name(AGENCY, 'HS-AR')}.pdf").is_file()
    # the archivist confirms it is another paper: named in the manifest, it is archived
    edit_manifest(second, {0: {"not_duplicate_of": "HS-A"}})
    again = run_batch(settings, second)
    assert [r.status for r in again.records] == [RecordStatus.archived] * 2


def test_hashes_and_texts_tell_a_rescan_from_another_paper(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from pipeline.config import CleanupProfile
    from pipeline.imaging import cleanup

    hashes = {}
    for name, seed, dpi, skew in (("a", 31, 300, 1.5), ("a_again", 31, 200, -2.5),
                                  ("b", 32, 300, 1.5)):
        _scan(seed, dpi, skew, tmp_path / f"{name}.png")
        image = np.asarray(Image.open(tmp_path / f"{name}.png").convert("RGB"))
        cleaned = cleanup.clean_page(image, dpi, CleanupProfile()).image
        hashes[name] = duplicates.phash(cleanup.quality_view(cleaned, dpi))  # as the archive does
    near = duplicates.hash_distances(hashes["a"], [hashes["a_again"], hashes["b"]])
    assert near[0] <= duplicates.MAX_HASH_DISTANCE
    text_a, text_b = (layout.page_text(layout.record_page_lines(seed=s, procedure_code="1.004227")[0])
                      for s in (31, 32))
    same, shared = duplicates.text_similarity(text_a, text_a.replace("ư", "u"))
    assert same >= duplicates.MIN_TEXT_SIMILARITY and shared == 1.0
    similar, shared_numbers = duplicates.text_similarity(text_a, text_b)
    assert shared_numbers < duplicates.MIN_SHARED_NUMBERS
