"""Vietnamese text folding (pipeline.text) and the one table reader (pipeline.intake.tables)."""

from __future__ import annotations

import codecs
import unicodedata
from pathlib import Path

import pytest

from pipeline.intake.tables import TableError, detect_delimiter, header_key, read_table
from pipeline.text import fold, has_diacritics, nfc, strip_marks, tokens


def _nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def test_fold_ignores_case_tone_marks_and_d() -> None:
    assert fold("Giấy phép xây dựng") == fold("giay phep xay dung") == "giay phep xay dung"
    assert fold("GIẤY PHÉP XÂY DỰNG") == "giay phep xay dung"
    assert fold("Đông Anh") == "dong anh"
    assert fold("ĐỖ") == fold("đỗ") == fold("do") == "do"
    assert fold("  Hà \t Nội\n") == "ha noi"  # whitespace collapsed, none at the ends


@pytest.mark.parametrize("text", ["Giấy phép xây dựng", "Đông Anh", "Nguyễn Thị Hồng", "ĐỖ ƯỚC",
                                  "Quyết định số 12/QĐ-UBND"])
def test_nfd_input_folds_as_nfc_input(text: str) -> None:
    assert _nfd(text) != text
    assert fold(_nfd(text)) == fold(text)
    assert tokens(_nfd(text)) == tokens(text)
    assert nfc(_nfd(text)) == text


def test_tokens_are_folded_words() -> None:
    assert tokens("Mã TTHC (*)") == ["ma", "tthc"]
    assert tokens("Quyết định số 12/QĐ-UBND") == ["quyet", "dinh", "so", "12", "qd", "ubnd"]
    assert tokens("") == []
    assert header_key("MÃ THỦ TỤC") == header_key("Ma thu tuc") == header_key("Mã thủ tục:") == "ma thu tuc"


def test_nfc_keeps_the_marks_and_trims() -> None:
    assert nfc(f"  {_nfd('Đức Thắng')} ") == "Đức Thắng"


def test_strip_marks_keeps_case_and_spacing() -> None:
    assert strip_marks("Lô  Đất 01") == "Lo  Dat 01"
    # compatibility forms become plain letters only when asked (a name made ASCII)
    assert strip_marks("ﬁ Ｌô", compatibility=True) == "fi Lo"
    assert strip_marks("ﬁ Ｌô") == "ﬁ Ｌo"


def test_has_diacritics() -> None:
    assert all(map(has_diacritics, ["Hà", "đất", "Nỗ", "ưu", "Đông", _nfd("Hồng")]))
    assert not any(map(has_diacritics, ["Loa", "VT", "12/GPXD", ""]))


# --- the table reader ----------------------------------------------------------------------------
_KNOWN = {"ma ho so": "record_id", "so ky hieu": "result_number", "ten chu ho so": "holder_name"}


def _field_of(header: str) -> str | None:
    return _KNOWN.get(header_key(header))


def test_delimiter_by_known_headers_then_by_count() -> None:
    # the comma inside a Vietnamese header does not make the file comma-separated
    assert detect_delimiter("Mã hồ sơ;Số, ký hiệu;Tên chủ hồ sơ\nHS-1;1/QĐ;An\n", _field_of) == ";"
    # a title row above the header
    assert detect_delimiter("DANH SÁCH, 2024\nMã hồ sơ\tSố ký hiệu\n", _field_of) == "\t"
    assert detect_delimiter("a;b;c,d\n", _field_of) == ";"  # no known header: the commonest
    assert detect_delimiter("Mã hồ sơ\nHS-1\n", _field_of) == ","  # one column


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_csv_rows_with_their_lines_in_nfc(tmp_path: Path, encoding: str) -> None:
    text = f'Mã hồ sơ;Tên chủ hồ sơ\r\nHS-1;" {_nfd("Trần Đức")} "\r\n\r\nHS-2;"hai\r\ndòng"\r\nHS-3;x\r\n'
    path = tmp_path / "ds.csv"
    path.write_bytes(text.encode(encoding))
    assert read_table(path, _field_of) == [
        (1, ["Mã hồ sơ", "Tên chủ hồ sơ"]), (2, ["HS-1", "Trần Đức"]), (3, []),
        (4, ["HS-2", "hai\r\ndòng"]), (6, ["HS-3", "x"])]


def test_windows_1258_only_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "ds.csv"
    path.write_bytes(b"ma ho so;ten chu ho so\nHS-1;L\xea V\xe3n\n")  # \xea = ê, \xe3 = ă
    assert read_table(path, _field_of, windows_1258=True)[1] == (2, ["HS-1", "Lê Văn"])
    with pytest.raises(TableError, match=r"không phải UTF-8 hay UTF-16 .*CSV UTF-8"):
        read_table(path, _field_of)


@pytest.mark.parametrize(("name", "content", "fragment"), [
    ("ds.csv", b"PK\x03\x04 a zip", "là tệp Excel (.xlsx) dù mang đuôi .csv"),
    ("ds.csv", codecs.BOM_UTF8 + b'"' + b"x" * 200_000, "không đọc được như CSV"),
    ("ds.ods", b"x", "không nhận dạng được định dạng '.ods'"),
    ("ds.xls", b"x", "Excel 97-2003 (.xls)"),
    ("ds.xlsx", b"not a zip", "không mở được như tệp Excel .xlsx"),
])
def test_unreadable_tables_name_the_file_and_the_fix(tmp_path: Path, name: str, content: bytes,
                                                     fragment: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(TableError) as caught:
        read_table(path, _field_of)
    assert str(path) in str(caught.value) and fragment in str(caught.value)
    with pytest.raises(TableError, match="Không tìm thấy tệp"):
        read_table(tmp_path / "missing.csv", _field_of)


def test_xlsx_first_sheet_keeps_excel_values(tmp_path: Path) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Mã hồ sơ", "Năm", "Mã TTHC"])
    sheet.append([_nfd(" Hồ sơ 1 "), 2015.0, 2.00089])
    sheet.append([None, "x", None])
    book.create_sheet("khác").append(["không đọc"])
    book.save(tmp_path / "ds.xlsx")
    assert read_table(tmp_path / "ds.xlsx", _field_of) == [
        (1, ["Mã hồ sơ", "Năm", "Mã TTHC"]), (2, ["Hồ sơ 1", 2015, 2.00089]), (3, ["", "x"])]
