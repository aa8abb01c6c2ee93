"""Reference data import (catalogue, agencies, inventory) on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import digitize as run_digitize
from openpyxl import Workbook, load_workbook

from pipeline.checks import reference
from pipeline.checks.reference import SAMPLE_FILES
from pipeline.demo import content, samples
from pipeline.errors import ExitCode, ReferenceFileError
from pipeline.store import warehouse

SAMPLE_COUNTS = {"agencies": 9, "catalogue": 25, "inventory": 346}
THIS_YEAR = dt.date.today().year


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    else:
        url = request.getfixturevalue("pg_url")
    warehouse.migrate(url)
    return url


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _messages(report: reference.ImportReport) -> list[str]:
    return [p.message for p in report.problems]


def _counts(report: reference.ImportReport) -> tuple[int, int, int, int]:
    return report.added, report.changed, report.unchanged, report.rejected


# --- the sample files ----------------------------------------------------------------------------
def test_sample_files_import_with_expected_counts(db_url: str) -> None:
    reports = reference.import_samples(db_url)
    assert [r.kind for r in reports] == ["agencies", "catalogue", "inventory"]
    for report in reports:
        assert _counts(report) == (SAMPLE_COUNTS[report.kind], 0, 0, 0), report.problems
        assert report.rows == SAMPLE_COUNTS[report.kind]
    counts = warehouse.row_counts(db_url)
    assert (counts["agencies"], counts["procedures"], counts["inventory"]) == (9, 25, 346)
    catalogue = {row[0]: row for row in reference.rows_of(db_url, "catalogue")}
    assert catalogue["1.001776"] == (
        "1.001776", "Thực hiện trợ cấp xã hội hàng tháng đối với đối tượng bảo trợ xã hội",
        "huyen,xa", "Bảo trợ xã hội", "Phòng Lao động - Thương binh và Xã hội cấp huyện",
        dt.date(2004, 1, 1), None)
    assert catalogue["1.001022"][2] == "tinh,huyen,xa"  # 'Cấp Tỉnh; Cấp Huyện; Cấp Xã'
    agencies = {row[0]: row for row in reference.rows_of(db_url, "agencies")}
    assert agencies["000.01.12.H12"] == ("000.01.12.H12", "Ủy ban nhân dân xã Uy Nỗ", "xa",
                                         "000.00.12.H12")
    assert agencies["000.00.00.H12"][3] is None


def test_reimport_changes_nothing(db_url: str) -> None:
    reference.import_samples(db_url)
    before = {kind: reference.rows_of(db_url, kind) for kind in SAMPLE_COUNTS}
    for report in reference.import_samples(db_url):
        assert _counts(report) == (0, 0, SAMPLE_COUNTS[report.kind], 0)
    assert {kind: reference.rows_of(db_url, kind) for kind in SAMPLE_COUNTS} == before


def test_editing_one_name_changes_exactly_one_row(db_url: str, tmp_path: Path) -> None:
    reference.import_samples(db_url)
    text = SAMPLE_FILES["catalogue"].read_text(encoding="utf-8-sig")
    edited = text.replace("Đăng ký khai tử,", "Đăng ký khai tử (sửa đổi),")
    assert edited.count("(sửa đổi)") == 1
    report = reference.import_catalogue(db_url, _write(tmp_path / "catalogue.csv", edited))
    assert _counts(report) == (0, 1, 24, 0)
    names = {row[0]: row[1] for row in reference.rows_of(db_url, "catalogue")}
    assert names["1.000656"] == "Đăng ký khai tử (sửa đổi)"


def test_xlsx_equals_csv(db_url: str) -> None:
    xlsx = SAMPLE_FILES["catalogue"].with_suffix(".xlsx")
    sheet = load_workbook(xlsx, read_only=True).worksheets[0]
    second_row = next(sheet.iter_rows(min_row=2, max_row=2, values_only=True))
    assert isinstance(second_row[5], dt.datetime)  # real Excel dates, not text
    assert _counts(reference.import_catalogue(db_url, xlsx)) == (25, 0, 0, 0)
    from_xlsx = reference.rows_of(db_url, "catalogue")
    assert _counts(reference.import_catalogue(db_url, SAMPLE_FILES["catalogue"])) == (0, 0, 25, 0)
    assert reference.rows_of(db_url, "catalogue") == from_xlsx


def test_sample_catalogue_fits_the_sample_generator(tmp_path: Path) -> None:
    """The demo's batch must pass validation: its procedures apply at its agency's level and are
    in force over the whole 2005-2021 range the generator draws issue dates from."""
    url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    warehouse.migrate(url)
    reference.import_samples(url)
    catalogue = {row[0]: row for row in reference.rows_of(url, "catalogue")}
    agencies = {row[0]: row for row in reference.rows_of(url, "agencies")}
    level = agencies[content.DEFAULT_AGENCY][2]
    assert level == "huyen"
    for procedure in content.PROCEDURES:
        code, name, levels, _field, _agency, valid_from, valid_to = catalogue[procedure.code]
        assert name == procedure.name
        assert reference.parse_level(procedure.level) in levels.split(",")
        assert level in levels.split(",")
        assert valid_from is None or valid_from <= dt.date(2005, 1, 1)
        assert valid_to is None or valid_to >= dt.date(2021, 12, 31)
    expired = [row for row in catalogue.values() if row[6] and row[6] < dt.date.today()]
    assert [row[0] for row in expired] == ["1.000047"]
    assert "1.005398" in [row[0] for row in catalogue.values() if row[2] == "tinh"]


# --- validation ----------------------------------------------------------------------------------
def test_catalogue_rules_have_exact_messages(db_url: str, tmp_path: Path) -> None:
    path = _write(tmp_path / "danhmuc.csv", "\n".join([
        "procedure_code,name,levels,field,implementing_agency,valid_from,valid_to",
        "1.004227,Cấp giấy phép xây dựng,huyện,Xây dựng,,01/07/2004,",
        "1.04227,Thủ tục A,huyện,,,,",
        "1.000001,Thủ tục B,Cấp Trung ương,,,,",
        "1.000002,Thủ tục C,xã,,,31/02/2020,",
        '1.000003,Thủ tục D,"tỉnh, huyện, xã",,,01/01/2020,31/12/2019',
        "1.004227,Thủ tục E,huyện,,,,",
        "1.000004,,huyện,,,,",
        "1.000005,Thủ tục F,,,,,",
    ]) + "\n")
    report = reference.import_catalogue(db_url, path)
    assert _counts(report) == (1, 0, 0, 7)
    assert _messages(report) == [
        "Dòng 3 của danhmuc.csv, cột 'procedure_code': mã thủ tục '1.04227' không đúng dạng; cần 1 "
        "chữ số, dấu chấm và 6 chữ số như trong Cơ sở dữ liệu quốc gia về TTHC (ví dụ 1.004227).",
        "Dòng 4 của danhmuc.csv, cột 'levels': cấp thực hiện 'Cấp Trung ương' không hợp lệ; cần "
        "một hoặc nhiều cấp trong: tỉnh, huyện, xã (ví dụ 'Cấp Tỉnh; Cấp Huyện').",
        "Dòng 5 của danhmuc.csv, cột 'valid_from': ngày '31/02/2020' không đọc được; cần dạng "
        "dd/mm/yyyy (ví dụ 01/07/2015) hoặc yyyy-mm-dd.",
        "Dòng 6 của danhmuc.csv, cột 'valid_to': ngày hết hiệu lực 31/12/2019 trước ngày bắt đầu "
        "hiệu lực 01/01/2020 (cột 'valid_from'); sửa một trong hai ngày.",
        "Dòng 7 của danhmuc.csv, cột 'procedure_code': mã thủ tục '1.004227' đã có ở dòng 2; mỗi "
        "mã chỉ một dòng. Xóa dòng trùng hoặc sửa mã.",
        "Dòng 8 của danhmuc.csv, cột 'name': để trống; cần tên thủ tục. Điền vào rồi nhập lại.",
        "Dòng 9 của danhmuc.csv, cột 'levels': để trống; cần cấp thực hiện, ví dụ 'Cấp Tỉnh; "
        "Cấp Huyện'. Điền vào rồi nhập lại.",
    ]
    assert [(p.line, p.column, p.value) for p in report.problems][:2] == [
        (3, "procedure_code", "1.04227"), (4, "levels", "Cấp Trung ương")]
    assert reference.rows_of(db_url, "catalogue") == [
        ("1.004227", "Cấp giấy phép xây dựng", "huyen", "Xây dựng", None, dt.date(2004, 7, 1), None)]


def test_agency_rules_have_exact_messages(db_url: str, tmp_path: Path) -> None:
    path = _write(tmp_path / "coquan.csv", "\n".join([
        "Mã cơ quan;Tên cơ quan;Cấp;Cơ quan cấp trên",
        "000.00.12.H12;UBND huyện Đông Anh;Cấp Huyện;",
        "000.01.12.H12;UBND xã Uy Nỗ;Cấp Xã;000.00.12.H12",
        "00.01.12.H12;UBND xã Vân Hà;Xã;000.00.12.H12",
        "000.03.12.H12;UBND xã Liên Hà;thôn;000.00.12.H12",
        "000.04.12.H12;UBND xã Kim Chung;xã;000.00.99.H12",
        "000.01.12.H12;UBND xã Uy Nỗ (trùng);xã;000.00.12.H12",
    ]) + "\n")
    report = reference.import_agencies(db_url, path)
    assert _counts(report) == (2, 0, 0, 4)
    assert _messages(report) == [
        "Dòng 4 của coquan.csv, cột 'Mã cơ quan': mã cơ quan '00.01.12.H12' không đúng dạng; cần "
        "mã định danh dạng NNN.NN.NN.HNN, ví dụ 000.00.12.H12.",
        "Dòng 5 của coquan.csv, cột 'Cấp': cấp 'thôn' không hợp lệ; cần một trong: tỉnh, huyện, xã.",
        "Dòng 6 của coquan.csv, cột 'Cơ quan cấp trên': cơ quan cấp trên '000.00.99.H12' không có "
        "trong tệp này (hoặc dòng của nó bị từ chối) và chưa có trong kho; thêm cơ quan cấp trên "
        "hoặc sửa mã.",
        "Dòng 7 của coquan.csv, cột 'Mã cơ quan': mã cơ quan '000.01.12.H12' đã có ở dòng 3; mỗi "
        "mã chỉ một dòng. Xóa dòng trùng hoặc sửa mã.",
    ]
    assert reference.rows_of(db_url, "agencies") == [
        ("000.00.12.H12", "UBND huyện Đông Anh", "huyen", None),
        ("000.01.12.H12", "UBND xã Uy Nỗ", "xa", "000.00.12.H12"),
    ]


def test_inventory_rules_have_exact_messages(db_url: str, tmp_path: Path) -> None:
    reference.import_agencies(db_url, SAMPLE_FILES["agencies"])
    reference.import_catalogue(db_url, SAMPLE_FILES["catalogue"])
    path = _write(tmp_path / "kiemdem.csv", "\n".join([
        "Mã cơ quan,Năm ban hành,Mã TTHC,Số lượng còn hiệu lực",
        "000.00.12.H12,2015,1.004227,412",
        "000.00.77.H12,2015,1.004227,10",
        "000.00.12.H12,2015,1.999999,10",
        "000.00.12.H12,2016,1.004227,-3",
        "000.00.12.H12,2017,1.004227,12.5",
        "000.00.12.H12,1970,1.004227,5",
        f"000.00.12.H12,{THIS_YEAR + 1},1.004227,5",
        "000.00.12.H12,2015,1.004227,400",
        "000.00.12.H12,2018,1.004227,1.234",
    ]) + "\n")
    report = reference.import_inventory(db_url, path)
    assert _counts(report) == (2, 0, 0, 7)
    assert _messages(report) == [
        "Dòng 3 của kiemdem.csv, cột 'Mã cơ quan': mã cơ quan '000.00.77.H12' chưa có trong danh "
        "sách cơ quan của kho; nhập danh sách cơ quan trước (digitize agencies import) hoặc sửa mã.",
        "Dòng 4 của kiemdem.csv, cột 'Mã TTHC': mã thủ tục '1.999999' chưa có trong danh mục thủ "
        "tục của kho; nhập danh mục trước (digitize catalogue import) hoặc sửa mã.",
        "Dòng 5 của kiemdem.csv, cột 'Số lượng còn hiệu lực': số lượng '-3' không hợp lệ; cần một "
        "số nguyên không âm (0, 1, 2, ...).",
        "Dòng 6 của kiemdem.csv, cột 'Số lượng còn hiệu lực': số lượng '12.5' không hợp lệ; cần "
        "một số nguyên không âm (0, 1, 2, ...).",
        f"Dòng 7 của kiemdem.csv, cột 'Năm ban hành': năm '1970' không hợp lệ; cần một năm từ "
        f"1975 đến {THIS_YEAR}.",
        f"Dòng 8 của kiemdem.csv, cột 'Năm ban hành': năm '{THIS_YEAR + 1}' không hợp lệ; cần một "
        f"năm từ 1975 đến {THIS_YEAR}.",
        "Dòng 9 của kiemdem.csv, cột 'Mã TTHC': bộ (cơ quan, năm, thủ tục) '000.00.12.H12 / 2015 / "
        "1.004227' đã có ở dòng 2; mỗi bộ chỉ một dòng. Cộng số lượng vào một dòng và xóa dòng trùng.",
    ]
    assert reference.rows_of(db_url, "inventory") == [
        ("000.00.12.H12", 2015, "1.004227", 412),
        ("000.00.12.H12", 2018, "1.004227", 1234),  # '1.234' as Excel writes it in vi-VN
    ]


def test_code_only_rows_from_a_batch_do_not_count_as_registered(db_url: str, tmp_path: Path) -> None:
    """An agency/procedure a batch met (code only) is not reference data: the inventory rejects it,
    and the import that fills it in counts it as added."""
    with warehouse.engine_for(db_url).begin() as conn:
        warehouse.upsert(conn, warehouse.agencies, [{"code": "000.00.12.H12"}], ("code",))
        warehouse.upsert(conn, warehouse.procedures, [{"code": "1.004227"}], ("code",))
    path = _write(tmp_path / "inv.csv", "agency_code,issue_year,procedure_code,still_valid_count\n"
                                        "000.00.12.H12,2015,1.004227,3\n")
    report = reference.import_inventory(db_url, path)
    assert _counts(report) == (0, 0, 0, 1) and len(report.problems) == 2
    assert _counts(reference.import_agencies(db_url, SAMPLE_FILES["agencies"])) == (9, 0, 0, 0)
    assert _counts(reference.import_catalogue(db_url, SAMPLE_FILES["catalogue"])) == (25, 0, 0, 0)
    assert _counts(reference.import_inventory(db_url, path)) == (1, 0, 0, 0)


@pytest.mark.parametrize(("name", "content", "fragments"), [
    ("catalogue.csv", "Mã thủ tục,Tên thủ tục,Lĩnh vực\n1.004227,Cấp phép,Xây dựng\n",
     ["thiếu cột bắt buộc: 'Cấp thực hiện' (hoặc levels)", "Dòng tiêu đề đọc được: ['Mã thủ tục', "
      "'Tên thủ tục', 'Lĩnh vực']", "schemas/reference/"]),
    ("catalogue.csv", "", ["thiếu cột bắt buộc: 'Mã thủ tục' (hoặc code), 'Tên thủ tục' (hoặc "
                           "name), 'Cấp thực hiện' (hoặc levels)"]),
    ("catalogue.ods", "x", ["không nhận dạng được định dạng '.ods'", ".xlsx"]),
    ("catalogue.xls", "x", ["Excel 97-2003 (.xls)", "lưu thành .xlsx"]),
    ("catalogue.xlsx", "not a zip", ["không mở được như tệp Excel .xlsx"]),
])
def test_unusable_file_is_a_typed_error_naming_the_file(tmp_path: Path, name: str, content: str,
                                                        fragments: list[str]) -> None:
    path = _write(tmp_path / name, content)
    with pytest.raises(ReferenceFileError) as caught:
        reference.import_catalogue(f"sqlite:///{tmp_path / 'w.sqlite'}", path)
    assert str(path) in str(caught.value)
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert caught.value.exit_code == ExitCode.bad_usage


def test_non_utf8_csv_says_how_to_save_it(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.csv"
    # what Excel's plain "CSV" gives on a Western Windows: an 8-bit code page
    path.write_bytes("Mã thủ tục,Tên thủ tục,Cấp thực hiện\n".encode("cp1252", errors="replace"))
    with pytest.raises(ReferenceFileError, match="không phải UTF-8.*CSV UTF-8"):
        reference.import_catalogue(f"sqlite:///{tmp_path / 'w.sqlite'}", path)


# --- reading -------------------------------------------------------------------------------------
def test_export_layout_title_rows_semicolons_and_wrapped_cells(db_url: str, tmp_path: Path) -> None:
    """A national-database export: a title and a blank line above the header, ';' separated,
    a name wrapped onto two lines inside its cell, decomposed (NFD) diacritics, a Vietnamese
    header typed without diacritics."""
    path = tmp_path / "export.csv"
    path.write_bytes("\ufeff".encode() + "\n".join([
        "DANH MỤC THỦ TỤC HÀNH CHÍNH;;;",
        ";;;",
        "STT;Mã TTHC;Ten thu tuc;Cấp thực hiện;Hiệu lực từ",
        '1;1.001193;"Đăng ký\nkhai sinh";Cấp Xã;2006-04-01',
        "2;1.000894;" + "Đăng ký kết hôn".replace("ế", "e\u0302\u0301") + ";Cấp Xã;01/04/2006",
        "3;1.000656;Đăng ký khai tử;Cấp Xã;x",
    ]).encode())
    report = reference.import_catalogue(db_url, path)
    assert _counts(report) == (2, 0, 0, 1)
    assert report.problems[0].line == 7 and report.problems[0].column == "Hiệu lực từ"
    assert reference.rows_of(db_url, "catalogue") == [
        ("1.000894", "Đăng ký kết hôn", "xa", None, None, dt.date(2006, 4, 1), None),
        ("1.001193", "Đăng ký khai sinh", "xa", None, None, dt.date(2006, 4, 1), None)]


def test_xlsx_numbers_and_dates_as_excel_stores_them(db_url: str, tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Mã thủ tục", "Tên thủ tục", "Cấp thực hiện", "Hiệu lực từ", "Hiệu lực đến"])
    sheet.append([2.00089, "Thủ tục số", "tỉnh, huyện", dt.datetime(2010, 5, 1), "31/12/2030"])
    book.save(tmp_path / "c.xlsx")
    report = reference.import_catalogue(db_url, tmp_path / "c.xlsx")
    assert _counts(report) == (1, 0, 0, 0), report.problems
    assert reference.rows_of(db_url, "catalogue") == [
        ("2.000890", "Thủ tục số", "tinh,huyen", None, None, dt.date(2010, 5, 1),
         dt.date(2030, 12, 31))]


def test_level_words() -> None:
    assert reference.parse_levels("Cấp Tỉnh; Cấp Huyện") == ["tinh", "huyen"]
    assert reference.parse_levels("xã, huyện và tỉnh") == ["tinh", "huyen", "xa"]
    assert reference.parse_levels("CẤP XÃ") == ["xa"]
    assert reference.parse_levels("Cấp Tỉnh; Trung ương") is None
    assert reference.parse_level("district") == "huyen"


# --- writes --------------------------------------------------------------------------------------
def test_a_failed_write_leaves_nothing_half_imported(db_url: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    reference.import_agencies(db_url, SAMPLE_FILES["agencies"])
    reference.import_catalogue(db_url, SAMPLE_FILES["catalogue"])
    real = warehouse.upsert_many

    def fail_after_first_chunk(conn, table, rows, keys, chunk_size=5000) -> None:
        real(conn, table, rows[:100], keys)
        raise RuntimeError("database went away")

    monkeypatch.setattr(warehouse, "upsert_many", fail_after_first_chunk)
    with pytest.raises(RuntimeError):
        reference.import_inventory(db_url, SAMPLE_FILES["inventory"])
    assert warehouse.row_counts(db_url)["inventory"] == 0


def test_upsert_many_refuses_repeated_keys(db_url: str) -> None:
    with warehouse.engine_for(db_url).begin() as conn, pytest.raises(ValueError, match="repeated"):
        warehouse.upsert_many(conn, warehouse.agencies, [{"code": "A", "name": "x"},
                                                         {"code": "A", "name": "y"}], ("code",))


def test_batch_registered_after_import_keeps_the_reference_data(db_url: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.config import load_settings
    from pipeline.registration import register_batch

    monkeypatch.setenv("DIGITIZE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("DIGITIZE_DB_URL", db_url)
    settings = load_settings()
    reference.import_samples(db_url)
    before = {kind: reference.rows_of(db_url, kind) for kind in SAMPLE_COUNTS}
    batch_dir = tmp_path / "inbox" / content.DEFAULT_AGENCY / "B1"
    samples.generate_batch(batch_dir, n_records=len(content.PROCEDURES), seed=3)
    register_batch(settings, batch_dir)
    # what a batch of an earlier version wrote: its codes alone, with the default DO UPDATE
    with warehouse.engine_for(db_url).begin() as conn:
        warehouse.upsert(conn, warehouse.agencies, [{"code": content.DEFAULT_AGENCY}], ("code",))
        warehouse.upsert(conn, warehouse.procedures,
                         [{"code": p.code} for p in content.PROCEDURES], ("code",))
        warehouse.upsert_many(conn, warehouse.procedures,
                              [{"code": p.code} for p in content.PROCEDURES], ("code",))
    assert {kind: reference.rows_of(db_url, kind) for kind in SAMPLE_COUNTS} == before


# --- command line --------------------------------------------------------------------------------
def digitize(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_digitize(*args, env={**os.environ, **env})


def test_cli_import_commands_and_exit_codes(db_url: str, tmp_path: Path) -> None:
    env = {"DIGITIZE_DATA_DIR": str(tmp_path / "var"), "DIGITIZE_DB_URL": db_url,
           "COLUMNS": "200"}
    out = digitize("agencies", "import", str(SAMPLE_FILES["agencies"]), env=env)
    assert out.returncode == 0, out.stderr
    for label in ("Thêm mới", "Thay đổi", "Không đổi", "Bị từ chối"):
        assert label in out.stdout
    assert digitize("catalogue", "import", str(SAMPLE_FILES["catalogue"]), env=env).returncode == 0

    bad = shutil.copy(SAMPLE_FILES["inventory"], tmp_path / "inventory.csv")
    with open(bad, "a", encoding="utf-8") as fh:
        fh.write("000.00.12.H12,2016,1.004227,-1\n")
    out = digitize("inventory", "import", str(bad), "--json", env=env)
    assert out.returncode == ExitCode.some_quarantined, out.stderr
    report = json.loads(out.stdout)
    assert (report["added"], report["changed"], report["rejected"]) == (346, 0, 1)
    assert report["problems"][0]["line"] == 348 and "số lượng '-1'" in report["problems"][0]["message"]

    out = digitize("inventory", "import", str(bad), env=env)
    assert out.returncode == 3 and "Dòng 348 của inventory.csv" in out.stdout

    missing = _write(tmp_path / "agencies.csv", "Mã định danh,Tên cơ quan\n")
    out = digitize("agencies", "import", str(missing), env=env)
    assert out.returncode == 2
    assert str(missing) in out.stderr and "'Cấp' (hoặc level)" in out.stderr


def test_cli_help_lists_the_import_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "catalogue", "import", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--json" in out.stdout and "Mã thủ tục" in out.stdout
