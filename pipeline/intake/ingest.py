"""Ingest: read a batch folder's manifest.csv, fingerprint its files, plan its records."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import unicodedata
from collections.abc import Collection
from pathlib import Path, PureWindowsPath

from pipeline.errors import BatchError
from pipeline.intake import pages, separator
from pipeline.intake.tables import TableError, read_table
from pipeline.models import BatchPlan, ManifestRow, PageRef, Problem, RecordPlan, SourceFile
from pipeline.text import nfc

log = logging.getLogger(__name__)

MANIFEST = "manifest.csv"

# Header as written by the clerk (lower-cased, NFC, spaces collapsed) -> field name.
HEADER_ALIASES: dict[str, str] = {
    "record_id": "record_id",
    "mã hồ sơ": "record_id",
    "ma ho so": "record_id",
    "procedure_code": "procedure_code",
    "mã tthc": "procedure_code",
    "mã thủ tục": "procedure_code",
    "ma tthc": "procedure_code",
    "procedure_name": "procedure_name",
    "tên tthc": "procedure_name",
    "tên thủ tục": "procedure_name",
    "result_number": "result_number",
    "số ký hiệu": "result_number",
    "số, ký hiệu": "result_number",
    "số hiệu": "result_number",
    "so ky hieu": "result_number",
    "issued_on": "issued_on_raw",
    "ngày ban hành": "issued_on_raw",
    "ngày cấp": "issued_on_raw",
    "ngay ban hanh": "issued_on_raw",
    "holder_name": "holder_name",
    "tên chủ hồ sơ": "holder_name",
    "chủ hồ sơ": "holder_name",
    "họ và tên": "holder_name",
    "holder_id": "holder_id",
    "số định danh": "holder_id",
    "số cccd": "holder_id",
    "số giấy tờ": "holder_id",
    "still_valid": "still_valid_raw",
    "còn hiệu lực": "still_valid_raw",
    "con hieu luc": "still_valid_raw",
    "files": "files_raw",
    "tệp": "files_raw",
    "tệp tin": "files_raw",
    "tep": "files_raw",
    "page_count": "page_count_raw",
    "số trang": "page_count_raw",
    "so trang": "page_count_raw",
    "số tờ": "page_count_raw",
    "not_duplicate_of": "not_duplicate_of",
    "không trùng với": "not_duplicate_of",
    "replace_archived": "replace_archived_raw",
    "thay bản đã lưu": "replace_archived_raw",
    "thay ban da luu": "replace_archived_raw",
}
REQUIRED_COLUMNS = ("record_id", "procedure_code", "issued_on_raw", "files_raw")
# beside a scanned stack the cover sheets give the pages and the metadata; a manifest is optional
STACK_REQUIRED_COLUMNS = ("record_id",)

TRUE_WORDS = {"true", "1", "x", "yes", "y", "có", "co", "còn", "con", "còn hiệu lực"}
FALSE_WORDS = {"false", "0", "no", "n", "không", "khong", "hết hiệu lực", "hết"}

_DATE_FORMATS = ("%d/%m/%Y", "%Y-%m-%d")  # DESIGN: dd/mm/yyyy or ISO
_FILE_ITEM = re.compile(r"^(?P<name>[^\[\]]+?)\s*(?:\[(?P<first>\d+)(?:\s*-\s*(?P<last>\d+))?\])?$")


def sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def parse_date(text: str) -> dt.date | None:
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def parse_bool(text: str) -> bool | None:
    word = text.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def _canonical_header(header: str) -> str | None:
    key = re.sub(r"\s+", " ", nfc(header).lower())
    return HEADER_ALIASES.get(key)


# a column as the clerk knows it, for the messages
_COLUMN_NAMES = {"record_id": "record_id/Mã hồ sơ", "procedure_code": "procedure_code/Mã TTHC",
                 "issued_on_raw": "issued_on/Ngày ban hành", "files_raw": "files/Tệp"}
_HEADER_HINT = ("The first line must name the columns as in the template: record_id/Mã hồ sơ, "
                "procedure_code/Mã TTHC, issued_on/Ngày ban hành, files/Tệp, ...")


def read_manifest(batch_dir: Path, required: tuple[str, ...] = REQUIRED_COLUMNS) -> list[ManifestRow]:
    """Parse manifest.csv (UTF-8, UTF-16 or Windows-1258, BOM tolerated, ``,`` ``;`` or tab
    separated, or a single column) into rows.

    Only a manifest that cannot be read row by row is a BatchError: no file, undecodable, empty,
    no ``record_id`` column. A missing ``required`` column leaves that field empty in every row,
    so each row is quarantined by validation with the usual message while the batch goes on.
    """
    path = batch_dir / MANIFEST
    if not path.is_file():
        raise BatchError(
            f"{path}: no manifest.csv in the batch folder. Add the manifest (one row per record) "
            "and drop the folder again.")
    try:
        # the header must be the first line: the delimiter is chosen on it alone
        rows = read_table(path, _canonical_header, header_rows=1, windows_1258=True)
    except TableError as exc:
        raise BatchError(str(exc)) from exc
    if not any(any(values) for _, values in rows):
        raise BatchError(f"{path}: manifest.csv is empty. Add a header row and one row per record.")
    (_, header), *records = rows
    if not any(header):
        raise BatchError(f"{path}: the first line of manifest.csv is empty, so it has no header "
                         f"row. {_HEADER_HINT}")
    fields = [_canonical_header(h) for h in header]
    if "record_id" not in fields:
        # without record ids no row can be named, quarantined or archived: the batch stops here
        raise BatchError(
            f"{path}: manifest.csv has no record_id (Mã hồ sơ) column; its first line reads "
            f"{header}. {_HEADER_HINT}")
    missing = [_COLUMN_NAMES.get(c, c) for c in required if c not in fields]
    if missing:
        # validation's per-row message ("thiếu Mã TTHC") cannot tell an empty cell from a
        # missing column; this line in the log can
        log.warning("%s: manifest.csv lacks the column(s) %s (found %s): every row lacks them "
                    "and will be quarantined until the column is added.", path, missing, header)
    manifest = []
    for line_no, values in records:
        if not any(values):
            continue
        data = {f: v for f, v in zip(fields, values, strict=False) if f}
        row = ManifestRow(line=line_no, **data)
        row.issued_on = parse_date(row.issued_on_raw)
        row.still_valid = parse_bool(row.still_valid_raw) if row.still_valid_raw else True
        row.replace_archived = bool(parse_bool(row.replace_archived_raw))
        # ASCII digits only: str.isdigit() is also true of "²", which int() refuses
        raw_count = row.page_count_raw
        row.page_count = int(raw_count) if raw_count.isascii() and raw_count.isdigit() else None
        manifest.append(row)
    return manifest


def parse_files_field(row: ManifestRow) -> tuple[list[tuple[str, int | None, int | None]], list[Problem]]:
    """``a.tif;b.tif[2-3]`` -> [(name, first, last)], with a problem per malformed item."""
    items, problems = [], []
    for raw in filter(None, (p.strip() for p in row.files_raw.split(";"))):
        match = _FILE_ITEM.match(raw)
        if not match:
            problems.append(Problem(
                rule="files_format", field="files",
                message=f"{row.where}: mục tệp '{raw}' không đúng dạng "
                        "'ten_tep.tif' hoặc 'ten_tep.tif[1-3]'. Sửa cột Tệp rồi chạy lại.",
            ))
            continue
        name = match["name"].strip()
        if _leaves_folder(name):
            problems.append(Problem(
                rule="path_outside_batch", field="files",
                message=f"{row.where}: mục tệp '{raw}' trỏ ra ngoài thư mục lô "
                        "(đường dẫn tuyệt đối hoặc '..'). Chỉ ghi tên tệp quét nằm trong thư mục lô "
                        "(chép tệp vào đó) rồi chạy lại.",
            ))
            continue
        first = int(match["first"]) if match["first"] else None
        last = int(match["last"]) if match["last"] else first
        items.append((name, first, last))
    return items, problems


def _leaves_folder(name: str) -> bool:
    """An absolute path or one going up: the manifest may only name files inside the batch."""
    parts = re.split(r"[\\/]", name)
    return name.startswith(("/", "\\")) or bool(PureWindowsPath(name).drive) or ".." in parts


def inside_batch(batch_dir: Path, name: str) -> bool:
    """Whether ``name`` in the batch folder is a file there, not a link to somewhere else."""
    return (batch_dir / name).resolve().is_relative_to(batch_dir.resolve())


def fingerprint_file(path: Path) -> SourceFile:
    """SHA-256, size and page count of one page file; an unreadable file says why."""
    try:
        count, error = pages.page_count(path), ""
    except pages.PageReadError as exc:
        count, error, rule = 0, str(exc), exc.rule
    else:
        rule = ""
    return SourceFile(name=path.name, sha256=sha256_file(path), size=path.stat().st_size,
                      page_count=count, readable=not error, error=error, error_rule=rule)


def fingerprint_files(batch_dir: Path, names: Collection[str] | None = None
                      ) -> dict[str, SourceFile]:
    """Every page file in the batch folder (or those of ``names``, matched after NFC
    normalisation as :func:`resolve_pages` does), fingerprinted and keyed by the name on disk;
    links leading out are never read."""
    wanted = None if names is None else {nfc(name) for name in names}
    return {path.name: fingerprint_file(path) for path in sorted(batch_dir.iterdir())
            if (wanted is None or nfc(path.name) in wanted)
            and path.is_file() and path.suffix.lower() in pages.SUPPORTED_SUFFIXES
            and inside_batch(batch_dir, path.name)}


# What the archivist reads for a file that cannot be used, by the rule it breaks.
FILE_PROBLEMS = {
    "file_readable": "tệp '{name}' không đọc được ({error}). Quét lại trang và thay tệp.",
    "image_too_large": "tệp '{name}' có kích thước trang quá lớn, không xử lý ({error}). Kiểm tra "
                       "tệp (hỏng hoặc đặt sai khổ/độ phân giải), quét lại ở 200–300 dpi rồi thay tệp.",
    "pdf_encrypted": "tệp '{name}' là PDF được mã hóa ({error}). Xin bản không mã hóa hoặc quét "
                     "lại bản giấy rồi thay tệp.",
    "pdf_active_content": "tệp '{name}' không phải bản quét lưu trữ ({error}). Dùng bản quét ảnh "
                          "(không JavaScript, không biểu mẫu điền được) rồi thay tệp.",
}


def resolve_pages(row: ManifestRow, files: dict[str, SourceFile],
                  batch_dir: Path | None = None) -> tuple[list[PageRef], list[Problem]]:
    """The row's pages in ``files`` (keyed by the names on disk), with a problem per bad item.

    Names are matched after NFC normalisation: the manifest is NFC, while a file copied from a
    Mac keeps its decomposed (NFD) name on disk. With ``batch_dir``, a symbolic link leading out
    of it is named as such rather than as a missing file.
    """
    items, problems = parse_files_field(row)
    by_nfc = {unicodedata.normalize("NFC", disk_name): f for disk_name, f in files.items()}
    refs: list[PageRef] = []
    for name, first, last in items:
        source = files.get(name) or by_nfc.get(unicodedata.normalize("NFC", name))
        if source is None and batch_dir is not None and (batch_dir / name).is_symlink() \
                and not inside_batch(batch_dir, name):
            problems.append(Problem(
                rule="path_outside_batch", field="files",
                message=f"{row.where}: tệp '{name}' là liên kết trỏ ra ngoài "
                        "thư mục lô, không được đọc. Chép chính tệp quét vào thư mục lô thay cho "
                        "liên kết rồi chạy lại.",
            ))
            continue
        if source is None:
            problems.append(Problem(
                rule="file_exists", field="files",
                message=f"{row.where}: không tìm thấy tệp '{name}' trong thư "
                        "mục lô. Chép tệp quét vào thư mục lô hoặc sửa tên tệp ở cột Tệp.",
            ))
            continue
        if not source.readable:
            rule = source.error_rule or "file_readable"
            problems.append(Problem(
                rule=rule, field="files",
                message=f"{row.where}: "
                        + FILE_PROBLEMS[rule].format(name=name, error=source.error),
            ))
            continue
        first = first or 1
        last = last or (source.page_count if first == 1 else first)
        if not 1 <= first <= last <= source.page_count:
            problems.append(Problem(
                rule="page_range", field="files",
                message=f"{row.where}: khoảng trang [{first}-{last}] của tệp "
                        f"'{name}' vượt quá số trang của tệp ({source.page_count}). Sửa khoảng trang.",
            ))
            continue
        refs.extend(PageRef(file=source.name, page_in_file=n) for n in range(first, last + 1))
    return refs, problems


def _unreadable_in_stack(source: SourceFile) -> RecordPlan:
    """A stack file that cannot be read: its pages cannot be split, so it is a record of its own."""
    row = ManifestRow(line=0, record_id=separator.placeholder_id("tep-loi", source.name),
                      files_raw=source.name, source=f"Xấp quét, tệp {source.name}")
    rule = source.error_rule or "file_readable"
    return RecordPlan(row=row, unsplit=True, problems=[Problem(
        rule=rule, field="files",
        message=f"{row.where}: " + FILE_PROBLEMS[rule].format(name=source.name, error=source.error))])


def plan_batch(batch_dir: Path, agency_code: str | None = None, batch_id: str | None = None,
               layout: str = "manifest", fallback_dpi: int = 300) -> BatchPlan:
    """Read the batch folder: one RecordPlan per record, with the problems found so far.

    ``layout`` is the scanner profile's ``batch_layout``: records are the manifest's rows, or
    the cover sheets of a scanned stack (:mod:`pipeline.intake.separator`, which decodes every page).
    The agency code and batch id default to the folder layout ``inbox/<agency>/<batch>/``.
    """
    batch_dir = batch_dir.resolve()
    if not batch_dir.is_dir():
        raise BatchError(f"{batch_dir}: not a folder. Give the path of one batch folder.")
    agency_code = agency_code or batch_dir.parent.name
    files = fingerprint_files(batch_dir)
    has_manifest = (batch_dir / MANIFEST).is_file()
    if layout == "separator_sheets":
        manifest = read_manifest(batch_dir, STACK_REQUIRED_COLUMNS) if has_manifest else None
        records = separator.split(separator.read_stack(batch_dir, files, fallback_dpi),
                                  agency_code, manifest)
        records += [_unreadable_in_stack(f) for f in files.values() if not f.readable]
    else:
        # A record id used twice is one of the validation rules (pipeline.checks.validate), not a read error.
        records = []
        for row in read_manifest(batch_dir):
            refs, problems = resolve_pages(row, files, batch_dir)
            records.append(RecordPlan(row=row, pages=refs, problems=problems))
    return BatchPlan(
        agency_code=agency_code,
        batch_id=batch_id or batch_dir.name,
        batch_dir=batch_dir,
        # a stack without a manifest is identified by its scans alone
        manifest_sha256=sha256_file(batch_dir / MANIFEST) if has_manifest else "",
        files=files,
        records=records,
    )
