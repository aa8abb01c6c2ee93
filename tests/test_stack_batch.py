"""A whole stack scanned at once (issue 8): cover sheets printed by `digitize cover-sheets` for 20
records are scanned at 200 and 300 dpi with skew, speckle and a fold shadow, interleaved with the
records' pages (some with the blank backsides of a duplex scan), written as one multi-page TIFF and
as single-page files in scan order; the batch runs under the ``stack`` scanner profile and gives
exactly the 20 records with their own pages and the sheets' metadata."""

from __future__ import annotations

import csv
import json
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import qr_page
from PIL import Image, TiffImagePlugin
from sqlalchemy import select

from pipeline.batch import run_batch
from pipeline.config import Settings
from pipeline.demo import defects, samples
from pipeline.intake import coversheets, ingest, pages, sheetcode
from pipeline.models import ManifestRow, RecordStatus
from pipeline.record import process_record
from pipeline.registration import record_tasks, refresh_task, register_batch
from pipeline.store import archive, warehouse

AGENCY = "000.00.12.H12"
N_RECORDS = 20
IN_TIFF = 8  # the first records go into one multi-page TIFF, the rest into single-page files


@pytest.fixture
def stack_settings(reference_settings: Settings) -> Settings:
    # a new Settings, not model_copy: the copy would keep the cached default profile
    return Settings(**{**reference_settings.model_dump(), "profile": "stack"})


def _inventory(path: Path, records: list[samples.SampleRecord]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Mã hồ sơ", "Mã TTHC", "Số ký hiệu", "Ngày ban hành"])
        for r in records:
            writer.writerow([r.record_id, r.procedure_code, r.result_number, f"{r.issued_on:%d/%m/%Y}"])
    return path


def _fold_shadow(page: Image.Image, rng: random.Random) -> Image.Image:
    """A sheet folded across for the post shows a soft dark band along the fold."""
    arr = np.asarray(page.convert("L"), dtype=np.float32)
    h = arr.shape[0]
    y = np.arange(h, dtype=np.float32)[:, None]
    fold, width = rng.uniform(0.3, 0.7) * h, rng.uniform(0.01, 0.03) * h
    shade = 1.0 - rng.uniform(0.25, 0.4) * np.exp(-(((y - fold) / width) ** 2))
    return Image.fromarray((arr * shade).clip(0, 255).astype(np.uint8), "L")


def _scanned_sheets(sheets_pdf: Path, work: Path) -> Iterator[tuple[Image.Image, int]]:
    """Each printed sheet as the scanner sees it: 200 or 300 dpi, skewed, specked, folded."""
    for dpi in (200, 300):
        subprocess.run(["pdftoppm", "-r", str(dpi), "-gray", "-png", str(sheets_pdf),
                        str(work / f"sheet{dpi}")], check=True)
    for n in range(1, N_RECORDS + 1):
        dpi = (200, 300)[n % 2]
        (path,) = work.glob(f"sheet{dpi}-*{n:0{len(str(N_RECORDS))}d}.png")
        rng = random.Random(f"sheet:{n}")
        printed = Image.open(path)
        printed.load()
        scanned = defects.degrade(printed, rotation=0, skew=rng.uniform(-3, 3), rng=rng,
                                  speckle=True, blur=False, border=n % 3 == 0, dpi=dpi)
        yield _fold_shadow(scanned, rng), dpi


def _blank_backside(dpi: int, rng: random.Random) -> Image.Image:
    back = Image.new("L", (round(210 / 25.4 * dpi), round(297 / 25.4 * dpi)), 247)
    return defects.degrade(back, rotation=0, skew=0, rng=rng, speckle=True, blur=False,
                           border=False, dpi=dpi)


def _record_pages(batch: samples.SampleBatch, record: samples.SampleRecord
                  ) -> Iterator[tuple[Image.Image, int]]:
    files = ingest.fingerprint_files(batch.batch_dir)
    refs, problems = ingest.resolve_pages(ManifestRow(line=2, files_raw=record.files_field), files)
    assert not problems
    for ref in refs:
        image, dpi = pages.load_page(batch.batch_dir / ref.file, ref.page_in_file, 300)
        yield Image.fromarray(image).convert("L"), dpi


def _write_stack(stack_dir: Path, scans: Iterator[tuple[Image.Image, int, bool]]) -> list[str]:
    """The first scans as one multi-page TIFF written page by page, the rest as numbered
    single-page PNG files (xap_9 before xap_10): the two ways a sheet feeder saves a stack.
    Returns where each scan went, as the warehouse names a page."""
    where: list[str] = []
    with (stack_dir / "xap_01.tif").open("w+b") as fh, TiffImagePlugin.AppendingTiffWriter(fh) as tiff:
        for image, dpi, in_tiff in scans:
            if in_tiff:
                image.save(tiff, format="TIFF", compression="tiff_lzw", dpi=(dpi, dpi))
                tiff.newFrame()
                where.append(f"xap_01.tif[{len(where) + 1}]")
            else:
                tiff_pages = sum(w.startswith("xap_01.tif") for w in where)
                name = f"xap_{len(where) - tiff_pages + 2}.png"
                image.save(stack_dir / name, dpi=(dpi, dpi))
                where.append(f"{name}[1]")
    return where


@pytest.mark.slow
def test_a_stack_with_cover_sheets_becomes_its_twenty_records(stack_settings: Settings,
                                                              tmp_path: Path) -> None:
    settings = stack_settings
    source = samples.generate_batch(tmp_path / "papers", agency_code=AGENCY, batch_id="PAPERS",
                                    n_records=N_RECORDS, seed=8, truth_path=tmp_path / "t.json")
    records = list(source.records)
    report = coversheets.write_cover_sheets(settings, AGENCY, _inventory(tmp_path / "kk.csv", records),
                                            tmp_path / "to_bia.pdf")
    assert report.printed == [r.record_id for r in records]
    (tmp_path / "print").mkdir()
    sheets = _scanned_sheets(tmp_path / "to_bia.pdf", tmp_path / "print")

    stack_dir = settings.dir("inbox") / AGENCY / "XAP-1"
    stack_dir.mkdir(parents=True)
    owners: list[str] = []  # per scan in order: the record a content page belongs to, or ""

    def scans() -> Iterator[tuple[Image.Image, int, bool]]:
        rng = random.Random(5)
        for i, record in enumerate(records):
            in_tiff = i < IN_TIFF
            duplex = i % 4 == 1  # every sheet of these records has a blank back
            sheet, dpi = next(sheets)
            owners.append("")
            yield sheet, dpi, in_tiff
            if duplex:
                owners.append("")
                yield _blank_backside(dpi, rng), dpi, in_tiff
            for page, page_dpi in _record_pages(source, record):
                owners.append(record.record_id)
                yield page, page_dpi, in_tiff
                if duplex:
                    owners.append("")
                    yield _blank_backside(page_dpi, rng), page_dpi, in_tiff

    where = _write_stack(stack_dir, scans())
    want_pages = {r.record_id: [w for w, o in zip(where, owners, strict=True) if o == r.record_id]
                  for r in records}

    summary = run_batch(settings, stack_dir)
    assert [(r.record_id, r.status) for r in summary.records] == \
        [(r.record_id, RecordStatus.archived) for r in records], [r.errors for r in summary.records]
    assert (settings.dir("done") / AGENCY / "XAP-1").is_dir()

    engine = warehouse.engine_for(settings.warehouse_url)
    rec_t, page_t, file_t = warehouse.records, warehouse.pages, warehouse.files
    with engine.connect() as conn:
        rows = {r.record_id: r for r in conn.execute(select(rec_t).where(rec_t.c.agency_code == AGENCY))}
        names = dict(conn.execute(select(file_t.c.sha256, file_t.c.name)).all())
        got_pages = {
            rid: [f"{names[p.file_sha256]}[{p.page_in_file}]" for p in conn.execute(
                select(page_t).where(page_t.c.record_pk == row.id).order_by(page_t.c.page_no))]
            for rid, row in rows.items()}
    assert sorted(rows) == sorted(r.record_id for r in records)
    for record in records:
        row = rows[record.record_id]
        assert (row.procedure_code, row.result_number, row.issued_on) == (
            record.procedure_code, record.result_number, record.issued_on)
        assert got_pages[record.record_id] == want_pages[record.record_id], record.record_id
        assert not row.warnings, row.warnings  # the first page shows the sheet's number and date

    # the same paper's sheet in a later stack: held, and the message says which sheet and batch
    again = settings.dir("inbox") / AGENCY / "XAP-2"
    again.mkdir()
    first = records[0]
    sheet = Image.open(next((tmp_path / "print").glob(f"sheet300-*{1:0{len(str(N_RECORDS))}d}.png")))
    sheet.save(again / "xap_1.png", dpi=(300, 300))
    page, dpi = next(_record_pages(source, first))
    page.save(again / "xap_2.png", dpi=(dpi, dpi))
    (held,) = run_batch(settings, again).records
    assert (held.record_id, held.status, held.reason) == (first.record_id, "quarantined",
                                                          "duplicate_source")
    assert held.errors[0].startswith(
        f"Tờ bìa hồ sơ {first.record_id} (trang 1 của tệp xap_1.png): Mã hồ sơ "
        f"'{first.record_id}' đã được lưu trữ trong lô XAP-1")


def _code_page(record: samples.SampleRecord, agency: str = AGENCY, stained: bool = False
               ) -> Image.Image:
    """A bare page with the record's sheet code (the printed sheet is tested above)."""
    facts = sheetcode.SheetFacts(agency, record.record_id, record.procedure_code,
                                 record.result_number, record.issued_on)
    return Image.fromarray(qr_page(sheetcode.encode(facts), 200, stained=stained)[:, :, 0], "L")


@pytest.mark.slow
def test_what_a_stack_cannot_tie_to_a_record_is_held_and_the_rest_archived(
        stack_settings: Settings, tmp_path: Path) -> None:
    settings = stack_settings
    source = samples.generate_batch(tmp_path / "papers", agency_code=AGENCY, batch_id="PAPERS",
                                    n_records=5, seed=21, truth_path=tmp_path / "t.json")
    a, b, c, d, e = source.records
    batch = settings.dir("inbox") / AGENCY / "XAP-LOI"
    batch.mkdir(parents=True)

    def scans() -> Iterator[tuple[Image.Image, int, bool]]:
        yield from ((page, dpi, True) for page, dpi in _record_pages(source, e))  # no sheet yet
        yield _code_page(a), 200, True
        yield from ((page, dpi, True) for page, dpi in _record_pages(source, a))
        yield _code_page(b, stained=True), 200, True
        yield from ((page, dpi, True) for page, dpi in _record_pages(source, b))
        yield _code_page(c), 200, True  # two sheets in a row
        yield _code_page(d), 200, True
        yield from ((page, dpi, True) for page, dpi in _record_pages(source, d))

    where = _write_stack(batch, scans())
    # the manifest adds the holders and disagrees on one result number
    with (batch / "manifest.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Mã hồ sơ", "Số ký hiệu", "Tên chủ hồ sơ"])
        writer.writerow([a.record_id, a.result_number, a.holder_name])
        writer.writerow([d.record_id, "999/SAI", d.holder_name])
    summary = run_batch(settings, batch)
    outcome = {r.record_id: (r.status.value, r.reason) for r in summary.records}
    e_pages = len(list(_record_pages(source, e)))
    assert outcome == {
        "chua-ro-xap-01-1": ("quarantined", "stack_pages_unassigned"),
        a.record_id: ("archived", None),
        f"chua-ro-xap-01-{e_pages + 2 + len(list(_record_pages(source, a)))}":
            ("quarantined", "stack_pages_unassigned"),
        c.record_id: ("quarantined", "sheet_without_pages"),
        d.record_id: ("quarantined", "sheet_mismatch"),
    }, [r.errors for r in summary.records]
    assert summary.moved_to is None  # left in the inbox for review
    held = settings.dir("quarantine") / AGENCY / "XAP-LOI"
    note = json.loads((held / f"{archive.record_name(AGENCY, 'chua-ro-xap-01-1')}.json")
                      .read_text(encoding="utf-8"))
    assert note["messages"][0].startswith(f"Xấp quét có {e_pages} trang" if e_pages > 1 else
                                          "Xấp quét có 1 trang (trang 1 của tệp xap_01.tif) nằm trước")
    bad_sheet = e_pages + 2 + len(list(_record_pages(source, a)))
    note = json.loads((held / f"{archive.record_name(AGENCY, f'chua-ro-xap-01-{bad_sheet}')}.json")
                      .read_text(encoding="utf-8"))
    assert note["messages"][0].startswith(
        f"Không đọc được mã QR của tờ bìa ở trang {bad_sheet} của tệp xap_01.tif (mã QR bị hỏng "
        "hoặc bị che, không giải mã được)")
    archived = {r.record_id: r for r in summary.records}[a.record_id]
    assert archived.page_count == len(list(_record_pages(source, a)))
    assert len(where) == e_pages + 2 + archived.page_count + len(list(_record_pages(source, b))) \
        + len(list(_record_pages(source, d))) + 2

    # the archivist corrects the manifest's number, then clears the record's task: it archives
    plan, batch_pk, docs = register_batch(settings, batch)
    task = next(t for t in record_tasks(plan, batch_pk, docs)
                if t.record.record_id == d.record_id)
    assert [p.rule for p in task.record.problems] == ["sheet_manifest_mismatch"]
    with (batch / "manifest.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Mã hồ sơ", "Số ký hiệu", "Tên chủ hồ sơ"])
        writer.writerow([a.record_id, a.result_number, a.holder_name])
        writer.writerow([d.record_id, d.result_number, d.holder_name])
    task = refresh_task(settings, task)
    assert not task.record.problems and task.record.row.holder_name == d.holder_name
    assert process_record(settings, task).status is RecordStatus.archived
