"""The back catalogue signed: records archived unsigned (before the agency had a key, or before
ký số existed) get their current file signed as a new version beside the unsigned one.

What ``digitize sign --agency CODE [--batch ID]`` runs. Idempotent: a record already signed is
left alone; a record whose archived file is missing or changed is not signed (the fixity audit
says what happened to it), and the others go on. How a new version is placed and recorded is
shared with the archive timestamp renewal (``renewal``).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, RowMapping, select

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


def summary_lines(outcome: SignOutcome) -> list[str]:
    """What a person reads first (task log, terminal): the counts, then each record not signed."""
    head = (f"Đã ký: {len(outcome.signed)}   Đã ký từ trước: {outcome.already_signed}   "
            f"Chưa ký được: {len(outcome.problems)}")
    return [head, *(f"- {reason}" for reason in outcome.problems.values())]


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
        done = claimed(url, agency_code, record_id, outcome.problems, on_record,
                       lambda rid=record_id: _sign_one(settings, key, agency_code, rid, location))
        if done:
            outcome.signed.append(record_id)
        elif done is False:
            outcome.already_signed += 1
    return outcome


def claimed(url: str, agency_code: str, record_id: str, problems: dict[str, str],
            on_record: Callable[[str, str | None], None] | None,
            work: Callable[[], bool]) -> bool | None:
    """``work`` on one record under its claim: True done, False nothing to do (someone did it
    meanwhile), None when the record cannot be done (its reason goes to ``problems``).
    ``on_record`` hears the records done or not done."""
    try:
        with claims.claim(url, agency_code, record_id):
            if not work():
                return False
        problem = None
    except RecordError as error:
        problem = problems[record_id] = error.message
    if on_record:
        on_record(record_id, problem)
    return problem is None


@dataclass(frozen=True)
class NewVersion:
    """A kind of new version made from a record's current file: how messages name the work,
    and how the warehouse records it."""

    verb: str  # Vietnamese, as in "nên không {verb}"
    rerun: str  # the command that finishes the work after a fix
    reason: str  # record_versions.reason
    outcome: str  # the "sign" event's outcome


SIGNED = NewVersion("ký", "digitize sign", "signed", "signed")


def current_version(settings: Settings, agency_code: str,
                    record_id: str) -> tuple[RowMapping, int]:
    """The record's warehouse row and the number its next version gets."""
    r, v = warehouse.records, warehouse.record_versions
    with warehouse.engine_for(settings.warehouse_url).connect() as conn:
        row = conn.execute(select(r).where(r.c.agency_code == agency_code,
                                           r.c.record_id == record_id)).mappings().one()
        version = (conn.execute(select(v.c.version).where(v.c.record_pk == row["id"])
                                .order_by(v.c.version.desc())).scalars().first() or 0) + 1
    return row, version


def intact_file(row: RowMapping, kind: NewVersion) -> Path:
    """The record's current file, when it still has the SHA-256 the warehouse holds: nothing
    is made from a file the fixity audit would report."""
    current, record_id = Path(row["pdf_path"]), row["record_id"]
    if not current.is_file() or sha256_file(current) != row["pdf_sha256"]:
        raise RecordError(record_id, (
            f"Hồ sơ {record_id}: tệp lưu trữ {current} không còn hoặc đã bị thay đổi so với "
            f"SHA-256 trong kho dữ liệu, nên không {kind.verb}. Chạy 'digitize fixity' để xem, "
            f"khôi phục tệp từ bản sao lưu rồi chạy lại '{kind.rerun}'."))
    return current


def place_next_version(settings: Settings, row: RowMapping, version: int, made: Path,
                       kind: NewVersion, *, level: str, what: str,
                       signature: Mapping[str, Any] | None = None) -> Path:
    """``made`` placed as the record's version ``version`` beside the earlier ones (none is
    overwritten), and in one transaction the record pointed at it (with ``signature``, the
    ký số columns that change), its version row and its event (``what``: Vietnamese, after
    the file, its hash and version); returns where it was placed."""
    record_id = row["record_id"]
    target = archive.archive_path(settings.dir("archive"), row["agency_code"],
                                  row["issued_on"].year if row["issued_on"] else None,
                                  record_id, version)
    try:
        digest = archive.place_new(made, target)
    except FileExistsError as exc:
        raise RecordError(record_id, (
            f"Hồ sơ {record_id}: đã có một tệp khác tại {target} (một lần chạy bị gián đoạn "
            f"để lại?); không ghi đè nên chưa {kind.verb}. Kiểm tra bằng 'digitize fixity', "
            f"chuyển tệp lạ ra khỏi kho lưu trữ rồi chạy lại '{kind.rerun}'.")) from exc
    r, v = warehouse.records, warehouse.record_versions
    with warehouse.engine_for(settings.warehouse_url).begin() as conn:
        # updated_at (and signed_at unless re-signed) stay: the report counts by them
        conn.execute(r.update().where(r.c.id == row["id"]).values(
            pdf_path=str(target), pdf_sha256=digest, version=version, **(signature or {})))
        conn.execute(v.insert().values(record_pk=row["id"], version=version,
                                       batch_pk=row["batch_pk"], pdf_path=str(target),
                                       pdf_sha256=digest, reason=kind.reason,
                                       signature_level=level, created_at=warehouse.now()))
        conn.execute(warehouse.events.insert().values(
            batch_pk=row["batch_pk"], record_id=record_id, stage="sign", outcome=kind.outcome,
            detail=f"{target} sha256={digest} v{version}: {what}", at=warehouse.now()))
    return target


def _sign_one(settings: Settings, key: policy.AgencyKey, agency_code: str, record_id: str,
              location: str) -> bool:
    """One record signed as its next version; False when someone signed it meanwhile."""
    row, version = current_version(settings, agency_code, record_id)
    if row["signature_level"] is not None:
        return False
    current = intact_file(row, SIGNED)
    work = archive.work_folder(settings.dir("work"), agency_code, record_id)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        info = policy.sign_and_verify(settings, key, record_id, location, current,
                                      work / "signed.pdf")
        place_next_version(
            settings, row, version, work / "signed.pdf", SIGNED, level=info.level,
            what=(f"PAdES {info.level}, {info.signer} (bản chưa ký v{row['version']} giữ "
                  "nguyên)"),
            signature=warehouse.signature_fields(info))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("record %s/%s signed (%s) as version %d", agency_code, record_id, info.level, version)
    return True
