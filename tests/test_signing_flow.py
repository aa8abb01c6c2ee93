"""Ký số in the flow: real batches signed by a PKCS#12 file and by a SoftHSM2 token (PKCS#11),
checked by pyHanko and by poppler's pdfsig; unsigned archived as a state and signed later by
``digitize sign``; a key that cannot sign stops the batch before any page is touched; the fixity
audit and ``digitize verify`` find a damaged signed file by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import QUICK_DPIS, MigrateAirflow, free_port, import_reference
from conftest import digitize as run_digitize
from sqlalchemy import select
from test_fixity import _task_log

from pipeline.batch import run_batch
from pipeline.cli import airflow_env
from pipeline.config import load_settings
from pipeline.demo import samples
from pipeline.demo.pki import (
    P12_PASSWORD,
    TOKEN_PIN,
    SoftHsm,
    TestPki,
    self_signed_root,
)
from pipeline.errors import ExitCode
from pipeline.intake.ingest import sha256_file
from pipeline.models import BatchSummary, RecordStatus
from pipeline.store import fixity, warehouse

AGENCY = "000.00.12.H12"


def _env(data: Path, **signing: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITIZE_")}
    return {**env, "DIGITIZE_DATA_DIR": str(data), **signing}


def _digitize(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_digitize(*args, env=env)


def _batch(data: Path, batch_id: str, n_records: int, seed: int) -> Path:
    inbox = data / "inbox" / AGENCY / batch_id
    samples.generate_batch(inbox, agency_code=AGENCY, batch_id=batch_id, n_records=n_records,
                           seed=seed, truth_path=data.parent / f"{batch_id}.truth.json",
                           dpis=QUICK_DPIS)
    return inbox


def _records(data: Path) -> dict[str, dict[str, object]]:
    url = load_settings(data_dir=data).warehouse_url
    r = warehouse.records
    with warehouse.engine_for(url).connect() as conn:
        return {row["record_id"]: dict(row) for row in conn.execute(select(r)).mappings()}


def _events(data: Path, stage: str) -> list[tuple[str, str, str]]:
    url = load_settings(data_dir=data).warehouse_url
    e = warehouse.events
    with warehouse.engine_for(url).connect() as conn:
        return [tuple(row) for row in conn.execute(  # type: ignore[misc]
            select(e.c.record_id, e.c.outcome, e.c.detail).where(e.c.stage == stage)
            .order_by(e.c.id))]


def _pdfsig(path: Path) -> str:
    return subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, check=False).stdout


@pytest.fixture(scope="module")
def signed_batch(tmp_path_factory: pytest.TempPathFactory, pki: TestPki
                 ) -> Iterator[tuple[Path, BatchSummary]]:
    """Two records archived and signed with the agency's PKCS#12 file, timestamped by the test
    PKI's TSA, with its root as the trust anchor."""
    data = tmp_path_factory.mktemp("signed") / "var"
    import_reference(data)
    inbox = _batch(data, "B-KY", 2, seed=21)
    env = {"DIGITIZE_SIGN_KEY": f"pkcs12:{pki.agency_p12}", "DIGITIZE_SIGN_PIN": P12_PASSWORD,
           "DIGITIZE_SIGN_TSA": pki.tsa_url, "DIGITIZE_SIGN_TRUST": str(pki.root_pem)}
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {**env, "DIGITIZE_DATA_DIR": str(data)}.items():
            mp.setenv(name, value)
        mp.delenv("DIGITIZE_DB_URL", raising=False)
        summary = run_batch(load_settings(), inbox)
    yield data, summary


@pytest.mark.slow
def test_a_batch_is_archived_signed_and_both_verifiers_accept_it(
        signed_batch: tuple[Path, BatchSummary], pki: TestPki) -> None:
    data, summary = signed_batch
    assert [r.status for r in summary.records] == [RecordStatus.archived] * 2
    rows = _records(data)
    for result in summary.records:
        row = rows[result.record_id]
        # signed B-T in the record's path, brought to B-LTA in bulk once the batch was done
        assert (result.signature_level, row["signature_level"], row["version"]) == ("B-T", "B-LTA", 2)
        assert row["signed_by"] == "Sở Tư pháp tỉnh Thử Nghiệm" and row["signed_at"] is not None
        pdf = Path(str(row["pdf_path"]))
        assert sha256_file(pdf) == row["pdf_sha256"]
        said = _pdfsig(pdf)
        assert "Signature Validation: Signature is Valid." in said, said
        assert "Sở Tư pháp" in said  # the signer's name as poppler reads it
    events = [(rid, outcome) for rid, outcome, _ in _events(data, "sign")]
    ids = {r.record_id for r in summary.records}
    # each record signed in its own path, then both brought to B-LTA after the batch
    assert [set(events[:2]), set(events[2:])] == [{(rid, "signed") for rid in ids},
                                                 {(rid, "long_term") for rid in ids}]

    verified = _digitize(_env(data), "verify", "--json", "--trust", str(pki.root_pem),
                         *(str(rows[r.record_id]["pdf_path"]) for r in summary.records))
    assert verified.returncode == ExitCode.ok, verified.stdout + verified.stderr
    verdicts = json.loads(verified.stdout)
    assert [v["valid"] for v in verdicts] == [True, True]
    assert all(v["intact"] and v["trusted"] and v["pdfa"] and v["revocation_checked"]
               for v in verdicts)
    said = _digitize(_env(data), "verify", "--trust", str(pki.root_pem),
                     str(rows[summary.records[0].record_id]["pdf_path"]))
    assert said.returncode == ExitCode.ok
    assert "HỢP LỆ (PAdES B-LTA)" in said.stdout and "Người ký: Sở Tư pháp tỉnh Thử Nghiệm" in said.stdout
    assert "Chuỗi chứng thư tin cậy: có; đã kiểm tra thu hồi: có; định danh PDF/A: có" in said.stdout


@pytest.mark.slow
def test_a_flipped_byte_fails_verify_and_the_fixity_audit_naming_the_file(
        signed_batch: tuple[Path, BatchSummary], pki: TestPki, tmp_path: Path) -> None:
    data, summary = signed_batch
    report = fixity.audit(load_settings(data_dir=data, sign_trust=pki.root_pem))
    # each record's two versions: B-T as its batch signed it, B-LTA after the batch
    assert report.ok and report.signatures_checked == 4, fixity.summary_lines(report)
    # the same intact files against a root they do not chain to: the audit says so, by file
    elsewhere = fixity.audit(load_settings(data_dir=data,
                                           sign_trust=self_signed_root(tmp_path / "khac.pem")))
    versions = {str(r.pdf_path) for r in summary.records} | {
        str(row["pdf_path"]) for row in _records(data).values()}
    assert len(versions) == 4
    assert sorted((e.problem, e.path) for e in elsewhere.entries) == sorted(
        ("signature", path) for path in versions)
    assert all("không dẫn tới chứng thư gốc tin cậy" in e.detail for e in elsewhere.entries)

    archived = Path(str(summary.records[0].pdf_path))
    copy = tmp_path / "ban-sao.pdf"
    data_bytes = bytearray(archived.read_bytes())
    data_bytes[len(data_bytes) // 3] ^= 0x01  # inside the signed range, in the page's content
    copy.write_bytes(bytes(data_bytes))
    not_pdf = tmp_path / "ghi-chu.txt"
    not_pdf.write_text("không phải PDF", encoding="utf-8")

    flipped = _digitize(_env(data), "verify", "--trust", str(pki.root_pem), str(copy))
    assert flipped.returncode == ExitCode.some_quarantined, flipped.stdout + flipped.stderr
    assert f"{copy}: KHÔNG HỢP LỆ" in flipped.stdout
    unusable = _digitize(_env(data), "verify", str(not_pdf))
    assert unusable.returncode == ExitCode.bad_usage and str(not_pdf) in unusable.stdout

    # the archived file itself damaged: the monthly audit names it (by its hash, first)
    original = archived.read_bytes()
    try:
        archived.write_bytes(bytes(data_bytes))
        damaged = fixity.audit(load_settings(data_dir=data, sign_trust=pki.root_pem))
        assert [(e.problem, e.path) for e in damaged.entries] == [("changed", str(archived))]
    finally:
        archived.write_bytes(original)


@pytest.mark.slow
def test_unsigned_is_a_state_and_digitize_sign_signs_the_back_catalogue_on_a_token(
        tmp_path: Path, pki: TestPki, hsm: SoftHsm) -> None:
    data = tmp_path / "var"
    import_reference(data)
    inbox = _batch(data, "B-CHUA-KY", 1, seed=22)
    run = _digitize(_env(data), "run", "--json", str(inbox))
    assert run.returncode == ExitCode.ok, run.stderr
    ((record_id, row),) = _records(data).items()
    assert row["signature_level"] is None and row["signed_at"] is None
    (event,) = _events(data, "sign")
    assert event[1] == "unsigned" and "Chưa ký số" in event[2] and f"--agency {AGENCY}" in event[2]
    unsigned = Path(str(row["pdf_path"]))
    unsigned_hash = sha256_file(unsigned)

    signing = {"DIGITIZE_SIGN_KEY": hsm.key_spec, "DIGITIZE_SIGN_PIN": TOKEN_PIN,
               "SOFTHSM2_CONF": str(hsm.conf)}
    signed = _digitize(_env(data, **signing), "sign", "--agency", AGENCY)
    assert signed.returncode == ExitCode.ok, signed.stdout + signed.stderr
    assert f"Hồ sơ {record_id}: đã ký số." in signed.stdout
    row = _records(data)[record_id]
    assert row["version"] == 2 and row["signature_level"] == "B-B"
    assert sha256_file(unsigned) == unsigned_hash  # version 1 stays as it was
    assert "Signature Validation: Signature is Valid." in _pdfsig(Path(str(row["pdf_path"])))
    assert TOKEN_PIN not in signed.stdout + signed.stderr

    again = _digitize(_env(data, **signing), "sign", "--agency", AGENCY)
    assert again.returncode == ExitCode.ok and "Đã ký: 0   Đã ký từ trước: 1" in again.stdout
    assert _records(data)[record_id]["version"] == 2


@pytest.mark.slow
@pytest.mark.parametrize(("case", "said"), [
    ("expired", "đã hết hạn"), ("nousage", "không cho phép ký số"),
    ("wrong_password", "mật khẩu tệp PKCS#12 sai"), ("revoked", "đã bị thu hồi")])
def test_a_key_that_cannot_sign_stops_the_batch_before_any_page(
        tmp_path: Path, pki: TestPki, case: str, said: str) -> None:
    data = tmp_path / "var"
    import_reference(data)
    inbox = _batch(data, "B-KHOA-HONG", 1, seed=23)
    p12 = {"expired": pki.expired_p12, "nousage": pki.nousage_p12,
           "wrong_password": pki.agency_p12, "revoked": pki.revoked_p12}[case]
    password = "sai-mat-khau" if case == "wrong_password" else P12_PASSWORD
    # revocation is looked up where B-LTA gathers it anyway: with a timestamp server and a trust root
    long_term = ({"DIGITIZE_SIGN_TSA": pki.tsa_url, "DIGITIZE_SIGN_TRUST": str(pki.root_pem)}
                 if case == "revoked" else {})
    run = _digitize(_env(data, DIGITIZE_SIGN_KEY=f"pkcs12:{p12}", DIGITIZE_SIGN_PIN=password,
                         **long_term), "run", str(inbox))
    assert run.returncode == ExitCode.bad_usage, run.stderr
    assert said in run.stderr and str(p12) in run.stderr and password not in run.stderr
    assert _records(data) == {}
    assert not (data / "archive").exists() or not any((data / "archive").rglob("*.pdf"))
    assert (inbox / "manifest.csv").is_file()  # the batch stays where the clerk dropped it


@pytest.mark.slow
@pytest.mark.parametrize("away", ["token", "timestamp_server"])
def test_a_token_not_plugged_in_or_a_timestamp_server_away_is_an_outage_to_retry(
        tmp_path: Path, pki: TestPki, hsm: SoftHsm, away: str) -> None:
    data = tmp_path / "var"
    import_reference(data)
    inbox = _batch(data, "B-KHONG-TOKEN", 1, seed=24)
    closed = f"http://127.0.0.1:{free_port()}/tsa"
    signing = ({"DIGITIZE_SIGN_KEY": hsm.key_spec.replace("token=agency", "token=khong-co")}
               if away == "token" else {"DIGITIZE_SIGN_KEY": hsm.key_spec, "DIGITIZE_SIGN_TSA": closed})
    run = _digitize(_env(data, DIGITIZE_SIGN_PIN=TOKEN_PIN, SOFTHSM2_CONF=str(hsm.conf), **signing),
                    "run", str(inbox))
    assert run.returncode == ExitCode.retry_later, run.stderr
    assert ("khong-co" if away == "token" else closed) in run.stderr
    assert TOKEN_PIN not in run.stderr
    assert _records(data) == {} and (inbox / "manifest.csv").is_file()


def test_every_quarantine_reason_has_its_vietnamese_label() -> None:
    """The report and the progress page name each reason in Vietnamese: a new RecordError
    without a label would show its code to Sở TT&TT."""
    from pipeline import errors
    from pipeline.reporting.progress import REASON_LABELS

    reasons = {cls.reason for cls in vars(errors).values()
               if isinstance(cls, type) and issubclass(cls, errors.RecordError)}
    assert "signing_failed" in reasons
    assert reasons - set(REASON_LABELS) == set()


def test_a_key_per_agency_from_the_table_and_the_pin_from_its_variable(
        tmp_path: Path, pki: TestPki, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.errors import ConfigError
    from pipeline.signing import policy

    table = tmp_path / "sign-keys.yaml"
    table.write_text(f"{AGENCY}:\n  key: pkcs12:{pki.agency_p12}\n  pin_env: DIGITIZE_SIGN_PIN_STP\n"
                     f"  tsa: {pki.tsa_url}\n", encoding="utf-8")
    settings = load_settings(data_dir=tmp_path, sign_keys=table, sign_key=f"pkcs12:{pki.expired_p12}",
                             sign_pin=P12_PASSWORD)
    monkeypatch.delenv("DIGITIZE_SIGN_PIN_STP", raising=False)
    with pytest.raises(ConfigError, match="DIGITIZE_SIGN_PIN_STP"):
        policy.key_for(settings, AGENCY)
    monkeypatch.setenv("DIGITIZE_SIGN_PIN_STP", P12_PASSWORD)
    own = policy.check_key(settings, AGENCY)
    assert own is not None and own.spec.path == pki.agency_p12 and own.tsa == pki.tsa_url
    assert P12_PASSWORD not in repr(own)
    # an agency not in the table signs with DIGITIZE_SIGN_KEY (here an expired one: refused)
    other = policy.key_for(settings, "000.00.99.H99")
    assert other is not None and other.spec.path == pki.expired_p12
    table.write_text(f"{AGENCY}: pkcs12:{pki.agency_p12}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=str(table)):
        policy.key_for(settings, AGENCY)


def test_the_dags_take_the_key_and_pin_from_the_airflow_connection(tmp_path: Path) -> None:
    from airflow.models.connection import Connection

    from pipeline.config import settings_for_connection

    sign = Connection(conn_id="digitize_sign", conn_type="generic", password="1234",
                      extra=json.dumps({"key": "pkcs11:/usr/lib/softhsm/libsofthsm2.so?token=a&key=b",
                                        "tsa": "http://127.0.0.1:9/tsa"}))
    settings = settings_for_connection(None, sign, data_dir=tmp_path)
    assert settings.sign_key == "pkcs11:/usr/lib/softhsm/libsofthsm2.so?token=a&key=b"
    assert settings.sign_tsa == "http://127.0.0.1:9/tsa"
    assert settings.sign_pin is not None and settings.sign_pin.get_secret_value() == "1234"
    assert "1234" not in repr(settings) and "1234" not in str(settings.model_dump())


@pytest.mark.slow
@pytest.mark.airflow
def test_the_sign_dag_signs_an_agencys_back_catalogue_summary_first(
        tmp_path: Path, pki: TestPki, migrate_airflow: MigrateAirflow) -> None:
    data = tmp_path / "var"
    import_reference(data)
    inbox = _batch(data, "B-DAG-KY", 1, seed=25)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIGITIZE_DATA_DIR", str(data))
        mp.delenv("DIGITIZE_DB_URL", raising=False)
        ((record_id, status),) = [(r.record_id, r.status) for r in run_batch(load_settings(), inbox).records]
    assert status == RecordStatus.archived and _records(data)[record_id]["signature_level"] is None
    env = {**airflow_env(load_settings(data_dir=data)), "DIGITIZE_SIGN_KEY": f"pkcs12:{pki.agency_p12}",
           # the PIN as the deployment keeps it: an Airflow connection's password, not a run parameter
           "AIRFLOW_CONN_DIGITIZE_SIGN": json.dumps({"conn_type": "generic", "password": P12_PASSWORD})}
    migrate_airflow(env)
    run = subprocess.run([str(Path(sys.executable).with_name("airflow")), "dags", "test", "digitize_sign",
                          "--conf", json.dumps({"agency_code": AGENCY})],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    level, summary = _task_log(run.stdout, "sign")[0]
    assert level == "info" and summary.startswith("Đã ký: 1   Đã ký từ trước: 0   Chưa ký được: 0")
    assert P12_PASSWORD not in run.stdout + run.stderr
    row = _records(data)[record_id]
    assert row["signature_level"] == "B-B" and row["version"] == 2
