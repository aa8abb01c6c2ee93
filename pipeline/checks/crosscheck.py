"""Cross-check of the manifest row against the page itself: the result number and the issue
date written in the manifest are looked for in the OCR text of the record's first page.

A mismatch does not stop the record: it is a warning the archivist sees, because it usually
means the wrong paper was scanned under that row. Matching tolerates what OCR does to a page:
lost or wrong tone marks (đ read as d), spaces around ``/`` and ``-``, O for 0 and l, I or ] for
1, and dates written out as ``ngày 05 tháng 3 năm 2019``.
"""

from __future__ import annotations

import datetime as dt
import re

from rapidfuzz import fuzz

from pipeline.models import ManifestRow
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


def check_first_page(row: ManifestRow, first_page_text: str) -> list[str]:
    """Warnings (Vietnamese) for what the manifest says but the first page does not show."""
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
    return warnings
