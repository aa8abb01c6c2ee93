"""Plain data passed between stages (and through Airflow XCom as JSON)."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field


class PageRef(BaseModel):
    """One page of a record: a page of a source file in the batch folder."""

    file: str
    page_in_file: int = 1  # 1-based


class ManifestRow(BaseModel):
    """A manifest.csv row after header aliasing and NFC normalisation (values as written)."""

    line: int  # line number in manifest.csv (the header is line 1), as the clerk sees it
    record_id: str = ""
    procedure_code: str = ""
    procedure_name: str = ""  # optional column; helps suggest the right code when it is wrong
    result_number: str = ""
    issued_on_raw: str = ""
    issued_on: dt.date | None = None  # None when issued_on_raw is not a known date format
    holder_name: str = ""
    holder_id: str = ""
    still_valid_raw: str = ""
    still_valid: bool | None = None
    files_raw: str = ""
    page_count_raw: str = ""  # optional column: the pages the clerk counted
    # optional column: record ids the archivist confirmed are other papers, not this one rescanned
    not_duplicate_of: str = ""
    # optional column "Thay bản đã lưu", filled by the archivist: this row (a re-scan, a corrected
    # row) is archived as the next version of the record already archived under its id
    replace_archived_raw: str = ""
    replace_archived: bool = False
    page_count: int | None = None
    # where the row came from, for the archivist, when it is not a manifest line: a cover sheet
    # in a scanned stack (pipeline.intake.separator)
    source: str = ""

    @property
    def where(self) -> str:
        """Where the archivist finds the row, to start a message: "Dòng 12 của manifest.csv"."""
        return self.source or f"Dòng {self.line} của manifest.csv"

    @property
    def where_inline(self) -> str:
        """:attr:`where` inside a sentence: "Hồ sơ HS-1 (dòng 12 của manifest.csv)"."""
        return self.where[:1].lower() + self.where[1:]


class Problem(BaseModel):
    """A rule a manifest row breaks; any problem sends the record to quarantine."""

    rule: str
    field: str
    message: str  # Vietnamese, for the archivist: row, field, what was found, what to do


class SourceFile(BaseModel):
    name: str
    sha256: str
    size: int
    page_count: int
    readable: bool = True
    error: str = ""
    # the manifest rule an unreadable file breaks: file_readable, image_too_large, pdf_encrypted, ...
    error_rule: str = ""


class PageRead(BaseModel):
    """A manifest field as the watcher's draft read it off a record's first page."""

    value: str
    sure: bool  # read at or above the draft's confidence threshold, not left for review


class RecordPlan(BaseModel):
    row: ManifestRow
    pages: list[PageRef] = Field(default_factory=list)
    problems: list[Problem] = Field(default_factory=list)
    # field -> what the watcher's draft read for it (pipeline.drafting.watch): tells the fields
    # read off the page from those a person typed; empty when the manifest was not drafted
    read: dict[str, PageRead] = Field(default_factory=dict)
    # in a separator-sheet stack: the QR text of the record's cover sheet, and where it was scanned
    sheet: str = ""
    sheet_page: PageRef | None = None
    # pages (or a manifest row) a stack could not tie to one record: quarantined as they are,
    # without the manifest rules, which would only repeat that the record is unknown
    unsplit: bool = False

    @property
    def record_id(self) -> str:
        return self.row.record_id or f"dong-{self.row.line}"


class BatchPlan(BaseModel):
    agency_code: str
    batch_id: str
    batch_dir: Path
    manifest_sha256: str
    files: dict[str, SourceFile]
    records: list[RecordPlan]


class RecordTask(BaseModel):
    """Everything one record's work needs; small enough to travel through Airflow XCom."""

    agency_code: str
    batch_id: str
    batch_dir: str
    batch_pk: int
    record: RecordPlan
    sources: dict[str, SourceFile]
    validation_docs: str | None = None  # the batch's Data Docs page, linked from quarantine


class RecordStatus(StrEnum):
    archived = "archived"
    quarantined = "quarantined"


class PageResult(BaseModel):
    page_no: int  # 1-based within the record
    file: str
    page_in_file: int
    source_sha256: str
    width: int
    height: int
    dpi: int
    rotation: int  # degrees turned clockwise to make the page upright
    skew: float  # degrees of skew found and removed
    encoding: str = ""  # how the archived image is stored: bitonal / gray / mixed
    flags: list[str] = Field(default_factory=list)  # blank, too_dark, blurred, low_dpi, ...
    low_confidence_words: int = 0
    low_confidence_with_diacritics: int = 0  # tone marks are where Tesseract's `vie` fails
    confidence: float | None = None  # mean Tesseract word confidence, 0-100
    phash: str = ""  # perceptual hash of the cleaned page (probable duplicates)


class RecordResult(BaseModel):
    record_id: str
    line: int
    status: RecordStatus
    pdf_path: str | None = None  # the current version's file
    pdf_sha256: str | None = None
    version: int | None = None  # of the archived PDF: 1, then one more per re-archiving
    page_count: int = 0
    pages: list[PageResult] = Field(default_factory=list)
    mean_confidence: float | None = None
    reason: str | None = None
    errors: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)  # archived, but the archivist should look
    timings: dict[str, float] = Field(default_factory=dict)  # seconds per stage (metrics)
    # CPU seconds of the process that ran the record and of the programs it started for it
    # (Tesseract), while on it: the record's own where the process runs nothing else meanwhile
    # (a pool worker, an Airflow record task); and of it, the programs' (where OCRmyPDF runs in
    # a child process, not in a worker, its Python too)
    cpu_seconds: float | None = None
    programs_cpu_seconds: float | None = None
    already_archived: bool = False
    # ký số of the archived file: PAdES level (B-B, B-T, B-LT, B-LTA), signer, time; None unsigned
    signature_level: str | None = None
    signed_by: str | None = None
    signed_at: dt.datetime | None = None


class BatchOutcome(BaseModel):
    archived: int
    not_archived: int
    moved_to: str | None = None


class BatchSummary(BaseModel):
    agency_code: str
    batch_id: str
    records: list[RecordResult]
    moved_to: str | None = None

    @property
    def archived(self) -> int:
        return sum(r.status is RecordStatus.archived for r in self.records)

    @property
    def quarantined(self) -> int:
        return sum(r.status is RecordStatus.quarantined for r in self.records)
