"""The agency's signing key: where it is (``DIGITIZE_SIGN_KEY``), opened and checked.

Every check that can fail for a whole batch (file, PIN, validity, key usage, labels) happens in
``open_signer``, before anything is signed, so a bad key stops the run before any page is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import pkcs11
from asn1crypto import x509
from pkcs11 import exceptions as p11
from pyhanko.sign.pkcs11 import PKCS11Signer
from pyhanko.sign.signers import Signer, SimpleSigner

from pipeline.errors import ConfigError, SigningKeyError, SigningUnavailableError

log = logging.getLogger(__name__)

# A certificate must allow at least one of these to sign documents (TCVN / RFC 5280 key usage).
SIGNING_USAGES = frozenset({"digital_signature", "non_repudiation"})
# The root CA is what a verifier must already trust: a copy in every signature proves nothing and
# costs 1.7 KB of the file's 10 KB budget.
EMBED_ROOTS = False
_FORMS = "pkcs12:/đường/dẫn/tệp.p12 hoặc pkcs11:/đường/dẫn/module.so?token=NHÃN&key=NHÃN"


@dataclass(frozen=True)
class KeySpec:
    kind: Literal["pkcs12", "pkcs11"]
    path: Path  # the .p12 file, or the PKCS#11 module .so
    token: str | None = None  # pkcs11: token label
    key: str | None = None  # pkcs11: key (and certificate) label

    def __str__(self) -> str:
        if self.kind == "pkcs12":
            return f"pkcs12:{self.path}"
        return f"pkcs11:{self.path}?token={self.token}&key={self.key}"


def parse_key_spec(text: str) -> KeySpec:
    """``pkcs12:/path/agency.p12`` or ``pkcs11:/path/module.so?token=LABEL&key=LABEL``."""
    kind, sep, rest = text.strip().partition(":")
    bad = ConfigError(f"Khóa ký số '{text}' không đúng dạng. Hãy đặt DIGITIZE_SIGN_KEY theo một "
                      f"trong hai dạng: {_FORMS}.")
    if not sep or not rest:
        raise bad
    if kind == "pkcs12":
        if "?" in rest:
            raise bad
        return KeySpec("pkcs12", Path(rest))
    if kind != "pkcs11":
        raise bad
    parts = urlsplit(rest)
    query = parse_qs(parts.query, keep_blank_values=True)
    if (not parts.path or set(query) != {"token", "key"}
            or any(len(v) != 1 or not v[0] for v in query.values())):
        raise bad
    return KeySpec("pkcs11", Path(parts.path), token=query["token"][0], key=query["key"][0])


def signer_name(signer: Signer) -> str:
    """The signing certificate's subject common name (who signed, as shown to readers)."""
    cert = signer.signing_cert
    if cert is None:
        raise SigningKeyError("Khóa ký số không kèm chứng thư số.")
    return _common_name(cert)


def _common_name(cert: x509.Certificate) -> str:
    return str(cert.subject.native.get("common_name") or cert.subject.human_friendly)


@contextlib.contextmanager
def open_signer(spec: KeySpec, pin: str | None, *, at: dt.datetime | None = None) -> Iterator[Signer]:
    """A pyHanko signer over the key, checked for use at ``at`` (default now); closed after."""
    if spec.kind == "pkcs12":
        signer = _load_pkcs12(spec, pin)
        _check_certificate(spec, signer.signing_cert, at)
        yield signer
        return
    with _pkcs11_session(spec, pin) as session:
        p11_signer = _TokenSigner(session, cert_label=spec.key, key_label=spec.key,
                                  other_certs_to_pull=None, embed_roots=EMBED_ROOTS)
        try:
            # pyHanko loads the certificate and key handle lazily; do it now, so a wrong label
            # stops the batch here and not in the middle of a record
            asyncio.run(p11_signer.ensure_objects_loaded())
        except p11.PKCS11Error as exc:
            log.info("PKCS#11 objects not found for %s: %s", spec, exc)
            raise SigningKeyError(
                f"Khóa ký số {spec}: token không có khóa bí mật hoặc chứng thư số mang nhãn "
                f"'{spec.key}'. Kiểm tra nhãn key= trong DIGITIZE_SIGN_KEY (xem bằng "
                "pkcs11-tool --list-objects).") from None
        _check_certificate(spec, p11_signer.signing_cert, at)
        yield p11_signer


class _TokenSigner(PKCS11Signer):
    """pyHanko's token signer, with the CA certificates on the token in every signature and with
    room for the signature as long as the key makes it."""

    def _load_other_certs(self) -> set[x509.Certificate]:
        # The CA certificates the government CA keeps on its tokens (the intermediate above the
        # agency's) let a verifier who trusts only the root build the chain. Only CA ones: the
        # signer's own is added by pyHanko (a second copy would cost 2 KB) and another
        # end-entity certificate on the token has no business in the signature.
        return {cert for cert in super()._load_other_certs() if cert.ca}

    def estimate_raw_signature_size_bytes(self) -> int:
        # pyHanko reserves 512 bytes for any token key; an RSA signature is exactly the modulus
        # long, and the 256 bytes saved are needed to keep a B-T signature within 10 KB
        key = self.signing_cert.public_key
        if key.algorithm == "rsa":
            return (key.bit_size + 7) // 8
        return super().estimate_raw_signature_size_bytes()


def _load_pkcs12(spec: KeySpec, pin: str | None) -> SimpleSigner:
    try:
        data = spec.path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"Khóa ký số {spec}: không đọc được tệp PKCS#12 ({exc.strerror}). "
                              "Kiểm tra đường dẫn trong DIGITIZE_SIGN_KEY.") from None
    return _pkcs12_signer(spec, data, pin)


# Decrypting a PKCS#12 file costs 0.08 s (its key derivation is slow on purpose): a worker that
# signs record after record does it once per file content and password. A failure is not cached.
@functools.lru_cache(maxsize=8)
def _pkcs12_signer(spec: KeySpec, data: bytes, pin: str | None) -> SimpleSigner:
    try:
        signer = SimpleSigner.load_pkcs12_data(data, other_certs=(),
                                               passphrase=pin.encode() if pin else None)
    except (ValueError, TypeError):
        # the cause's text is cryptography's; it never holds the password, but it adds nothing
        raise SigningKeyError(
            f"Khóa ký số {spec}: mật khẩu tệp PKCS#12 sai (hoặc tệp hỏng). Đặt đúng mật khẩu "
            "vào DIGITIZE_SIGN_PIN.") from None
    signer.embed_roots = EMBED_ROOTS
    return signer


@contextlib.contextmanager
def _pkcs11_session(spec: KeySpec, pin: str | None) -> Iterator[pkcs11.Session]:
    if not spec.path.is_file():
        raise SigningKeyError(f"Khóa ký số {spec}: không có thư viện PKCS#11 {spec.path}. Cài "
                              "trình điều khiển của token rồi sửa đường dẫn trong DIGITIZE_SIGN_KEY.")
    try:
        lib = pkcs11.lib(str(spec.path))
    except (OSError, RuntimeError, p11.PKCS11Error) as exc:
        raise SigningKeyError(f"Khóa ký số {spec}: không nạp được thư viện PKCS#11 {spec.path} "
                              f"({exc}). Kiểm tra đó đúng là module PKCS#11 của token.") from None
    try:
        token = lib.get_token(token_label=spec.token)
    except p11.NoSuchToken:
        raise SigningUnavailableError(
            f"Khóa ký số {spec}: không thấy token '{spec.token}'. Cắm USB token (hoặc kết nối "
            "HSM) rồi chạy lại.") from None
    except p11.MultipleTokensReturned:
        raise SigningKeyError(f"Khóa ký số {spec}: có nhiều token cùng nhãn '{spec.token}'. "
                              "Chỉ cắm một token, hoặc đặt nhãn khác nhau.") from None
    if not pin:
        raise SigningKeyError(f"Khóa ký số {spec}: chưa có mã PIN của token. Đặt PIN vào "
                              "DIGITIZE_SIGN_PIN.")
    try:
        session = token.open(user_pin=pin)
    except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange):
        raise SigningKeyError(f"Khóa ký số {spec}: mã PIN sai. Đặt đúng PIN của token vào "
                              "DIGITIZE_SIGN_PIN (nhập sai nhiều lần sẽ khóa token).") from None
    except p11.PinLocked:
        raise SigningKeyError(f"Khóa ký số {spec}: token đã bị khóa PIN. Liên hệ nơi cấp token để "
                              "mở khóa.") from None
    except (p11.TokenNotPresent, p11.DeviceRemoved):
        raise SigningUnavailableError(f"Khóa ký số {spec}: token '{spec.token}' vừa bị rút ra. "
                                      "Cắm lại rồi chạy lại.") from None
    try:
        yield session
    finally:
        session.close()


def _check_certificate(spec: KeySpec, cert: x509.Certificate | None, at: dt.datetime | None) -> None:
    if cert is None:
        raise SigningKeyError(f"Khóa ký số {spec}: không có chứng thư số đi kèm khóa. Dùng tệp/"
                              "token có cả khóa bí mật và chứng thư số.")
    moment = at or dt.datetime.now(dt.UTC)
    name = _common_name(cert)
    if moment < cert.not_valid_before:
        raise SigningKeyError(
            f"Khóa ký số {spec}: chứng thư số của '{name}' chỉ có hiệu lực từ "
            f"{cert.not_valid_before:%d/%m/%Y %H:%M} UTC. Kiểm tra đồng hồ máy hoặc dùng chứng thư "
            "khác.")
    if moment > cert.not_valid_after:
        raise SigningKeyError(
            f"Khóa ký số {spec}: chứng thư số của '{name}' đã hết hạn ngày "
            f"{cert.not_valid_after:%d/%m/%Y}. Gia hạn chứng thư với nơi cấp rồi chạy lại.")
    usage = cert.key_usage_value
    # No keyUsage extension means no restriction (RFC 5280 4.2.1.3)
    if usage is not None and not SIGNING_USAGES & set(usage.native):
        raise SigningKeyError(
            f"Khóa ký số {spec}: chứng thư số của '{name}' không cho phép ký số (thiếu "
            "digitalSignature / nonRepudiation). Dùng chứng thư ký số của cơ quan.")
