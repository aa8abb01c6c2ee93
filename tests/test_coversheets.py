"""`digitize cover-sheets`: printed sheets read back as the facts they were printed from, records
already archived are not printed again, bad rows are rejected with their line and column.

The first printed sheet, once read back, is rendered for the clerk's guide
(``docs/screenshots/to-bia-ho-so.png``, docs/huong-dan-van-thu-so-hoa.md)."""

from __future__ import annotations

import datetime as dt
import io
import subprocess
from pathlib import Path

import numpy as np
import openpyxl
import pikepdf
import pytest
import zxingcpp
from conftest import import_reference
from PIL import Image, ImageDraw

from pipeline import cli
from pipeline._exec import poppler
from pipeline.config import PROJECT_DIR, Settings, load_settings
from pipeline.intake import coversheets, separator, sheetcode
from pipeline.intake.sheetcode import SheetFacts
from pipeline.store import archive, warehouse

AGENCY = "000.00.12.H12"  # Ủy ban nhân dân huyện Đông Anh in the sample registry
HEADER = "Mã hồ sơ;Mã TTHC;Số ký hiệu;Ngày ban hành;Còn hiệu lực"
# the sheet as the clerk's guide shows it; rewritten by each run of the test that prints it
DOCS_SCREENSHOT = PROJECT_DIR / "docs" / "screenshots" / "to-bia-ho-so.png"


def _csv(path: Path, *rows: str, header: str = HEADER) -> Path:
    # as Excel on Windows saves "CSV UTF-8": BOM, ';' separated
    path.write_text("\n".join((header, *rows)) + "\n", encoding="utf-8-sig")
    return path


def _archive(url: str, agency: str, record_id: str, status: str = "archived") -> None:
    """A record of an earlier batch, as a record's run leaves it in the warehouse."""
    with warehouse.engine_for(url).begin() as conn:
        batch_pk = warehouse.pk_of(conn, warehouse.batches, agency_code=agency, batch_id="B-OLD")
        if batch_pk is None:
            conn.execute(warehouse.batches.insert().values(
                agency_code=agency, batch_id="B-OLD", source_dir="/tmp/old", manifest_sha256="0" * 64,
                status="finished"))
            batch_pk = warehouse.pk_of(conn, warehouse.batches, agency_code=agency, batch_id="B-OLD")
        conn.execute(warehouse.records.insert().values(
            agency_code=agency, record_id=record_id, batch_pk=batch_pk, manifest_line=2,
            status=status, page_count=1))


def _codes(image: Image.Image) -> list[SheetFacts]:
    found = zxingcpp.read_barcodes(np.asarray(image.convert("L")),
                                   formats=zxingcpp.BarcodeFormat.QRCode)
    return [sheetcode.decode(b.text) for b in found]


def _scan(pdf: Path, dpi: int, folder: Path) -> list[list[SheetFacts]]:
    """The codes found on each page of ``pdf`` printed and scanned at ``dpi``."""
    folder.mkdir()
    subprocess.run(["pdftoppm", "-r", str(dpi), "-gray", str(pdf), str(folder / "p")], check=True,
                   timeout=120)
    return [_codes(Image.open(page)) for page in sorted(folder.glob("p-*.pgm"))]


def test_printed_sheets_scan_back_as_their_facts(reference_settings: Settings, tmp_path: Path) -> None:
    inventory = _csv(tmp_path / "ds.csv",
                     "HS-2015-0001;1.001612;12/QĐ-UBND;01/07/2015;Có",
                     "HS-2015-0002;2.000720;345/GCN-ĐKKD;2015-08-20;",
                     "HS-2016-0003;1.001266;7%|ký hiệu lạ;31/12/2016;x")
    out = tmp_path / "in" / "to-bia.pdf"
    report = coversheets.write_cover_sheets(reference_settings, AGENCY, inventory, out)
    expected = [
        SheetFacts(AGENCY, "HS-2015-0001", "1.001612", "12/QĐ-UBND", dt.date(2015, 7, 1)),
        SheetFacts(AGENCY, "HS-2015-0002", "2.000720", "345/GCN-ĐKKD", dt.date(2015, 8, 20)),
        SheetFacts(AGENCY, "HS-2016-0003", "1.001266", "7%|ký hiệu lạ", dt.date(2016, 12, 31)),
    ]
    assert report.printed == [f.record_id for f in expected] and report.out == str(out)
    assert report.rejected == 0 and not report.archived and not report.problems

    with pikepdf.open(out) as pdf:
        assert len(pdf.pages) == 3
        for page in pdf.pages:
            assert [round(float(v), 1) for v in page.mediabox] == [0, 0, 595.3, 841.9]  # A4
            (image,) = page.images.values()
            assert pikepdf.PdfImage(image).filters == ["/CCITTFaxDecode"]  # bitonal G4
    assert out.stat().st_size < 50_000 * 3
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]

    for dpi in (200, 300):
        pages = _scan(out, dpi, tmp_path / f"scan-{dpi}")
        assert [page[0] for page in pages] == expected, dpi
        assert all(page == [page[0]] * 2 for page in pages), "each sheet carries its code twice"

    # small enough for a page of documentation, and still a sheet whose two codes read back
    png = poppler.render_png(out, 1, 60, gray=True)
    shown = Image.open(io.BytesIO(png))
    assert shown.size == (497, 702)  # A4 at 60 dpi
    assert _codes(shown) == [expected[0]] * 2
    assert len(png) < 150_000
    archive.atomic_write_bytes(DOCS_SCREENSHOT, png)


def test_one_covered_code_leaves_the_sheet_readable() -> None:
    facts = SheetFacts(AGENCY, "HS-2015-0001", "1.001612", "12/QĐ-UBND", dt.date(2015, 7, 1))
    sheet = coversheets.render_sheet(facts, "Đăng ký thành lập hộ kinh doanh",
                                     "Ủy ban nhân dân huyện Đông Anh")
    assert sheet.mode == "1" and sheet.size == (2480, 3508)  # A4 at 300 dpi
    width, height = sheet.size
    half = height // 2
    for covered in ((width // 2, 0, width, half), (0, half, width // 2, height)):
        stained = sheet.convert("L")
        ImageDraw.Draw(stained).rectangle(covered, fill=0)
        assert _codes(stained) == [facts]
        # the stack splitter finds it at the resolution it reads pages at
        kind, text, _ = separator.classify(np.asarray(stained), 300)
        assert kind is separator.Kind.sheet and sheetcode.decode(text) == facts


def test_archived_records_are_not_printed_again(warehouse_url: str, tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "var", db_url=warehouse_url)
    import_reference(settings.data_dir, warehouse_url)
    _archive(warehouse_url, AGENCY, "HS-DA-LUU")
    _archive(warehouse_url, AGENCY, "HS-CACH-LY", status="quarantined")  # to be scanned again
    _archive(warehouse_url, "000.00.13.H12", "HS-KHAC")  # the same id at another agency
    inventory = _csv(tmp_path / "ds.csv",
                     "HS-DA-LUU;1.001612;1/QĐ;01/07/2015;",
                     "HS-CACH-LY;1.001612;2/QĐ;02/07/2015;",
                     "HS-KHAC;1.001612;3/QĐ;03/07/2015;",
                     "HS-HET-HIEU-LUC;1.001612;4/QĐ;04/07/2015;Không")
    out = tmp_path / "to-bia.pdf"
    report = coversheets.write_cover_sheets(settings, AGENCY, inventory, out)
    assert report.printed == ["HS-CACH-LY", "HS-KHAC"]
    assert report.archived == ["HS-DA-LUU"] and report.not_valid == ["HS-HET-HIEU-LUC"]
    assert report.rejected == 0
    with pikepdf.open(out) as pdf:
        assert len(pdf.pages) == 2
    lines = coversheets.summary_lines(report)
    assert lines[0].startswith("Đã in 2 tờ bìa") and "bỏ qua 1 hồ sơ đã lưu trữ" in lines[0]
    assert any("HS-DA-LUU" in line for line in lines)

    # everything archived: nothing to print, and no empty PDF over the old one
    out.unlink()
    again = _csv(tmp_path / "ds2.csv", "HS-DA-LUU;1.001612;1/QĐ;01/07/2015;")
    report = coversheets.write_cover_sheets(settings, AGENCY, again, out)
    assert report.printed == [] and report.out is None and not out.exists()
    assert "Không có tờ bìa nào cần in" in "\n".join(coversheets.summary_lines(report))


def test_bad_rows_are_rejected_and_the_rest_printed(reference_settings: Settings,
                                                   tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["DANH SÁCH HỒ SƠ CẦN SỐ HÓA"])  # a title row above the header, as exports have
    sheet.append([])
    sheet.append(["Mã hồ sơ", "Mã TTHC", "Số, ký hiệu", "Ngày ban hành", "Còn hiệu lực"])
    sheet.append(["HS-1", "1.001612", "12/QĐ-UBND", dt.datetime(2015, 7, 1), "Có"])  # row 4
    sheet.append(["HS-2", "1.001612", "13/QĐ-UBND", None, None])
    sheet.append(["HS-3", "1.001612", "14/QĐ-UBND", "31/02/2015", None])
    sheet.append(["HS-4", "1.001612", None, "01/08/2015", None])
    sheet.append(["HS-1", "1.001612", "15/QĐ-UBND", "02/08/2015", None])
    sheet.append(["HS-6", "1.001612", "16/QĐ-UBND", "03/08/2015", "chưa rõ"])
    sheet.append(["HS-7", 2.00072, "17/QĐ-UBND", "04/08/2015", True])  # 2.000720 typed as a number
    inventory = tmp_path / "ds.xlsx"
    book.save(inventory)

    report = coversheets.write_cover_sheets(reference_settings, AGENCY, inventory,
                                            tmp_path / "to-bia.pdf")
    assert report.printed == ["HS-1", "HS-7"] and report.rows == 7 and report.rejected == 5
    messages = {p.line: p.message for p in report.problems}
    assert set(messages) == {5, 6, 7, 8, 9}
    assert messages[5].startswith("Dòng 5 của ds.xlsx, cột 'Ngày ban hành': để trống")
    assert "'31/02/2015' không đọc được" in messages[6] and "dd/mm/yyyy" in messages[6]
    assert "cột 'Số, ký hiệu'" in messages[7]
    assert "'HS-1' đã có ở dòng 4" in messages[8]
    assert "cột 'Còn hiệu lực'" in messages[9] and "'chưa rõ'" in messages[9]


def _digitize(*args: str) -> int:
    return cli.main(["cover-sheets", "--agency", AGENCY, *args])


def test_cli_exit_codes(reference_settings: Settings, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    good = _csv(tmp_path / "good.csv", "HS-1;1.001612;12/QĐ-UBND;01/07/2015;")
    out = tmp_path / "to-bia.pdf"
    assert _digitize("--inventory", str(good), "--out", str(out)) == 0
    assert "Đã in 1 tờ bìa" in capsys.readouterr().out and out.exists()

    bad = _csv(tmp_path / "bad.csv", "HS-2;1.001612;13/QĐ-UBND;01/07/2015;",
               "HS-3;1.001612;14/QĐ-UBND;;")
    assert _digitize("--inventory", str(bad), "--out", str(out)) == 3
    printed = capsys.readouterr().out
    assert "1 dòng bị từ chối" in printed and "Dòng 3 của bad.csv" in printed

    no_column = _csv(tmp_path / "no-date.csv", "HS-4;1.001612;15/QĐ", header="Mã hồ sơ;Mã TTHC;Số ký hiệu")
    assert _digitize("--inventory", str(no_column), "--out", str(out)) == 2
    assert "thiếu cột bắt buộc: 'Ngày ban hành'" in caplog.text
    assert _digitize("--inventory", str(tmp_path / "missing.csv"), "--out", str(out)) == 2
    assert "Không tìm thấy tệp" in caplog.text
    assert cli.main(["cover-sheets", "--agency", "999.99.99.H99", "--inventory", str(good),
                     "--out", str(out)]) == 2
    assert "digitize agencies import" in caplog.text
