"""Splitting a scanned stack at its cover sheets (pipeline.intake.separator): the split rules on page
lists, and the page classifier on real rendered pages."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import qr_page

from pipeline.demo import layout, render
from pipeline.errors import ConfigError
from pipeline.intake import sheetcode
from pipeline.intake.separator import Kind, StackPage, classify, files_field, split
from pipeline.models import ManifestRow

AGENCY = "000.00.12.H12"


def _facts(record_id: str, agency: str = AGENCY) -> sheetcode.SheetFacts:
    return sheetcode.SheetFacts(agency, record_id, "1.004227", f"{record_id[-2:]}/QĐ-UBND",
                                dt.date(2019, 3, 5))


def _sheet(n: int, record_id: str, agency: str = AGENCY) -> StackPage:
    return StackPage("xap.pdf", n, Kind.sheet, sheetcode.encode(_facts(record_id, agency)))


def _page(n: int, kind: Kind = Kind.page) -> StackPage:
    return StackPage("xap.pdf", n, kind)


def test_sheet_code_round_trip_and_damage() -> None:
    facts = _facts("HS|2019%01")  # separators inside a field survive
    text = sheetcode.encode(facts)
    assert sheetcode.decode(text) == facts and sheetcode.is_sheet_code(text)
    with pytest.raises(sheetcode.SheetCodeError, match="checksum"):
        sheetcode.decode(text.replace("1.004227", "1.004228"))
    body = text.rpartition("|")[0].replace("SH1", "SH2", 1)
    with pytest.raises(sheetcode.SheetCodeError, match="version 2"):
        sheetcode.decode(f"{body}|{sheetcode._crc(body)}")
    assert not sheetcode.is_sheet_code("https://dichvucong.gov.vn/tra-cuu?ma=123")


def test_a_stack_splits_at_its_sheets_and_drops_blank_backsides() -> None:
    stack = [_sheet(1, "HS-01"), _page(2, Kind.blank), _page(3), _page(4), _page(5, Kind.blank),
             _sheet(6, "HS-02"), _page(7), _sheet(8, "HS-03"), _page(9), _page(10, Kind.blank),
             _page(11)]
    records = split(stack, AGENCY)
    assert [r.record_id for r in records] == ["HS-01", "HS-02", "HS-03"]
    assert [[p.page_in_file for p in r.pages] for r in records] == [[3, 4], [7], [9, 11]]
    assert [r.row.files_raw for r in records] == ["xap.pdf[3-4]", "xap.pdf[7]",
                                                  "xap.pdf[9];xap.pdf[11]"]
    first = records[0]
    assert not any(r.problems for r in records) and not any(r.unsplit for r in records)
    assert (first.row.procedure_code, first.row.result_number, first.row.issued_on,
            first.row.still_valid) == ("1.004227", "01/QĐ-UBND", dt.date(2019, 3, 5), True)
    assert first.row.where == "Tờ bìa hồ sơ HS-01 (trang 1 của tệp xap.pdf)"
    assert first.sheet_page is not None and first.sheet_page.page_in_file == 1


def test_nothing_is_merged_or_dropped_silently() -> None:
    stack = [_page(1), _page(2, Kind.blank), _page(3),  # before the first sheet
             _sheet(4, "HS-01"), _page(5),
             StackPage("xap.pdf", 6, Kind.bad_sheet, error="ChecksumError"), _page(7), _page(8),
             _sheet(9, "HS-02"), _page(10, Kind.blank),  # two sheets in a row (a blank between)
             _sheet(11, "HS-03", agency="000.00.99.H12"), _page(12)]
    records = split(stack, AGENCY)
    by_rule = {p.rule: r for r in records for p in r.problems}
    before = by_rule["pages_before_first_sheet"]
    assert before.unsplit and [p.page_in_file for p in before.pages] == [1, 3]
    assert before.problems[0].message.startswith(
        "Xấp quét có 2 trang, từ trang 1 của tệp xap.pdf đến trang 3 của tệp xap.pdf nằm trước "
        "tờ bìa đầu tiên")
    unreadable = by_rule["sheet_unreadable"]
    assert unreadable.unsplit and [p.page_in_file for p in unreadable.pages] == [7, 8]
    assert "Không đọc được mã QR của tờ bìa ở trang 6 của tệp xap.pdf (ChecksumError); 2 trang" \
        in unreadable.problems[0].message
    assert unreadable.record_id == "chua-ro-xap-6"
    empty = by_rule["sheet_without_pages"]
    assert empty.record_id == "HS-02" and not empty.pages and empty.unsplit
    assert "hai tờ bìa liền nhau" in empty.problems[0].message
    other = by_rule["sheet_other_agency"]
    assert other.record_id == "HS-03" and "cơ quan 000.00.99.H12" in other.problems[0].message
    # every non-blank page is in exactly one record
    placed = sorted(p.page_in_file for r in records for p in r.pages)
    assert placed == [1, 3, 5, 7, 8, 12]


def test_a_manifest_is_checked_against_the_sheets() -> None:
    stack = [_sheet(1, "HS-01"), _page(2), _sheet(3, "HS-02"), _page(4)]
    manifest = [
        ManifestRow(line=2, record_id="HS-01", holder_name="Nguyễn Văn A", holder_id="079203001234",
                    procedure_code="1.004227", issued_on_raw="05/03/2019",
                    issued_on=dt.date(2019, 3, 5), still_valid_raw="có", still_valid=True),
        ManifestRow(line=3, record_id="HS-02", result_number="99/QĐ-UBND"),
        ManifestRow(line=4, record_id="HS-09"),
    ]
    records = split(stack, AGENCY, manifest)
    first, second, missing = records
    assert (first.row.holder_name, first.row.holder_id, first.problems) == (
        "Nguyễn Văn A", "079203001234", [])
    assert first.row.where == "Tờ bìa hồ sơ HS-01 (trang 1 của tệp xap.pdf), dòng 2 của manifest.csv"
    assert [p.rule for p in second.problems] == ["sheet_manifest_mismatch"]
    assert second.problems[0].message.startswith(
        "Tờ bìa hồ sơ HS-02 (trang 3 của tệp xap.pdf): cột Số ký hiệu ở dòng 3 của manifest.csv "
        "ghi '99/QĐ-UBND', tờ bìa ghi '02/QĐ-UBND'.")
    assert missing.unsplit and missing.problems[0].rule == "manifest_row_without_sheet"
    assert missing.problems[0].message.startswith(
        "Dòng 4 của manifest.csv: hồ sơ HS-09 không có tờ bìa trong xấp quét.")


def test_files_field_reads_back_as_the_same_pages() -> None:
    from pipeline.intake.ingest import parse_files_field

    refs = [_page(n).ref for n in (3, 4, 5, 7)] + [StackPage("b.tif", 1, Kind.page).ref]
    text = files_field(refs)
    assert text == "xap.pdf[3-5];xap.pdf[7];b.tif[1]"
    items, problems = parse_files_field(ManifestRow(line=2, files_raw=text))
    assert not problems and items == [("xap.pdf", 3, 5), ("xap.pdf", 7, 7), ("b.tif", 1, 1)]


@pytest.mark.parametrize("dpi", [200, 300])
def test_classify_reads_sheets_blanks_and_pages(dpi: int) -> None:
    text = sheetcode.encode(_facts("HS-2019-000123"))
    sheet = qr_page(text, dpi)
    assert classify(sheet, dpi) == (Kind.sheet, text, "")
    assert classify(qr_page(text, dpi, stained=True), dpi) == (
        Kind.bad_sheet, "", "mã QR bị hỏng hoặc bị che, không giải mã được")
    # a result's own QR code (e.g. a verification link) makes a page, not a sheet
    foreign = qr_page("https://dichvucong.gov.vn/tra-cuu?ma=123", dpi)
    assert classify(foreign, dpi) == (Kind.page, "", "")
    assert classify(np.full_like(sheet, 250), dpi)[0] == Kind.blank
    (lines,) = layout.record_page_lines(seed=3, agency_code=AGENCY)
    page = np.asarray(render.render_page(lines, dpi=dpi))
    assert classify(page, dpi) == (Kind.page, "", "")


def test_the_stack_profile_is_the_default_one_with_another_layout(tmp_path: Path) -> None:
    from pipeline.config import PROJECT_DIR, load_profile

    folder = PROJECT_DIR / "scanner_profiles"
    stack, default = load_profile(folder / "stack.yaml"), load_profile(folder / "default.yaml")
    assert (stack.batch_layout, default.batch_layout) == ("separator_sheets", "manifest")
    assert stack.model_dump(exclude={"name", "description", "batch_layout"}) == \
        default.model_dump(exclude={"name", "description", "batch_layout"})
    (tmp_path / "a.yaml").write_text("base: b\nname: a\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("base: a\nname: b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="leads back to itself"):
        load_profile(tmp_path / "a.yaml")


def test_a_stack_is_ready_without_a_manifest_and_is_one_run(tmp_path: Path) -> None:
    from pipeline.intake import inbox
    batch = tmp_path / "inbox" / AGENCY / "XAP-1"
    batch.mkdir(parents=True)
    (batch / "notes.txt").write_text("not a scan", encoding="utf-8")
    later = time.time() + 3600
    assert inbox.ready_batches(tmp_path / "inbox", 60, later, layout="separator_sheets") == []
    (batch / "xap.pdf").write_bytes(b"%PDF-1.7")
    assert inbox.ready_batches(tmp_path / "inbox", 60, later) == []  # a manifest batch waits
    assert inbox.ready_batches(tmp_path / "inbox", 60, later, layout="separator_sheets") == [batch]
    assert inbox.ready_batches(tmp_path / "inbox", 60, time.time(), layout="separator_sheets") == []
    (run,) = inbox.batch_runs(batch, layout="separator_sheets")
    assert run.run_id == inbox.run_name(AGENCY, "XAP-1") and run.conf["parts"] == 1


def test_an_unreadable_file_in_a_stack_is_held_under_its_name(tmp_path: Path) -> None:
    from PIL import Image

    from pipeline.intake.ingest import plan_batch

    batch = tmp_path / "inbox" / AGENCY / "XAP-1"
    batch.mkdir(parents=True)
    code = sheetcode.encode(_facts("HS-01"))
    Image.fromarray(qr_page(code, 200)).save(batch / "xap_1.png", dpi=(200, 200))
    (lines,) = layout.record_page_lines(seed=3, agency_code=AGENCY)
    render.render_page(lines, dpi=200).save(batch / "xap_2.png", dpi=(200, 200))
    (batch / "xap_3.tif").write_bytes(b"")  # the scanner died while writing it
    plan = plan_batch(batch, layout="separator_sheets", fallback_dpi=200)
    good, bad = plan.records
    assert (good.record_id, good.row.files_raw, good.problems) == ("HS-01", "xap_2.png[1]", [])
    assert bad.unsplit and bad.record_id == "tep-loi-xap-3-tif"
    assert [p.rule for p in bad.problems] == ["file_readable"]
    assert bad.problems[0].message.startswith("Xấp quét, tệp xap_3.tif: tệp 'xap_3.tif' không đọc được")
    assert plan.manifest_sha256 == ""
