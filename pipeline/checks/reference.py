"""Reference data import: the procedure catalogue, the agency registry and the inventory.

Three files come from outside the pipeline and everything else is checked against them:

- the **procedure catalogue** (danh mục TTHC), exported from the national procedure database:
  code, name, the levels it is carried out at, field, implementing agency, validity dates;
- the **agency registry** (mã định danh cơ quan): code, name, level, the agency above it;
- the **inventory** (kiểm đếm): how many still-valid paper results each agency issued per year
  and procedure, the denominator of the phase plan's yearly targets.

Each is a CSV (UTF-8 or UTF-16, BOM tolerated, ``,`` ``;`` or tab separated) or an Excel ``.xlsx``
(first sheet), read by :mod:`pipeline.intake.tables`, with English or Vietnamese headers as the
exports write them, found among the first rows (a title may stand above). Every row is checked; a
bad row is rejected with a Vietnamese message naming the line, the column, what was found and
what is expected, and the good rows are written. Writes are upserts on the natural keys inside
one transaction, so a file is imported entirely or (on any database error) not at all, and
importing the same file again changes nothing.

Speed matters because an inventory has 100,000 rows: the warehouse rows are read once into a
dict, the file is diffed against it in Python and only added or changed rows are written, with
executemany in chunks (:func:`pipeline.store.warehouse.upsert_many`).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine, Table, select

from pipeline.config import PROJECT_DIR
from pipeline.errors import ReferenceFileError
from pipeline.intake.ingest import parse_date as parse_text_date
from pipeline.intake.tables import (
    HEADER_SEARCH_ROWS,
    FieldOf,
    Row,
    TableError,
    find_header,
    header_key,
    read_table,
)
from pipeline.store import warehouse
from pipeline.text import tokens

Kind = Literal["catalogue", "agencies", "inventory"]

SAMPLES_DIR = PROJECT_DIR / "schemas" / "reference"
SAMPLE_FILES: dict[Kind, Path] = {
    "agencies": SAMPLES_DIR / "agencies.sample.csv",
    "catalogue": SAMPLES_DIR / "catalogue.sample.csv",
    "inventory": SAMPLES_DIR / "inventory.sample.csv",
}

# re.ASCII: \d must not accept other scripts' digits, which would pass here and fail elsewhere.
PROCEDURE_CODE = re.compile(r"^\d\.\d{6}$", re.ASCII)
AGENCY_CODE = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$", re.ASCII)
LEVELS = ("tinh", "huyen", "xa")  # stored form, highest level first
LEVEL_NAMES = {"tinh": "tỉnh", "huyen": "huyện", "xa": "xã"}
FIRST_YEAR = 1975  # results before reunification are not in the digitization plan
MAX_TEXT = 255  # String(255) columns; PostgreSQL would fail the whole import on a longer value

_LEVEL_WORDS = {"tinh": "tinh", "huyen": "huyen", "xa": "xa",
                "province": "tinh", "district": "huyen", "commune": "xa"}
_LEVEL_SPLIT = re.compile(r"[;,/|\n]+|\s+-\s+|\s+và\s+", re.IGNORECASE)
_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)
_GROUPED_INTEGER = re.compile(r"\d{1,3}(?:[. ]\d{3})+", re.ASCII)  # 12.345 as vi-VN Excel writes it
_ISO_MIDNIGHT = re.compile(r"(\d{4}-\d{2}-\d{2})[ T]00:00(?::00)?", re.ASCII)


# --- report --------------------------------------------------------------------------------------
class RowProblem(BaseModel):
    """Why one row (or one cell of it) was rejected."""

    line: int  # line of the CSV file / row of the sheet, as the archivist sees it (header = 1)
    column: str  # the header as written in the file
    value: str  # what was found
    message: str  # Vietnamese: line, column, what was found, what is expected


class ImportReport(BaseModel):
    kind: Kind
    file: str
    rows: int = 0  # data rows read (blank rows are not counted)
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    rejected: int = 0  # rows with at least one problem; none of their values were written
    problems: list[RowProblem] = Field(default_factory=list)
    seconds: float = 0.0


# --- reading -------------------------------------------------------------------------------------
def _aliases(table: dict[str, Sequence[str]]) -> dict[str, str]:
    """Header (by :func:`header_key`) -> field, for every name a field's column goes by."""
    return {header_key(alias): name for name, aliases in table.items() for alias in (name, *aliases)}


def _field_of(aliases: dict[str, str]) -> FieldOf:
    def field_of(header: str) -> str | None:
        return aliases.get(header_key(header))

    return field_of


@dataclass
class Sheet:
    """A reference file after format detection: which column holds which field, and the rows."""

    path: Path
    headers: dict[str, str]  # field -> header as written in the file
    rows: list[tuple[int, dict[str, Any]]]  # (line, field -> cell value), blank rows left out


def _sheet(path: Path, rows: Sequence[Row], field_of: FieldOf, required: Sequence[str],
           labels: dict[str, str]) -> Sheet:
    """Find the header among the first rows, check the required columns, map the data rows."""
    head = [values for _, values in rows[:HEADER_SEARCH_ROWS]]
    found = find_header(head, field_of)
    fields: list[str | None] = found.fields if found else []
    header_index = found.index if found else 0
    header_cells = head[header_index] if head else []
    headers: dict[str, str] = {}
    for name, cell in zip(fields, header_cells, strict=False):
        if name and name not in headers:  # a repeated column: the first one counts
            headers[name] = str(cell)
    missing = [f for f in required if f not in headers]
    if missing:
        wanted = ", ".join(f"'{labels[f]}' (hoặc {f})" for f in missing)
        seen = [str(c) for c in header_cells if c != ""]
        raise ReferenceFileError(
            f"Tệp {path} thiếu cột bắt buộc: {wanted}. Dòng tiêu đề đọc được: {seen}. "
            "Đặt tên cột như trong tệp mẫu ở schemas/reference/ rồi nhập lại."
        )
    data = []
    used = {f: i for i, f in reversed(list(enumerate(fields))) if f}  # the first of a repeated field
    for line, values in rows[header_index + 1:]:
        cells = {f: values[i] if i < len(values) else "" for f, i in used.items()}
        if any(v != "" for v in cells.values()):
            data.append((line, cells))
    return Sheet(path=path, headers=headers, rows=data)


def read_sheet(path: Path, aliases: dict[str, str], required: Sequence[str],
               labels: dict[str, str]) -> Sheet:
    """Read a CSV or XLSX reference file; :class:`ReferenceFileError` if it cannot be used at all."""
    field_of = _field_of(aliases)
    try:
        rows = read_table(path, field_of)
    except TableError as exc:
        raise ReferenceFileError(str(exc)) from exc
    return _sheet(path, rows, field_of, required, labels)


# --- values --------------------------------------------------------------------------------------
def parse_level(text: str) -> str | None:
    """``'Cấp Tỉnh'``, ``'tỉnh'``, ``'tinh'``, ``'province'`` -> ``'tinh'``; None if unknown."""
    return _LEVEL_WORDS.get(" ".join(tokens(text)).removeprefix("cap "))


def parse_levels(text: str) -> list[str] | None:
    """``'Cấp Tỉnh; Cấp Huyện'`` or ``'tỉnh, huyện, xã'`` -> levels in stored order; None if any
    part is not a level."""
    parts = [p for p in _LEVEL_SPLIT.split(text) if p.strip()]
    levels = [parse_level(p) for p in parts]
    if not parts or None in levels:
        return None
    return [lv for lv in LEVELS if lv in levels]


def parse_integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    text = str(value).replace("\u00a0", " ").strip()
    if _INTEGER.fullmatch(text):
        return int(text)
    if _GROUPED_INTEGER.fullmatch(text):
        return int(re.sub(r"[. ]", "", text))
    return None


def parse_date(value: Any) -> dt.date | None:
    """A real Excel date, ``dd/mm/yyyy`` or ISO; None if it is none of these."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    midnight = _ISO_MIDNIGHT.fullmatch(text)  # a date that went through a datetime somewhere
    return parse_text_date(midnight[1] if midnight else text)


def cell_text(value: Any) -> str:
    """Cell as one line of text: Excel wraps long names with line breaks that are not part of
    them; a NUL (from a damaged export) would make PostgreSQL refuse the whole file."""
    return " ".join(str(value).replace("\x00", "").split())


def _procedure_code(value: Any) -> str:
    # Excel turns 2.000890 typed into a number cell into the float 2.00089: give back its 6 decimals.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{float(value):.6f}"
    return cell_text(value)


# --- checking ------------------------------------------------------------------------------------
@dataclass
class SheetRow:
    """One data row being checked; collects its problems with the archivist's wording."""

    sheet: Sheet
    labels: dict[str, str]
    line: int
    cells: dict[str, Any]
    problems: list[RowProblem] = field(default_factory=list)

    def get(self, name: str) -> Any:
        return self.cells.get(name, "")

    def reject(self, name: str, value: Any, explanation: str) -> None:
        column = self.sheet.headers.get(name, self.labels[name])
        shown = value.strftime("%d/%m/%Y") if isinstance(value, dt.date) else cell_text(value)
        self.problems.append(RowProblem(
            line=self.line, column=column, value=shown,
            message=f"Dòng {self.line} của {self.sheet.path.name}, cột '{column}': {explanation}",
        ))

    def required(self, name: str, what: str) -> Any:
        value = self.get(name)
        if value == "":
            self.reject(name, value, f"để trống; cần {what}. Điền vào rồi nhập lại.")
            return None
        return value

    def procedure_code(self, name: str) -> str | None:
        value = self.required(name, "mã thủ tục dạng 1.004227")
        if value is None:
            return None
        code = _procedure_code(value)
        if not PROCEDURE_CODE.match(code):
            self.reject(name, code, f"mã thủ tục '{code}' không đúng dạng; cần 1 chữ số, dấu chấm "
                                    "và 6 chữ số như trong Cơ sở dữ liệu quốc gia về TTHC "
                                    "(ví dụ 1.004227).")
            return None
        return code

    def agency_code(self, name: str, required: bool = True) -> str | None:
        value = self.required(name, "mã định danh cơ quan dạng 000.00.12.H12") if required \
            else self.get(name)
        if value is None or value == "":
            return None
        code = cell_text(value)
        if not AGENCY_CODE.match(code):
            self.reject(name, code, f"mã cơ quan '{code}' không đúng dạng; cần mã định danh dạng "
                                    "NNN.NN.NN.HNN, ví dụ 000.00.12.H12.")
            return None
        return code

    def text(self, name: str, what: str | None = None) -> str | None:
        """Free text; required when ``what`` says what is expected. '' when optional and empty."""
        if what is not None and self.required(name, what) is None:
            return None
        value = cell_text(self.get(name))
        if len(value) > MAX_TEXT:
            self.reject(name, value[:40] + "…", f"dài {len(value)} ký tự, quá giới hạn {MAX_TEXT} "
                                               "ký tự; rút gọn rồi nhập lại.")
            return None
        return value

    def date(self, name: str) -> tuple[bool, dt.date | None]:
        """(readable, date); an empty cell is readable and means 'no limit'."""
        value = self.get(name)
        if value == "":
            return True, None
        parsed = parse_date(value)
        if parsed is None:
            self.reject(name, value, f"ngày '{cell_text(value)}' không đọc được; cần dạng dd/mm/yyyy "
                                     "(ví dụ 01/07/2015) hoặc yyyy-mm-dd.")
            return False, None
        return True, parsed


@dataclass(frozen=True)
class _Spec:
    """What one kind of reference file holds and how its rows become warehouse rows."""

    kind: Kind
    table: Table
    keys: tuple[str, ...]
    columns: tuple[str, ...]  # warehouse columns the file may set, keys first
    required: tuple[str, ...]
    labels: dict[str, str]  # field -> header of the sample file, for messages
    aliases: dict[str, str]
    check: Callable[[SheetRow, dict[str, Any]], dict[str, Any] | None]
    load_context: Callable[[Connection], dict[str, Any]]

    def key_of(self, values: dict[str, Any]) -> Any:
        """The natural key: a scalar for one key column, a tuple for several (itemgetter's rule)."""
        return itemgetter(*self.keys)(values)


def _known_codes(conn: Connection, table: Table) -> set[str]:
    # A batch inserts the bare code of an agency or procedure it meets; only an imported row
    # (one with a name) counts as registered.
    return set(conn.execute(select(table.c.code).where(table.c.name.is_not(None))).scalars())


def _check_procedure(row: SheetRow, _ctx: dict[str, Any]) -> dict[str, Any] | None:
    code = row.procedure_code("code")
    name = row.text("name", "tên thủ tục")
    levels: list[str] | None = None
    raw_levels = row.required("levels", "cấp thực hiện, ví dụ 'Cấp Tỉnh; Cấp Huyện'")
    if raw_levels is not None:
        levels = parse_levels(cell_text(raw_levels))
        if levels is None:
            row.reject("levels", raw_levels,
                       f"cấp thực hiện '{cell_text(raw_levels)}' không hợp lệ; cần một hoặc nhiều cấp "
                       "trong: tỉnh, huyện, xã (ví dụ 'Cấp Tỉnh; Cấp Huyện').")
    values: dict[str, Any] = {"code": code, "name": name,
                              "levels": ",".join(levels) if levels else None}
    for column in ("field", "implementing_agency"):
        if column in row.sheet.headers:  # a column the file lacks is left as it is
            values[column] = row.text(column) or None
    dates_ok = True
    for column in ("valid_from", "valid_to"):
        if column in row.sheet.headers:
            ok, values[column] = row.date(column)
            dates_ok &= ok
    start, end = values.get("valid_from"), values.get("valid_to")
    if dates_ok and start and end and start > end:
        row.reject("valid_to", end,
                   f"ngày hết hiệu lực {end:%d/%m/%Y} trước ngày bắt đầu hiệu lực {start:%d/%m/%Y} "
                   f"(cột '{row.sheet.headers['valid_from']}'); sửa một trong hai ngày.")
    return None if row.problems else values


def _check_agency(row: SheetRow, _ctx: dict[str, Any]) -> dict[str, Any] | None:
    code = row.agency_code("code")
    name = row.text("name", "tên cơ quan")
    level = None
    raw_level = row.required("level", "cấp của cơ quan: tỉnh, huyện hoặc xã")
    if raw_level is not None:
        level = parse_level(cell_text(raw_level))
        if level is None:
            row.reject("level", raw_level, f"cấp '{cell_text(raw_level)}' không hợp lệ; cần một trong: "
                                           "tỉnh, huyện, xã.")
    values: dict[str, Any] = {"code": code, "name": name, "level": level}
    if "parent_code" in row.sheet.headers:
        values["parent_code"] = row.agency_code("parent_code", required=False)
        if code and values["parent_code"] == code:
            row.reject("parent_code", code, f"cơ quan '{code}' không thể là cấp trên của chính "
                                            "nó; để trống hoặc ghi mã cơ quan cấp trên.")
    return None if row.problems else values


def _known(row: SheetRow, column: str, value: str | None, known: Any, message: str) -> str | None:
    """``value`` when the warehouse already holds it; otherwise the row is rejected with
    ``message`` (its ``{}`` is the value) and None is returned."""
    if value and value not in known:
        row.reject(column, value, message.format(value))
        return None
    return value


def _check_inventory(row: SheetRow, ctx: dict[str, Any]) -> dict[str, Any] | None:
    agency = _known(row, "agency_code", row.agency_code("agency_code"), ctx["agencies"],
                    "mã cơ quan '{}' chưa có trong danh sách cơ quan của kho; nhập danh sách cơ "
                    "quan trước (digitize agencies import) hoặc sửa mã.")
    year = None
    raw_year = row.required("issue_year", f"năm ban hành từ {FIRST_YEAR} đến {ctx['this_year']}")
    if raw_year is not None:
        year = parse_integer(raw_year)
        if year is None or not FIRST_YEAR <= year <= ctx["this_year"]:
            row.reject("issue_year", raw_year,
                       f"năm '{cell_text(raw_year)}' không hợp lệ; cần một năm từ {FIRST_YEAR} đến "
                       f"{ctx['this_year']}.")
            year = None
    procedure = _known(row, "procedure_code", row.procedure_code("procedure_code"),
                       ctx["procedures"], "mã thủ tục '{}' chưa có trong danh mục thủ tục của kho; "
                       "nhập danh mục trước (digitize catalogue import) hoặc sửa mã.")
    count = None
    raw_count = row.required("still_valid_count", "số lượng kết quả còn hiệu lực (số nguyên ≥ 0)")
    if raw_count is not None:
        count = parse_integer(raw_count)
        if count is None or count < 0:
            row.reject("still_valid_count", raw_count,
                       f"số lượng '{cell_text(raw_count)}' không hợp lệ; cần một số nguyên không âm "
                       "(0, 1, 2, ...).")
    if row.problems:
        return None
    return {"agency_code": agency, "issue_year": year, "procedure_code": procedure,
            "still_valid_count": count}


def _no_context(_conn: Connection) -> dict[str, Any]:
    return {}


def _agency_context(conn: Connection) -> dict[str, Any]:
    return {"agencies": _known_codes(conn, warehouse.agencies)}


def _inventory_context(conn: Connection) -> dict[str, Any]:
    return {"agencies": _known_codes(conn, warehouse.agencies),
            "procedures": _known_codes(conn, warehouse.procedures),
            "this_year": dt.date.today().year}


CATALOGUE = _Spec(
    kind="catalogue", table=warehouse.procedures, keys=("code",),
    columns=("code", "name", "levels", "field", "implementing_agency", "valid_from", "valid_to"),
    required=("code", "name", "levels"),
    labels={"code": "Mã thủ tục", "name": "Tên thủ tục", "levels": "Cấp thực hiện",
            "field": "Lĩnh vực", "implementing_agency": "Cơ quan thực hiện",
            "valid_from": "Hiệu lực từ", "valid_to": "Hiệu lực đến"},
    aliases=_aliases({
        "code": ("procedure_code", "Mã thủ tục", "Mã TTHC", "Mã số thủ tục",
                 "Mã thủ tục hành chính", "Mã số TTHC"),
        "name": ("procedure_name", "Tên thủ tục", "Tên TTHC", "Tên thủ tục hành chính"),
        "levels": ("level", "Cấp thực hiện", "Cấp"),
        "field": ("Lĩnh vực",),
        "implementing_agency": ("Cơ quan thực hiện", "Cơ quan giải quyết"),
        "valid_from": ("Hiệu lực từ", "Ngày hiệu lực", "Ngày có hiệu lực", "Ngày bắt đầu hiệu lực"),
        "valid_to": ("Hiệu lực đến", "Ngày hết hiệu lực"),
    }),
    check=_check_procedure, load_context=_no_context,
)

AGENCIES = _Spec(
    kind="agencies", table=warehouse.agencies, keys=("code",),
    columns=("code", "name", "level", "parent_code"),
    required=("code", "name", "level"),
    labels={"code": "Mã định danh", "name": "Tên cơ quan", "level": "Cấp",
            "parent_code": "Cơ quan cấp trên"},
    aliases=_aliases({
        "code": ("agency_code", "Mã định danh", "Mã cơ quan", "Mã định danh cơ quan",
                 "Mã định danh điện tử"),
        "name": ("agency_name", "Tên cơ quan", "Tên đơn vị", "Tên cơ quan, đơn vị"),
        "level": ("Cấp", "Cấp hành chính"),
        "parent_code": ("parent", "Cơ quan cấp trên", "Mã cơ quan cấp trên", "Mã cơ quan chủ quản"),
    }),
    check=_check_agency, load_context=_agency_context,
)

INVENTORY = _Spec(
    kind="inventory", table=warehouse.inventory, keys=("agency_code", "issue_year", "procedure_code"),
    columns=("agency_code", "issue_year", "procedure_code", "still_valid_count"),
    required=("agency_code", "issue_year", "procedure_code", "still_valid_count"),
    labels={"agency_code": "Mã cơ quan", "issue_year": "Năm ban hành", "procedure_code": "Mã TTHC",
            "still_valid_count": "Số lượng còn hiệu lực"},
    aliases=_aliases({
        "agency_code": ("Mã cơ quan", "Mã định danh", "Mã định danh cơ quan"),
        "issue_year": ("year", "Năm ban hành", "Năm cấp", "Năm"),
        "procedure_code": ("Mã TTHC", "Mã thủ tục", "Mã thủ tục hành chính"),
        "still_valid_count": ("count", "Số lượng còn hiệu lực", "Số kết quả còn hiệu lực",
                              "Số lượng"),
    }),
    check=_check_inventory, load_context=_inventory_context,
)

SPECS: dict[Kind, _Spec] = {s.kind: s for s in (CATALOGUE, AGENCIES, INVENTORY)}


def _duplicate_message(spec: _Spec, row: SheetRow, values: dict[str, Any], first: int) -> None:
    if spec.kind == "inventory":
        key = f"{values['agency_code']} / {values['issue_year']} / {values['procedure_code']}"
        row.reject("procedure_code", key,
                   f"bộ (cơ quan, năm, thủ tục) '{key}' đã có ở dòng {first}; mỗi bộ chỉ một dòng. "
                   "Cộng số lượng vào một dòng và xóa dòng trùng.")
    else:
        what = "mã thủ tục" if spec.kind == "catalogue" else "mã cơ quan"
        row.reject("code", values["code"], f"{what} '{values['code']}' đã có ở dòng {first}; mỗi "
                                           "mã chỉ một dòng. Xóa dòng trùng hoặc sửa mã.")


def _check_parents(accepted: dict[Any, tuple[SheetRow, dict[str, Any]]], known: set[str]) -> None:
    """Drop agencies whose parent is neither in the warehouse nor accepted from this file.

    Repeated until stable: rejecting a district also rejects the communes under it.
    """
    while True:
        orphans = [code for code, (_, values) in accepted.items()
                   if values.get("parent_code") and values["parent_code"] not in accepted
                   and values["parent_code"] not in known]
        if not orphans:
            return
        for code in orphans:
            row, values = accepted.pop(code)
            row.reject("parent_code", values["parent_code"],
                       f"cơ quan cấp trên '{values['parent_code']}' không có trong tệp này (hoặc "
                       "dòng của nó bị từ chối) và chưa có trong kho; thêm cơ quan cấp trên hoặc "
                       "sửa mã.")


def _existing(conn: Connection, spec: _Spec) -> dict[Any, dict[str, Any]]:
    table = spec.table
    data = [c.name for c in table.columns if c.name not in spec.keys and not c.primary_key]
    result = conn.execute(select(*(table.c[k] for k in spec.keys), *(table.c[c] for c in data)))
    width = len(spec.keys)
    return {(row[0] if width == 1 else tuple(row[:width])): dict(zip(data, row[width:], strict=True))
            for row in result}


def _engine(engine_or_url: Engine | str) -> Engine:
    return warehouse.engine_for(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url


def import_file(spec: _Spec, engine_or_url: Engine | str, path: Path | str) -> ImportReport:
    """Check every row of ``path`` and upsert the good ones, in one transaction.

    The warehouse must be at the latest schema (:func:`pipeline.store.warehouse.migrate`).
    A row already in the warehouse with none of its columns set (a code a batch met before the
    catalogue was imported) counts as *added*: for the archivist it is new reference data.
    Columns missing from the file are left as they are in the warehouse.
    """
    started = time.perf_counter()
    path = Path(path)
    sheet = read_sheet(path, spec.aliases, spec.required, spec.labels)
    report = ImportReport(kind=spec.kind, file=str(path), rows=len(sheet.rows))
    with _engine(engine_or_url).begin() as conn:
        context = spec.load_context(conn)
        accepted: dict[Any, tuple[SheetRow, dict[str, Any]]] = {}
        first_line: dict[Any, int] = {}
        checked = []
        for line, cells in sheet.rows:
            row = SheetRow(sheet, spec.labels, line, cells)
            values = spec.check(row, context)
            checked.append(row)
            if values is None:
                continue
            key = spec.key_of(values)
            if key in first_line:
                _duplicate_message(spec, row, values, first_line[key])
                continue
            first_line[key] = line
            accepted[key] = (row, values)
        if spec.kind == "agencies":
            _check_parents(accepted, context["agencies"])
        report.problems = [p for row in checked for p in row.problems]
        report.rejected = sum(bool(row.problems) for row in checked)

        existing = _existing(conn, spec)
        writes = []
        for key, (_, values) in accepted.items():
            old = existing.get(key)
            if old is None or all(v is None for v in old.values()):
                report.added += 1
            elif any(old[c] != v for c, v in values.items() if c not in spec.keys):
                report.changed += 1
            else:
                report.unchanged += 1
                continue
            writes.append(values)
        warehouse.upsert_many(conn, spec.table, writes, spec.keys)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def import_catalogue(engine_or_url: Engine | str, path: Path | str) -> ImportReport:
    """The procedure catalogue (danh mục TTHC) into ``procedures``."""
    return import_file(CATALOGUE, engine_or_url, path)


def import_agencies(engine_or_url: Engine | str, path: Path | str) -> ImportReport:
    """The agency registry (mã định danh cơ quan) into ``agencies``."""
    return import_file(AGENCIES, engine_or_url, path)


def import_inventory(engine_or_url: Engine | str, path: Path | str) -> ImportReport:
    """The inventory (kiểm đếm) into ``inventory``; agencies and catalogue must be imported first."""
    return import_file(INVENTORY, engine_or_url, path)


IMPORTERS: dict[Kind, Callable[[Engine | str, Path | str], ImportReport]] = {
    "catalogue": import_catalogue, "agencies": import_agencies, "inventory": import_inventory,
}


def import_samples(engine_or_url: Engine | str) -> list[ImportReport]:
    """The illustrative sample files of ``schemas/reference/``, in dependency order (for the demo)."""
    return [IMPORTERS[kind](engine_or_url, SAMPLE_FILES[kind])
            for kind in ("agencies", "catalogue", "inventory")]


def csv_to_xlsx(source: Path, target: Path) -> None:
    """Write a reference CSV as an Excel sheet the way an export would: dates as real Excel dates,
    whole numbers as numbers, codes as text (used to make ``catalogue.sample.xlsx``)."""
    from openpyxl import Workbook

    every_alias = {k: v for spec in SPECS.values() for k, v in spec.aliases.items()}
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for index, (_, values) in enumerate(read_table(source, _field_of(every_alias))):
        for column, value in enumerate(values, start=1):
            cell = sheet.cell(row=index + 1, column=column)
            date = parse_text_date(value) if index and "/" in value else None
            if date is not None:
                cell.value, cell.number_format = date, "DD/MM/YYYY"
            elif index and _INTEGER.fullmatch(value):
                cell.value = int(value)
            else:
                cell.value = value
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    book.save(tmp)
    tmp.replace(target)  # atomic, like every other write of the pipeline


def rows_of(url: str, kind: Kind) -> list[tuple[Any, ...]]:
    """Every warehouse row of one reference table, sorted by key (for tests and comparisons)."""
    spec = SPECS[kind]
    with warehouse.engine_for(url).connect() as conn:
        cols = [spec.table.c[c] for c in spec.columns]
        return [tuple(r) for r in conn.execute(select(*cols).order_by(*cols[:len(spec.keys)]))]


__all__ = [
    "AGENCY_CODE", "PROCEDURE_CODE", "SAMPLE_FILES", "ImportReport", "RowProblem",
    "csv_to_xlsx", "import_agencies", "import_catalogue", "import_inventory",
    "import_samples", "parse_date", "parse_level", "parse_levels", "read_sheet", "rows_of",
]
