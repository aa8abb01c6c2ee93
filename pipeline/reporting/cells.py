"""Text cells that a spreadsheet must show, never run.

Agency names and other imported text end up in CSV and XLSX reports; a value such as
``=HYPERLINK("http://…","Bấm vào đây")`` would become a live formula in Excel or LibreOffice
(CSV injection). A CSV cell has no type, so a leading ``'`` makes Excel read it as text, as
OWASP advises; an XLSX cell is stored as a string with Excel's quote prefix, which keeps the
text verbatim and shows it as typed.
"""

from __future__ import annotations

from typing import Any

# What Excel and LibreOffice read as the start of a formula (tab and CR: after their trimming)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: str) -> str:
    """``value`` as a CSV cell that opens as text in a spreadsheet."""
    return "'" + value if value.startswith(FORMULA_START) else value


def xlsx_text(cell: Any) -> None:
    """Keep an openpyxl cell holding text as text: openpyxl stores ``=…`` as a formula."""
    if isinstance(cell.value, str) and cell.value.startswith(FORMULA_START):
        cell.data_type = "s"
        cell.quotePrefix = True
