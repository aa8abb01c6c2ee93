"""The watcher drafts the manifest (issue 19, scanner profile ``manifest: draft`` / ``auto``): a
batch dropped without manifest.csv gets manifest.draft.csv and the clerk's note and is held, once;
renaming the checked draft releases it, and its records say which fields were read off the page
and which a person typed. Real Tesseract on generated first pages, two records a batch; the
profile's rules, read against typed, and migration 0011 without it."""

from __future__ import annotations

import csv
import datetime as dt
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from alembic import command
from alembic.config import Config
from conftest import digitize, import_reference
from PIL import Image
from pydantic import ValidationError
from sqlalchemy import inspect, select
from test_manifest_draft import _write_page

from pipeline._exec import poppler
from pipeline.checks import crosscheck
from pipeline.config import ScannerProfile, Settings, load_settings
from pipeline.demo.content import DEFAULT_AGENCY
from pipeline.drafting import watch
from pipeline.intake import inbox
from pipeline.intake.ingest import read_manifest
from pipeline.models import ManifestRow, PageRead
from pipeline.store import warehouse

AGENCY = DEFAULT_AGENCY
# seed -> (style, procedure kind): at 200 dpi Tesseract reads every field of 11 and 17 surely,
# and leaves the procedure and the holder of the typewritten 10 for review
PAGES = {10: ("typewriter", "hkd"), 11: ("serif", "tcxh"), 17: ("serif", "cmd")}
READ_ALL = "procedure_code,result_number,issued_on,holder_name,holder_id"


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Path, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("pages")
    out = {}
    for seed, (style, kind) in PAGES.items():
        path = folder / f"p{seed}.png"
        out[seed] = path, _write_page(path, seed, style, 200, kind, 0.5, False)
    return out


def _settings(data: Path, profiles: Path, **changes: object) -> Settings:
    """The shipped ``draft`` profile, settled at once (``settled_at_once``), with ``changes``."""
    (profiles / "watch.yaml").write_text(yaml.safe_dump({"base": "draft", "name": "watch",
                                                         **changes}), encoding="utf-8")
    import_reference(data)
    return load_settings(data_dir=data, profiles_dir=profiles, profile="watch")


def _batch(settings: Settings, name: str, files: dict[str, Path],
           agency: str = AGENCY) -> Path:
    folder = settings.dir("inbox") / agency / name
    folder.mkdir(parents=True)
    for target, source in files.items():
        shutil.copy(source, folder / target)
    return folder


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_a_batch_without_manifest_is_drafted_once_held_and_released_by_the_rename(
        tmp_path: Path, settled_at_once: Path, pages: dict[int, tuple[Path, dict[str, str]]],
        caplog: pytest.LogCaptureFixture) -> None:
    # one first page a look: the two pages are read over two looks
    settings = _settings(tmp_path / "var", settled_at_once, draft_pages_per_look=1)
    batch = _batch(settings, "Lô nháp", {"hs-01.png": pages[11][0], "hs-02.png": pages[17][0]})
    draft_csv, note = batch / "manifest.draft.csv", batch / watch.NOTE
    with caplog.at_level(logging.INFO, logger="pipeline.drafting.watch"):
        assert inbox.ready_runs(settings) == []
        assert not draft_csv.exists() and "1 of 2 first pages read" in caplog.text
        assert inbox.ready_runs(settings) == []
    assert draft_csv.is_file() and not (batch / "manifest.csv").exists()
    assert "Lô nháp held: manifest.draft.csv written, 0 of 2 records need review" in caplog.text
    told = note.read_text(encoding="utf-8")
    assert "đổi tên manifest.draft.csv thành manifest.csv" in told and "needs_review" in told
    written = draft_csv.stat()
    assert inbox.ready_runs(settings) == []  # held: the same scans are not drafted again
    assert (draft_csv.stat().st_ino, draft_csv.stat().st_mtime_ns) == (written.st_ino,
                                                                        written.st_mtime_ns)
    data = draft_csv.read_bytes()
    draft_csv.unlink()  # deleted by mistake: written again from the pages read before
    assert inbox.ready_runs(settings) == [] and draft_csv.read_bytes() == data

    # the clerk corrects a name the page read surely, then renames the draft
    rows = _rows(draft_csv)
    rows[1]["holder_name"] = "Nguyễn Văn Sửa"
    with draft_csv.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    draft_csv.rename(batch / "manifest.csv")
    (run,) = inbox.ready_runs(settings)
    assert run.conf["batch_dir"] == str(batch)
    # Tesseract's readings of the two first pages, kept for the archive, and what they gave
    assert len(list(settings.readings_dir.iterdir())) == 2
    assert watch.state_path(settings.dir("work"), AGENCY, "Lô nháp").is_file()

    env = {"PATH": os.environ["PATH"], "DIGITIZE_DATA_DIR": str(settings.data_dir),
           "DIGITIZE_PROFILES_DIR": str(settled_at_once), "DIGITIZE_PROFILE": "watch"}
    out = digitize("run", str(batch), env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    r = warehouse.records
    with warehouse.engine_for(settings.warehouse_url).connect() as conn:
        got = {row.record_id: row for row in conn.execute(
            select(r.c.record_id, r.c.status, r.c.read_fields, r.c.warnings, r.c.holder_name))}
    first, second = got[rows[0]["record_id"]], got[rows[1]["record_id"]]
    assert (first.status, first.read_fields) == ("archived", READ_ALL)
    assert "tên chủ hồ sơ" not in (first.warnings or "")
    # the typed value is the one archived, and the page said otherwise
    assert second.holder_name == "Nguyễn Văn Sửa"
    assert second.read_fields == READ_ALL.replace(",holder_name", "")
    assert (f"tên chủ hồ sơ trong manifest là 'Nguyễn Văn Sửa', khác với chữ đọc được trên "
            f"trang đầu '{pages[17][1]['holder_name']}'") in second.warnings
    # the archive took both readings instead of reading the pages again, and its text layer
    # is the page's; what the draft read (holder ids among it) is dropped with the batch archived
    assert list(settings.readings_dir.iterdir()) == []
    assert not watch.state_path(settings.dir("work"), AGENCY, "Lô nháp").exists()
    with warehouse.engine_for(settings.warehouse_url).connect() as conn:
        pdf = conn.execute(select(r.c.pdf_path).where(r.c.record_id == rows[0]["record_id"])
                           ).scalar_one()
    assert pages[11][1]["result_number"] in poppler.page_text(Path(pdf), 1)
    # the archivist sees which fields the page gave
    told = digitize("history", rows[1]["record_id"], env=env)
    assert told.returncode == 0 and ("đọc từ trang đầu, không gõ tay: mã TTHC, số, ký hiệu, ngày "
                                     "ban hành, số định danh") in told.stdout, told.stdout


@pytest.mark.slow
def test_auto_starts_a_surely_read_batch_at_once_and_holds_the_others(
        tmp_path: Path, settled_at_once: Path, pages: dict[int, tuple[Path, dict[str, str]]],
        caplog: pytest.LogCaptureFixture) -> None:
    settings = _settings(tmp_path / "var", settled_at_once, manifest="auto")
    sure = _batch(settings, "B-CHAC", {"a.png": pages[11][0], "b.png": pages[17][0]})
    doubtful = _batch(settings, "B-NGHI", {"a.png": pages[10][0], "b.png": pages[11][0]})
    junk = _batch(settings, "B-ANH", {})
    noise = np.random.default_rng(7).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    Image.fromarray(noise).save(junk / "anh-chup.png", dpi=(200, 200))
    (junk / "hong.jpg").write_bytes(b"not a scan")
    # an agency not in the registry: its draft fails, the watcher goes on
    stranger = _batch(settings, "B-LA", {"a.png": pages[11][0]}, agency="999.99.99.X99")
    typed = _batch(settings, "B-GO", {"a.png": pages[11][0]})
    (typed / "manifest.csv").write_text("record_id,procedure_code,issued_on,files\n"
                                        "HS-1,1.004227,05/03/2019,a.png\n", encoding="utf-8")

    with caplog.at_level(logging.INFO):
        runs = inbox.ready_runs(settings)
    assert sorted(Path(run.conf["batch_dir"]).name for run in runs) == ["B-CHAC", "B-GO"]
    assert f"{stranger}: its manifest cannot be drafted" in caplog.text

    manifest = {row.files_raw: row for row in read_manifest(sure)}
    for name, seed in (("a.png", 11), ("b.png", 17)):
        assert manifest[name].holder_name == pages[seed][1]["holder_name"]
        assert manifest[name].result_number == pages[seed][1]["result_number"]
    assert not (sure / "manifest.draft.csv").exists() and not (sure / watch.NOTE).exists()

    for held in (doubtful, junk):
        assert not (held / "manifest.csv").exists() and (held / watch.NOTE).is_file()
    rows = {row["files"]: row for row in _rows(doubtful / "manifest.draft.csv")}
    assert "procedure_code" in rows["a.png"]["needs_review"] and not rows["b.png"]["needs_review"]
    rows = {row["files"]: row for row in _rows(junk / "manifest.draft.csv")}
    assert "không đọc được" in rows["hong.jpg"]["ghi_chu"]
    assert "không đọc ra được trường nào" in rows["anh-chup.png"]["ghi_chu"]
    assert all("holder_name" in row["needs_review"] for row in rows.values())

    # the clerk starts on the draft, then adds a scan: a new draft, the edited one kept aside
    edited = (junk / "manifest.draft.csv").read_bytes().replace(b"TEP-HONG", b"HS-HONG")
    (junk / "manifest.draft.csv").write_bytes(edited)
    (junk / "hong-2.jpg").write_bytes(b"not a scan either")
    assert sorted(Path(run.conf["batch_dir"]).name for run in inbox.ready_runs(settings)) == [
        "B-CHAC", "B-GO"]
    assert (junk / "manifest.draft.da-sua-1.csv").read_bytes() == edited
    assert sorted(row["files"] for row in _rows(junk / "manifest.draft.csv")) == [
        "anh-chup.png", "hong-2.jpg", "hong.jpg"]
    assert [p.name for p in stranger.iterdir()] == ["a.png"]


def test_what_the_watcher_writes_restarts_the_settle_time_but_not_the_draft(tmp_path: Path) -> None:
    batch = tmp_path / "inbox" / AGENCY / "B-1"
    batch.mkdir(parents=True)
    Image.new("L", (40, 56), 255).save(batch / "a.png")
    looks, now = tmp_path / "looks.json", time.time()

    def ready(at: float, drafting: bool = True) -> bool:
        return batch in inbox.ready_batches(tmp_path / "inbox", 60, at, looks=looks,
                                            drafting=drafting)

    assert not ready(now, drafting=False)  # typed: a batch without its manifest never starts
    assert not ready(now) and ready(now + 61)
    scans = inbox.fingerprint(batch, scans_only=True)
    (batch / "manifest.draft.csv").write_text("record_id\n", encoding="utf-8")
    (batch / watch.NOTE).write_text("...", encoding="utf-8")
    assert inbox.fingerprint(batch, scans_only=True) == scans  # the draft is not made again
    assert not ready(now + 62) and ready(now + 123)
    (batch / "manifest.draft.csv").rename(batch / "manifest.csv")  # the clerk releases it
    assert not ready(now + 124) and ready(now + 185)


def test_a_profile_drafts_only_files_of_one_record_each_and_never_below_sure() -> None:
    assert ScannerProfile(name="p").manifest == "typed"
    with pytest.raises(ValidationError, match="needs batch_layout: manifest"):
        ScannerProfile(name="p", manifest="draft", batch_layout="separator_sheets")
    with pytest.raises(ValidationError, match="auto_confidence"):
        ScannerProfile(name="p", manifest="auto", auto_confidence=0.7)


def test_a_field_is_read_when_the_manifest_keeps_the_page_value() -> None:
    read = {"result_number": PageRead(value="712/GPXD", sure=True),
            "issued_on": PageRead(value="19/11/2005", sure=True),
            "holder_name": PageRead(value="Lê Văn Tám", sure=False),
            "holder_id": PageRead(value="001203004005", sure=True)}
    row = ManifestRow(line=2, record_id="HS-1", result_number="712/GPXD", issued_on_raw="2005-11-19",
                      issued_on=dt.date(2005, 11, 19), holder_name="Lê Văn Tâm",
                      holder_id="001203004009")
    assert crosscheck.read_fields(row, read) == ["result_number", "issued_on"]
    # a doubtful reading corrected is the review working; a sure one changed is worth a look,
    # and the holder id stays masked
    (warning,) = crosscheck.check_read(row, read)
    assert warning.startswith("Hồ sơ HS-1 (dòng 2 của manifest.csv): số định danh trong manifest "
                              "là '*********009', khác với chữ đọc được trên trang đầu "
                              "'*********005'")
    assert crosscheck.check_first_page(row, "Số: 712/GPXD ngày 19 tháng 11 năm 2005", read) == [
        warning]


@pytest.mark.parametrize("warehouse_url", ["sqlite", "postgresql"], indirect=True)
def test_migration_0011_adds_read_fields_and_takes_it_away(warehouse_url: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(warehouse.MIGRATIONS))

    def columns() -> set[str]:
        with warehouse.engine_for(warehouse_url).connect() as conn:
            return {c["name"] for c in inspect(conn).get_columns("records")}

    warehouse.migrate(warehouse_url)
    assert "read_fields" in columns()
    with warehouse.engine_for(warehouse_url).begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0010")
    assert "read_fields" not in columns()
    warehouse.migrate(warehouse_url)
    assert "read_fields" in columns()
