"""The manifest expectation suite (schemas/manifest_suite.json) run by great-expectations, with
the reference data (catalogue, agency level, records archived elsewhere) joined onto the rows."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest

from pipeline.checks.validate import (
    LAST_RUN,
    Procedure,
    Reference,
    Validation,
    closest_procedures,
    validate_manifest,
)
from pipeline.config import load_settings
from pipeline.intake.ingest import parse_bool, parse_date
from pipeline.models import ManifestRow

RANGE = (dt.date(1945, 9, 2), dt.date(2021, 12, 31))
CATALOGUE = {
    "1.004227": Procedure("1.004227", "Cấp giấy phép xây dựng nhà ở riêng lẻ",
                          frozenset({"huyen"}), dt.date(2005, 1, 1), None),
    "2.000889": Procedure("2.000889", "Đăng ký hộ kinh doanh", frozenset({"huyen"}),
                          dt.date(2004, 6, 1), dt.date(2016, 12, 31)),
    "1.001612": Procedure("1.001612", "Cấp giấy phép kinh doanh vận tải bằng xe ô tô",
                          frozenset({"tinh"}), None, None),
    "1.001776": Procedure("1.001776", "Thủ tục xét tặng danh hiệu gia đình văn hóa",
                          frozenset({"xa", "huyen"}), None, None),
}
REFERENCE = Reference(agency_code="000.00.12.H12", agency_level="huyen", procedures=CATALOGUE,
                      archived_elsewhere={"HS-ARCH": "B-2019-07"})


def _row(line: int, **values: str) -> ManifestRow:
    base = {"record_id": f"HS-{line:04d}", "procedure_code": "1.004227",
            "issued_on_raw": "05/03/2019", "files_raw": "a.tif", "holder_id": "001203004567",
            "still_valid_raw": "có", "page_count_raw": ""}
    base.update(values)
    row = ManifestRow(line=line, issued_on=parse_date(base["issued_on_raw"]), **base)
    row.still_valid = parse_bool(row.still_valid_raw) if row.still_valid_raw else True
    row.page_count = int(row.page_count_raw) if row.page_count_raw.isdigit() else None
    return row


@pytest.fixture(scope="module")
def validation() -> Validation:
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
        _row(11, holder_id="", page_count_raw="2"),
        _row(12, record_id="HS-DUP"),
        _row(13, record_id="HS-DUP"),
        _row(14, record_id="HS-ARCH"),
        _row(15, procedure_code="1.004272", procedure_name="giấy phép xây dựng nhà ở"),
        _row(16, procedure_code="1.001612"),
        _row(17, procedure_code="2.000889", issued_on_raw="03/02/2018"),
        _row(18, issued_on_raw="20/12/2004"),
        _row(19, page_count_raw="3"),
        _row(20, still_valid_raw="không"),
        _row(21, still_valid_raw="chắc vậy"),
        _row(22, procedure_code="1.001776", holder_id="0101234567"),
    ]
    pages_found = {r.line: 2 for r in rows}
    return validate_manifest(rows, RANGE, REFERENCE, pages_found)


def _problems(validation: Validation) -> dict[int, list[tuple[str, str, str]]]:
    return {line: [(p.rule, p.field, p.message) for p in ps]
            for line, ps in validation.problems.items()}


def test_valid_rows_pass_clean(validation: Validation) -> None:
    problems = _problems(validation)
    assert not {2, 11, 22} & set(problems)
    assert validation.result["success"] is False and validation.result["results"]


@pytest.mark.parametrize(("line", "rule", "field", "message"), [
    (3, "required", "record_id", "thiếu Mã hồ sơ. Ghi mã hồ sơ rồi chạy lại."),
    (4, "format", "record_id", "Mã hồ sơ 'HS 4' không hợp lệ (chỉ gồm chữ, số và . _ / -, 3–64 ký "
                               "tự). Sửa mã hồ sơ."),
    (5, "format", "procedure_code", "Mã TTHC '1004227' không đúng dạng N.NNNNNN (ví dụ 1.004227). "
                                    "Sửa mã thủ tục."),
    (6, "required", "issued_on", "thiếu Ngày ban hành. Ghi ngày theo dạng dd/mm/yyyy."),
    (7, "date_format", "issued_on", "Ngày ban hành '2019.03.05' không đọc được; cần dạng "
                                    "dd/mm/yyyy (ví dụ 05/03/2019) hoặc yyyy-mm-dd. Sửa ngày rồi chạy lại."),
    (8, "date_range", "issued_on", "Ngày ban hành 01/01/2030 nằm ngoài khoảng của kế hoạch số hóa "
                                   "(02/09/1945 – 31/12/2021) hoặc ở tương lai. Kiểm tra lại ngày trên "
                                   "giấy tờ."),
    (9, "format", "holder_id", "Số định danh không hợp lệ (cần CCCD 12 số, CMND 9 số hoặc mã số "
                               "thuế 10/13 số). Sửa hoặc để trống."),
    (10, "required", "files", "cột Tệp trống. Ghi tên tệp quét của hồ sơ."),
    (14, "duplicate_record_id", "record_id",
     "Mã hồ sơ 'HS-ARCH' đã được lưu trữ trong lô B-2019-07 của cơ quan 000.00.12.H12. Nếu đây là "
     "bản quét lại hoặc dòng đã sửa, ghi 'có' vào cột 'Thay bản đã lưu' của dòng này rồi Clear để "
     "chạy lại: bản mới được lưu thành phiên bản tiếp theo, bản cũ vẫn giữ nguyên; nếu ghi nhầm mã, "
     "sửa Mã hồ sơ rồi Clear để chạy lại."),
    (15, "unknown_procedure", "procedure_code",
     "Mã TTHC '1.004272' không có trong danh mục thủ tục hành chính. Mã gần nhất trong danh mục: "
     "1.004227 (Cấp giấy phép xây dựng nhà ở riêng lẻ); 1.001612 (Cấp giấy phép kinh doanh vận "
     "tải bằng xe ô tô); 1.001776 (Thủ tục xét tặng danh hiệu gia đình văn hóa). Tên gần nhất: "
     "1.004227 (Cấp giấy phép xây dựng nhà ở riêng lẻ); 1.001612 (Cấp giấy phép kinh doanh vận "
     "tải bằng xe ô tô); 1.001776 (Thủ tục xét tặng danh hiệu gia đình văn hóa). Sửa Mã TTHC "
     "theo danh mục rồi Clear để chạy lại."),
    (16, "level_mismatch", "procedure_code",
     "thủ tục 1.001612 (Cấp giấy phép kinh doanh vận tải bằng xe ô tô) áp dụng ở cấp tỉnh, không "
     "áp dụng ở cấp huyện của cơ quan 000.00.12.H12. Kiểm tra Mã TTHC, hoặc chuyển hồ sơ về đúng "
     "cơ quan."),
    (17, "procedure_not_in_force", "issued_on",
     "ngày ban hành 03/02/2018 sau ngày thủ tục 2.000889 (Đăng ký hộ kinh doanh) hết hiệu lực "
     "(31/12/2016). Kiểm tra Ngày ban hành hoặc Mã TTHC."),
    (18, "procedure_not_in_force", "issued_on",
     "ngày ban hành 20/12/2004 trước ngày thủ tục 1.004227 (Cấp giấy phép xây dựng nhà ở riêng "
     "lẻ) có hiệu lực (01/01/2005). Kiểm tra Ngày ban hành hoặc Mã TTHC."),
    (19, "page_count_mismatch", "page_count",
     "cột Số trang ghi 3 trang nhưng các tệp ở cột Tệp có 2 trang. Kiểm tra trang quét thiếu hoặc "
     "thừa, hoặc sửa Số trang, rồi Clear để chạy lại."),
    (20, "not_still_valid", "still_valid",
     "kết quả HS-0020 đã hết hiệu lực (Còn hiệu lực = 'không'): được báo cáo, không lưu trữ. Nếu "
     "ghi nhầm, sửa thành 'có' rồi Clear để chạy lại."),
    (21, "format", "still_valid",
     "giá trị Còn hiệu lực 'chắc vậy' không đọc được; ghi 'có' hoặc 'không'."),
])
def test_each_rule_gives_exactly_its_message(validation: Validation, line: int, rule: str,
                                             field: str, message: str) -> None:
    (found,) = _problems(validation)[line]
    assert found == (rule, field, f"Dòng {line} của manifest.csv: {message}")


def test_a_record_id_twice_in_the_manifest_flags_both_rows(validation: Validation) -> None:
    problems = _problems(validation)
    for line in (12, 13):
        (found,) = problems[line]
        assert found[0] == "duplicate_record_id"
        assert "Mã hồ sơ 'HS-DUP' xuất hiện ở nhiều dòng" in found[2]


def test_personal_id_never_appears_in_a_message(validation: Validation) -> None:
    assert all("12345" not in p.message for ps in validation.problems.values() for p in ps)


def test_suggestions_without_a_name_are_by_code_only() -> None:
    text = closest_procedures("2.000898", "", CATALOGUE)
    assert text.startswith("Mã gần nhất trong danh mục: 2.000889 (Đăng ký hộ kinh doanh)")
    assert "Tên gần nhất" not in text


def test_the_same_inputs_validated_again_take_the_last_outcome_and_new_ones_are_checked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rerun (after a crash, a retried register task) does not pay great-expectations again;
    any change in what is checked does."""
    docs = tmp_path / "reports" / "validation" / "000.00.12.H12" / "B-LAI"
    settings = load_settings(data_dir=tmp_path)
    rows = [_row(2), _row(3, procedure_code="1004227")]
    first = validate_manifest(rows, RANGE, REFERENCE, {}, docs_dir=docs, run_name="B-LAI",
                              settings=settings)
    assert set(first.problems) == {3} and first.docs and (docs / LAST_RUN).is_file()

    # the same rows again: taken from the last run, great-expectations not even imported
    with monkeypatch.context() as mp:
        mp.setitem(sys.modules, "great_expectations", None)
        again = validate_manifest(rows, RANGE, REFERENCE, {}, docs_dir=docs, run_name="B-LAI",
                                  settings=settings)
        assert (again.problems, again.result, again.docs) == (first.problems, first.result, first.docs)
        # a row changed, another catalogue, or the Data Docs page gone: validated again
        for changed in (
                dict(rows=[_row(2), _row(3, procedure_code="1.004227")], reference=REFERENCE),
                dict(rows=rows, reference=Reference("000.00.12.H12", "tinh", CATALOGUE))):
            with pytest.raises(ImportError):
                validate_manifest(changed["rows"], RANGE, changed["reference"], {}, docs_dir=docs,
                                  run_name="B-LAI", settings=settings)
    fixed = validate_manifest([_row(2), _row(3, procedure_code="1.004227")], RANGE, REFERENCE, {},
                              docs_dir=docs, run_name="B-LAI", settings=settings)
    assert fixed.problems == {}
    for page in docs.rglob("*.html"):
        page.unlink()
    with monkeypatch.context() as mp:
        mp.setitem(sys.modules, "great_expectations", None)
        with pytest.raises(ImportError):
            validate_manifest([_row(2), _row(3, procedure_code="1.004227")], RANGE, REFERENCE, {},
                              docs_dir=docs, run_name="B-LAI", settings=settings)
