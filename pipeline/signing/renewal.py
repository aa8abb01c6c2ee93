"""B-LTA: records signed B-T when they were archived brought to B-LTA afterwards, in bulk, and
their archive timestamps renewed before the timestamp authority's certificate expires.

B-LTA is the signature's validation data (certificates, OCSP/CRL answers) and a document
timestamp over everything. Gathering them in the record's path took 0.3 s per record more than
B-T (the issue allows 0.3 s for signing in all), so a record is signed B-T when it is archived and
extended right after its batch (``digitize run``, the batch DAG's ``long_term`` task): one
validation context for the whole run fetches each certificate's revocation status once, not once
per record. Whatever could not be done then (a timestamp server away) the monthly fixity DAG and
``digitize sign --renew-timestamps`` finish.

Once the certificate of the authority behind a file's last document timestamp expires, nothing
proves the file as it was. Before that, the timestamp's own validation data and a new document
timestamp over everything are added. Either way the result is archived as the record's next
version: the earlier one stays, and the record's signing time and archiving time stay (the report
counts by them). Idempotent: a record extended or renewed meanwhile is left alone.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko_certvalidator import ValidationContext
from sqlalchemy import select

from pipeline.config import Settings
from pipeline.errors import ConfigError, SigningFailedError, SigningUnavailableError
from pipeline.models import RecordStatus
from pipeline.signing import policy
from pipeline.signing.backfill import (
    NewVersion,
    claimed,
    current_version,
    intact_file,
    place_next_version,
)
from pipeline.signing.sign import extend_to_lta, fetching_context, renew_archive_timestamp
from pipeline.signing.verify import verify_pdf
from pipeline.store import archive, warehouse

log = logging.getLogger(__name__)

LEVEL = "B-LTA"
SIGNED_LEVEL = "B-T"  # what the record's path signs when the agency has a timestamp server
RERUN = "digitize sign --renew-timestamps"
EXTENDED = NewVersion("bổ sung lưu trữ dài hạn (B-LTA)", RERUN, "long_term", "long_term")
RENEWED = NewVersion("gia hạn dấu thời gian lưu trữ", RERUN, "timestamp_renewed",
                     "timestamp_renewed")
ADDED = {EXTENDED: "dữ liệu kiểm tra và dấu thời gian lưu trữ", RENEWED: "dấu thời gian lưu trữ mới"}


@dataclass
class RenewOutcome:
    """What a run did, per record id."""

    extended: list[str] = field(default_factory=list)  # B-T records brought to B-LTA
    renewed: list[str] = field(default_factory=list)
    checked: int = 0  # B-LTA records whose archive timestamp was looked at
    problems: dict[str, str] = field(default_factory=dict)  # record id -> Vietnamese reason

    @property
    def ok(self) -> bool:
        return not self.problems


NOT_SET_UP = ("Lưu trữ dài hạn (B-LTA): chưa đặt đủ máy chủ cấp dấu thời gian "
              "(DIGITIZE_SIGN_TSA hoặc bảng DIGITIZE_SIGN_KEYS) và chứng thư gốc tin cậy "
              "(DIGITIZE_SIGN_TRUST), nên không có gì để bổ sung hay gia hạn.")


def summary_lines(outcome: RenewOutcome) -> list[str]:
    """What a person reads first (task log, terminal): the counts, then each record not done."""
    head = (f"Lưu trữ dài hạn (B-LTA): {len(outcome.extended)} hồ sơ B-T đã bổ sung B-LTA; "
            f"{outcome.checked} hồ sơ B-LTA đã xét, {len(outcome.renewed)} đã gia hạn dấu thời "
            f"gian; {len(outcome.problems)} chưa làm được.")
    return [head, *(f"- {reason}" for reason in outcome.problems.values())]


def can_renew(settings: Settings) -> bool:
    """Whether anything can be extended or renewed at all: trust roots, and a timestamp server
    (for every agency, or in the per-agency table)."""
    return bool(settings.sign_trust and (settings.sign_tsa or settings.sign_keys))


def after_batch(settings: Settings, agency_code: str, batch_id: str) -> RenewOutcome | None:
    """The batch's records signed B-T brought to B-LTA, when the agency's records are kept long
    term; None when they are not. A timestamp server or OCSP responder away leaves them B-T,
    signed and archived, for the monthly run (a warning, not a failure of the batch)."""
    key = policy.key_for(settings, agency_code)
    if key is None or not policy.long_term(settings, key):
        return None
    try:
        outcome = renew_due(settings, agency_code=agency_code, batch_id=batch_id)
    except SigningUnavailableError as exc:
        log.warning("%s Các hồ sơ vẫn được ký B-T và đã lưu trữ; phần lưu trữ dài hạn (B-LTA) sẽ "
                    "được bổ sung ở lần chạy '%s' hoặc DAG kiểm tra hằng tháng.", exc, RERUN)
        return None
    for line in summary_lines(outcome):
        log.log(logging.INFO if outcome.ok else logging.WARNING, "%s", line)
    return outcome


def renew_due(settings: Settings, *, within_days: int | None = None, agency_code: str | None = None,
              batch_id: str | None = None,
              on_record: Callable[[str, str | None], None] | None = None) -> RenewOutcome:
    """Bring every archived B-T record of an agency kept long term to B-LTA, and renew the
    archive timestamp of every B-LTA record whose timestamp certificate expires within
    ``within_days`` (default ``settings.sign_renew_days``); of one agency with ``agency_code``,
    of one batch with ``batch_id``.

    The settings are checked before any record (ConfigError); a timestamp server away stops the
    run to be retried (SigningUnavailableError); a record that cannot be done is named in
    ``problems`` and the others go on. ``on_record`` hears each record done, with None, or the
    reason it was not.
    """
    days = settings.sign_renew_days if within_days is None else within_days
    if days < 0:
        raise ConfigError(f"Số ngày gia hạn trước khi hết hạn phải từ 0 trở lên (đang là {days}): "
                          "sửa --within-days hoặc DIGITIZE_SIGN_RENEW_DAYS.")
    if agency_code is not None:
        archive.check_component(agency_code, "Mã cơ quan")
    if settings.sign_trust is None:
        raise ConfigError(
            "Lưu trữ dài hạn (B-LTA) cần chứng thư gốc tin cậy để thu thập dữ liệu kiểm tra: đặt "
            "DIGITIZE_SIGN_TRUST (tệp PEM của CA) rồi chạy lại.")
    url = settings.warehouse_url
    warehouse.migrate(url)
    records = _signed_records(url, agency_code, batch_id)
    # every agency's timestamp server known before any record is touched
    servers = {agency: _tsa_for(settings, agency)
               for agency in dict.fromkeys(a for a, _, _, _ in records)}
    unstamped = sorted({a for a, _, _, level in records if level == LEVEL and servers[a] is None})
    if unstamped:
        raise ConfigError(
            f"Cơ quan {', '.join(unstamped)} có hồ sơ ký số lưu trữ dài hạn (B-LTA) nhưng chưa có "
            "máy chủ cấp dấu thời gian để gia hạn: đặt DIGITIZE_SIGN_TSA (hoặc 'tsa' của cơ quan "
            "trong bảng DIGITIZE_SIGN_KEYS) rồi chạy lại.")
    horizon = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    trust = policy.trust_roots(settings)
    # one for the run: each certificate's revocation status is fetched once, not per record
    context = fetching_context(trust)
    outcome = RenewOutcome(checked=sum(level == LEVEL for _, _, _, level in records))
    for agency, record_id, pdf_path, level in records:
        tsa = servers[agency]
        make: Callable[[Path, Path], dt.datetime | None]
        if level == SIGNED_LEVEL:
            if tsa is None:
                continue  # the agency's records are not kept long term: B-T is what it asked for
            kind, make = EXTENDED, partial(extend_to_lta, tsa_url=tsa, context=context)
        # read outside the claim: most records are not due, and are not claimed for nothing
        elif _due(Path(pdf_path), horizon):
            assert tsa is not None
            kind, make = RENEWED, partial(_renewed, tsa_url=tsa, context=context, horizon=horizon)
        else:
            continue
        done = claimed(url, agency, record_id, outcome.problems, on_record,
                       lambda a=agency, rid=record_id, lv=level, k=kind, m=make:
                       _next_version(settings, a, rid, lv, k, m, trust))
        if done:
            (outcome.extended if kind is EXTENDED else outcome.renewed).append(record_id)
    return outcome


def _renewed(current: Path, made: Path, *, tsa_url: str, context: ValidationContext,
             horizon: dt.datetime) -> dt.datetime | None:
    """The renewal, or None when the file (read again under the record's claim) is not due."""
    if not _due(current, horizon):
        return None
    return renew_archive_timestamp(current, made, tsa_url=tsa_url, context=context)


def _signed_records(url: str, agency_code: str | None,
                    batch_id: str | None) -> list[tuple[str, str, str, str]]:
    """(agency, record id, current file, signature level) of the archived records signed B-T
    or B-LTA, oldest first."""
    r, b = warehouse.records, warehouse.batches
    query = (select(r.c.agency_code, r.c.record_id, r.c.pdf_path, r.c.signature_level)
             .where(r.c.status == RecordStatus.archived,
                    r.c.signature_level.in_((SIGNED_LEVEL, LEVEL)))
             .order_by(r.c.id))
    if agency_code is not None:
        query = query.where(r.c.agency_code == agency_code)
    if batch_id is not None:
        query = query.join(b, b.c.id == r.c.batch_pk).where(b.c.batch_id == batch_id)
    with warehouse.engine_for(url).connect() as conn:
        return [(agency, record_id, path, level) for agency, record_id, path, level in conn.execute(query)]


def _tsa_for(settings: Settings, agency_code: str) -> str | None:
    key = policy.key_for(settings, agency_code)
    return key.tsa if key is not None else settings.sign_tsa


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


def _next_version(settings: Settings, agency_code: str, record_id: str, level: str,
                  kind: NewVersion, make: Callable[[Path, Path], dt.datetime | None],
                  trust: tuple[Path, ...]) -> bool:
    """The record's current file, still at ``level``, made B-LTA by ``make`` into its next
    version; False when there is nothing to do any more (done meanwhile, or not due)."""
    row, version = current_version(settings, agency_code, record_id)
    if row["status"] != RecordStatus.archived or row["signature_level"] != level:
        return False
    current = intact_file(row, kind)
    work = archive.work_folder(settings.dir("work"), agency_code, record_id)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    made = work / "long-term.pdf"
    try:
        stamped_at = make(current, made)
        if stamped_at is None:
            return False
        verdict = verify_pdf(made, trust)
        if not verdict.valid or verdict.level != LEVEL:
            raise SigningFailedError(record_id, (
                f"Hồ sơ {record_id}: bản {kind.verb} của {current} không hợp lệ khi kiểm tra lại "
                f"({verdict.level or 'chưa ký'}) — {'; '.join(verdict.problems) or 'không rõ lý do'}. "
                "Chưa lưu trữ; bản hiện tại giữ nguyên. Kiểm tra máy chủ dấu thời gian "
                "(DIGITIZE_SIGN_TSA) và tệp chứng thư gốc (DIGITIZE_SIGN_TRUST), rồi chạy lại "
                f"'{kind.rerun}'."))
        place_next_version(settings, row, version, made, kind, level=LEVEL, what=(
            f"{ADDED[kind]} lúc {stamped_at:%Y-%m-%d %H:%M:%S} UTC "
            f"(bản v{row['version']} giữ nguyên)"), signature={"signature_level": LEVEL})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("record %s/%s: %s (%s) as version %d", agency_code, record_id, kind.reason,
             stamped_at.isoformat(), version)
    return True
