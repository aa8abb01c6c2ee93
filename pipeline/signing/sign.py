"""A PAdES signature on an archived PDF/A-2b, as incremental updates (pyHanko).

The original revision is kept byte for byte, so PDF/A-2b still holds and the unsigned file's
SHA-256 still names its first bytes; the signature, the validation data (B-LT) and the document
timestamps (B-LTA) each follow as an update of their own: the record is signed B-B or B-T
when it is archived, and brought to B-LTA afterwards, in bulk (``renewal``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import ClientError
from asn1crypto import cms, x509
from pyhanko.keys import load_certs_from_pemder
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields
from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner, PdfTimeStamper, Signer
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.timestamps import HTTPTimeStamper, TimestampRequestError
from pyhanko.sign.validation import add_validation_info
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    CRLFetchError,
    InsufficientRevinfoError,
    OCSPFetchError,
    PathError,
    PathValidationError,
    RevokedError,
)

from pipeline.errors import ConfigError, SigningKeyError, SigningUnavailableError
from pipeline.signing.keys import signer_name
from pipeline.store.archive import atomic_write_bytes

log = logging.getLogger(__name__)

REASON = "Số hóa từ bản giấy"
# seconds a timestamp server or OCSP responder gets before the signing is retried later
NETWORK_TIMEOUT = 20
# hex digits kept free beyond pyHanko's exact estimate of the signature: the timestamp the server
# returns when signing can be a few bytes longer than the one it returned for the estimate
# (another serial number, nonce, fraction of a second)
RESERVE_SLACK = 128


@dataclass(frozen=True)
class SignatureInfo:
    level: str  # "B-B", "B-T", "B-LT" or "B-LTA" (PAdES baseline level reached)
    signer: str  # certificate subject CN
    signed_at: dt.datetime  # aware UTC
    timestamp: dt.datetime | None  # the RFC 3161 signature timestamp's time, if any


def load_trust_roots(trust: Sequence[Path]) -> list[x509.Certificate]:
    """Every certificate in the given PEM (or DER) files."""
    roots: list[x509.Certificate] = []
    for path in trust:
        try:
            certs = list(load_certs_from_pemder([str(path)]))
            for cert in certs:
                cert.native  # noqa: B018 - asn1crypto parses lazily: a broken file fails here, named
        except (OSError, ValueError) as exc:
            raise ConfigError(f"Không đọc được chứng thư gốc tin cậy {path} ({exc}). Cần tệp PEM "
                              "chứa chứng thư của CA.") from None
        roots.extend(certs)
    return roots


def sign_pdf(src: Path, dst: Path, signer: Signer, *, location: str,
             tsa_url: str | None = None) -> SignatureInfo:
    """Sign ``src`` into ``dst`` (``src`` untouched): B-B, or B-T with ``tsa_url``. B-LTA is
    reached later, in bulk, by :func:`extend_to_lta`: gathering the validation data and asking
    for a document timestamp took 0.3 s more per record in the record's path."""
    name = signer_name(signer)
    timestamper = _timestamper(tsa_url) if tsa_url else None
    writer = _SignatureOnlyWriter(io.BytesIO(src.read_bytes()), strict=False)
    # a record signed again (a new key, a new version) keeps its earlier signature fields
    taken = sum(1 for _ in fields.enumerate_sig_fields(writer.prev))
    meta = PdfSignatureMetadata(
        field_name=f"Signature{taken + 1}", reason=REASON, location=location, name=name,
        md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES,
    )
    out = io.BytesIO()
    with _signing_errors(tsa_url, str(src)):
        asyncio.run(_sign(PdfSigner(meta, signer, timestamper=timestamper), writer, out))
    data = out.getvalue()
    signed = PdfFileReader(io.BytesIO(data), strict=False).embedded_regular_signatures[-1]
    atomic_write_bytes(dst, data)
    level = "B-T" if tsa_url else "B-B"
    signed_at = signed.self_reported_timestamp or dt.datetime.now(dt.UTC)
    log.info("signed %s -> %s (%s, %s)", src, dst, level, name)
    return SignatureInfo(level=level, signer=name, signed_at=signed_at.astimezone(dt.UTC),
                         timestamp=signature_timestamp(signed.signer_info))


def extend_to_lta(src: Path, dst: Path, *, tsa_url: str, context: ValidationContext) -> dt.datetime:
    """B-T to B-LTA: the last signature's validation data (certificates, OCSP/CRL answers, for
    it and its timestamp) and a document timestamp over everything, as two more updates of
    ``src`` written to ``dst``; the document timestamp's time.

    ``context`` (:func:`fetching_context`) is shared by the records of one run: the agency's and
    the timestamp authority's revocation answers are fetched once, not once per record.
    """
    reader = PdfFileReader(io.BytesIO(src.read_bytes()), strict=False)
    if not reader.embedded_regular_signatures:
        raise ValueError(f"{src} has no signature to extend")
    with_data = io.BytesIO()
    out = io.BytesIO()
    with _signing_errors(tsa_url, str(src)):
        add_validation_info(reader.embedded_regular_signatures[-1], context, output=with_data)
        PdfTimeStamper(_timestamper(tsa_url)).timestamp_pdf(
            IncrementalPdfFileWriter(with_data, strict=False), "sha256", context, output=out)
    data = out.getvalue()
    latest = PdfFileReader(io.BytesIO(data), strict=False).embedded_timestamp_signatures[-1]
    atomic_write_bytes(dst, data)
    return tst_time(latest.signed_data)


@functools.cache
def _timestamper(tsa_url: str) -> HTTPTimeStamper:
    """One client per server for the process: pyHanko keeps the first answer to size the
    signature's room with, so each later signature asks the server once, not twice."""
    return HTTPTimeStamper(tsa_url, timeout=NETWORK_TIMEOUT)


class _SignatureOnlyWriter(IncrementalPdfFileWriter):
    """The signature's increment without a rewritten Info dictionary and XMP packet.

    pyHanko would write both again only to move their modification date: 3 KB of an archived
    record's (uncompressed, as PDF/A wants its XMP) metadata in every signature, a third of the
    10 KB budget. Left as OCRmyPDF wrote them they still agree with each other, which is what
    PDF/A-2b asks; the signing time is in the signature itself. (A private hook of pyHanko's
    writer: tests/test_signing.py checks that the XMP and Info stay byte for byte.)
    """

    def _update_meta(self) -> None:
        pass


async def _sign(pdf_signer: PdfSigner, writer: IncrementalPdfFileWriter, out: io.BytesIO) -> None:
    """``PdfSigner.sign_pdf`` with a tighter reservation for the signature: pyHanko adds 50 % to
    its estimate, which alone would break the 10 KB budget of a B-T signature."""
    context = pdf_signer.signature_meta.validation_context
    try:
        session = pdf_signer.init_signing_session(writer)
        presign = await session.perform_presign_validation(writer)
        reserved = await session.estimate_signature_container_size(presign, tight=True)
        tbs = session.prepare_tbs_document(validation_info=presign,
                                           bytes_reserved=reserved + RESERVE_SLACK)
        digest, output = tbs.digest_tbs_document(output=out)
        signed = await tbs.perform_signature(
            document_digest=digest.document_digest,
            pdf_cms_signed_attrs=PdfCMSSignedAttributes(signing_time=session.system_time))
        await signed.post_signature_processing(output)
    finally:
        if context is not None:
            await context.aclose()


def check_timestamp_server(tsa_url: str, what: str) -> None:
    """One timestamp asked of the server before any page is touched: a server away stops the
    batch (SigningUnavailableError, run again later) instead of each record. Its answer is what
    this process sizes its signatures' room with."""
    from pyhanko.sign import DEFAULT_MD

    with _signing_errors(tsa_url, what):
        asyncio.run(_timestamper(tsa_url).async_dummy_response(DEFAULT_MD))


def check_revocation(signer: Signer, trust: Sequence[Path], key: str) -> None:
    """The signer's certificate path validated now, its revocation status fetched (OCSP/CRL) as
    a B-LTA signing would: a revoked certificate stops the batch before any page is touched
    (SigningKeyError), a responder away is retried (SigningUnavailableError)."""
    async def validate() -> None:
        context = fetching_context(trust)
        try:
            await CertificateValidator(signer.signing_cert, intermediate_certs=list(
                signer.cert_registry), validation_context=context).async_validate_path()
        finally:
            await context.aclose()

    with _signing_errors(None, f"bằng khóa {key} (chứng thư '{signer_name(signer)}')"):
        asyncio.run(validate())


def renew_archive_timestamp(src: Path, dst: Path, *, tsa_url: str,
                            context: ValidationContext) -> dt.datetime:
    """B-LTA renewal: the last timestamp's validation data and a new document timestamp over
    everything, as one more update of ``src`` written to ``dst``; the new timestamp's time."""
    out = io.BytesIO()
    reader = PdfFileReader(io.BytesIO(src.read_bytes()), strict=False)
    with _signing_errors(tsa_url, str(src)):
        stamper = PdfTimeStamper(_timestamper(tsa_url))
        stamper.update_archival_timestamp_chain(reader, context, in_place=False, output=out)
    data = out.getvalue()
    latest = PdfFileReader(io.BytesIO(data), strict=False).embedded_timestamp_signatures[-1]
    atomic_write_bytes(dst, data)
    return tst_time(latest.signed_data)


def tst_time(signed_data: cms.SignedData) -> dt.datetime:
    """The time an RFC 3161 timestamp token states (its TSTInfo's genTime), aware UTC."""
    tst_info = signed_data["encap_content_info"]["content"].parsed
    return tst_info["gen_time"].native.astimezone(dt.UTC)


def signature_timestamp(signer_info: cms.SignerInfo) -> dt.datetime | None:
    """The time of the signature's RFC 3161 timestamp (B-T and up), as the token states it."""
    unsigned = signer_info["unsigned_attrs"]
    for attr in unsigned if unsigned.native else ():
        if attr["type"].native == "signature_time_stamp_token":
            return tst_time(attr["values"][0]["content"])
    return None


def fetching_context(trust: Sequence[Path]) -> ValidationContext:
    """Validation against ``trust`` that fetches revocation data (OCSP, CRL) and keeps it.

    The context's time is when it was made; the revocation data that a run fetches later (for a
    record signed hours before, or the last of a long batch) is newer than that, which is what
    B-LT wants, so it is accepted (``retroactive_revinfo``) instead of refused as "too recent".
    """
    # hard-fail: a B-LT signature without its revocation data would be a B-T that claims more
    return ValidationContext(trust_roots=load_trust_roots(trust), allow_fetching=True,
                             revocation_mode="hard-fail", retroactive_revinfo=True)


@contextlib.contextmanager
def _signing_errors(tsa_url: str | None, what: str) -> Iterator[None]:
    """pyHanko's failures while signing, as the pipeline's errors: a timestamp server or a
    revocation responder that does not answer is passing (retry later); a certificate revoked
    or not chaining to the trust roots is the key's (or the settings') problem."""
    try:
        yield
    except Exception as exc:
        chain = list(_causes(exc))
        revoked = next((e for e in chain if isinstance(e, RevokedError)), None)
        if any(isinstance(e, TimestampRequestError) for e in chain):
            raise SigningUnavailableError(
                f"Không lấy được dấu thời gian cho {what}: máy chủ {tsa_url} không trả lời. Kiểm "
                "tra mạng hoặc DIGITIZE_SIGN_TSA rồi chạy lại.") from exc
        if revoked is not None:
            raise SigningKeyError(
                f"Không ký {what}: chứng thư ký số đã bị thu hồi từ {revoked.revocation_dt:%d/%m/%Y}. "
                "Xin cấp chứng thư mới rồi đặt lại DIGITIZE_SIGN_KEY.") from exc
        if any(isinstance(e, InsufficientRevinfoError | OCSPFetchError | CRLFetchError | ClientError
                          | TimeoutError) for e in chain):
            raise SigningUnavailableError(
                f"Không ký được {what}: không lấy được dữ liệu thu hồi chứng thư (OCSP/CRL) để lưu "
                "trữ dài hạn. Kiểm tra kết nối tới dịch vụ OCSP/CRL của CA rồi chạy lại.") from exc
        if any(isinstance(e, PathError | PathValidationError) for e in chain):
            raise SigningKeyError(
                f"Không ký {what}: chứng thư ký số không dẫn tới chứng thư gốc tin cậy đã khai báo "
                f"({chain[-1]}). Kiểm tra chứng thư gốc (trust) và chứng thư của cơ quan.") from exc
        raise


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__
