"""Is this signed PDF what the agency archived? pyHanko's validation, told in plain words.

A signature with validation data embedded (B-LT, B-LTA) is checked at the time its timestamp
proves, against the revocation data gathered then, as PAdES intends: years later the OCSP
responses have long expired, but they were fresh when the timestamp was taken.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pikepdf
from asn1crypto import x509
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import (
    DocumentSecurityStore,
    EmbeddedPdfSignature,
    PdfSignatureStatus,
    SignatureCoverageLevel,
    validate_pdf_signature,
    validate_pdf_timestamp,
)
from pyhanko.sign.validation.errors import NoDSSFoundError, SignatureValidationError
from pyhanko_certvalidator import ValidationContext

from pipeline.errors import UnusableInputError
from pipeline.signing.sign import load_trust_roots, signature_timestamp


@dataclass
class Verdict:
    path: Path
    signed: bool
    intact: bool  # the signed bytes are unchanged and later updates only add validation data
    whole_document: bool  # nothing a reader sees lies outside the signed revision
    signer: str | None
    signed_at: dt.datetime | None
    timestamp: dt.datetime | None
    trusted: bool | None  # chain to one of the trust roots (None: none given)
    revocation_checked: bool
    pdfa: bool  # XMP pdfaid part 2 + OutputIntent present
    level: str | None
    problems: list[str] = field(default_factory=list)  # Vietnamese, each naming the file
    warnings: list[str] = field(default_factory=list)  # Vietnamese

    @property
    def valid(self) -> bool:
        return (self.signed and self.intact and self.whole_document and self.trusted is not False
                and self.pdfa and not self.problems)

    def lines(self) -> list[str]:
        """The verdict as ``digitize verify`` prints it, in Vietnamese."""
        def yes(flag: bool | None) -> str:
            return "có" if flag else "chưa kiểm tra" if flag is None else "không"

        if not self.signed:
            return [f"{self.path}: KHÔNG HỢP LỆ", *(f"  - {p}" for p in self.problems)]
        when = f"; thời điểm ký: {self.signed_at:%Y-%m-%d %H:%M:%S %Z}" if self.signed_at else ""
        stamp = f"{self.timestamp:%Y-%m-%d %H:%M:%S %Z}" if self.timestamp else "không có"
        return [
            f"{self.path}: {'HỢP LỆ' if self.valid else 'KHÔNG HỢP LỆ'} (PAdES {self.level or '?'})",
            f"  Người ký: {self.signer}{when}",
            f"  Dấu thời gian: {stamp}",
            f"  Nguyên vẹn từ khi ký: {yes(self.intact)}; chữ ký bao trọn tệp: "
            f"{yes(self.whole_document)}",
            f"  Chuỗi chứng thư tin cậy: {yes(self.trusted)}; đã kiểm tra thu hồi: "
            f"{yes(self.revocation_checked)}; định danh PDF/A: {yes(self.pdfa)}",
            *(f"  - Lỗi: {p}" for p in self.problems), *(f"  - Lưu ý: {w}" for w in self.warnings),
        ]

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path)
        for key in ("signed_at", "timestamp"):
            out[key] = out[key].isoformat() if out[key] else None
        out["valid"] = self.valid
        return out


def verify_pdf(path: Path, trust: Sequence[Path] = ()) -> Verdict:
    """The verdict on one PDF; a file that is not a readable PDF raises UnusableInputError."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnusableInputError(f"Không đọc được tệp {path} ({exc.strerror}).") from None
    pdfa = _is_pdfa(path, data)
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        signatures = reader.embedded_regular_signatures
        stamps = reader.embedded_timestamp_signatures
    except (PdfError, ValueError, KeyError) as exc:
        raise UnusableInputError(f"Tệp {path} không phải PDF đọc được ({exc}).") from None
    # every signature must hold; signer and times are the last one's
    verdict = Verdict(path=path, signed=bool(signatures), intact=bool(signatures),
                      whole_document=bool(signatures),
                      signer=None, signed_at=None, timestamp=None, trusted=None,
                      revocation_checked=bool(signatures), pdfa=pdfa, level=None)
    if not pdfa:
        verdict.problems.append(f"{path}: không còn nhận dạng PDF/A-2b (pdfaid hoặc OutputIntent).")
    if not signatures:
        verdict.problems.append(f"{path}: chưa được ký số.")
        return verdict
    roots = load_trust_roots(trust)
    dss = _read_dss(reader)
    for embedded in signatures:
        _check_signature(verdict, embedded, roots, dss)
    for stamp in stamps:
        status = validate_pdf_timestamp(stamp, ValidationContext(trust_roots=roots))
        if not (status.intact and status.valid):
            verdict.problems.append(f"{path}: dấu thời gian lưu trữ {stamp.field_name} bị hỏng.")
    verdict.level = _level(verdict.timestamp is not None, dss, stamps, signatures[-1])
    if verdict.trusted is not None and not verdict.revocation_checked:
        verdict.warnings.append(f"{path}: tệp không kèm dữ liệu thu hồi chứng thư (OCSP/CRL): chưa "
                                "kiểm tra được chứng thư có bị thu hồi lúc ký hay không.")
    if verdict.trusted is None:
        verdict.warnings.append(f"{path}: chưa kiểm tra chuỗi chứng thư vì không có chứng thư gốc "
                                "tin cậy (--trust CA.pem).")
    return verdict


def _check_signature(verdict: Verdict, embedded: EmbeddedPdfSignature, roots: list[x509.Certificate],
                     dss: DocumentSecurityStore | None) -> None:
    path = verdict.path
    try:
        status, revocation_checked = _validate(embedded, roots, dss)
    except (SignatureValidationError, ValueError) as exc:
        # the signature container itself is damaged (a byte changed inside /Contents)
        verdict.intact = verdict.whole_document = verdict.revocation_checked = False
        verdict.problems.append(f"{path}: chữ ký số {embedded.field_name} bị hỏng ({exc}). Không "
                                "dùng tệp này; lấy lại bản lưu trữ.")
        if roots:
            verdict.trusted = False
        return
    modification = status.modification_level
    untouched = modification is not None and modification <= ModificationLevel.LTA_UPDATES
    verdict.intact &= status.intact and status.valid and untouched
    verdict.whole_document &= status.coverage == SignatureCoverageLevel.ENTIRE_FILE or (
        status.coverage == SignatureCoverageLevel.ENTIRE_REVISION and untouched)
    cert = status.signing_cert
    verdict.signer = str(cert.subject.native.get("common_name") or cert.subject.human_friendly)
    verdict.signed_at = _utc(status.signer_reported_dt)
    verdict.timestamp = _utc(status.timestamp_validity.timestamp) if status.timestamp_validity else None
    verdict.revocation_checked &= revocation_checked
    if not (status.intact and status.valid):
        verdict.problems.append(f"{path}: nội dung đã bị thay đổi sau khi ký ({embedded.field_name} "
                                "không khớp). Không dùng tệp này; lấy lại bản lưu trữ.")
    elif not untouched:
        verdict.problems.append(f"{path}: có phần được thêm vào sau khi ký làm thay đổi nội dung "
                                f"({embedded.field_name}). Không dùng tệp này; lấy lại bản lưu trữ.")
    if roots:
        verdict.trusted = bool(status.trusted) and verdict.trusted is not False
        # a broken signature is reported as such above, not also as an untrusted one
        if status.intact and status.valid and not status.trusted:
            verdict.problems.append(
                f"{path}: chứng thư của '{verdict.signer}' không dẫn tới chứng thư gốc tin cậy "
                f"({status.trust_problem_indic.name if status.trust_problem_indic else 'không rõ'}).")


def _validate(embedded: EmbeddedPdfSignature, roots: list[x509.Certificate],
              dss: DocumentSecurityStore | None) -> tuple[PdfSignatureStatus, bool]:
    """The signature's status, and whether revocation was checked from embedded data."""
    plain = {"trust_roots": roots, "allow_fetching": False}
    if roots and dss is not None and (dss.ocsps or dss.crls):
        # the timestamp itself is validated with the signature below
        moment = signature_timestamp(embedded.signer_info)
        context = dss.as_validation_context({
            **plain, "revocation_mode": "hard-fail", "moment": moment, "retroactive_revinfo": True})
        status = validate_pdf_signature(embedded, context, ts_validation_context=context)
        if status.trusted:
            return status, True
    return validate_pdf_signature(embedded, ValidationContext(**plain)), False


def _read_dss(reader: PdfFileReader) -> DocumentSecurityStore | None:
    try:
        return DocumentSecurityStore.read_dss(reader)
    except NoDSSFoundError:
        return None


def _level(timestamped: bool, dss: DocumentSecurityStore | None, stamps: list[EmbeddedPdfSignature],
           last: EmbeddedPdfSignature) -> str:
    if not timestamped:
        return "B-B"
    if dss is None or not (dss.ocsps or dss.crls):
        return "B-T"
    later = [s for s in stamps if s.signed_revision > last.signed_revision]
    return "B-LTA" if later else "B-LT"


def _is_pdfa(path: Path, data: bytes) -> bool:
    try:
        with pikepdf.open(io.BytesIO(data)) as pdf:
            meta = pdf.open_metadata()
            ident = (meta.get("pdfaid:part"), meta.get("pdfaid:conformance"))
            return ident == ("2", "B") and bool(pdf.Root.get("/OutputIntents"))
    except pikepdf.PdfError as exc:
        raise UnusableInputError(f"Tệp {path} không phải PDF đọc được ({exc}).") from None


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    return moment.astimezone(dt.UTC) if moment else None
