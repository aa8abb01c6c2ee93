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
    retry_later = 4


class DigitizeError(Exception):
    """Base of every error the pipeline raises on purpose."""

    exit_code: ExitCode = ExitCode.unexpected


class ConfigError(DigitizeError):
    """Settings, scanner profile or environment are invalid; nothing was processed."""

    exit_code = ExitCode.bad_usage


class WarehouseUnreachableError(ConfigError):
    """The warehouse cannot be reached when a command first opens it: a wrong DIGITIZE_DB_URL
    as much as a stopped server, so a usage error for one-off commands. ``digitize run`` counts
    it as an outage (exit 4), as it does a connection lost later in the run."""


class ToolMissingError(ConfigError):
    """An external program (tesseract, ghostscript, ...) or its language data is missing."""


class ReferenceFileError(ConfigError):
    """A reference file (catalogue, agencies, inventory) cannot be read as a whole: unknown
    format, not UTF-8, missing a required column. Nothing from it was imported."""


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


class CatalogueMismatchError(RecordError):
    """The procedure is not in the catalogue, does not apply at the agency's level, or was not
    in force on the issue date."""

    reason = "catalogue_mismatch"


class ExpiredResultError(RecordError):
    """The manifest marks the result as no longer valid: it is reported, not archived."""

    reason = "result_expired"


class ProbableDuplicateError(RecordError):
    """The pages look like those of a record already archived (rescanned paper)."""

    reason = "probable_duplicate"


class ImageTooLargeError(RecordError):
    """A page's declared size (image header, PDF MediaBox) is beyond any scanner's; it is refused
    before decoding, so a crafted or corrupt file cannot exhaust memory."""

    reason = "image_too_large"


class PdfEncryptedError(RecordError):
    """A PDF needs a password (or forbids copying): it cannot be read or archived as is."""

    reason = "pdf_encrypted"


class PdfActiveContentError(RecordError):
    """A PDF carries JavaScript, automatic actions or fillable forms: not an archival scan."""

    reason = "pdf_active_content"


class PathOutsideBatchError(RecordError):
    """A manifest file entry (``../x.tif``, an absolute path, a symbolic link) leads outside the
    batch folder; the pipeline only ever reads scans inside it."""

    reason = "path_outside_batch"


class StackPagesUnassignedError(RecordError):
    """Pages of a scanned stack that no readable cover sheet ties to a record (before the first
    sheet, or after a sheet whose QR code cannot be read)."""

    reason = "stack_pages_unassigned"


class SheetWithoutPagesError(RecordError):
    """A cover sheet followed directly by another sheet (or by blank pages only)."""

    reason = "sheet_without_pages"


class SheetMismatchError(RecordError):
    """A cover sheet disagrees with the batch (another agency) or with the manifest, or a
    manifest row has no sheet in the stack."""

    reason = "sheet_mismatch"


class TransientError(DigitizeError):
    """Nothing is wrong with the batch: a resource was unavailable for a while. Nothing was
    quarantined; running the same command again (or Airflow's retry) finishes the work."""

    exit_code = ExitCode.retry_later


class WarehouseUnavailableError(TransientError):
    """The warehouse database went away (server stopped, network cut, SQLite file locked)."""


class RecordBusyError(TransientError):
    """Another run holds the record's claim for longer than this run was willing to wait."""


class ArchiveStorageError(RecordError):
    """The archive's file system is full (or over quota): the PDF could not be written."""

    reason = "archive_storage_full"


class ArchiveConflictError(RecordError):
    """The archive already holds other files where the record's PDF would go; none is replaced."""

    reason = "archive_conflict"


class UnexpectedRecordError(RecordError):
    """Anything the pipeline did not foresee while working on one record (a library's crash on an
    odd page, a bug): the record is held with the exception text, the batch goes on."""

    reason = "unexpected_error"


class SigningFailedError(RecordError):
    """The record could not be signed with a key that passed the batch's check (its certificate
    expired or was revoked since), or the signature just made does not verify: the record is not
    archived, never archived as signed without a valid signature."""

    reason = "signing_failed"


class SigningKeyError(ConfigError):
    """The agency's signing key cannot be used as configured: the PKCS#12 file or PKCS#11 module
    is missing, the PIN or password is wrong, the certificate is not valid now or lacks the
    digitalSignature / nonRepudiation key usage, or the token holds no key with that label.
    It stops the batch before any page is touched (exit 2); the message names the key, never
    the PIN."""


class SigningUnavailableError(TransientError):
    """Signing cannot be done right now, though nothing is wrong with the key: the USB token is
    not plugged in, or the timestamp server does not answer. Retried like a warehouse outage
    (exit 4, Airflow's retry)."""


class UnusableInputError(DigitizeError):
    """A file given to ``digitize verify`` is not a readable PDF (or cannot be read at all):
    a usage error (exit 2), not a failed verification."""

    exit_code = ExitCode.bad_usage


class QueryError(ConfigError):
    """A search or holder lookup that cannot be run as asked: an empty, too short or too long
    query, an unknown agency, level or phase, a holder id of no known shape. Nothing was
    searched (exit 2, HTTP 400); the message (Vietnamese) says what to change."""
