"""Fixity audit: the archive and the source scans hashed again and compared with the warehouse.

Every archived version of a record has its path and SHA-256 in ``record_versions`` (a record
archived before versions existed: in ``records.pdf_path``/``pdf_sha256``), and every source scan
in ``files.sha256`` (with its name and batch; ``batches.source_dir`` says where the batch folder
is now: the inbox, ``done/`` or the user's folder). The audit reports, for both:

- *missing*: a file the warehouse knows that is not on disk;
- *changed*: a file whose content no longer has the recorded SHA-256 (bit rot, an edit);
- *unexpected*: a file on disk the warehouse does not know (under ``DATA/archive/``, or in a
  registered batch folder with content no batch registered);
- *shared*: one file claimed by several archived versions, or one folder by several batches;
- *signature*: a signed version, intact by its hash, whose signature no longer verifies (its
  certificate chain no longer trusted, its PDF/A identification gone): what someone reusing the
  file would be told by ``digitize verify``.

Expectations are never keyed by path alone: a path claimed twice ("last row wins") would hide the
record whose file was lost. Each version row is checked on its own against its own hash, and a
source scan is expected by its SHA-256 for every archived record whose pages come from it.

Memory stays bounded on a big archive: files are hashed in 1 MiB chunks, and the warehouse is
read one agency (archive) or one batch (sources) at a time, so only that agency's or batch's
expected files are held at once. Hidden files (``.name.tmp``: a write in progress; the batch
mark ``.digitize-batch.json``) are skipped.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import logging
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, NamedTuple

from pydantic import BaseModel, Field
from sqlalchemy import Connection, exists, select

from pipeline.config import Settings
from pipeline.intake.ingest import MANIFEST, sha256_file
from pipeline.models import RecordStatus
from pipeline.store import warehouse
from pipeline.store.archive import atomic_write_bytes

log = logging.getLogger(__name__)

Kind = Literal["archive", "source"]
Problem = Literal["missing", "changed", "unexpected", "shared", "signature"]
KIND_NAMES = {"archive": "bản lưu trữ PDF/A", "source": "tệp quét gốc"}
PROBLEM_NAMES = {"missing": "mất tệp", "changed": "nội dung bị thay đổi",
                 "unexpected": "tệp lạ không có trong kho dữ liệu",
                 "shared": "nhiều hồ sơ trỏ cùng một tệp",
                 "signature": "chữ ký số không còn hợp lệ"}
CSV_COLUMNS = {"kind": "Loại", "problem": "Vấn đề", "path": "Đường dẫn", "agency_code": "Cơ quan",
               "batch_id": "Lô", "record_id": "Mã hồ sơ", "version": "Phiên bản",
               "expected_sha256": "SHA-256 đã ghi", "actual_sha256": "SHA-256 hiện tại",
               "detail": "Chi tiết"}


class FixityEntry(BaseModel):
    kind: Kind
    problem: Problem
    path: str  # empty for a scan that archived pages use but no ``files`` row locates
    agency_code: str = ""
    batch_id: str = ""
    record_id: str = ""  # archived PDFs: the record of the version row checked
    version: int | None = None  # archived PDFs: that row's version (None: no version row)
    # every record concerned: the version row's record; the archived records whose pages come
    # from a source scan; the records whose versions claim one shared file
    record_ids: list[str] = Field(default_factory=list)
    # a batch folder claimed by several batches: those batches (of ``agency_code``)
    batch_ids: list[str] = Field(default_factory=list)
    expected_sha256: str = ""
    actual_sha256: str = ""
    detail: str = ""  # signature: why it does not verify (Vietnamese)

    @property
    def owner(self) -> str:
        """Whose file it is, for people: the record (and version), the batch and the records
        that depend on its scan, or the agency."""
        if self.batch_ids:
            return ", ".join(f"lô {self.agency_code}/{b}" for b in self.batch_ids)
        records = ", ".join(self.record_ids or ([self.record_id] if self.record_id else []))
        if self.kind == "archive" and records:
            return f"hồ sơ {records}" + (f", phiên bản {self.version}" if self.version else "")
        parts = [f"lô {self.agency_code}/{self.batch_id}" if self.batch_id else self.agency_code]
        if records:
            parts.append(f"hồ sơ {records}")
        return ", ".join(p for p in parts if p) or "-"


class FixityReport(BaseModel):
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    archive_dir: str
    archived_checked: int = 0  # archived versions the warehouse knows, each compared on its own
    sources_checked: int = 0  # registered source scans compared (unused ones only when present)
    bytes_hashed: int = 0
    missing: list[FixityEntry] = Field(default_factory=list)
    changed: list[FixityEntry] = Field(default_factory=list)
    unexpected: list[FixityEntry] = Field(default_factory=list)
    shared: list[FixityEntry] = Field(default_factory=list)
    signatures_checked: int = 0  # signed versions whose signature was verified again
    signature: list[FixityEntry] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.unexpected or self.shared
                    or self.signature)

    @property
    def entries(self) -> list[FixityEntry]:
        # shared first: it explains the missing or changed entries of the same file beside it
        return [*self.shared, *self.missing, *self.changed, *self.signature, *self.unexpected]

    def add(self, entry: FixityEntry) -> None:
        getattr(self, entry.problem).append(entry)


def _visible_files(folder: Path) -> Iterator[Path]:
    """Regular files under ``folder``, hidden ones (temp files of a write in progress, the batch
    mark) left out."""
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith("."):
                yield Path(root) / name


def _hash(report: FixityReport, path: Path) -> str | None:
    """The file's SHA-256, or None when it cannot be read (counted as missing by the caller)."""
    try:
        digest = sha256_file(path)
    except OSError as exc:
        log.warning("fixity: cannot read %s: %s", path, exc)
        return None
    report.bytes_hashed += path.stat().st_size
    return digest


def _where(stored: str, archive_dir: Path) -> Path:
    """Where an archived PDF is now: its path relative to the archive folder is what counts,
    so a data folder mounted elsewhere (another machine, a restored backup) is audited too."""
    parts = Path(stored).parts
    if "archive" in parts:
        relative = parts[len(parts) - parts[::-1].index("archive"):]
        return archive_dir.joinpath(*relative)
    return Path(stored)


# --- the archive -----------------------------------------------------------------------------------

class _Version(NamedTuple):
    """One archived version the warehouse expects on disk."""

    record_id: str
    version: int | None
    pdf_path: str
    pdf_sha256: str
    signature_level: str | None


def _archived_agencies(conn: Connection) -> set[str]:
    r, v = warehouse.records, warehouse.record_versions
    has_version = exists().where(v.c.record_pk == r.c.id)
    # every record with a version row, whatever its status now: its files are never deleted
    return set(conn.execute(select(r.c.agency_code).where(
        (r.c.status == RecordStatus.archived) | has_version).distinct()).scalars())


def _expected_versions(conn: Connection, agency: str) -> list[_Version]:
    """The agency's archived versions: its ``record_versions`` rows, and for an archived record
    without any (loaded before versions, or in bulk) the file its ``records`` row names."""
    r, v = warehouse.records, warehouse.record_versions
    rows = conn.execute(
        select(r.c.record_id, v.c.version, v.c.pdf_path, v.c.pdf_sha256, v.c.signature_level)
        .join(r, r.c.id == v.c.record_pk).where(r.c.agency_code == agency)
        .order_by(r.c.record_id, v.c.version)).all()
    fallback = conn.execute(
        select(r.c.record_id, r.c.version, r.c.pdf_path, r.c.pdf_sha256, r.c.signature_level)
        .where(r.c.agency_code == agency, r.c.status == RecordStatus.archived,
               r.c.pdf_path.is_not(None), ~exists().where(v.c.record_pk == r.c.id))
        .order_by(r.c.record_id)).all()
    return [_Version(rid, version, path, sha or "", level)
            for rid, version, path, sha, level in [*rows, *fallback]]


def _verify_signature(settings: Settings, report: FixityReport, path: Path,
                      entry: FixityEntry) -> None:
    """A signed version, intact by its hash, verified as whoever reuses it would verify it."""
    from pipeline.signing.verify import verify_pdf  # pyHanko: only an archive with signatures

    report.signatures_checked += 1
    verdict = verify_pdf(path, (settings.sign_trust,) if settings.sign_trust else ())
    if not verdict.valid:
        report.add(entry.model_copy(update={
            "problem": "signature", "actual_sha256": entry.expected_sha256,
            "detail": "; ".join(verdict.problems)}))


def _audit_archive(settings: Settings, report: FixityReport) -> None:
    archive_dir = settings.dir("archive")
    engine = warehouse.engine_for(settings.warehouse_url)
    with engine.connect() as conn:
        agencies = _archived_agencies(conn)
    on_disk = sorted(p.name for p in archive_dir.iterdir() if p.is_dir()) if archive_dir.is_dir() else []
    for agency in sorted(agencies | {a for a in on_disk if not a.startswith(".")}):
        with engine.connect() as conn:
            versions = _expected_versions(conn, agency)
        # a list per path, never one row: two rows claiming one file is what must show
        expected: dict[Path, list[_Version]] = defaultdict(list)
        for row in versions:
            expected[_where(row.pdf_path, archive_dir)].append(row)
        for path, claims in sorted(expected.items()):
            actual = _hash(report, path) if path.is_file() else None  # once, however many claims
            if len(claims) > 1:
                report.add(FixityEntry(
                    kind="archive", problem="shared", path=str(path), agency_code=agency,
                    record_ids=list(dict.fromkeys(c.record_id for c in claims)),
                    actual_sha256=actual or ""))
            for claim in claims:
                report.archived_checked += 1
                entry = FixityEntry(kind="archive", problem="missing", path=str(path),
                                    agency_code=agency, record_id=claim.record_id,
                                    version=claim.version, record_ids=[claim.record_id],
                                    expected_sha256=claim.pdf_sha256)
                if actual is None:
                    report.add(entry)
                elif actual != claim.pdf_sha256:
                    report.add(entry.model_copy(update={"problem": "changed", "actual_sha256": actual}))
                elif claim.signature_level:
                    _verify_signature(settings, report, path, entry)
        if (archive_dir / agency).is_dir():
            for path in _visible_files(archive_dir / agency):
                if path not in expected:
                    report.add(FixityEntry(kind="archive", problem="unexpected", path=str(path),
                                           agency_code=agency, actual_sha256=_hash(report, path) or ""))
    # anything straight under archive/ (outside an agency folder) is not the archive's layout
    if archive_dir.is_dir():
        for path in sorted(p for p in archive_dir.iterdir() if p.is_file() and not p.name.startswith(".")):
            report.add(FixityEntry(kind="archive", problem="unexpected", path=str(path),
                                   actual_sha256=_hash(report, path) or ""))


# --- the source scans ------------------------------------------------------------------------------

def _batch_folder(settings: Settings, source_dir: str, agency: str, batch_id: str) -> Path:
    """The batch folder: where the warehouse says, else where a finished (or not yet finished)
    batch would be, in case a move was interrupted before the warehouse was updated."""
    for folder in (Path(source_dir), settings.dir("done") / agency / batch_id,
                   settings.dir("inbox") / agency / batch_id):
        if folder.is_dir():
            return folder
    return Path(source_dir)


def _batch_files(conn: Connection, batch_pk: int) -> dict[str, tuple[str, list[str]]]:
    """The scans registered under the batch: SHA-256 -> (name, archived records using it)."""
    f, p, r = warehouse.files, warehouse.pages, warehouse.records
    used_by = (f.outerjoin(p, p.c.file_sha256 == f.c.sha256)
               .outerjoin(r, (r.c.id == p.c.record_pk) & (r.c.status == RecordStatus.archived)))
    found: dict[str, tuple[str, list[str]]] = {}
    for sha, name, record_id in conn.execute(
            select(f.c.sha256, f.c.name, r.c.record_id).select_from(used_by)
            .where(f.c.batch_pk == batch_pk).distinct().order_by(f.c.name, r.c.record_id)):
        _, users = found.setdefault(sha, (name, []))
        if record_id is not None:
            users.append(record_id)
    return found


def _audit_batch(report: FixityReport, conn: Connection, batch_pk: int, agency: str, batch_id: str,
                 folder: Path) -> None:
    f = warehouse.files
    registered = _batch_files(conn, batch_pk)
    # A clerk may replace a scan of a held record under the same name: each content then has
    # its own row, and the name holding any of them is not damage to a scan nobody archived.
    hashes_by_name: dict[str, set[str]] = defaultdict(set)
    for sha, (name, _) in registered.items():
        hashes_by_name[name].add(sha)
    actual_by_name: dict[str, str | None] = {}
    for sha, (name, users) in sorted(registered.items(), key=lambda item: (item[1][0], item[0])):
        path = folder / name
        if not users and not path.is_file():
            continue  # no archived record needs it (its record held, its scan replaced): fine
        report.sources_checked += 1
        if name not in actual_by_name:
            actual_by_name[name] = _hash(report, path) if path.is_file() else None
        actual = actual_by_name[name]
        entry = FixityEntry(kind="source", problem="missing", path=str(path), agency_code=agency,
                            batch_id=batch_id, record_ids=users, expected_sha256=sha)
        if actual is None:
            report.add(entry)
        elif actual != sha and (users or actual not in hashes_by_name[name]):
            report.add(entry.model_copy(update={"problem": "changed", "actual_sha256": actual}))
    if not folder.is_dir():
        return
    for path in _visible_files(folder):
        name = path.relative_to(folder).as_posix()
        if name in hashes_by_name or name == MANIFEST:
            continue
        actual = _hash(report, path) or ""
        # the same scan twice (a copy, a rescan) is registered once, under its first batch
        known = conn.execute(select(f.c.id).where(f.c.sha256 == actual)).first()
        if known is None:
            report.add(FixityEntry(kind="source", problem="unexpected", path=str(path),
                                   agency_code=agency, batch_id=batch_id, actual_sha256=actual))


def _audit_unregistered_scans(settings: Settings, report: FixityReport) -> None:
    """Scans that archived pages come from but no ``files`` row locates: lost for certain."""
    f, p, r = warehouse.files, warehouse.pages, warehouse.records
    query = (select(p.c.file_sha256, r.c.agency_code, r.c.record_id)
             .join(r, r.c.id == p.c.record_pk)
             .where(r.c.status == RecordStatus.archived,
                    ~exists().where(f.c.sha256 == p.c.file_sha256))
             .distinct().order_by(p.c.file_sha256, r.c.agency_code, r.c.record_id))
    engine = warehouse.engine_for(settings.warehouse_url)
    # streamed: a warehouse loaded without its files rows could name millions of pages here
    with engine.connect().execution_options(stream_results=True, yield_per=1000) as conn:
        for sha, rows in itertools.groupby(conn.execute(query), key=lambda row: row[0]):
            users = [(agency, record_id) for _, agency, record_id in rows]
            report.sources_checked += 1
            report.add(FixityEntry(kind="source", problem="missing", path="",
                                   agency_code=users[0][0], record_ids=[rid for _, rid in users],
                                   expected_sha256=sha))


def _audit_sources(settings: Settings, report: FixityReport) -> None:
    b = warehouse.batches
    engine = warehouse.engine_for(settings.warehouse_url)
    with engine.connect() as conn:
        batches = conn.execute(select(b.c.id, b.c.agency_code, b.c.batch_id, b.c.source_dir)
                               .order_by(b.c.id)).all()
    folders = {pk: _batch_folder(settings, source_dir, agency, batch_id)
               for pk, agency, batch_id, source_dir in batches}
    # Two batches in one folder: the later one's scans replaced the earlier one's (a reused
    # folder name), so what the earlier batch archived lost its sources; say so by name.
    # Compared resolved (a symlink, "..", a trailing slash name the same folder); reported as
    # the first batch's folder is named.
    claimed: dict[Path, list[tuple[int, str, str]]] = defaultdict(list)
    for pk, agency, batch_id, _ in batches:
        claimed[folders[pk].resolve()].append((pk, agency, batch_id))
    for owners in claimed.values():
        if len(owners) > 1:
            first_pk, agency, _ = owners[0]
            report.add(FixityEntry(kind="source", problem="shared", path=str(folders[first_pk]),
                                   agency_code=agency, batch_ids=[bid for *_, bid in owners]))
    for pk, agency, batch_id, _ in batches:
        with engine.connect() as conn:
            _audit_batch(report, conn, pk, agency, batch_id, folders[pk])
    _audit_unregistered_scans(settings, report)


def audit(settings: Settings) -> FixityReport:
    """Hash the archive and the registered source scans again; compare with the warehouse."""
    warehouse.migrate(settings.warehouse_url)
    report = FixityReport(started_at=warehouse.now(), archive_dir=str(settings.dir("archive")))
    _audit_archive(settings, report)
    _audit_sources(settings, report)
    report.finished_at = warehouse.now()
    return report


# --- the report ------------------------------------------------------------------------------------

def summary_lines(report: FixityReport) -> list[str]:
    """What a person reads first (task log, terminal): the verdict, then one line per problem."""
    head = (f"Kiểm tra toàn vẹn: {report.archived_checked} bản lưu trữ PDF/A và "
            f"{report.sources_checked} tệp quét gốc đã được băm lại"
            + (f"; {report.signatures_checked} chữ ký số đã được kiểm tra lại."
               if report.signatures_checked else "."))
    if report.ok:
        return [head, "Không phát hiện vấn đề nào."]
    lines = [head, f"PHÁT HIỆN VẤN ĐỀ: {len(report.missing)} mất tệp, {len(report.changed)} bị thay "
             f"đổi, {len(report.unexpected)} tệp lạ, {len(report.shared)} tệp dùng chung, "
             f"{len(report.signature)} chữ ký số không hợp lệ. Khôi phục "
             "tệp từ bản sao lưu (so khớp SHA-256 đã ghi) hoặc xác minh nguồn gốc tệp lạ trước khi "
             "xóa; mỗi hồ sơ và mỗi lô phải có tệp riêng: với tệp dùng chung, xem lịch sử từng hồ sơ "
             "(digitize history) để tìm bản bị mất."]
    for e in report.entries:
        what = "thư mục lô" if e.batch_ids else KIND_NAMES[e.kind]
        where = e.path or f"(không rõ vị trí, SHA-256 {e.expected_sha256})"
        lines.append(f"- {PROBLEM_NAMES[e.problem]}: {what} {where} ({e.owner})"
                     + (f": {e.detail}" if e.detail else ""))
    return lines


def render_csv(report: FixityReport) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS.values())
    for entry in report.entries:
        row = entry.model_dump()
        row["kind"], row["problem"] = KIND_NAMES[entry.kind], PROBLEM_NAMES[entry.problem]
        # one cell each: several records (a shared file, a scan of a stack) or batches joined
        row["record_id"] = "; ".join(entry.record_ids) or entry.record_id
        row["batch_id"] = "; ".join(entry.batch_ids) or entry.batch_id
        row["version"] = "" if entry.version is None else entry.version
        writer.writerow([row[k] for k in CSV_COLUMNS])
    return buffer.getvalue().encode("utf-8-sig")  # BOM: Excel opens it as UTF-8


def render_json(report: FixityReport) -> bytes:
    data = {**report.model_dump(mode="json"), "ok": report.ok}
    return json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")


def write_report(settings: Settings, report: FixityReport, out: Path | None = None) -> dict[str, str]:
    """``fixity-<date>.json`` and ``.csv`` under ``DATA/reports`` (or ``out`` and its ``.csv``),
    each written atomically, and the audit's counts in ``fixity_audits``; returns the paths.

    ``fixity_audits`` has no column for *shared* entries: those are in the files only."""
    if out is None:
        base = settings.dir("reports") / f"fixity-{report.started_at:%Y-%m-%d}"
    else:
        base = out.with_suffix("") if out.suffix.lower() in (".json", ".csv") else out
    json_path, csv_path = (base.parent / f"{base.name}{suffix}" for suffix in (".json", ".csv"))
    atomic_write_bytes(json_path, render_json(report))
    atomic_write_bytes(csv_path, render_csv(report))
    with warehouse.engine_for(settings.warehouse_url).begin() as conn:
        conn.execute(warehouse.fixity_audits.insert().values(
            started_at=report.started_at, finished_at=report.finished_at or warehouse.now(),
            archived_checked=report.archived_checked, sources_checked=report.sources_checked,
            missing=len(report.missing), changed=len(report.changed),
            unexpected=len(report.unexpected), shared=len(report.shared),
            report_path=str(json_path)))
    return {"json": str(json_path), "csv": str(csv_path)}
