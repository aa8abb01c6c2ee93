"""B-LTA kept valid: the archive timestamp of a real signed record renewed as a new version
(pyHanko and poppler's pdfsig still accept it, the earlier version and the report's times stay),
not renewed when not due, through the function and ``digitize sign --renew-timestamps``; a
timestamp server away is an outage to retry with nothing placed."""

from __future__ import annotations

import io
import os
import re
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import QUICK_DPIS, MigrateAirflow, import_reference
from conftest import digitize as run_digitize
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy import select
from test_fixity import _task_log

from pipeline.batch import run_batch
from pipeline.cli import airflow_env, main
from pipeline.config import Settings, load_settings
from pipeline.demo import samples
from pipeline.demo.pki import P12_PASSWORD, TestPki
from pipeline.errors import ConfigError, ExitCode, SigningUnavailableError
from pipeline.intake.ingest import sha256_file
from pipeline.models import RecordStatus
from pipeline.signing.renewal import after_batch, renew_due, timestamp_expiry
from pipeline.signing.sign import tst_time
from pipeline.signing.verify import verify_pdf
from pipeline.store import fixity, warehouse

AGENCY = "000.00.12.H12"
# beyond the test TSA certificate's end (2090): every B-LTA record is due
ALL_DUE = 40000


def _archived(data: Path, pki: TestPki, batch_id: str, seed: int, **env: str) -> str:
    """One record archived and signed by a real batch (the PKCS#12 key, the test PKI's timestamp
    server, and ``env``); its id."""
    import_reference(data)
    inbox = data / "inbox" / AGENCY / batch_id
    samples.generate_batch(inbox, agency_code=AGENCY, batch_id=batch_id, n_records=1, seed=seed,
                           truth_path=data.parent / "truth.json", dpis=QUICK_DPIS)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {"DIGITIZE_SIGN_KEY": f"pkcs12:{pki.agency_p12}",
                            "DIGITIZE_SIGN_PIN": P12_PASSWORD, "DIGITIZE_SIGN_TSA": pki.tsa_url,
                            "DIGITIZE_DATA_DIR": str(data), **env}.items():
            mp.setenv(name, value)
        mp.delenv("DIGITIZE_DB_URL", raising=False)
        (record,) = run_batch(load_settings(), inbox).records
    # signed B-T in the record's path; B-LTA, if at all, comes after the batch
    assert (record.status, record.signature_level) == (RecordStatus.archived, "B-T")
    return record.record_id


@pytest.fixture(scope="module")
def archived_lta(tmp_path_factory: pytest.TempPathFactory, pki: TestPki) -> Iterator[Path]:
    """One record archived by a real batch and brought to B-LTA right after it (the test PKI's
    root as trust anchor); the data folder."""
    data = tmp_path_factory.mktemp("renewal") / "var"
    _archived(data, pki, "B-GIA-HAN", 41, DIGITIZE_SIGN_TRUST=str(pki.root_pem))
    assert (_record(data)["signature_level"], _versions(data)[-1]["reason"]) == ("B-LTA", "long_term")
    yield data


@pytest.mark.slow
def test_a_record_left_b_t_by_its_batch_is_brought_to_b_lta_by_the_next_run(
        tmp_path: Path, pki: TestPki, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "var"
    # no trust roots at the time: the batch's records are kept at B-T
    record_id = _archived(data, pki, "B-SAU", 43)
    first = _record(data)
    assert (first["signature_level"], first["version"]) == ("B-T", 1)
    # with trust roots but the timestamp server away when a batch ends: a warning, still B-T
    away = _closed_port_url()
    key = {"sign_key": f"pkcs12:{pki.agency_p12}", "sign_pin": P12_PASSWORD}
    assert after_batch(_settings(data, pki, sign_tsa=away, **key), AGENCY, "B-SAU") is None
    assert away in caplog.text and "B-T" in caplog.text
    assert _record(data) == first and not any((data / "work").rglob("*.pdf"))
    # the monthly run (or digitize sign --renew-timestamps) finishes it, as a new version
    outcome = renew_due(_settings(data, pki))
    assert (outcome.extended, outcome.renewed, outcome.problems) == ([record_id], [], {})
    after = _record(data)
    assert (after["signature_level"], after["version"], after["signed_at"]) == (
        "B-LTA", 2, first["signed_at"])
    assert Path(first["pdf_path"]).read_bytes() == Path(after["pdf_path"]).read_bytes()[
        :Path(first["pdf_path"]).stat().st_size]  # the B-T version stays, and is where it started
    verdict = verify_pdf(Path(after["pdf_path"]), [pki.root_pem])
    assert verdict.valid and verdict.level == "B-LTA" and verdict.revocation_checked, verdict.problems
    # done: a second run has nothing to do
    again = renew_due(_settings(data, pki))
    assert (again.extended, again.renewed, again.checked) == ([], [], 1)


def _settings(data: Path, pki: TestPki, **overrides: Any) -> Settings:
    return load_settings(**{"data_dir": data, "sign_tsa": pki.tsa_url, "sign_trust": pki.root_pem,
                            **overrides})


def _record(data: Path) -> dict[str, Any]:
    with warehouse.engine_for(load_settings(data_dir=data).warehouse_url).connect() as conn:
        (row,) = conn.execute(select(warehouse.records)).mappings()
        return dict(row)


def _versions(data: Path) -> list[dict[str, Any]]:
    v = warehouse.record_versions
    with warehouse.engine_for(load_settings(data_dir=data).warehouse_url).connect() as conn:
        return [dict(row) for row in conn.execute(select(v).order_by(v.c.version)).mappings()]


def _renewal_events(data: Path) -> list[str]:
    e = warehouse.events
    with warehouse.engine_for(load_settings(data_dir=data).warehouse_url).connect() as conn:
        return list(conn.execute(select(e.c.detail).where(
            e.c.stage == "sign", e.c.outcome == "timestamp_renewed").order_by(e.c.id)).scalars())


def _timestamps(pdf: Path) -> list[Any]:
    return PdfFileReader(io.BytesIO(pdf.read_bytes()), strict=False).embedded_timestamp_signatures


def _archived_files(data: Path) -> dict[Path, str]:
    return {p: sha256_file(p) for p in (data / "archive").rglob("*.pdf")}


def _digitize(data: Path, pki: TestPki, *args: str, tsa: str | None = None
              ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITIZE_")}
    env.update(DIGITIZE_DATA_DIR=str(data), DIGITIZE_SIGN_TSA=tsa or pki.tsa_url,
               DIGITIZE_SIGN_TRUST=str(pki.root_pem))
    return run_digitize(*args, env=env)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/tsa"


@pytest.mark.slow
def test_a_due_timestamp_is_renewed_as_a_new_version_that_both_verifiers_accept(
        archived_lta: Path, pki: TestPki) -> None:
    data = archived_lta
    before = _record(data)
    previous = Path(before["pdf_path"])
    previous_hash = sha256_file(previous)
    stamps_before = _timestamps(previous)
    events_before = len(_renewal_events(data))
    heard: list[tuple[str, str | None]] = []

    outcome = renew_due(_settings(data, pki), within_days=ALL_DUE,
                        on_record=lambda rid, problem: heard.append((rid, problem)))

    assert outcome.ok and outcome.checked == 1
    assert outcome.renewed == [before["record_id"]] and heard == [(before["record_id"], None)]
    after = _record(data)
    renewed = Path(after["pdf_path"])
    assert after["version"] == before["version"] + 1 and renewed != previous
    assert after["pdf_sha256"] == sha256_file(renewed)
    # the report counts by these: a renewal is neither a new signing nor a new archiving
    for column in ("signature_level", "signed_by", "signed_at", "updated_at", "status"):
        assert after[column] == before[column], column
    assert sha256_file(previous) == previous_hash  # the earlier version stays as it was
    assert renewed.read_bytes().startswith(previous.read_bytes())  # an incremental update
    latest = _versions(data)[-1]
    assert (latest["version"], latest["reason"], latest["signature_level"], latest["pdf_path"],
            latest["pdf_sha256"]) == (after["version"], "timestamp_renewed", "B-LTA", str(renewed),
                                      after["pdf_sha256"])

    verdict = verify_pdf(renewed, [pki.root_pem])
    assert verdict.valid and verdict.level == "B-LTA", verdict.problems
    stamps = _timestamps(renewed)
    assert len(stamps) == len(stamps_before) + 1 >= 2
    stamped_at = tst_time(stamps[-1].signed_data)
    assert stamped_at >= tst_time(stamps_before[-1].signed_data)
    said = subprocess.run(["pdfsig", str(renewed)], capture_output=True, text=True).stdout
    assert "Signature Validation: Signature is Valid." in said, said

    events = _renewal_events(data)
    assert len(events) == events_before + 1
    assert events[-1].startswith(f"{renewed} sha256={after['pdf_sha256']} v{after['version']}: "
                                 f"dấu thời gian lưu trữ mới lúc {stamped_at:%Y-%m-%d %H:%M:%S} UTC")
    assert f"(bản v{before['version']} giữ nguyên)" in events[-1]

    # not due within 0 days (the test TSA certificate runs to 2090): nothing renewed
    expires = timestamp_expiry(renewed)
    assert expires is not None and expires.year == 2090
    again = renew_due(_settings(data, pki), within_days=0)
    assert (again.checked, again.renewed, again.problems) == (1, [], {})
    assert _record(data)["version"] == after["version"]

    report = fixity.audit(_settings(data, pki))
    assert report.ok, fixity.summary_lines(report)
    assert report.signatures_checked == len(_versions(data))


@pytest.mark.slow
def test_digitize_sign_renew_timestamps_renews_and_reports(archived_lta: Path,
                                                           pki: TestPki) -> None:
    data = archived_lta
    before = _record(data)
    run = _digitize(data, pki, "sign", "--renew-timestamps", "--within-days", str(ALL_DUE))
    assert run.returncode == ExitCode.ok, run.stdout + run.stderr
    assert f"Hồ sơ {before['record_id']}: đã bổ sung hoặc gia hạn lưu trữ dài hạn (B-LTA)." in run.stdout
    assert ("Lưu trữ dài hạn (B-LTA): 0 hồ sơ B-T đã bổ sung B-LTA; 1 hồ sơ B-LTA đã xét, 1 đã "
            "gia hạn dấu thời gian; 0 chưa làm được.") in run.stdout
    after = _record(data)
    assert after["version"] == before["version"] + 1
    assert verify_pdf(Path(after["pdf_path"]), [pki.root_pem]).valid

    # by default (DIGITIZE_SIGN_RENEW_DAYS = 365) a certificate good until 2090 is not due
    idle = _digitize(data, pki, "sign", "--renew-timestamps", "--agency", AGENCY)
    assert idle.returncode == ExitCode.ok and "0 đã gia hạn" in idle.stdout, idle.stderr
    assert _record(data)["version"] == after["version"]


@pytest.mark.slow
def test_a_timestamp_server_away_is_an_outage_and_nothing_is_placed(archived_lta: Path,
                                                                     pki: TestPki) -> None:
    data = archived_lta
    before, files, versions = _record(data), _archived_files(data), _versions(data)
    away = _closed_port_url()
    with pytest.raises(SigningUnavailableError, match=re.escape(away)):
        renew_due(_settings(data, pki, sign_tsa=away), within_days=ALL_DUE)
    run = _digitize(data, pki, "sign", "--renew-timestamps", "--within-days", str(ALL_DUE),
                    tsa=away)
    assert run.returncode == ExitCode.retry_later, run.stdout + run.stderr
    assert "không trả lời" in run.stderr
    assert (_record(data), _archived_files(data), _versions(data)) == (before, files, versions)
    assert not any((data / "work").rglob("*.pdf"))


@pytest.mark.slow
def test_a_changed_file_is_not_renewed_and_is_named(archived_lta: Path, pki: TestPki) -> None:
    data = archived_lta
    before, versions = _record(data), _versions(data)
    current = Path(before["pdf_path"])
    original = current.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 3] ^= 0x01
    try:
        current.write_bytes(bytes(damaged))
        outcome = renew_due(_settings(data, pki), within_days=ALL_DUE)
    finally:
        current.write_bytes(original)
    assert not outcome.ok and outcome.renewed == []
    reason = outcome.problems[before["record_id"]]
    assert str(current) in reason and "nên không gia hạn dấu thời gian lưu trữ" in reason
    assert "'digitize sign --renew-timestamps'" in reason
    assert (_record(data), _versions(data)) == (before, versions)


@pytest.mark.slow
def test_without_a_timestamp_server_for_b_lta_records_it_says_what_to_set(
        archived_lta: Path, pki: TestPki) -> None:
    with pytest.raises(ConfigError, match="DIGITIZE_SIGN_TSA"):
        renew_due(_settings(archived_lta, pki, sign_tsa=None), within_days=ALL_DUE)


@pytest.mark.slow
@pytest.mark.airflow
def test_the_monthly_dag_renews_after_a_clean_audit_with_its_summary_first(
        archived_lta: Path, pki: TestPki, migrate_airflow: MigrateAirflow) -> None:
    data = archived_lta
    before = _record(data)
    env = {**airflow_env(load_settings(data_dir=data)), "DIGITIZE_SIGN_TSA": pki.tsa_url,
           "DIGITIZE_SIGN_TRUST": str(pki.root_pem), "DIGITIZE_SIGN_RENEW_DAYS": str(ALL_DUE)}
    migrate_airflow(env)
    run = subprocess.run([str(Path(sys.executable).with_name("airflow")), "dags", "test",
                          "digitize_fixity", "2024-04-01T02:00:00+00:00"],
                         env=env, capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as conn:
        states = dict(conn.execute("select task_id, state from task_instance "
                                   "where dag_id = 'digitize_fixity'").fetchall())
    assert states == {"audit": "success", "renew_timestamps": "success"}, output[-3000:]
    level, summary = _task_log(run.stdout, "renew_timestamps")[0]
    assert level == "info" and summary.startswith(
        "Lưu trữ dài hạn (B-LTA): 0 hồ sơ B-T đã bổ sung B-LTA; 1 hồ sơ B-LTA đã xét, 1 đã gia "
        "hạn dấu thời gian; 0 chưa làm được."), output[-3000:]
    after = _record(data)
    assert after["version"] == before["version"] + 1
    assert verify_pdf(Path(after["pdf_path"]), [pki.root_pem]).valid


def test_without_trust_roots_it_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DIGITIZE_SIGN_TRUST"):
        renew_due(load_settings(data_dir=tmp_path, sign_trust=None, sign_tsa="http://127.0.0.1:9/"))
    assert not (tmp_path / "warehouse.sqlite").exists()  # refused before anything was opened


def test_sign_needs_an_agency_unless_renewing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("DIGITIZE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DIGITIZE_DB_URL", raising=False)
    assert main(["sign"]) == ExitCode.bad_usage
    assert "Cần --agency" in caplog.text
    assert main(["sign", "--renew-timestamps", "--batch", "B1"]) == ExitCode.bad_usage
    assert not (tmp_path / "warehouse.sqlite").exists()
