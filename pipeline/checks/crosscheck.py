"""Cross-check of the manifest row against the page itself: the result number and the issue
date written in the manifest are looked for in the OCR text of the record's first page, and a
field the watcher's draft read surely off that page but a person then changed is named.

A mismatch does not stop the record: it is a warning the archivist sees, because it usually
means the wrong paper was scanned under that row. Matching tolerates what OCR does to a page:
lost or wrong tone marks (đ read as d), spaces around ``/`` and ``-``, O for 0 and l, I or ] for
1, and dates written out as ``ngày 05 tháng 3 năm 2019``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

from rapidfuzz import fuzz

from pipeline.models import ManifestRow, PageRead
from pipeline.privacy import mask_personal_id
from pipeline.text import fold

NUMBER_MIN_SIMILARITY = 85
# what OCR reads for digits in a date (the text is lower-cased and its tone marks dropped first,
# so Ì is i): a typewriter's 1, with its flag and foot, also comes out as ] or [ or !
DIGIT_LOOKALIKES = str.maketrans({"o": "0", "l": "1", "i": "1", "|": "1", "]": "1", "[": "1",
                                   "!": "1"})
_D = r"[0-9oli|\]\[!]"
_WRITTEN_DATE = re.compile(rf"ngay\s*({_D}{{1,2}})\s*thang\s*({_D}{{1,2}})\s*nam\s*({_D}{{4}})")
_NUMERIC_DATE = re.compile(r"(?<!\d)(\d{1,2})\s*[/.-]\s*(\d{1,2})\s*[/.-]\s*(\d{4})(?!\d)")


def _compact(text: str) -> str:
    return re.sub(r"\s+", "", fold(text))


def has_result_number(number: str, text: str) -> bool:
    """The number (``123/QĐ-UBND``) is on the page: its leading digits exactly, the rest nearly."""
    wanted, page = _compact(number), _compact(text)
    digits = re.match(r"\d+", wanted)
    if not wanted:
        return True
    if not digits:
        return fuzz.partial_ratio(wanted, page) >= NUMBER_MIN_SIMILARITY
    for hit in re.finditer(rf"(?<!\d){digits[0]}(?!\d)", page):
        window = page[hit.start():hit.start() + len(wanted)]
        if fuzz.ratio(wanted, window) >= NUMBER_MIN_SIMILARITY:
            return True
    return False


def dates_on_page(text: str) -> set[dt.date]:
    page = fold(text)
    found = set()
    for day, month, year in [*_WRITTEN_DATE.findall(page), *_NUMERIC_DATE.findall(page)]:
        try:
            found.add(dt.date(*(int(v.translate(DIGIT_LOOKALIKES)) for v in (year, month, day))))
        except ValueError:
            continue
    return found


# a drafted field as the archivist knows it
FIELD_NAMES = {"procedure_code": "mã TTHC", "result_number": "số, ký hiệu",
               "issued_on": "ngày ban hành", "holder_name": "tên chủ hồ sơ",
               "holder_id": "số định danh"}


def _typed(row: ManifestRow, name: str) -> str:
    if name == "issued_on":
        # the draft writes dd/mm/yyyy; an ISO date typed over it is the same date
        return f"{row.issued_on:%d/%m/%Y}" if row.issued_on else row.issued_on_raw
    return str(getattr(row, name))


def _same(typed: str, read: str) -> bool:
    return typed.split() == read.split()


def read_fields(row: ManifestRow, read: Mapping[str, PageRead]) -> list[str]:
    """The fields of ``row`` whose value is the one the draft read off the page: no person
    changed it. The others were typed (or corrected) by a person."""
    return [name for name, got in read.items()
            if got.value and _same(_typed(row, name), got.value)]


def check_read(row: ManifestRow, read: Mapping[str, PageRead]) -> list[str]:
    """Warnings (Vietnamese) for the fields the draft read surely but the manifest says
    otherwise: the typed value is the one archived, and either the person or the reading is
    wrong. A field the draft asked to check and the clerk corrected is the review working,
    not a warning."""
    where = f"Hồ sơ {row.record_id} ({row.where_inline})"
    warnings = []
    for name, got in read.items():
        typed = _typed(row, name)
        if not got.sure or not got.value or _same(typed, got.value):
            continue
        shown = mask_personal_id if name == "holder_id" else str
        warnings.append(
            f"{where}: {FIELD_NAMES.get(name, name)} trong manifest là '{shown(typed)}', khác "
            f"với chữ đọc được trên trang đầu '{shown(got.value)}'. Giá trị của manifest đã được "
            "lưu trữ; đối chiếu với bản giấy, nếu manifest ghi nhầm thì sửa dòng manifest.")
    return warnings


def check_first_page(row: ManifestRow, first_page_text: str,
                     read: Mapping[str, PageRead] | None = None) -> list[str]:
    """Warnings (Vietnamese) for what the manifest says but the first page does not show, and
    (with ``read``, the draft's readings of the page) for what a person changed from them."""
    where = f"Hồ sơ {row.record_id} ({row.where_inline})"
    warnings = []
    if row.result_number and not has_result_number(row.result_number, first_page_text):
        warnings.append(
            f"{where}: không thấy số, ký hiệu '{row.result_number}' trên trang đầu. Đối chiếu "
            "bản quét với dòng manifest: có thể đã quét nhầm giấy tờ hoặc ghi nhầm số.")
    if row.issued_on and row.issued_on not in dates_on_page(first_page_text):
        warnings.append(
            f"{where}: không thấy ngày ban hành {row.issued_on:%d/%m/%Y} trên trang đầu. Đối "
            "chiếu bản quét với dòng manifest: có thể đã quét nhầm giấy tờ hoặc ghi nhầm ngày.")
    return warnings + check_read(row, read or {})
