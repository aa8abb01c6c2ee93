"""Manifest parsing, fixity and record planning on small real files."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import unicodedata
from pathlib import Path

import pytest
from conftest import digitize as run_digitize
from PIL import Image

from pipeline.errors import BatchError
from pipeline.intake.ingest import STACK_REQUIRED_COLUMNS, plan_batch, read_manifest


def _page(path: Path, pages: int = 1) -> None:
    images = [Image.new("L", (200, 280), 255) for _ in range(pages)]
    images[0].save(path, save_all=pages > 1, append_images=images[1:], dpi=(200, 200))


def _manifest(batch: Path, text: str, bom: bool = True) -> None:
    batch.mkdir(parents=True, exist_ok=True)
    (batch / "manifest.csv").write_bytes(("\ufeff" if bom else "").encode() + text.encode())


def test_vietnamese_headers_bom_and_nfc(tmp_path: Path) -> None:
    decomposed = unicodedata.normalize("NFD", "Nguyễn Thị Hồng")
    _manifest(tmp_path, "Mã hồ sơ,Mã TTHC,Số ký hiệu,Ngày ban hành,Tên chủ hồ sơ,Còn hiệu lực,Tệp\n"
                        f"HS-1,1.004227,12/GCN-UBND,05/03/2019,{decomposed},có,a.tif\n"
                        "HS-2,2.000889,3/QĐ,2018-07-01,Lê Văn Bình,không,b.tif\n")
    rows = read_manifest(tmp_path)
    assert [r.record_id for r in rows] == ["HS-1", "HS-2"]
    assert rows[0].holder_name == "Nguyễn Thị Hồng"
    assert unicodedata.is_normalized("NFC", rows[0].holder_name)
    assert rows[0].issued_on == dt.date(2019, 3, 5) and rows[1].issued_on == dt.date(2018, 7, 1)
    assert (rows[0].still_valid, rows[1].still_valid) == (True, False)
    assert rows[0].line == 2 and rows[1].line == 3


def test_english_headers_semicolon_separated(tmp_path: Path) -> None:
    _manifest(tmp_path, "record_id;procedure_code;issued_on;files\nR-1;1.004227;01/02/2010;x.png\n",
              bom=False)
    (row,) = read_manifest(tmp_path)
    assert (row.record_id, row.files_raw, row.issued_on) == ("R-1", "x.png", dt.date(2010, 2, 1))


def test_unknown_date_format_is_kept_raw(tmp_path: Path) -> None:
    _manifest(tmp_path, "record_id,procedure_code,issued_on,files\nR-1,1.004227,5.3.2019,a.tif\n")
    (row,) = read_manifest(tmp_path)
    assert row.issued_on is None and row.issued_on_raw == "5.3.2019"


def test_missing_manifest_and_record_id_column_are_batch_errors(tmp_path: Path) -> None:
    with pytest.raises(BatchError, match="no manifest.csv"):
        read_manifest(tmp_path)
    # Without record ids no row can be named or quarantined: the batch as a whole is refused,
    # with the file, what was found and the template's headers.
    for text, first_cell in (("procedure_code,issued_on,files\n1.004227,05/03/2019,a.tif\n",
                              "procedure_code"),
                             ("Cột A;Cột B\nx;y\n", "Cột A"), ("ghi chú\nR-1\n", "ghi chú")):
        _manifest(tmp_path, text)
        with pytest.raises(BatchError, match="no record_id") as caught:
            read_manifest(tmp_path)
        message = str(caught.value)
        assert str(tmp_path / "manifest.csv") in message and first_cell in message
        assert "record_id/Mã hồ sơ" in message  # the fix: the template's headers
    for text, message in (("", "empty"), ("\n \n", "empty"),
                          ("\nrecord_id,files\nR-1,a.tif\n", "first line of manifest.csv is empty")):
        _manifest(tmp_path, text, bom=False)
        with pytest.raises(BatchError, match=message):
            read_manifest(tmp_path)


def test_missing_required_columns_leave_the_fields_empty(tmp_path: Path) -> None:
    """Once a BatchError ("lacks the column(s) ['procedure_code', ...]"): now every row is read
    so that validation quarantines each one with its usual message and the batch exits 3."""
    _manifest(tmp_path, "record_id,files\nR-1,a.tif\nR-2,b.tif\n")
    rows = read_manifest(tmp_path)
    assert [(r.record_id, r.files_raw, r.procedure_code, r.issued_on_raw, r.issued_on)
            for r in rows] == [("R-1", "a.tif", "", "", None), ("R-2", "b.tif", "", "", None)]


def test_one_column_manifest(tmp_path: Path) -> None:
    """A header without any delimiter is one column (csv.Sniffer used to give up on it)."""
    _manifest(tmp_path, "record_id\nHS-1\n\nHS-2\n")
    rows = read_manifest(tmp_path, STACK_REQUIRED_COLUMNS)
    assert [(r.record_id, r.line) for r in rows] == [("HS-1", 2), ("HS-2", 4)]
    _manifest(tmp_path, 'Mã hồ sơ\r\n"HS-3, bản sao"\r\n', bom=False)  # as Excel quotes a comma
    assert [r.record_id for r in read_manifest(tmp_path, STACK_REQUIRED_COLUMNS)] == ["HS-3, bản sao"]
    # the manifest layout reads it too: each row then lacks its code, date and files
    (row,) = read_manifest(tmp_path)
    assert (row.record_id, row.procedure_code, row.files_raw) == ("HS-3, bản sao", "", "")


def test_one_column_manifest_beside_a_scanned_stack(tmp_path: Path) -> None:
    """The stack's optional manifest lists record ids only; it is read, and checked against
    the cover sheets."""
    from conftest import qr_page

    from pipeline.demo import layout, render
    from pipeline.intake import sheetcode
    agency = "000.00.12.H12"
    batch = tmp_path / "inbox" / agency / "XAP-1"
    _manifest(batch, "Mã hồ sơ\r\nHS-01\r\nHS-02\r\n")
    facts = sheetcode.SheetFacts(agency, "HS-01", "1.004227", "01/QĐ-UBND", dt.date(2019, 3, 5))
    Image.fromarray(qr_page(sheetcode.encode(facts), 200)).save(batch / "xap_1.png", dpi=(200, 200))
    (lines,) = layout.record_page_lines(seed=3, agency_code=agency)
    render.render_page(lines, dpi=200).save(batch / "xap_2.png", dpi=(200, 200))
    plan = plan_batch(batch, layout="separator_sheets", fallback_dpi=200)
    by_id = {r.record_id: r for r in plan.records}
    assert by_id["HS-01"].problems == [] and by_id["HS-01"].row.procedure_code == "1.004227"
    assert [p.rule for p in by_id["HS-02"].problems] == ["manifest_row_without_sheet"]


def test_rows_without_the_required_columns_are_quarantined_with_exit_3(tmp_path: Path) -> None:
    """The rows of a manifest with record ids alone go through the usual validation: each is
    quarantined with the usual message ("thiếu Mã TTHC" ...) and `digitize run` exits 3."""
    import json
    import os

    from conftest import import_reference

    data = tmp_path / "var"
    batch = data / "inbox" / "000.00.12.H12" / "B-ONECOL"
    _manifest(batch, "Mã hồ sơ\nHS-001\nHS-002\n")
    _page(batch / "a.png")
    import_reference(data)
    env = {**os.environ, "DIGITIZE_DATA_DIR": str(data)}
    env.pop("DIGITIZE_DB_URL", None)
    run = run_digitize("run", str(batch), "--json", env=env)
    assert run.returncode == 3, run.stderr[-3000:]
    results = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(r["record_id"], r["status"], r["reason"]) for r in results] == [
        ("HS-001", "quarantined", "manifest_row_invalid"),
        ("HS-002", "quarantined", "manifest_row_invalid")]
    for n, result in enumerate(results, start=2):
        assert [m for m in result["errors"] if not m.startswith("Chi tiết")] == [
            f"Dòng {n} của manifest.csv: thiếu Mã TTHC. Ghi mã thủ tục theo Cơ sở dữ liệu quốc gia "
            "(ví dụ 1.004227).",
            f"Dòng {n} của manifest.csv: thiếu Ngày ban hành. Ghi ngày theo dạng dd/mm/yyyy.",
            f"Dòng {n} của manifest.csv: cột Tệp trống. Ghi tên tệp quét của hồ sơ."]
    assert "lacks the column(s) ['procedure_code/Mã TTHC'" in run.stderr


def test_semicolon_manifest_whose_header_holds_a_comma(tmp_path: Path) -> None:
    """Excel on a Vietnamese Windows separates by ";" and leaves "Số, ký hiệu" unquoted."""
    _manifest(tmp_path, "Mã hồ sơ;Số, ký hiệu;Mã TTHC;Ngày ban hành;Tệp\n"
                        "HS-1;12/GCN-UBND;1.004227;05/03/2019;a.tif\n")
    (row,) = read_manifest(tmp_path)
    assert (row.record_id, row.result_number, row.files_raw) == ("HS-1", "12/GCN-UBND", "a.tif")


def test_page_count_in_other_digits_is_not_a_count(tmp_path: Path) -> None:
    _manifest(tmp_path, "record_id,procedure_code,issued_on,files,page_count\n"
                        "R-1,1.004227,05/03/2019,a.tif,²\nR-2,1.004227,05/03/2019,a.tif,3\n")
    assert [(r.page_count_raw, r.page_count) for r in read_manifest(tmp_path)] == [("²", None),
                                                                                  ("3", 3)]


def test_plan_resolves_page_ranges_and_flags_problems(tmp_path: Path) -> None:
    batch = tmp_path / "inbox" / "000.00.12.H12" / "B7"
    _manifest(batch, "record_id,procedure_code,issued_on,files\n"
                     "R-1,1.004227,05/03/2019,stack.tif[1-2]\n"
                     "R-2,1.004227,05/03/2019,stack.tif[3];single.jpg\n"
                     "R-3,1.004227,05/03/2019,stack.tif[3-9]\n"
                     "R-4,1.004227,05/03/2019,nothere.tif\n"
                     "R-1,1.004227,05/03/2019,single.jpg\n")
    _page(batch / "stack.tif", pages=3)
    Image.new("RGB", (200, 280), "white").save(batch / "single.jpg", dpi=(300, 300))
    plan = plan_batch(batch)
    assert (plan.agency_code, plan.batch_id) == ("000.00.12.H12", "B7")
    expected_sha = hashlib.sha256((batch / "stack.tif").read_bytes()).hexdigest()
    assert plan.files["stack.tif"].sha256 == expected_sha
    assert plan.files["stack.tif"].page_count == 3
    r1, r2, r3, r4, r5 = plan.records
    assert [(p.file, p.page_in_file) for p in r1.pages] == [("stack.tif", 1), ("stack.tif", 2)]
    assert [(p.file, p.page_in_file) for p in r2.pages] == [("stack.tif", 3), ("single.jpg", 1)]
    assert not r1.problems and not r2.problems
    assert [p.rule for p in r3.problems] == ["page_range"]
    assert "Dòng 4" in r3.problems[0].message and "[3-9]" in r3.problems[0].message
    assert [p.rule for p in r4.problems] == ["file_exists"]
    assert "nothere.tif" in r4.problems[0].message and "Dòng 5" in r4.problems[0].message
    assert r5.problems == []  # the id used twice is validation's (tests/test_validate.py)


def test_unreadable_file_is_a_record_problem(tmp_path: Path) -> None:
    _manifest(tmp_path, "record_id,procedure_code,issued_on,files\nR-1,1.004227,05/03/2019,bad.tif\n")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00 this is not a tiff")
    plan = plan_batch(tmp_path, "000.00.12.H12", "B1")
    assert not plan.files["bad.tif"].readable
    assert [p.rule for p in plan.records[0].problems] == ["file_readable"]


ROWS = [["Mã hồ sơ", "Mã TTHC", "Ngày ban hành", "Tên chủ hồ sơ", "Tệp"],
        ["HS-1", "1.004227", "05/03/2019", 'Nguyễn Thị "Hồng"', "a.tif;b.tif[1-2]"],
        ["HS-2", "2.000889", "2018-07-01", "Trần Đức Thắng", "c.tif"]]


def _csv_text(delimiter: str) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(ROWS)
    return buffer.getvalue()


TONE_MARKS = "\u0300\u0301\u0303\u0309\u0323"  # huyền, sắc, ngã, hỏi, nặng


def _cp1258(text: str) -> bytes:
    """Windows-1258 as Excel writes it: base letter (with its hat/horn/breve) + combining tone."""
    out = b""
    for char in text:
        try:
            out += char.encode("cp1258")
        except UnicodeEncodeError:
            parts = unicodedata.normalize("NFD", char)
            tone = next(c for c in parts if c in TONE_MARKS)
            out += unicodedata.normalize("NFC", parts.replace(tone, "")).encode("cp1258") \
                + tone.encode("cp1258")
    return out


@pytest.mark.parametrize("encoding", ["utf-16-bom", "utf-8-bom", "utf-8", "cp1258"])
@pytest.mark.parametrize("delimiter", [",", ";"])
def test_manifest_encodings_and_delimiters(tmp_path: Path, encoding: str, delimiter: str) -> None:
    text = _csv_text(delimiter)
    data = {"utf-16-bom": lambda: codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
            "utf-8-bom": lambda: codecs.BOM_UTF8 + text.encode(), "utf-8": text.encode,
            "cp1258": lambda: _cp1258(text)}[encoding]()
    (tmp_path / "manifest.csv").write_bytes(data)
    rows = read_manifest(tmp_path)
    assert [(r.record_id, r.holder_name, r.files_raw) for r in rows] == [
        ("HS-1", 'Nguyễn Thị "Hồng"', "a.tif;b.tif[1-2]"), ("HS-2", "Trần Đức Thắng", "c.tif")]
    assert all(unicodedata.is_normalized("NFC", r.holder_name) for r in rows)


def test_undecodable_manifest_is_a_batch_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_bytes(b"record_id,files\n\x81\x8a\x9d\n")
    with pytest.raises(BatchError, match="Windows-1258"):
        read_manifest(tmp_path)


def test_file_names_are_matched_in_nfc(tmp_path: Path) -> None:
    on_disk = unicodedata.normalize("NFD", "bản quét số 1.tif")
    _manifest(tmp_path, "record_id,procedure_code,issued_on,files\n"
                        "R-1,1.004227,05/03/2019,bản quét số 1.tif\n")
    _page(tmp_path / on_disk)
    plan = plan_batch(tmp_path, "000.00.12.H12", "B1")
    assert plan.records[0].problems == []
    assert [p.file for p in plan.records[0].pages] == [on_disk]
