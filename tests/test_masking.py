"""Personal data stays in the warehouse: a batch with valid and invalid holder ids runs through
`digitize run --json` with debug logging, and no holder id appears whole in what leaves the
warehouse: stdout, stderr, the quarantine notes, the reports folder (progress summary, the
validation's Data Docs, the fixity report). The Airflow XCom is checked by tests/test_dags.py."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import edit_manifest
from sqlalchemy import select

from pipeline.checks import validate
from pipeline.config import Settings
from pipeline.demo import samples
from pipeline.models import ManifestRow
from pipeline.privacy import mask_personal_id, mask_shape
from pipeline.store import archive, warehouse

AGENCY = "000.00.12.H12"
INVALID_ID = "07920300123456"  # 14 digits: no citizen id, old id or tax code has that many


def test_the_masked_shape_keeps_what_the_rule_checks_and_hides_the_rest() -> None:
    assert mask_shape("079203001234") == "000000000234"
    assert mask_shape("0792-0300AB12") == "0000*0000*B12"
    assert mask_shape("") == "" and mask_personal_id("079203001234") == "*********234"
    reference = validate.Reference(AGENCY, "huyen", {})
    checked = validate.validate_manifest(
        [ManifestRow(line=2, record_id="HS-1", holder_id=INVALID_ID),
         ManifestRow(line=3, record_id="HS-2", holder_id="079203001234")],
        (dt.date(2005, 1, 1), dt.date(2021, 12, 31)), reference, {})
    assert [p.field for p in checked.problems[2] if p.field == "holder_id"] == ["holder_id"]
    assert not [p for p in checked.problems.get(3, []) if p.field == "holder_id"]
    result = json.dumps(checked.result)
    assert INVALID_ID not in result and "079203001234" not in result


def _files_text(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow
def test_no_holder_id_leaves_the_warehouse(reference_settings: Settings, tmp_path: Path) -> None:
    settings = reference_settings
    inbox = settings.dir("inbox") / AGENCY / "B-MASK"
    batch = samples.generate_batch(inbox, agency_code=AGENCY, batch_id="B-MASK", n_records=2,
                                   seed=11, truth_path=tmp_path / "truth.json")
    # the first paper shows its holder's id (so its OCR text holds it); the second row's id is wrong
    printed = batch.records[0].holder_id
    assert printed and printed in batch.records[0].text
    edit_manifest(inbox, {1: {"Số định danh": INVALID_ID}})
    env = {**os.environ, "DIGITIZE_DATA_DIR": str(settings.data_dir)}
    env.pop("DIGITIZE_DB_URL", None)
    run = subprocess.run([sys.executable, "-m", "pipeline.cli", "-v", "run", str(inbox), "--json"],
                         capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 3, run.stderr[-3000:]
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["status"] for r in lines] == ["archived", "quarantined"]
    assert any("Số định danh không hợp lệ" in e for e in lines[1]["errors"])
    fixity = subprocess.run([sys.executable, "-m", "pipeline.cli", "fixity"], capture_output=True,
                            text=True, env=env, timeout=300)
    assert fixity.returncode == 0, fixity.stdout + fixity.stderr

    secrets = [INVALID_ID, printed]
    quarantine = settings.dir("quarantine") / AGENCY / "B-MASK"
    name = archive.record_name(AGENCY, batch.records[1].record_id)
    note = json.loads((quarantine / f"{name}.json").read_text(encoding="utf-8"))
    assert note["manifest_row"]["holder_id"] == mask_personal_id(INVALID_ID)
    assert list(settings.dir("reports").rglob("*.html")), "the Data Docs are part of the check"
    for where, seen in (("stdout", run.stdout), ("stderr", run.stderr),
                        ("fixity output", fixity.stdout + fixity.stderr),
                        ("quarantine", _files_text(quarantine)),
                        ("reports", _files_text(settings.dir("reports")))):
        for secret in secrets:
            assert secret not in seen, f"holder id {mask_personal_id(secret)} in {where}"
    # ... while the warehouse keeps them, and the OCR text (ids printed on the paper) stays there
    r = warehouse.records
    with warehouse.engine_for(settings.warehouse_url).connect() as conn:
        stored = {rid: (holder, text) for rid, holder, text in conn.execute(
            select(r.c.record_id, r.c.holder_id, r.c.text))}
    assert stored[batch.records[0].record_id][0] == printed
    assert printed in "".join(stored[batch.records[0].record_id][1].split())
    assert stored[batch.records[1].record_id][0] == INVALID_ID
