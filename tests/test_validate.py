"""The manifest expectation suite (schemas/manifest_suite.json) run by great-expectations."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.ingest import parse_date
from pipeline.models import ManifestRow
from pipeline.validate import validate_manifest

RANGE = (dt.date(1945, 9, 2), dt.date(2021, 12, 31))


def _row(line: int, **values: str) -> ManifestRow:
    base = {"record_id": f"HS-{line:04d}", "procedure_code": "1.004227",
            "issued_on_raw": "05/03/2019", "files_raw": "a.tif", "holder_id": "001203004567"}
    base.update(values)
    return ManifestRow(line=line, issued_on=parse_date(base["issued_on_raw"]), **base)


@pytest.fixture(scope="module")
def problems() -> dict[int, list[tuple[str, str, str]]]:
    rows = [
        _row(2),
        _row(3, record_id=""),
        _row(4, record_id="HS 4"),
        _row(5, procedure_code="1004227"),
        _row(6, issued_on_raw=""),
        _row(7, issued_on_raw="2019.03.05"),
        _row(8, issued_on_raw="01/01/2030"),
        _row(9, holder_id="12345"),
        _row(10, files_raw=""),
        _row(11, holder_id=""),
    ]
    found = validate_manifest(rows, RANGE)
    return {line: [(p.rule, p.field, p.message) for p in ps] for line, ps in found.items()}


def test_valid_rows_pass_clean(problems: dict[int, list[tuple[str, str, str]]]) -> None:
    assert 2 not in problems and 11 not in problems


@pytest.mark.parametrize(("line", "rule", "field", "fragment"), [
    (3, "required", "record_id", "thiếu Mã hồ sơ"),
    (4, "format", "record_id", "Mã hồ sơ 'HS 4' không hợp lệ"),
    (5, "format", "procedure_code", "Mã TTHC '1004227' không đúng dạng N.NNNNNN"),
    (6, "required", "issued_on", "thiếu Ngày ban hành"),
    (7, "date_format", "issued_on", "Ngày ban hành '2019.03.05' không đọc được"),
    (8, "date_range", "issued_on", "Ngày ban hành 01/01/2030 nằm ngoài khoảng"),
    (9, "format", "holder_id", "Số định danh không hợp lệ"),
    (10, "required", "files", "cột Tệp trống"),
])
def test_each_rule_gives_its_message(problems: dict[int, list[tuple[str, str, str]]], line: int,
                                     rule: str, field: str, fragment: str) -> None:
    (found,) = problems[line]
    assert found[:2] == (rule, field)
    assert found[2].startswith(f"Dòng {line} của manifest.csv: ")
    assert fragment in found[2]


def test_personal_id_never_appears_in_a_message(
        problems: dict[int, list[tuple[str, str, str]]]) -> None:
    assert all("12345" not in message for *_, message in problems[9])
