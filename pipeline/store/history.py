"""A record's whole story, for the archivist and the auditor: ``digitize history RECORD_ID``.

Read from the append-only events (one row per attempt of a stage) and the archived versions,
with the record's current state beside them. The holder id is masked; event details are the
messages that were shown at the time.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field
from sqlalchemy import select

from pipeline.privacy import mask_personal_id
from pipeline.store import warehouse


class Event(BaseModel):
    at: dt.datetime
    batch_id: str
    stage: str
    outcome: str
    duration_s: float | None = None
    detail: str = ""


class Version(BaseModel):
    version: int
    created_at: dt.datetime
    batch_id: str
    reason: str
    pdf_path: str
    pdf_sha256: str


class RecordHistory(BaseModel):
    agency_code: str
    record_id: str
    status: str | None = None  # None: never reached a verdict (only events)
    reason: str | None = None
    holder_id: str = ""  # masked
    pdf_path: str | None = None
    version: int | None = None
    # the manifest fields read off the record's first page, not typed (records.read_fields)
    read_fields: list[str] = Field(default_factory=list)
    versions: list[Version] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)


def record_history(url: str, record_id: str, agency_code: str | None = None) -> list[RecordHistory]:
    """The story of ``record_id`` at each agency that has it (or at ``agency_code``), oldest
    event first."""
    warehouse.migrate(url)
    r, e, b, v = warehouse.records, warehouse.events, warehouse.batches, warehouse.record_versions
    agency = [b.c.agency_code == agency_code] if agency_code else []
    stories: dict[str, RecordHistory] = {}
    with warehouse.engine_for(url).connect() as conn:
        for row in conn.execute(select(b.c.agency_code, b.c.batch_id, e.c.at, e.c.stage,
                                       e.c.outcome, e.c.duration_s, e.c.detail)
                                .join(b, b.c.id == e.c.batch_pk)
                                .where(e.c.record_id == record_id, *agency).order_by(e.c.id)):
            story = stories.setdefault(row.agency_code, RecordHistory(
                agency_code=row.agency_code, record_id=record_id))
            story.events.append(Event(at=row.at, batch_id=row.batch_id, stage=row.stage,
                                      outcome=row.outcome, duration_s=row.duration_s,
                                      detail=row.detail or ""))
        current = [r.c.agency_code == agency_code] if agency_code else []
        for row in conn.execute(select(r.c.id, r.c.agency_code, r.c.status, r.c.reason,
                                       r.c.holder_id, r.c.pdf_path, r.c.version,
                                       r.c.read_fields)
                                .where(r.c.record_id == record_id, *current)):
            story = stories.setdefault(row.agency_code, RecordHistory(
                agency_code=row.agency_code, record_id=record_id))
            story.status, story.reason, story.version = row.status, row.reason, row.version
            story.pdf_path, story.holder_id = row.pdf_path, mask_personal_id(row.holder_id)
            story.read_fields = row.read_fields.split(",") if row.read_fields else []
            story.versions = [Version(version=x.version, created_at=x.created_at,
                                      batch_id=x.batch_id, reason=x.reason, pdf_path=x.pdf_path,
                                      pdf_sha256=x.pdf_sha256)
                              for x in conn.execute(
                                  select(v.c.version, v.c.created_at, b.c.batch_id, v.c.reason,
                                         v.c.pdf_path, v.c.pdf_sha256)
                                  .join(b, b.c.id == v.c.batch_pk)
                                  .where(v.c.record_pk == row.id).order_by(v.c.version))]
    return [stories[a] for a in sorted(stories)]
