"""B-LTA kept valid for decades: the archive timestamp of a record renewed before its timestamp
authority's certificate expires.

A B-LTA file ends in a document timestamp over the signature and its validation data; once the
certificate of the authority that issued it expires, nothing proves the file as it was. Before
that, the timestamp's own validation data and a new document timestamp over everything are added
(``sign.renew_archive_timestamp``), and the result is archived as the record's next version: the
earlier one stays, and the record's signing time and archiving time stay (the report counts by
them). What ``digitize sign --renew-timestamps`` and the monthly fixity DAG run; idempotent: a
record renewed meanwhile is not renewed again.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy import select

from pipeline.config import Settings
from pipeline.errors import ConfigError, SigningFailedError
from pipeline.models import RecordStatus
from pipeline.signing import policy
from pipeline.signing.backfill import (
    NewVersion,
    claimed,
    current_version,
    intact_file,
    place_next_version,
)
from pipeline.signing.sign import renew_archive_timestamp
from pipeline.signing.verify import verify_pdf
from pipeline.store import archive, warehouse

log = logging.getLogger(__name__)

LEVEL = "B-LTA"
RENEWED = NewVersion("gia hạn dấu thời gian lưu trữ", "digitize sign --renew-timestamps",
                     "timestamp_renewed", "timestamp_renewed")


@dataclass
class RenewOutcome:
    """What a renewal run did, per record id."""

    renewed: list[str] = field(default_factory=list)
    checked: int = 0  # B-LTA records whose archive timestamp was looked at
    problems: dict[str, str] = field(default_factory=dict)  # record id -> Vietnamese reason

    @property
    def ok(self) -> bool:
        return not self.problems


NOT_SET_UP = ("Gia hạn dấu thời gian lưu trữ: chưa đặt đủ máy chủ cấp dấu thời gian "
              "(DIGITIZE_SIGN_TSA hoặc bảng DIGITIZE_SIGN_KEYS) và chứng thư gốc tin cậy "
              "(DIGITIZE_SIGN_TRUST), nên không có gì để gia hạn.")


def summary_lines(outcome: RenewOutcome) -> list[str]:
    """What a person reads first (task log, terminal): the counts, then each record not renewed."""
    head = (f"Gia hạn dấu thời gian lưu trữ: {outcome.checked} hồ sơ B-LTA đã xét, "
            f"{len(outcome.renewed)} đã gia hạn, {len(outcome.problems)} chưa gia hạn được.")
    return [head, *(f"- {reason}" for reason in outcome.problems.values())]


def can_renew(settings: Settings) -> bool:
    """Whether timestamps can be renewed at all: trust roots, and a timestamp server (for every
    agency, or in the per-agency table)."""
    return bool(settings.sign_trust and (settings.sign_tsa or settings.sign_keys))


def renew_due(settings: Settings, *, within_days: int | None = None, agency_code: str | None = None,
              on_record: Callable[[str, str | None], None] | None = None) -> RenewOutcome:
    """Renew the archive timestamp of every archived B-LTA record (of one agency with
    ``agency_code``) whose timestamp certificate expires within ``within_days`` (default
    ``settings.sign_renew_days``).

    The settings are checked before any record (ConfigError); a timestamp server away stops the
    run to be retried (SigningUnavailableError); a record that cannot be renewed is named in
    ``problems`` and the others go on. ``on_record`` hears each record due, with None when
    renewed or the reason it was not.
    """
    days = settings.sign_renew_days if within_days is None else within_days
    if days < 0:
        raise ConfigError(f"Số ngày gia hạn trước khi hết hạn phải từ 0 trở lên (đang là {days}): "
                          "sửa --within-days hoặc DIGITIZE_SIGN_RENEW_DAYS.")
    if agency_code is not None:
        archive.check_component(agency_code, "Mã cơ quan")
    if settings.sign_trust is None:
        raise ConfigError(
            "Gia hạn dấu thời gian lưu trữ (B-LTA) cần chứng thư gốc tin cậy để thu thập dữ liệu "
            "kiểm tra: đặt DIGITIZE_SIGN_TRUST (tệp PEM của CA) rồi chạy lại.")
    url = settings.warehouse_url
    warehouse.migrate(url)
    records = _long_term_records(url, agency_code)
    # every agency's timestamp server known before any record is touched
    servers = {agency: _tsa_for(settings, agency) for agency in dict.fromkeys(a for a, _, _ in records)}
    horizon = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    trust = policy.trust_roots(settings)
    outcome = RenewOutcome(checked=len(records))
    for agency, record_id, pdf_path in records:
        # read outside the claim: most records are not due, and are not claimed for nothing
        if not _due(Path(pdf_path), horizon):
            continue
        if claimed(url, agency, record_id, outcome.problems, on_record,
                   lambda a=agency, rid=record_id: _renew_one(settings, a, rid, horizon,
                                                              servers[a], trust)):
            outcome.renewed.append(record_id)
    return outcome


def _long_term_records(url: str, agency_code: str | None) -> list[tuple[str, str, str]]:
    """(agency, record id, current file) of the archived records signed at B-LTA, oldest first."""
    r = warehouse.records
    query = (select(r.c.agency_code, r.c.record_id, r.c.pdf_path)
             .where(r.c.status == RecordStatus.archived, r.c.signature_level == LEVEL)
             .order_by(r.c.id))
    if agency_code is not None:
        query = query.where(r.c.agency_code == agency_code)
    with warehouse.engine_for(url).connect() as conn:
        return [(agency, record_id, path) for agency, record_id, path in conn.execute(query)]


def _tsa_for(settings: Settings, agency_code: str) -> str:
    key = policy.key_for(settings, agency_code)
    tsa = key.tsa if key is not None else settings.sign_tsa
    if not tsa:
        raise ConfigError(
            f"Cơ quan {agency_code} có hồ sơ ký số lưu trữ dài hạn (B-LTA) nhưng chưa có máy chủ cấp "
            "dấu thời gian để gia hạn: đặt DIGITIZE_SIGN_TSA (hoặc 'tsa' của cơ quan trong bảng "
            "DIGITIZE_SIGN_KEYS) rồi chạy lại.")
    return tsa


def timestamp_expiry(pdf: Path) -> dt.datetime | None:
    """When the certificate of the authority behind the file's last document timestamp expires
    (aware UTC); None when the file has no document timestamp."""
    reader = PdfFileReader(io.BytesIO(pdf.read_bytes()), strict=False)
    stamps = reader.embedded_timestamp_signatures
    if not stamps:
        return None
    return stamps[-1].signer_cert.not_valid_after.astimezone(dt.UTC)


def _due(pdf: Path, horizon: dt.datetime) -> bool:
    """Whether the file's archive timestamp expires by ``horizon``; a file that cannot be read
    counts as due, so that the claimed check names what happened to it."""
    try:
        expires = timestamp_expiry(pdf)
    except (OSError, PdfError, ValueError, KeyError):
        return True
    return expires is None or expires <= horizon


def _renew_one(settings: Settings, agency_code: str, record_id: str, horizon: dt.datetime,
               tsa_url: str, trust: Sequence[Path]) -> bool:
    """One record's archive timestamp renewed as its next version; False when it is no longer
    due (renewed meanwhile, or no longer a B-LTA record)."""
    row, version = current_version(settings, agency_code, record_id)
    if row["status"] != RecordStatus.archived or row["signature_level"] != LEVEL:
        return False
    current = intact_file(row, RENEWED)
    if not _due(current, horizon):
        return False
    work = archive.work_folder(settings.dir("work"), agency_code, record_id)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    made = work / "renewed.pdf"
    try:
        stamped_at = renew_archive_timestamp(current, made, tsa_url=tsa_url, trust=trust)
        verdict = verify_pdf(made, trust)
        if not verdict.valid or verdict.level != LEVEL:
            raise SigningFailedError(record_id, (
                f"Hồ sơ {record_id}: bản gia hạn dấu thời gian lưu trữ của {current} không hợp lệ "
                f"khi kiểm tra lại ({verdict.level or 'chưa ký'}) — "
                f"{'; '.join(verdict.problems) or 'không rõ lý do'}. Chưa lưu trữ; bản hiện tại giữ "
                "nguyên. Kiểm tra máy chủ dấu thời gian (DIGITIZE_SIGN_TSA) và tệp chứng thư gốc "
                f"(DIGITIZE_SIGN_TRUST), rồi chạy lại '{RENEWED.rerun}'."))
        place_next_version(settings, row, version, made, RENEWED, level=LEVEL, what=(
            f"dấu thời gian lưu trữ mới lúc {stamped_at:%Y-%m-%d %H:%M:%S} UTC "
            f"(bản v{row['version']} giữ nguyên)"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("record %s/%s archive timestamp renewed (%s) as version %d", agency_code, record_id,
             stamped_at.isoformat(), version)
    return True
