"""The back catalogue signed: records archived unsigned (before the agency had a key, or before
ký số existed) get their current file signed as a new version beside the unsigned one.

What ``digitize sign --agency CODE [--batch ID]`` runs. Idempotent: a record already signed is
left alone; a record whose archived file is missing or changed is not signed (the fixity audit
says what happened to it), and the others go on.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, select

from pipeline.config import Settings
from pipeline.errors import ConfigError, RecordError
from pipeline.intake.ingest import sha256_file
from pipeline.models import RecordStatus
from pipeline.signing import policy
from pipeline.store import archive, claims, warehouse

log = logging.getLogger(__name__)


@dataclass
class SignOutcome:
    """What ``digitize sign`` did, per record id."""

    signed: list[str] = field(default_factory=list)
    already_signed: int = 0
    problems: dict[str, str] = field(default_factory=dict)  # record id -> Vietnamese reason

    @property
    def ok(self) -> bool:
        return not self.problems


def _unsigned(conn: Connection, agency_code: str, batch_id: str | None) -> tuple[list[str], int]:
    """The agency's archived records still unsigned (ids, oldest first), and how many are signed."""
    r, b = warehouse.records, warehouse.batches
    query = (select(r.c.record_id, r.c.signature_level).join(b, b.c.id == r.c.batch_pk)
             .where(r.c.agency_code == agency_code, r.c.status == RecordStatus.archived)
             .order_by(r.c.id))
    if batch_id is not None:
        query = query.where(b.c.batch_id == batch_id)
    rows = conn.execute(query).all()
    return [rid for rid, level in rows if level is None], sum(level is not None for _, level in rows)


def sign_archived(settings: Settings, agency_code: str, batch_id: str | None = None,
                  on_record: Callable[[str, str | None], None] | None = None) -> SignOutcome:
    """Sign every archived, unsigned record of the agency (of one batch with ``batch_id``).

    The key is checked first (SigningKeyError stops before any record); ``on_record`` hears each
    record id with None when signed, or the reason it was not.
    """
    archive.check_component(agency_code, "Mã cơ quan")
    key = policy.check_key(settings, agency_code)
    if key is None:
        raise ConfigError(
            f"Cơ quan {agency_code} chưa có khóa ký số: đặt DIGITIZE_SIGN_KEY (và DIGITIZE_SIGN_PIN) "
            "hoặc thêm cơ quan vào bảng DIGITIZE_SIGN_KEYS, rồi chạy lại 'digitize sign'.")
    url = settings.warehouse_url
    warehouse.migrate(url)
    engine = warehouse.engine_for(url)
    with engine.connect() as conn:
        pending, outcome_signed = _unsigned(conn, agency_code, batch_id)
        location = warehouse.agency_name(conn, agency_code)
    outcome = SignOutcome(already_signed=outcome_signed)
    for record_id in pending:
        try:
            with claims.claim(url, agency_code, record_id):
                if _sign_one(settings, key, agency_code, record_id, location):
                    outcome.signed.append(record_id)
                else:
                    outcome.already_signed += 1
            problem = None
        except RecordError as error:
            problem = outcome.problems[record_id] = error.message
        if on_record:
            on_record(record_id, problem)
    return outcome


def _sign_one(settings: Settings, key: policy.AgencyKey, agency_code: str, record_id: str,
              location: str) -> bool:
    """One record signed as its next version; False when someone signed it meanwhile."""
    engine = warehouse.engine_for(settings.warehouse_url)
    r, v = warehouse.records, warehouse.record_versions
    with engine.connect() as conn:
        row = conn.execute(select(r).where(r.c.agency_code == agency_code,
                                           r.c.record_id == record_id)).mappings().one()
        version = (conn.execute(select(v.c.version).where(v.c.record_pk == row["id"])
                                .order_by(v.c.version.desc())).scalars().first() or 0) + 1
    if row["signature_level"] is not None:
        return False
    current = Path(row["pdf_path"])
    if not current.is_file() or sha256_file(current) != row["pdf_sha256"]:
        raise RecordError(record_id, (
            f"Hồ sơ {record_id}: tệp lưu trữ {current} không còn hoặc đã bị thay đổi so với "
            "SHA-256 trong kho dữ liệu, nên không ký. Chạy 'digitize fixity' để xem, khôi phục tệp "
            "từ bản sao lưu rồi chạy lại 'digitize sign'."))
    work = archive.work_folder(settings.dir("work"), agency_code, record_id)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        info = policy.sign_and_verify(settings, key, record_id, location, current,
                                      work / "signed.pdf")
        target = archive.archive_path(settings.dir("archive"), agency_code,
                                      row["issued_on"].year if row["issued_on"] else None,
                                      record_id, version)
        try:
            digest = archive.place_new(work / "signed.pdf", target)
        except FileExistsError as exc:
            raise RecordError(record_id, (
                f"Hồ sơ {record_id}: đã có một tệp khác tại {target} (một lần chạy bị gián đoạn "
                "để lại?); không ghi đè nên chưa ký. Kiểm tra bằng 'digitize fixity', chuyển tệp "
                "lạ ra khỏi kho lưu trữ rồi chạy lại 'digitize sign'.")) from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    signature = warehouse.signature_fields(info)
    with engine.begin() as conn:
        # updated_at stays: it is when the record was archived, which the report counts by
        conn.execute(r.update().where(r.c.id == row["id"]).values(
            pdf_path=str(target), pdf_sha256=digest, version=version, **signature))
        conn.execute(v.insert().values(record_pk=row["id"], version=version,
                                       batch_pk=row["batch_pk"], pdf_path=str(target),
                                       pdf_sha256=digest, reason="signed",
                                       signature_level=info.level,
                                       created_at=warehouse.now()))
        conn.execute(warehouse.events.insert().values(
            batch_pk=row["batch_pk"], record_id=record_id, stage="sign", outcome="signed",
            detail=(f"{target} sha256={digest} v{version}: PAdES {info.level}, {info.signer} "
                    f"(bản chưa ký v{row['version']} giữ nguyên)"),
            at=warehouse.now()))
    log.info("record %s/%s signed (%s) as version %d", agency_code, record_id, info.level, version)
    return True
