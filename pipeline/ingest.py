"""Ingest: read a batch folder's manifest.csv, fingerprint its files, plan its records."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import unicodedata
from pathlib import Path

from pipeline import pages
from pipeline.errors import BatchError
from pipeline.models import BatchPlan, ManifestRow, PageRef, Problem, RecordPlan, SourceFile

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
}
REQUIRED_COLUMNS = ("record_id", "procedure_code", "issued_on_raw", "files_raw")

TRUE_WORDS = {"true", "1", "x", "yes", "y", "có", "co", "còn", "con", "còn hiệu lực"}
FALSE_WORDS = {"false", "0", "no", "n", "không", "khong", "hết hiệu lực", "hết"}

_DATE_FORMATS = ("%d/%m/%Y", "%Y-%m-%d")  # DESIGN: dd/mm/yyyy or ISO
_FILE_ITEM = re.compile(r"^(?P<name>[^\[\]]+?)\s*(?:\[(?P<first>\d+)(?:\s*-\s*(?P<last>\d+))?\])?$")


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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


def read_manifest(batch_dir: Path) -> list[ManifestRow]:
    """Parse manifest.csv (UTF-8, BOM tolerated, ``,`` or ``;`` separated) into rows."""
    path = batch_dir / MANIFEST
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError as exc:
        raise BatchError(
            f"{path}: no manifest.csv in the batch folder. Add the manifest (one row per record) "
            "and drop the folder again."
        ) from exc
    except UnicodeDecodeError as exc:
        raise BatchError(
            f"{path}: manifest.csv is not UTF-8 ({exc}). Save it from Excel as "
            "'CSV UTF-8 (Comma delimited)'."
        ) from exc
    dialect = csv.Sniffer().sniff(text.splitlines()[0] if text else ",", delimiters=",;\t")
    reader = csv.reader(io.StringIO(text), dialect)
    header = next(reader, None)
    if not header:
        raise BatchError(f"{path}: manifest.csv is empty. Add a header row and one row per record.")
    fields = [_canonical_header(h) for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in fields]
    if missing:
        raise BatchError(
            f"{path}: manifest.csv lacks the column(s) {missing}; found {header}. Use the "
            "template's headers (record_id/Mã hồ sơ, procedure_code/Mã TTHC, issued_on/Ngày ban "
            "hành, files/Tệp, ...)."
        )
    rows = []
    for line_no, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        data = {f: nfc(v) for f, v in zip(fields, values, strict=False) if f}
        row = ManifestRow(line=line_no, **data)
        row.issued_on = parse_date(row.issued_on_raw)
        row.still_valid = parse_bool(row.still_valid_raw) if row.still_valid_raw else True
        rows.append(row)
    return rows


def parse_files_field(row: ManifestRow) -> tuple[list[tuple[str, int | None, int | None]], list[Problem]]:
    """``a.tif;b.tif[2-3]`` -> [(name, first, last)], with a problem per malformed item."""
    items, problems = [], []
    for raw in filter(None, (p.strip() for p in row.files_raw.split(";"))):
        match = _FILE_ITEM.match(raw)
        if not match:
            problems.append(Problem(
                rule="files_format", field="files",
                message=f"Dòng {row.line} của manifest.csv: mục tệp '{raw}' không đúng dạng "
                        "'ten_tep.tif' hoặc 'ten_tep.tif[1-3]'. Sửa cột Tệp rồi chạy lại.",
            ))
            continue
        first = int(match["first"]) if match["first"] else None
        last = int(match["last"]) if match["last"] else first
        items.append((match["name"].strip(), first, last))
    return items, problems


def fingerprint_files(batch_dir: Path) -> dict[str, SourceFile]:
    """SHA-256, size and page count of every page file in the batch folder."""
    files = {}
    for path in sorted(batch_dir.iterdir()):
        if not path.is_file() or path.suffix.lower() not in pages.SUPPORTED_SUFFIXES:
            continue
        try:
            count, error = pages.page_count(path), ""
        except pages.PageReadError as exc:
            count, error = 0, str(exc)
        files[path.name] = SourceFile(
            name=path.name, sha256=sha256_file(path), size=path.stat().st_size,
            page_count=count, readable=not error, error=error,
        )
    return files


def _resolve_pages(row: ManifestRow, files: dict[str, SourceFile]) -> tuple[list[PageRef], list[Problem]]:
    items, problems = parse_files_field(row)
    refs: list[PageRef] = []
    for name, first, last in items:
        source = files.get(name)
        if source is None:
            problems.append(Problem(
                rule="file_exists", field="files",
                message=f"Dòng {row.line} của manifest.csv: không tìm thấy tệp '{name}' trong thư "
                        "mục lô. Chép tệp quét vào thư mục lô hoặc sửa tên tệp ở cột Tệp.",
            ))
            continue
        if not source.readable:
            problems.append(Problem(
                rule="file_readable", field="files",
                message=f"Dòng {row.line} của manifest.csv: tệp '{name}' không đọc được "
                        f"({source.error}). Quét lại trang và thay tệp.",
            ))
            continue
        first = first or 1
        last = last or (source.page_count if first == 1 else first)
        if not 1 <= first <= last <= source.page_count:
            problems.append(Problem(
                rule="page_range", field="files",
                message=f"Dòng {row.line} của manifest.csv: khoảng trang [{first}-{last}] của tệp "
                        f"'{name}' vượt quá số trang của tệp ({source.page_count}). Sửa khoảng trang.",
            ))
            continue
        refs.extend(PageRef(file=name, page_in_file=n) for n in range(first, last + 1))
    return refs, problems


def plan_batch(batch_dir: Path, agency_code: str | None = None, batch_id: str | None = None) -> BatchPlan:
    """Read the batch folder: one RecordPlan per manifest row, with the problems found so far.

    The agency code and batch id default to the folder layout ``inbox/<agency>/<batch>/``.
    """
    batch_dir = batch_dir.resolve()
    if not batch_dir.is_dir():
        raise BatchError(f"{batch_dir}: not a folder. Give the path of one batch folder.")
    rows = read_manifest(batch_dir)
    files = fingerprint_files(batch_dir)
    records = []
    seen_ids: dict[str, int] = {}
    for row in rows:
        refs, problems = _resolve_pages(row, files)
        if row.record_id in seen_ids:
            problems.append(Problem(
                rule="record_id_unique", field="record_id",
                message=f"Dòng {row.line} của manifest.csv: mã hồ sơ '{row.record_id}' đã có ở "
                        f"dòng {seen_ids[row.record_id]}. Mỗi hồ sơ một dòng; sửa mã hồ sơ.",
            ))
        seen_ids.setdefault(row.record_id, row.line)
        records.append(RecordPlan(row=row, pages=refs, problems=problems))
    return BatchPlan(
        agency_code=agency_code or batch_dir.parent.name,
        batch_id=batch_id or batch_dir.name,
        batch_dir=batch_dir,
        manifest_sha256=sha256_file(batch_dir / MANIFEST),
        files=files,
        records=records,
    )
