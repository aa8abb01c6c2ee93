"""One reader for the tables clerks and exports hand in: the batch manifest, the reference files
(catalogue, agencies, inventory) and the list of records to print cover sheets for.

A table is a CSV or an Excel ``.xlsx`` (its first sheet). A CSV is UTF-8 (BOM tolerated) or
UTF-16 with its BOM (Excel's "Unicode text"), and for a caller that asks for it Windows-1258
(Excel's plain "CSV" on a Vietnamese Windows); its cells are separated by ``,``, by ``;`` (Excel
where the comma is the decimal mark, as on a Vietnamese Windows) or by tabs. Every row comes
with the line the archivist finds it at, its text in NFC without surrounding spaces. A file that
cannot be read at all is a :class:`TableError` naming it and saying what to do; which column is
which is the caller's business.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.text import nfc, tokens

CSV_SUFFIXES = {".csv", ".txt"}
XLSX_SUFFIXES = {".xlsx", ".xlsm"}
DELIMITERS = (",", ";", "\t")
HEADER_SEARCH_ROWS = 20  # exports put a title and blank rows above the header

# (line in the file or row of the sheet, counting from 1; its cells). A CSV's cells are strings;
# a sheet's keep what Excel stored (numbers, dates), with "" for an empty cell.
Row = tuple[int, list[Any]]
# The field a header cell names, None for a column the caller does not know.
FieldOf = Callable[[str], str | None]


class TableError(Exception):
    """A table file cannot be read at all; the message (Vietnamese) names it and says what to do.

    Each caller raises it again as its own error (a batch error, a reference file error)."""


def header_key(text: str) -> str:
    """A header as columns are matched: its folded words, so that ``Mã thủ tục``, ``MÃ THỦ TỤC
    (*)`` and ``Ma thu tuc`` (a keyboard without Vietnamese input) name one column."""
    return " ".join(tokens(text))


@dataclass(frozen=True)
class Header:
    """The row that names the columns: its index among the rows searched, the field per column."""

    index: int
    fields: list[str | None]

    @property
    def score(self) -> int:
        return len({f for f in self.fields if f})


def find_header(rows: Sequence[Sequence[Any]], field_of: FieldOf) -> Header | None:
    """The first of the rows naming the most known columns; None when no row names any."""
    best: Header | None = None
    for index, row in enumerate(rows):
        header = Header(index, [field_of(str(cell)) for cell in row])
        if header.score and (best is None or header.score > best.score):
            best = header
    return best


def detect_delimiter(text: str, field_of: FieldOf, header_rows: int = HEADER_SEARCH_ROWS) -> str:
    """The separator under which the first ``header_rows`` lines name the most known columns,
    then the one found most often in them; ``,`` when there is none (one column).

    Not csv.Sniffer: it guesses from character counts, so a title row or the comma of a
    Vietnamese header (``Mã hồ sơ;Số, ký hiệu;...``) fools it, and it refuses a header without
    any delimiter, which is one column (a stack's manifest may list record ids only).
    """
    head = "\n".join(text.splitlines()[:header_rows])

    def fit(delimiter: str) -> tuple[int, int]:
        found = find_header(list(csv.reader(io.StringIO(head), delimiter=delimiter)), field_of)
        return (found.score if found else 0), head.count(delimiter)

    return max((d for d in DELIMITERS if d in head), key=fit, default=",")


def _decode(path: Path, data: bytes, windows_1258: bool) -> str:
    """The text of a CSV file: UTF-16 by its BOM, else UTF-8, else (if asked) Windows-1258.

    Windows-1258 decodes nearly any bytes, so it is tried last, and only for a file that Excel
    on a Vietnamese Windows writes that way; it writes tone marks as combining characters, which
    the NFC normalisation of every cell puts back together.
    """
    if data.startswith(b"PK\x03\x04"):
        raise TableError(
            f"Tệp {path} là tệp Excel (.xlsx) dù mang đuôi {path.suffix or '(không có đuôi)'}. Mở "
            "bằng Excel, lưu lại thành 'CSV UTF-8 (Comma delimited)' rồi chạy lại.")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encodings: tuple[str, ...] = ("utf-16",)
    else:
        encodings = ("utf-8-sig", "cp1258") if windows_1258 else ("utf-8-sig",)
    first: UnicodeDecodeError | None = None
    for encoding in encodings:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as exc:
            first = first or exc
    accepted = "UTF-8, UTF-16 hay Windows-1258" if windows_1258 else "UTF-8 hay UTF-16"
    raise TableError(
        f"Tệp {path} không phải {accepted} (byte lạ ở vị trí {first.start if first else 0}). "
        "Trong Excel chọn Lưu thành 'CSV UTF-8 (Comma delimited)' rồi chạy lại.")


def _csv_rows(text: str, delimiter: str) -> list[Row]:
    """Rows with the line each starts on; a quoted cell may span lines (Excel's Alt+Enter)."""
    # The rest is Excel's CSV dialect (a quote inside a quoted cell is doubled), not guessed.
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows, last = [], 0
    for values in reader:
        rows.append((last + 1, [nfc(v) for v in values]))
        last = reader.line_num
    return rows


def _read_csv(path: Path, field_of: FieldOf, header_rows: int, windows_1258: bool) -> list[Row]:
    try:
        text = _decode(path, path.read_bytes(), windows_1258)
    except FileNotFoundError as exc:
        raise TableError(f"Không tìm thấy tệp {path}. Kiểm tra lại đường dẫn.") from exc
    except OSError as exc:
        raise TableError(f"Không đọc được tệp {path}: {exc.strerror}. Kiểm tra quyền đọc tệp "
                         "rồi chạy lại.") from exc
    try:
        return _csv_rows(text, detect_delimiter(text, field_of, header_rows))
    except csv.Error as exc:  # e.g. a cell over 128 KB: a broken quote swallowed the file
        raise TableError(
            f"Tệp {path} không đọc được như CSV ({exc}). Mở bằng Excel, lưu lại thành "
            "'CSV UTF-8 (Comma delimited)' rồi chạy lại.") from exc


def _sheet_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        return nfc(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)  # Excel stores every number as a float: 2015.0 is the year 2015
    return value


def _read_xlsx(path: Path) -> list[Row]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except FileNotFoundError as exc:
        raise TableError(f"Không tìm thấy tệp {path}. Kiểm tra lại đường dẫn.") from exc
    except Exception as exc:  # noqa: BLE001 - openpyxl fails in many ways on a damaged file
        raise TableError(
            f"Tệp {path} không mở được như tệp Excel .xlsx ({exc}). Mở bằng Excel, lưu lại "
            "thành .xlsx hoặc 'CSV UTF-8' rồi chạy lại.") from exc
    try:
        sheet = book.worksheets[0]
        sheet.reset_dimensions()  # some exporters write a wrong sheet size; read every row
        return [(line, [_sheet_cell(v) for v in values])
                for line, values in enumerate(sheet.iter_rows(values_only=True), start=1)]
    finally:
        book.close()


def read_table(path: Path, field_of: FieldOf, header_rows: int = HEADER_SEARCH_ROWS,
               windows_1258: bool = False) -> list[Row]:
    """Every row of the CSV or XLSX file ``path`` (by its suffix), blank rows included.

    ``field_of`` tells a known header, by which a CSV's delimiter is chosen among the first
    ``header_rows`` lines (where its header may be). ``windows_1258`` accepts a CSV in that
    encoding when it is not UTF-8. :class:`TableError` when the file cannot be read at all.
    """
    suffix = path.suffix.lower()
    if suffix in XLSX_SUFFIXES:
        return _read_xlsx(path)
    if suffix in CSV_SUFFIXES:
        return _read_csv(path, field_of, header_rows, windows_1258)
    if suffix == ".xls":
        raise TableError(
            f"Tệp {path} là Excel 97-2003 (.xls), chưa đọc được. Mở bằng Excel, lưu thành .xlsx "
            "hoặc 'CSV UTF-8' rồi chạy lại.")
    raise TableError(
        f"Tệp {path}: không nhận dạng được định dạng '{path.suffix or '(không có đuôi)'}'. "
        "Dùng tệp CSV (UTF-8, phân cách bằng ',', ';' hoặc tab) hoặc Excel .xlsx.")
