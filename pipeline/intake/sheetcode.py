"""The QR payload of a cover sheet: what `digitize cover-sheets` prints and the separator-sheet
split (pipeline.intake.separator) reads back.

``SH1|<agency>|<record id>|<procedure code>|<result number>|<YYYYMMDD>|<CRC-32>``: ``SH`` marks
our sheets among other QR codes on a page (a result may carry its own verification QR), the digit
after it is the format version, and the CRC-32 (8 hex digits, over everything before it) catches a
misread the QR's own error correction let through or a hand-made code. ``%`` and ``|`` inside a
field are percent-encoded. A result number may hold Vietnamese letters (``QĐ-UBND``), so the QR
is written in byte mode as UTF-8.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass

PREFIX = "SH"
VERSION = 1
_SEP = "|"


class SheetCodeError(ValueError):
    """A QR code that is one of our cover sheets but cannot be trusted (damaged or unknown);
    ``vi`` says it for the archivist."""

    def __init__(self, message: str, vi: str) -> None:
        super().__init__(message)
        self.vi = vi


@dataclass(frozen=True)
class SheetFacts:
    """What a cover sheet says about the record scanned after it."""

    agency_code: str
    record_id: str
    procedure_code: str
    result_number: str
    issued_on: dt.date


def _quote(field: str) -> str:
    return field.replace("%", "%25").replace(_SEP, "%7C")


def _unquote(field: str) -> str:
    return field.replace("%7C", _SEP).replace("%7c", _SEP).replace("%25", "%")


def _crc(body: str) -> str:
    return f"{zlib.crc32(body.encode('utf-8')):08X}"


def encode(facts: SheetFacts) -> str:
    fields = [f"{PREFIX}{VERSION}", facts.agency_code, facts.record_id, facts.procedure_code,
              facts.result_number, f"{facts.issued_on:%Y%m%d}"]
    body = _SEP.join(_quote(f) for f in fields)
    return f"{body}{_SEP}{_crc(body)}"


def is_sheet_code(text: str) -> bool:
    """Whether a decoded QR text claims to be one of our cover sheets (of any version)."""
    head = text.split(_SEP, 1)[0]
    return head.startswith(PREFIX) and head[len(PREFIX):].isdigit()


def decode(text: str) -> SheetFacts:
    """The facts of a sheet's QR text; :class:`SheetCodeError` says what is wrong with it."""
    if not is_sheet_code(text):
        raise SheetCodeError("not a cover-sheet code", "không phải mã QR của tờ bìa")
    body, _, crc = text.rpartition(_SEP)
    if _crc(body) != crc.upper():
        raise SheetCodeError("checksum mismatch (damaged or hand-made code)",
                             "mã QR sai số kiểm tra (hỏng hoặc không do phần mềm in)")
    fields = [_unquote(f) for f in body.split(_SEP)]
    version = int(fields[0][len(PREFIX):])
    if version != VERSION:
        raise SheetCodeError(f"format version {version} is not known to this pipeline "
                             f"(it reads version {VERSION}); update the pipeline",
                             f"mẫu tờ bìa phiên bản {version} chưa được phần mềm hỗ trợ; cập nhật "
                             "phần mềm hoặc in lại tờ bìa")
    if len(fields) != 6 or not all(fields[1:5]):
        raise SheetCodeError("wrong number of fields or an empty field",
                             "mã QR thiếu hoặc thừa trường dữ liệu")
    try:
        issued = dt.datetime.strptime(fields[5], "%Y%m%d").date()
    except ValueError as exc:
        raise SheetCodeError(f"issue date {fields[5]!r} is not YYYYMMDD",
                             f"ngày ban hành '{fields[5]}' trong mã QR không hợp lệ") from exc
    return SheetFacts(fields[1], fields[2], fields[3], fields[4], issued)
