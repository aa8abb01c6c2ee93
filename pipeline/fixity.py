"""Fixity audit: the archive and the source scans hashed again and compared with the warehouse.

Every archived PDF has its SHA-256 in ``records.pdf_sha256`` and every source scan in
``files.sha256`` (with its name and batch; ``batches.source_dir`` says where the batch folder is
now: the inbox, ``done/`` or the user's folder). The audit reports, for both:

- *missing*: a file the warehouse knows that is not on disk;
- *changed*: a file whose content no longer has the recorded SHA-256 (bit rot, an edit);
- *unexpected*: a file on disk the warehouse does not know (under ``DATA/archive/``, or in a
  registered batch folder with content no batch registered).

Memory stays bounded on a big archive: files are hashed in 1 MiB chunks, and the warehouse is
read one agency (archive) or one batch (sources) at a time, so only that agency's or batch's
expected files are held at once. Hidden files (``.name.tmp``: a write in progress) are skipped.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import select

from pipeline import warehouse
from pipeline.archive import atomic_write_bytes
from pipeline.config import Settings
from pipeline.ingest import MANIFEST, sha256_file
from pipeline.models import RecordStatus

log = logging.getLogger(__name__)

Kind = Literal["archive", "source"]
Problem = Literal["missing", "changed", "unexpected"]
KIND_NAMES = {"archive": "bản lưu trữ PDF/A", "source": "tệp quét gốc"}
PROBLEM_NAMES = {"missing": "mất tệp", "changed": "nội dung bị thay đổi",
                 "unexpected": "tệp lạ không có trong kho dữ liệu"}
CSV_COLUMNS = {"kind": "Loại", "problem": "Vấn đề", "path": "Đường dẫn", "agency_code": "Cơ quan",
               "batch_id": "Lô", "record_id": "Mã hồ sơ", "expected_sha256": "SHA-256 đã ghi",
               "actual_sha256": "SHA-256 hiện tại"}


class FixityEntry(BaseModel):
    kind: Kind
    problem: Problem
    path: str
    agency_code: str = ""
    batch_id: str = ""
    record_id: str = ""  # archived PDFs only
    expected_sha256: str = ""
    actual_sha256: str = ""


class FixityReport(BaseModel):
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    archive_dir: str
    archived_checked: int = 0  # archived PDFs the warehouse knows, hashed again
    sources_checked: int = 0  # source scans the warehouse knows, hashed again
    bytes_hashed: int = 0
    missing: list[FixityEntry] = Field(default_factory=list)
    changed: list[FixityEntry] = Field(default_factory=list)
    unexpected: list[FixityEntry] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.unexpected)

    @property
    def entries(self) -> list[FixityEntry]:
        return [*self.missing, *self.changed, *self.unexpected]

    def add(self, entry: FixityEntry) -> None:
        getattr(self, entry.problem).append(entry)


def _visible_files(folder: Path) -> Iterator[Path]:
    """Regular files under ``folder``, hidden ones (temp files of a write in progress) left out."""
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


def _audit_archive(settings: Settings, report: FixityReport) -> None:
    r = warehouse.records
    archive_dir = settings.dir("archive")
    engine = warehouse.engine_for(settings.warehouse_url)
    with engine.connect() as conn:
        agencies = sorted(set(conn.execute(
            select(r.c.agency_code).where(r.c.status == RecordStatus.archived).distinct()).scalars()))
    on_disk = sorted(p.name for p in archive_dir.iterdir() if p.is_dir()) if archive_dir.is_dir() else []
    for agency in sorted(set(agencies) | {a for a in on_disk if not a.startswith(".")}):
        with engine.connect() as conn:
            rows = conn.execute(
                select(r.c.record_id, r.c.pdf_path, r.c.pdf_sha256)
                .where(r.c.agency_code == agency, r.c.status == RecordStatus.archived,
                       r.c.pdf_path.is_not(None))).all()
        expected: dict[Path, tuple[str, str]] = {
            _where(path, archive_dir): (record_id, sha) for record_id, path, sha in rows}
        for path, (record_id, sha) in sorted(expected.items()):
            report.archived_checked += 1
            entry = FixityEntry(kind="archive", problem="missing", path=str(path),
                                agency_code=agency, record_id=record_id, expected_sha256=sha or "")
            actual = _hash(report, path) if path.is_file() else None
            if actual is None:
                report.add(entry)
            elif actual != sha:
                report.add(entry.model_copy(update={"problem": "changed", "actual_sha256": actual}))
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


def _batch_folder(settings: Settings, source_dir: str, agency: str, batch_id: str) -> Path:
    """The batch folder: where the warehouse says, else where a finished (or not yet finished)
    batch would be, in case a move was interrupted before the warehouse was updated."""
    for folder in (Path(source_dir), settings.dir("done") / agency / batch_id,
                   settings.dir("inbox") / agency / batch_id):
        if folder.is_dir():
            return folder
    return Path(source_dir)


def _audit_sources(settings: Settings, report: FixityReport) -> None:
    b, f = warehouse.batches, warehouse.files
    engine = warehouse.engine_for(settings.warehouse_url)
    with engine.connect() as conn:
        batches = conn.execute(select(b.c.id, b.c.agency_code, b.c.batch_id, b.c.source_dir)
                               .order_by(b.c.id)).all()
    for batch_pk, agency, batch_id, source_dir in batches:
        folder = _batch_folder(settings, source_dir, agency, batch_id)
        with engine.connect() as conn:
            expected = {name: sha for name, sha in conn.execute(
                select(f.c.name, f.c.sha256).where(f.c.batch_pk == batch_pk))}
        for name, sha in sorted(expected.items()):
            report.sources_checked += 1
            path = folder / name
            entry = FixityEntry(kind="source", problem="missing", path=str(path), agency_code=agency,
                                batch_id=batch_id, expected_sha256=sha)
            actual = _hash(report, path) if path.is_file() else None
            if actual is None:
                report.add(entry)
            elif actual != sha:
                report.add(entry.model_copy(update={"problem": "changed", "actual_sha256": actual}))
        if not folder.is_dir():
            continue
        for path in _visible_files(folder):
            name = path.relative_to(folder).as_posix()
            if name in expected or name == MANIFEST:
                continue
            actual = _hash(report, path) or ""
            with engine.connect() as conn:
                # the same scan twice (a copy, a rescan) is registered once, under its first batch
                known = conn.execute(select(f.c.id).where(f.c.sha256 == actual)).first()
            if known is None:
                report.add(FixityEntry(kind="source", problem="unexpected", path=str(path),
                                       agency_code=agency, batch_id=batch_id, actual_sha256=actual))


def audit(settings: Settings) -> FixityReport:
    """Hash the archive and the registered source scans again; compare with the warehouse."""
    warehouse.migrate(settings.warehouse_url)
    report = FixityReport(started_at=warehouse.now(), archive_dir=str(settings.dir("archive")))
    _audit_archive(settings, report)
    _audit_sources(settings, report)
    report.finished_at = warehouse.now()
    return report


def summary_lines(report: FixityReport) -> list[str]:
    """What a person reads first (task log, terminal): the verdict, then one line per problem."""
    head = (f"Kiểm tra toàn vẹn: {report.archived_checked} bản lưu trữ PDF/A và "
            f"{report.sources_checked} tệp quét gốc đã được băm lại.")
    if report.ok:
        return [head, "Không phát hiện vấn đề nào."]
    lines = [head, f"PHÁT HIỆN VẤN ĐỀ: {len(report.missing)} mất tệp, {len(report.changed)} bị thay "
             f"đổi, {len(report.unexpected)} tệp lạ. Khôi phục tệp từ bản sao lưu (so khớp SHA-256 "
             "đã ghi) hoặc xác minh nguồn gốc tệp lạ trước khi xóa."]
    for e in report.entries:
        owner = f"hồ sơ {e.record_id}" if e.record_id else f"lô {e.agency_code}/{e.batch_id}" \
            if e.batch_id else e.agency_code or "-"
        lines.append(f"- {PROBLEM_NAMES[e.problem]}: {KIND_NAMES[e.kind]} {e.path} ({owner})")
    return lines


def render_csv(report: FixityReport) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS.values())
    for entry in report.entries:
        row = entry.model_dump()
        row["kind"], row["problem"] = KIND_NAMES[entry.kind], PROBLEM_NAMES[entry.problem]
        writer.writerow([row[k] for k in CSV_COLUMNS])
    return buffer.getvalue().encode("utf-8-sig")  # BOM: Excel opens it as UTF-8


def render_json(report: FixityReport) -> bytes:
    data = {**report.model_dump(mode="json"), "ok": report.ok}
    return json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")


def write_report(settings: Settings, report: FixityReport, out: Path | None = None) -> dict[str, str]:
    """``fixity-<date>.json`` and ``.csv`` under ``DATA/reports`` (or ``out`` and its ``.csv``),
    each written atomically, and the audit's counts in ``fixity_audits``; returns the paths."""
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
            unexpected=len(report.unexpected), report_path=str(json_path)))
    return {"json": str(json_path), "csv": str(csv_path)}
