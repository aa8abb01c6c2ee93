"""Which key signs an agency's records, and the one way a record's PDF gets signed: signed, then
verified, or not archived as signed at all.

The key of an agency comes from the table ``DIGITIZE_SIGN_KEYS`` (YAML, agency code -> ``key``,
``pin_env``, ``tsa``) or else from ``DIGITIZE_SIGN_KEY`` / ``DIGITIZE_SIGN_PIN`` /
``DIGITIZE_SIGN_TSA`` for every agency. With neither, the agency's records are archived unsigned,
which is a state (the warehouse's ``signature_level`` is NULL), not an error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.config import Settings
from pipeline.errors import ConfigError, SigningFailedError, SigningKeyError
from pipeline.signing.keys import KeySpec, open_signer, parse_key_spec
from pipeline.signing.sign import (
    SignatureInfo,
    check_revocation,
    check_timestamp_server,
    sign_pdf,
)
from pipeline.signing.verify import verify_pdf

log = logging.getLogger(__name__)


class _TableEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    # the environment variable holding this key's PIN: a PIN is never written in the table
    pin_env: str | None = Field(None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    tsa: str | None = Field(None, pattern=r"^https?://\S+$")


@dataclass(frozen=True)
class AgencyKey:
    spec: KeySpec
    pin: str | None = None
    tsa: str | None = None
    where: str = "DIGITIZE_SIGN_KEY"  # where it is set, for messages

    def __repr__(self) -> str:  # the PIN stays out of every log line and traceback
        return f"AgencyKey({self.spec}, tsa={self.tsa!r}, where={self.where!r})"


def _table(path: Path) -> Mapping[str, _TableEntry]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError("không phải một bảng mã cơ quan -> khóa ký")
        return {str(code): _TableEntry.model_validate(entry) for code, entry in data.items()}
    except (OSError, yaml.YAMLError, ValueError, ValidationError) as exc:
        raise ConfigError(
            f"Bảng khóa ký số {path} (DIGITIZE_SIGN_KEYS) không đọc được: {exc}. Mỗi mục là "
            "'<mã cơ quan>: {key: pkcs12:/đường/dẫn.p12 hoặc pkcs11:/module.so?token=..&key=.., "
            "pin_env: TÊN_BIẾN_MÔI_TRƯỜNG_CHỨA_PIN, tsa: https://...}'.") from exc


def key_for(settings: Settings, agency_code: str) -> AgencyKey | None:
    """The agency's signing key, or None: its records are archived unsigned."""
    if settings.sign_keys is not None:
        entry = _table(settings.sign_keys).get(agency_code)
        if entry is not None:
            where = f"DIGITIZE_SIGN_KEYS ({settings.sign_keys}), cơ quan {agency_code}"
            pin = os.environ.get(entry.pin_env) if entry.pin_env else None
            if entry.pin_env and pin is None:
                raise ConfigError(
                    f"Khóa ký số của cơ quan {agency_code} ({where}) cần mã PIN trong biến môi "
                    f"trường {entry.pin_env}, nhưng biến đó chưa được đặt. Đặt biến rồi chạy lại.")
            return AgencyKey(parse_key_spec(entry.key), pin, entry.tsa or settings.sign_tsa, where)
    if settings.sign_key:
        pin = settings.sign_pin.get_secret_value() if settings.sign_pin else None
        return AgencyKey(parse_key_spec(settings.sign_key), pin, settings.sign_tsa)
    return None


def check_key(settings: Settings, agency_code: str) -> AgencyKey | None:
    """The agency's key, opened once before any page is touched: a wrong PIN, an expired
    certificate, one without the signing usages or (for B-LTA, where revocation data is fetched
    anyway) a revoked one stops the batch here (SigningKeyError); a token not plugged in or a
    timestamp server that does not answer is retried (SigningUnavailableError)."""
    key = key_for(settings, agency_code)
    if key is not None:
        with open_signer(key.spec, key.pin) as signer:
            if key.tsa:
                check_timestamp_server(key.tsa, f"các hồ sơ ký bằng khóa {key.spec}")
            if long_term(settings, key):
                check_revocation(signer, trust_roots(settings), str(key.spec))
            log.info("agency %s signs with %s", agency_code, key.spec)
    return key


def long_term(settings: Settings, key: AgencyKey) -> bool:
    """Whether the agency's records are brought to B-LTA after they are archived (B-T): a
    timestamp server, and trust roots to gather the validation data against."""
    return bool(key.tsa and settings.sign_trust)


def trust_roots(settings: Settings) -> tuple[Path, ...]:
    return (settings.sign_trust,) if settings.sign_trust else ()


def sign_and_verify(settings: Settings, key: AgencyKey, record_id: str, location: str,
                    src: Path, out: Path) -> SignatureInfo:
    """``src`` signed into ``out`` with the agency's key, and ``out`` verified as the one who
    reuses it will: a signature that does not verify is never archived (SigningFailedError)."""
    trust = trust_roots(settings)
    try:
        with open_signer(key.spec, key.pin) as signer:
            info = sign_pdf(src, out, signer, location=location, tsa_url=key.tsa)
    except SigningKeyError as exc:
        # checked at the batch's start; a certificate that expired or was revoked since holds
        # each record with the reason instead of failing as an unexpected error
        raise SigningFailedError(record_id, (
            f"Hồ sơ {record_id}: chưa ký số được, chưa lưu trữ — {exc} Sau khi sửa khóa, Clear để "
            "chạy lại.")) from exc
    verdict = verify_pdf(out, trust)
    if not verdict.valid:
        raise SigningFailedError(record_id, (
            f"Hồ sơ {record_id}: chữ ký số vừa tạo bằng khóa {key.spec} ({key.where}) không hợp lệ "
            f"khi kiểm tra lại — {'; '.join(verdict.problems) or 'không rõ lý do'}. Chưa lưu trữ. "
            "Kiểm tra chứng thư số của khóa và tệp chứng thư gốc (DIGITIZE_SIGN_TRUST), rồi Clear "
            "để chạy lại."))
    return info
