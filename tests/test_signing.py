"""Ký số: PAdES signatures by a PKCS#12 file and by a SoftHSM2 token, checked by pyHanko's
validation and, independently, by poppler's ``pdfsig``; PDF/A-2b kept; tampering found; every
key and network failure named.

Everything is real: the PKI, its timestamp authority and OCSP responder (certomancer, served on
127.0.0.1 by this session), the token (SoftHSM2, initialised here), the PDF/A (OCRmyPDF).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import shutil
import subprocess
import time
from pathlib import Path

import pikepdf
import pytest
from conftest import free_port
from pikepdf.pdfa import validate_written
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader

from pipeline.demo.pki import (
    AGENCY_NAME,
    KEY_LABEL,
    P12_PASSWORD,
    SOFTHSM_MODULE,
    TOKEN_LABEL,
    TOKEN_PIN,
    SoftHsm,
    TestPki,
    make_pdfa,
    self_signed_root,
)
from pipeline.errors import (
    ConfigError,
    ExitCode,
    SigningKeyError,
    SigningUnavailableError,
    UnusableInputError,
)
from pipeline.signing.keys import KeySpec, open_signer, parse_key_spec, signer_name
from pipeline.signing.sign import (
    REASON,
    check_revocation,
    extend_to_lta,
    fetching_context,
    renew_archive_timestamp,
    sign_pdf,
)
from pipeline.signing.verify import verify_pdf

LOCATION = "Sở Tư pháp tỉnh Thử Nghiệm"
# the budget: a B-B or B-T signature adds at most 10 KB to the archived file
SIGNATURE_BUDGET = 10 * 1024


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The unsigned PDF/A-2b record, made once; tests sign copies of it."""
    return make_pdfa(tmp_path_factory.mktemp("record") / "record.pdf")


@pytest.fixture
def record(archived: Path, tmp_path: Path) -> Path:
    return Path(shutil.copyfile(archived, tmp_path / "record.pdf"))


def _p12(pki: TestPki) -> KeySpec:
    return parse_key_spec(f"pkcs12:{pki.agency_p12}")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pdfa_identity(path: Path) -> tuple[object, ...]:
    with pikepdf.open(path) as pdf:
        meta = pdf.open_metadata()
        intent = pdf.Root.OutputIntents[0]
        return (meta.get("pdfaid:part"), meta.get("pdfaid:conformance"), meta.get("dc:identifier"),
                meta.get("dc:source"), meta.get("dc:type"), str(intent.OutputConditionIdentifier),
                intent.DestOutputProfile.read_bytes())


def _metadata(path: Path) -> tuple[bytes, dict[str, str]]:
    with pikepdf.open(path) as pdf:
        return pdf.Root.Metadata.read_bytes(), {str(k): str(v) for k, v in pdf.docinfo.items()}


def _pdfsig(path: Path) -> str:
    done = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, check=False)
    return done.stdout + done.stderr


def _assert_signed_record(src: Path, dst: Path, trust: Path, level: str) -> None:
    """What every signed record must show, by pyHanko, by pdfsig and as PDF/A-2b."""
    verdict = verify_pdf(dst, [trust])
    assert verdict.valid, verdict.as_json()
    assert (verdict.signer, verdict.level, verdict.intact, verdict.whole_document, verdict.trusted) == (
        AGENCY_NAME, level, True, True, True)
    report = _pdfsig(dst)
    assert "Signature Validation: Signature is Valid." in report, report
    if level in ("B-B", "B-T"):
        assert "Total document signed" in report, report
        # the signature's increment leaves the record's XMP and Info as they were
        assert _metadata(dst) == _metadata(src)
    assert _pdfa_identity(dst) == _pdfa_identity(src)
    assert not validate_written(dst, "2b").violations
    with pikepdf.open(dst) as pdf:
        sig = pdf.Root.AcroForm.Fields[0].V
        assert (str(sig.SubFilter), str(sig.Reason), str(sig.Location)) == (
            "/ETSI.CAdES.detached", REASON, LOCATION)
        assert list(pdf.Root.AcroForm.Fields[0].Rect) == [0, 0, 0, 0]  # invisible


# --- keys ---------------------------------------------------------------------------------------

def test_key_specs_are_read_in_both_forms_and_anything_else_is_refused() -> None:
    p12 = parse_key_spec("pkcs12:/etc/digitize/so-tu-phap.p12")
    assert p12 == KeySpec("pkcs12", Path("/etc/digitize/so-tu-phap.p12"))
    p11 = parse_key_spec("pkcs11:/usr/lib/softhsm/libsofthsm2.so?token=agency&key=signer")
    assert p11 == KeySpec("pkcs11", Path("/usr/lib/softhsm/libsofthsm2.so"), "agency", "signer")
    assert str(p11) == "pkcs11:/usr/lib/softhsm/libsofthsm2.so?token=agency&key=signer"
    assert str(p12) == "pkcs12:/etc/digitize/so-tu-phap.p12"
    for bad in ("/etc/a.p12", "pkcs12:", "pem:/a.pem", "pkcs11:/m.so?token=a",
                "pkcs11:/m.so?token=a&key=", "pkcs11:/m.so?token=a&key=b&slot=1"):
        with pytest.raises(ConfigError) as caught:
            parse_key_spec(bad)
        assert f"'{bad}'" in str(caught.value) and "pkcs12:" in str(caught.value)
        assert "pkcs11:" in str(caught.value)


def test_a_wrong_p12_password_stops_with_the_key_named_and_the_password_never_shown(pki: TestPki) -> None:
    spec = _p12(pki)
    wrong = "sai-mat-khau-9876"
    with pytest.raises(SigningKeyError) as caught, open_signer(spec, wrong):
        pass
    assert str(spec) in str(caught.value) and "DIGITIZE_SIGN_PIN" in str(caught.value)
    assert wrong not in str(caught.value) and P12_PASSWORD not in str(caught.value)
    assert caught.value.exit_code is ExitCode.bad_usage


def test_a_missing_p12_file_is_a_key_error(tmp_path: Path) -> None:
    spec = parse_key_spec(f"pkcs12:{tmp_path / 'khong-co.p12'}")
    with pytest.raises(SigningKeyError, match="khong-co.p12"), open_signer(spec, "x"):
        pass


@pytest.mark.parametrize(("label", "says"), [("expired", "hết hạn"), ("nousage", "không cho phép ký")])
def test_an_expired_or_non_signing_certificate_stops_before_signing(pki: TestPki, label: str,
                                                                    says: str) -> None:
    spec = parse_key_spec(f"pkcs12:{getattr(pki, f'{label}_p12')}")
    with pytest.raises(SigningKeyError) as caught, open_signer(spec, P12_PASSWORD):
        pass
    assert str(spec) in str(caught.value) and says in str(caught.value)


def test_a_certificate_is_checked_at_the_given_time(pki: TestPki) -> None:
    with pytest.raises(SigningKeyError, match="chỉ có hiệu lực từ"), open_signer(
            _p12(pki), P12_PASSWORD, at=dt.datetime(2019, 6, 1, tzinfo=dt.UTC)):
        pass


def test_a_wrong_token_pin_stops_with_the_key_named_and_the_pin_never_shown(hsm: SoftHsm) -> None:
    spec = parse_key_spec(hsm.key_spec)
    with pytest.raises(SigningKeyError) as caught, open_signer(spec, "4321"):
        pass
    assert str(spec) in str(caught.value) and "PIN" in str(caught.value)
    assert "4321" not in str(caught.value) and TOKEN_PIN not in str(caught.value)


def test_a_token_not_plugged_in_is_passing_and_retried(hsm: SoftHsm) -> None:
    spec = parse_key_spec(f"pkcs11:{SOFTHSM_MODULE}?token=khong-cam&key={KEY_LABEL}")
    with pytest.raises(SigningUnavailableError) as caught, open_signer(spec, TOKEN_PIN):
        pass
    assert str(spec) in str(caught.value) and "Cắm USB token" in str(caught.value)
    assert caught.value.exit_code is ExitCode.retry_later


def test_a_key_label_not_on_the_token_is_a_key_error(hsm: SoftHsm) -> None:
    spec = parse_key_spec(f"pkcs11:{SOFTHSM_MODULE}?token={TOKEN_LABEL}&key=khong-co")
    with pytest.raises(SigningKeyError, match="'khong-co'"), open_signer(spec, TOKEN_PIN):
        pass


def test_a_missing_pkcs11_module_is_a_key_error(tmp_path: Path) -> None:
    spec = parse_key_spec(f"pkcs11:{tmp_path / 'khong-co.so'}?token=a&key=b")
    with pytest.raises(SigningKeyError, match="khong-co.so"), open_signer(spec, TOKEN_PIN):
        pass


# --- signing ------------------------------------------------------------------------------------

@pytest.mark.parametrize("timestamped", [False, True], ids=["B-B", "B-T"])
def test_a_p12_signature_verifies_keeps_pdfa_and_leaves_the_source_alone(
        pki: TestPki, record: Path, tmp_path: Path, timestamped: bool) -> None:
    before = _sha256(record)
    dst = tmp_path / "signed.pdf"
    with open_signer(_p12(pki), P12_PASSWORD) as signer:
        assert signer_name(signer) == AGENCY_NAME
        started = dt.datetime.now(dt.UTC)
        info = sign_pdf(record, dst, signer, location=LOCATION,
                        tsa_url=pki.tsa_url if timestamped else None)
    assert _sha256(record) == before
    level = "B-T" if timestamped else "B-B"
    assert (info.level, info.signer) == (level, AGENCY_NAME)
    assert abs(info.signed_at - started) < dt.timedelta(seconds=30)
    _assert_signed_record(record, dst, pki.root_pem, level)
    verdict = verify_pdf(dst, [pki.root_pem])
    if timestamped:
        assert info.timestamp is not None and verdict.timestamp == info.timestamp
        assert abs(info.timestamp - started) < dt.timedelta(seconds=30)
    else:
        assert info.timestamp is None and verdict.timestamp is None
    # no revocation data embedded below B-LT: said, not held against the file
    assert not verdict.revocation_checked and verdict.warnings
    assert dst.stat().st_size - record.stat().st_size <= SIGNATURE_BUDGET
    # the original revision is the unsigned file, byte for byte
    assert dst.read_bytes()[:record.stat().st_size] == record.read_bytes()


def test_a_softhsm_token_signs_like_a_p12_file(pki: TestPki, hsm: SoftHsm, record: Path,
                                               tmp_path: Path) -> None:
    before = _sha256(record)
    dst = tmp_path / "signed.pdf"
    with open_signer(parse_key_spec(hsm.key_spec), TOKEN_PIN) as signer:
        info = sign_pdf(record, dst, signer, location=LOCATION, tsa_url=pki.tsa_url)
    assert _sha256(record) == before
    assert (info.level, info.signer) == ("B-T", AGENCY_NAME) and info.timestamp is not None
    _assert_signed_record(record, dst, pki.root_pem, "B-T")
    # the token's root CA certificate stays out (the verifier brings its own), and the signer's
    # certificate is there once
    embedded = PdfFileReader(io.BytesIO(dst.read_bytes())).embedded_regular_signatures[0]
    names = [c.chosen.subject.native["common_name"] for c in embedded.signed_data["certificates"]]
    assert names == [AGENCY_NAME]
    assert dst.stat().st_size - record.stat().st_size <= SIGNATURE_BUDGET


def test_an_unreachable_timestamp_server_is_passing_and_names_the_url(pki: TestPki, record: Path,
                                                                      tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}/tsa"
    dst = tmp_path / "signed.pdf"
    with pytest.raises(SigningUnavailableError) as caught, open_signer(_p12(pki), P12_PASSWORD) as signer:
        sign_pdf(record, dst, signer, location=LOCATION, tsa_url=closed)
    assert closed in str(caught.value) and str(record) in str(caught.value)
    assert caught.value.exit_code is ExitCode.retry_later
    assert not dst.exists()


def test_a_b_t_record_brought_to_b_lta_embeds_revocation_data_and_an_archive_timestamp_that_renews(
        pki: TestPki, record: Path, tmp_path: Path) -> None:
    # one context for a whole run, made before the record was signed: the revocation data it
    # fetches later is newer than its own time (beyond pyHanko's 1 s tolerance), and still taken
    context = fetching_context([pki.root_pem])
    signed = tmp_path / "signed.pdf"
    with open_signer(_p12(pki), P12_PASSWORD) as signer:
        info = sign_pdf(record, signed, signer, location=LOCATION, tsa_url=pki.tsa_url)
    assert info.level == "B-T" and info.timestamp is not None
    time.sleep(1.5)
    dst = tmp_path / "long-term.pdf"
    stamped = extend_to_lta(signed, dst, tsa_url=pki.tsa_url, context=context)
    assert stamped >= info.timestamp
    # the B-T file is the first bytes of the B-LTA one: only updates were added
    assert dst.read_bytes()[:signed.stat().st_size] == signed.read_bytes()
    _assert_signed_record(record, dst, pki.root_pem, "B-LTA")
    verdict = verify_pdf(dst, [pki.root_pem])
    assert verdict.revocation_checked and not verdict.warnings
    with pikepdf.open(dst) as pdf:
        assert len(pdf.Root.DSS.OCSPs) >= 1
    # the signature covers its own revision; the validation data and the timestamp follow it
    report = _pdfsig(dst)
    assert "Not total document signed" in report

    renewed = tmp_path / "renewed.pdf"
    stamped_at = renew_archive_timestamp(dst, renewed, tsa_url=pki.tsa_url, context=context)
    assert stamped_at >= stamped
    assert renewed.read_bytes()[:dst.stat().st_size] == dst.read_bytes()

    def stamps(path: Path) -> int:
        return len(PdfFileReader(io.BytesIO(path.read_bytes())).embedded_timestamp_signatures)

    assert stamps(renewed) == stamps(dst) + 1
    again = verify_pdf(renewed, [pki.root_pem])
    assert again.valid and again.level == "B-LTA" and again.revocation_checked, again.as_json()
    assert _pdfa_identity(renewed) == _pdfa_identity(record)


def test_a_revoked_certificate_is_refused_by_the_revocation_check_and_not_brought_to_b_lta(
        pki: TestPki, record: Path, tmp_path: Path) -> None:
    """B-T does not ask the OCSP responder; the check at a batch's start and B-LTA do, and
    both refuse what the CA revoked."""
    spec = parse_key_spec(f"pkcs12:{pki.revoked_p12}")
    signed, dst = tmp_path / "signed.pdf", tmp_path / "long-term.pdf"
    with open_signer(spec, P12_PASSWORD) as signer:
        with pytest.raises(SigningKeyError, match="đã bị thu hồi từ 01/06/2024"):
            check_revocation(signer, [pki.root_pem], str(spec))
        sign_pdf(record, signed, signer, location=LOCATION, tsa_url=pki.tsa_url)
    with pytest.raises(SigningKeyError, match="đã bị thu hồi từ 01/06/2024") as caught:
        extend_to_lta(signed, dst, tsa_url=pki.tsa_url, context=fetching_context([pki.root_pem]))
    assert str(signed) in str(caught.value)
    assert not dst.exists()


# --- verification -------------------------------------------------------------------------------

@pytest.fixture
def signed(pki: TestPki, record: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "signed.pdf"
    with open_signer(_p12(pki), P12_PASSWORD) as signer:
        sign_pdf(record, dst, signer, location=LOCATION, tsa_url=pki.tsa_url)
    return dst


def test_one_flipped_byte_in_the_signed_range_is_found_and_the_file_named(pki: TestPki, signed: Path,
                                                                          tmp_path: Path) -> None:
    data = bytearray(signed.read_bytes())
    # a byte in the middle of the page image: the file still parses, only its digest changes
    with pikepdf.open(signed) as pdf:
        image = pdf.pages[0].Resources.XObject.Im0.read_raw_bytes()
    at = bytes(data).index(image) + len(image) // 2
    data[at] ^= 0x01
    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(bytes(data))
    verdict = verify_pdf(tampered, [pki.root_pem])
    assert not verdict.valid and verdict.signed and not verdict.intact
    assert any(str(tampered) in p and "bị thay đổi" in p for p in verdict.problems), verdict.problems
    assert "Signature is Valid" not in _pdfsig(tampered)


def test_a_damaged_signature_container_is_found(pki: TestPki, signed: Path, tmp_path: Path) -> None:
    data = bytearray(signed.read_bytes())
    # inside the signer's certificate in /Contents (hex), outside the signed byte range
    at = bytes(data).index(b"/Contents <") + 600
    data[at] = ord("0") if data[at] != ord("0") else ord("1")
    damaged = tmp_path / "damaged.pdf"
    damaged.write_bytes(bytes(data))
    verdict = verify_pdf(damaged, [pki.root_pem])
    assert not verdict.valid and not verdict.intact and verdict.trusted is False
    assert any(str(damaged) in p and "bị hỏng" in p for p in verdict.problems), verdict.problems
    assert verdict.as_json()["valid"] is False


def test_an_update_appended_that_changes_the_page_is_found(pki: TestPki, signed: Path,
                                                           tmp_path: Path) -> None:
    from pyhanko.pdf_utils import generic

    writer = IncrementalPdfFileWriter(io.BytesIO(signed.read_bytes()))
    # a white box over the decision, as a forger would add it, in a well-formed update
    box = writer.add_object(generic.StreamObject(stream_data=b"q 1 g 0 0 600 400 re f Q"))
    writer.add_stream_to_page(0, box)
    out = io.BytesIO()
    writer.write(out)
    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(out.getvalue())
    verdict = verify_pdf(tampered, [pki.root_pem])
    assert not verdict.valid and not verdict.intact and not verdict.whole_document, verdict.as_json()
    assert any(str(tampered) in p and "thay đổi nội dung" in p for p in verdict.problems)


def test_an_unsigned_pdf_is_not_valid(archived: Path) -> None:
    verdict = verify_pdf(archived)
    assert not verdict.valid and not verdict.signed and verdict.pdfa
    assert verdict.problems == [f"{archived}: chưa được ký số."]


def test_a_file_that_is_not_a_pdf_is_unusable_input(tmp_path: Path) -> None:
    text = tmp_path / "ghi-chu.pdf"
    text.write_text("không phải PDF\n", encoding="utf-8")
    with pytest.raises(UnusableInputError, match="ghi-chu.pdf") as caught:
        verify_pdf(text)
    assert caught.value.exit_code is ExitCode.bad_usage


def test_a_signature_from_another_ca_is_intact_but_untrusted(signed: Path, tmp_path: Path) -> None:
    other = self_signed_root(tmp_path / "other-ca.pem")
    verdict = verify_pdf(signed, [other])
    assert verdict.intact and verdict.trusted is False and not verdict.valid
    assert any("không dẫn tới chứng thư gốc tin cậy" in p for p in verdict.problems)
