"""Typed failures, their exit codes and their quarantine reasons, in one place.

Record-level errors carry a Vietnamese message because it is what the archivist reads (in the
quarantine reason and in the Airflow task log); it always names the record or file, the problem
and what to do. Batch- and configuration-level errors stop the run before any record is touched.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    ok = 0
    unexpected = 1
    bad_usage = 2
    some_quarantined = 3


class DigitizeError(Exception):
    """Base of every error the pipeline raises on purpose."""

    exit_code: ExitCode = ExitCode.unexpected


class ConfigError(DigitizeError):
    """Settings, scanner profile or environment are invalid; nothing was processed."""

    exit_code = ExitCode.bad_usage


class ToolMissingError(ConfigError):
    """An external program (tesseract, ghostscript, ...) or its language data is missing."""


class BatchError(DigitizeError):
    """The batch folder as a whole cannot be read (no manifest, unreadable manifest)."""

    exit_code = ExitCode.bad_usage


class RecordError(DigitizeError):
    """One record cannot be archived; it goes to quarantine and the batch goes on.

    ``reason`` is the stable machine-readable code stored with the quarantined record;
    the message (Vietnamese) says which row/file, what is wrong and what to do.
    """

    exit_code = ExitCode.some_quarantined
    reason = "record_error"

    def __init__(self, record_id: str, message: str) -> None:
        super().__init__(message)
        self.record_id = record_id
        self.message = message


class ManifestRowError(RecordError):
    reason = "manifest_row_invalid"


class MissingFileError(RecordError):
    reason = "file_missing"


class PageRangeError(RecordError):
    reason = "page_range_invalid"


class UnreadableImageError(RecordError):
    reason = "image_unreadable"


class DuplicateSourceError(RecordError):
    reason = "duplicate_source"


class OcrFailedError(RecordError):
    reason = "ocr_failed"


class BlankRecordError(RecordError):
    reason = "pages_blank"


class OcrQualityError(RecordError):
    reason = "ocr_low_confidence"


class PdfaCheckError(RecordError):
    reason = "pdfa_check_failed"


def exit_code_for(error: BaseException) -> ExitCode:
    if isinstance(error, DigitizeError):
        return error.exit_code
    return ExitCode.unexpected
