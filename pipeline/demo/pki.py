"""A test PKI, its services and a SoftHSM2 token, all made here and served on 127.0.0.1: what
the signing tests and the signing benchmark (:mod:`pipeline.demo.bench_signing`) sign with.

Certomancer issues the certificates (a root CA; the agency's signer with digitalSignature +
nonRepudiation; an expired signer; a signer without those usages; a revoked signer; a timestamp
authority; an OCSP responder) from keys generated here, and its Animator serves the TSA and OCSP
as a real HTTP server in a thread. Nothing is downloaded.

Certomancer is in the ``test`` extra, not a dependency of the pipeline: this module needs
``pip install -e .[test]`` (which ``scripts/setup.sh`` does); no stage imports it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pikepdf
import pkcs11
from asn1crypto import pem
from certomancer.integrations.animator import Animator, AnimatorArchStore
from certomancer.registry import CertLabel, CertomancerConfig
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from PIL import Image, ImageDraw
from werkzeug.serving import WSGIRequestHandler, make_server

SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
P12_PASSWORD = "mat-khau-p12"
TOKEN_LABEL = "agency"
KEY_LABEL = "signer"
TOKEN_PIN = "1234"
SO_PIN = "5678"
ARCH = "sohoa"
AGENCY_NAME = "Sở Tư pháp tỉnh Thử Nghiệm"

_LONG = {"valid-from": "2020-01-01T00:00:00+0000", "valid-to": "2090-01-01T00:00:00+0000"}
_SIGNER_KU = {"id": "key_usage", "critical": True,
              "smart-value": {"schema": "key-usage", "params": ["digital_signature", "non_repudiation"]}}


def _pki_config(key_dir: Path) -> dict[str, Any]:
    keys = ("root", "agency", "expired", "nousage", "revoked", "tsa", "ocsp")
    return {
        "keysets": {"keys": {"path-prefix": str(key_dir),
                             "keys": {k: {"path": f"{k}.key.pem"} for k in keys}}},
        "pki-architectures": {ARCH: {
            "keyset": "keys",
            "entity-defaults": {"country-name": "VN", "organization-name": "UBND tỉnh Thử Nghiệm"},
            "entities": {
                "root": {"common-name": "CA Thử Nghiệm"},
                "agency": {"common-name": AGENCY_NAME},
                "expired": {"common-name": "Chứng thư đã hết hạn"},
                "nousage": {"common-name": "Chứng thư không dùng để ký"},
                "revoked": {"common-name": "Chứng thư đã bị thu hồi"},
                "tsa": {"common-name": "Dịch vụ dấu thời gian Thử Nghiệm"},
                "ocsp": {"common-name": "OCSP Thử Nghiệm"},
            },
            "certs": {
                "root": {"subject": "root", "issuer": "root", "validity": _LONG,
                         "profiles": [{"id": "simple-ca", "params": {"ocsp-service": "ocsp"}}]},
                "agency": {"issuer": "root", "validity": _LONG, "extensions": [_SIGNER_KU]},
                "expired": {"issuer": "root", "extensions": [_SIGNER_KU],
                            "validity": {"valid-from": "2020-01-01T00:00:00+0000",
                                         "valid-to": "2021-01-01T00:00:00+0000"}},
                "nousage": {"issuer": "root", "validity": _LONG, "extensions": [
                    {"id": "key_usage", "critical": True,
                     "smart-value": {"schema": "key-usage", "params": ["key_encipherment"]}}]},
                "revoked": {"issuer": "root", "validity": _LONG, "extensions": [_SIGNER_KU],
                            "revocation": {"revoked-since": "2024-06-01T00:00:00+0000",
                                           "reason": "key_compromise"}},
                "tsa": {"issuer": "root", "validity": _LONG, "extensions": [
                    {"id": "key_usage", "critical": True,
                     "smart-value": {"schema": "key-usage", "params": ["digital_signature"]}},
                    {"id": "extended_key_usage", "critical": True, "value": ["time_stamping"]}]},
                "ocsp": {"issuer": "root", "validity": _LONG, "profiles": ["ocsp-responder"]},
            },
            "services": {
                "ocsp": {"ocsp": {"for-issuer": "root", "responder-cert": "ocsp", "signing-key": "ocsp"}},
                "time-stamping": {"tsa": {"signing-key": "tsa", "signing-cert": "tsa"}},
            },
        }},
    }


@dataclass(frozen=True)
class TestPki:
    __test__ = False  # not a test class, whatever its name

    folder: Path
    root_pem: Path  # the trust root for verify_pdf
    agency_p12: Path  # password P12_PASSWORD, like the other three
    expired_p12: Path
    nousage_p12: Path
    revoked_p12: Path  # revoked since 2024-06-01, as the OCSP responder says
    agency_key_pem: Path  # PKCS#8, for softhsm2-util --import
    agency_cert_der: Path
    url: str  # http://127.0.0.1:PORT

    @property
    def tsa_url(self) -> str:
        return f"{self.url}/{ARCH}/tsa/tsa"


class _LateApp:
    """The server must have its port before the certificates name their OCSP address."""

    app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.app(environ, start_response)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Not every TSA and OCSP request in the test output."""


@contextlib.contextmanager
def running_pki(folder: Path) -> Iterator[TestPki]:
    """Make the PKI in ``folder`` and serve its TSA and OCSP responder until the block ends."""
    folder.mkdir(parents=True, exist_ok=True)
    config = _pki_config(folder)
    for label in config["keysets"]["keys"]["keys"]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (folder / f"{label}.key.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    late = _LateApp()
    server = make_server("127.0.0.1", 0, late, threaded=True, request_handler=_QuietHandler)
    url = f"http://127.0.0.1:{server.server_port}"
    arch = CertomancerConfig(config, key_search_dir=str(folder), external_url_prefix=url).get_pki_arch(ARCH)
    late.app = Animator(AnimatorArchStore({arch.arch_label: arch}), with_web_ui=False)

    def p12(label: str) -> Path:
        path = folder / f"{label}.p12"
        path.write_bytes(arch.package_pkcs12(CertLabel(label), password=P12_PASSWORD.encode()))
        return path

    root_pem = folder / "root.pem"
    root_pem.write_bytes(_pem(arch.get_cert(CertLabel("root")).dump()))
    agency_der = folder / "agency.cert.der"
    agency_der.write_bytes(arch.get_cert(CertLabel("agency")).dump())
    pki = TestPki(folder=folder, root_pem=root_pem, agency_p12=p12("agency"),
                  expired_p12=p12("expired"), nousage_p12=p12("nousage"), revoked_p12=p12("revoked"),
                  agency_key_pem=folder / "agency.key.pem", agency_cert_der=agency_der, url=url)
    thread = threading.Thread(target=server.serve_forever, name="test-pki", daemon=True)
    thread.start()
    try:
        yield pki
    finally:
        server.shutdown()
        thread.join(10)


def self_signed_root(path: Path) -> Path:
    """A CA certificate that issued nothing here: a trust root the signer does not chain to."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CA khác")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _pem(der: bytes) -> bytes:
    return pem.armor("CERTIFICATE", der)


@dataclass(frozen=True)
class SoftHsm:
    conf: Path

    @property
    def key_spec(self) -> str:
        return f"pkcs11:{SOFTHSM_MODULE}?token={TOKEN_LABEL}&key={KEY_LABEL}"


@contextlib.contextmanager
def softhsm_token(folder: Path, pki: TestPki) -> Iterator[SoftHsm]:
    """A SoftHSM2 token ``agency`` (PIN 1234) holding the agency's key and certificate, and the
    root CA's certificate.

    SoftHSM reads ``SOFTHSM2_CONF`` when the module is initialised, so the variable is set in
    this process while the block runs (child processes inherit it) and the module is unloaded on
    the way in and out.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokens").mkdir(exist_ok=True)
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n", encoding="utf-8")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    util = shutil.which("softhsm2-util") or "softhsm2-util"
    subprocess.run([util, "--init-token", "--free", "--label", TOKEN_LABEL, "--pin", TOKEN_PIN,
                    "--so-pin", SO_PIN], env=env, check=True, capture_output=True)
    subprocess.run([util, "--import", str(pki.agency_key_pem), "--token", TOKEN_LABEL, "--label",
                    KEY_LABEL, "--id", "01", "--pin", TOKEN_PIN], env=env, check=True, capture_output=True)
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    # python-pkcs11 keeps a module loaded for the process; a token of an earlier fixture (another
    # test module) would be the one found under the same label
    pkcs11.unload(str(SOFTHSM_MODULE))
    try:
        _import_certificate(pki.agency_cert_der.read_bytes(), KEY_LABEL, b"\x01")
        # the CA certificate beside the key, as the government CA's tokens carry it
        _import_certificate(pem.unarmor(pki.root_pem.read_bytes())[2], "ca", b"\x02")
        yield SoftHsm(conf=conf)
    finally:
        pkcs11.unload(str(SOFTHSM_MODULE))
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous


def _import_certificate(der: bytes, label: str, object_id: bytes) -> None:
    from asn1crypto import x509
    from pkcs11 import Attribute, CertificateType, ObjectClass

    cert = x509.Certificate.load(der)
    token = pkcs11.lib(str(SOFTHSM_MODULE)).get_token(token_label=TOKEN_LABEL)
    with token.open(rw=True, user_pin=TOKEN_PIN) as session:
        session.create_object({
            Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
            Attribute.TOKEN: True, Attribute.LABEL: label, Attribute.ID: object_id,
            Attribute.SUBJECT: cert.subject.dump(), Attribute.VALUE: der,
        })


def make_pdfa(path: Path, record_id: str = "000.00.00.H00-250101-0001") -> Path:
    """A one-page PDF/A-2b like an archived record: OCRmyPDF's PDF/A (no OCR: nothing here
    depends on the text) with the record's Dublin Core fields in its XMP, as ``ocr.ocr_record``
    writes them."""
    work = path.parent / f"{path.stem}-work"
    work.mkdir(parents=True, exist_ok=True)
    page = Image.new("L", (1240, 1754), 255)
    ImageDraw.Draw(page).text((120, 160), "QUYET DINH so 12/QD-UBND", fill=0)
    page.save(work / "page.png", dpi=(150, 150))
    import img2pdf

    (work / "image.pdf").write_bytes(img2pdf.convert(str(work / "page.png")))
    subprocess.run([sys.executable, "-m", "ocrmypdf", "-q", "--ocr-engine", "none",
                    "--output-type", "pdfa-2", "--pdfa-backend", "internal",
                    str(work / "image.pdf"), str(path)], check=True, capture_output=True)
    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        with pdf.open_metadata() as meta:
            meta["dc:identifier"] = record_id
            meta["dc:source"] = "000.00.00.H00/lo-thu"
            meta["dc:type"] = {"Kết quả giải quyết thủ tục hành chính"}
            meta["dc:language"] = ["vi"]
        pdf.save(path, deterministic_id=True)
    shutil.rmtree(work)
    return path
