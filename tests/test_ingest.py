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
from PIL import Image

from pipeline.errors import BatchError
from pipeline.ingest import plan_batch, read_manifest


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


def test_missing_manifest_and_columns_are_batch_errors(tmp_path: Path) -> None:
    with pytest.raises(BatchError, match="no manifest.csv"):
        read_manifest(tmp_path)
    _manifest(tmp_path, "record_id,files\nR-1,a.tif\n")
    with pytest.raises(BatchError, match="procedure_code"):
        read_manifest(tmp_path)


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
