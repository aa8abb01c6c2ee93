"""Ký số benchmark: what signing adds to archiving a record, in time and in bytes.

    python -m pipeline.demo.bench_signing [--records 20] [--out DIR]

One run, in a temporary folder: the test PKI of :mod:`pipeline.demo.pki` (root CA, the agency's
signer, a timestamp authority and an OCSP responder served on 127.0.0.1) and a SoftHSM2 token
holding the same key; a small sample batch (:func:`pipeline.demo.samples.generate_batch`, 200
dpi) run through the pipeline unsigned (:func:`pipeline.batch.run_batch`, SQLite in the temporary
folder), whose archived PDF/A-2b records are what gets signed, one after another in turn until
``--records`` records are done. Each record is timed, in turn within the same round so that the
machine's load weighs on all alike:

- **baselines**: the record copied (read and written durably, as signing writes its output:
  what archiving costs without a signature), a signed record verified alone
  (:func:`pipeline.signing.verify.verify_pdf`), and one request to the timestamp authority (a
  B-T signature asks it twice: once to size the signature, once to timestamp it);
- **PKCS#12 B-B, B-T, B-T kept long term** and **SoftHSM2 (PKCS#11) B-B, B-T**: signed and
  verified as the pipeline does it in the record's path
  (:func:`pipeline.signing.policy.sign_and_verify`: the key opened, signed, verified), and
  signed alone (the key opened, signed). B-T asks the PKI's timestamp authority, on 127.0.0.1:
  a real server over a network adds its round trips;
- **B-LTA after the batch**: the long-term record brought to B-LTA as
  :mod:`pipeline.signing.renewal` does it once a batch is done (validation data and a document
  timestamp, with one validation context for the run, then verified), per record: out of the
  record's path, and measured apart.

One untimed round first (imports, first connections). It writes ``DIR/bench-signing.json`` and
``DIR/bench-signing.md``: median and p90 seconds per record, seconds added per record (signed and
verified minus the copy of the same record), bytes added per record (the signature's increment,
and apart what B-LTA adds after it: validation data and document timestamp), and the issue's
goals for the signing in the record's path. Certomancer comes with the ``test`` extra:
``pip install -e .[test]`` (which ``scripts/setup.sh`` does). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import importlib.metadata
import io
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko_certvalidator import ValidationContext

from pipeline.batch import run_batch
from pipeline.checks import reference
from pipeline.config import Settings
from pipeline.demo import samples
from pipeline.demo.bench import start_logging
from pipeline.demo.bench_phases import bench_settings, report_main
from pipeline.demo.content import DEFAULT_AGENCY
from pipeline.demo.pki import (
    AGENCY_NAME,
    P12_PASSWORD,
    SOFTHSM_MODULE,
    TOKEN_PIN,
    TestPki,
    running_pki,
    softhsm_token,
)
from pipeline.models import RecordStatus
from pipeline.signing.keys import KeySpec, open_signer, parse_key_spec
from pipeline.signing.policy import AgencyKey, sign_and_verify, trust_roots
from pipeline.signing.sign import NETWORK_TIMEOUT, extend_to_lta, fetching_context, sign_pdf
from pipeline.signing.verify import verify_pdf
from pipeline.store import warehouse
from pipeline.store.archive import atomic_write_bytes

log = logging.getLogger("pipeline.demo.bench_signing")

T = TypeVar("T")

# archived records made by the pipeline and signed in turn: a few are enough to vary the size
SOURCE_RECORDS = 3
BATCH_DPI = 200
LONG_TERM = "PKCS#12 B-T, kept long term"
AFTER_BATCH = "B-LTA after the batch (validation data + document timestamp + verify)"
# the goals: (unit, figure, statistic, what it says, at most)
GOALS: tuple[tuple[str, str, str, str, float], ...] = (
    ("s", "added_seconds", "p90", "seconds added per record (sign + verify − copy), p90", 0.3),
    # the validation data of B-LTA comes on top, as the issue says
    ("bytes", "signature_bytes", "max", "bytes added by the signature (validation data apart), max",
     10 * 1024),
)


@dataclass(frozen=True)
class Variant:
    """One way of signing: a key (file or token) and the PAdES level the settings lead to."""

    label: str  # "PKCS#12 B-T"
    level: str  # what sign_and_verify must report
    key: AgencyKey
    settings: Settings  # its sign_trust, with the key's TSA, decides B-T or B-LTA

    @property
    def slug(self) -> str:
        return self.label.replace("#", "").replace(" ", "-").lower()


@dataclass(frozen=True)
class Source:
    """An archived record the pipeline made, as the benchmark signs it."""

    record_id: str
    path: Path
    pages: int

    @property
    def size(self) -> int:
        return self.path.stat().st_size


@dataclass
class Samples:
    """One operation's measurements, a value per record."""

    seconds: list[float]
    added_seconds: list[float]  # minus the copy of the same record
    bytes_added: list[int]
    signature_bytes: list[int]  # the signature's own increment
    validation_bytes: list[int]  # what follows it: validation data, document timestamps


def _empty() -> Samples:
    return Samples([], [], [], [], [])


def _timed(call: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def _stats(values: Sequence[float]) -> dict[str, float]:
    return {"median": float(np.median(values)), "p90": float(np.percentile(values, 90)),
            "max": float(max(values))}


def _increments(unsigned: int, signed: Path) -> tuple[int, int]:
    """(the last signature's increment, the bytes after it) of a file signed from one of
    ``unsigned`` bytes: the signature covers everything up to the end of its own revision."""
    data = signed.read_bytes()
    signature = PdfFileReader(io.BytesIO(data), strict=False).embedded_regular_signatures[-1]
    _, _, start, length = (int(n) for n in signature.byte_range)
    return start + length - unsigned, len(data) - (start + length)


def archived_sources(folder: Path, count: int) -> list[Source]:
    """``count`` sample records run through the pipeline without a key: archived PDF/A-2b."""
    # the warehouse is named and signing switched off whatever the environment says: the
    # benchmark signs these files itself
    settings = bench_settings(folder / "data", None).model_copy(
        update={"sign_key": None, "sign_keys": None, "sign_tsa": None, "sign_trust": None})
    inbox = settings.dir("inbox") / DEFAULT_AGENCY / "KYSO-BENCH"
    samples.generate_batch(inbox, agency_code=DEFAULT_AGENCY, batch_id="KYSO-BENCH", n_records=count,
                           dpis=(BATCH_DPI,), truth_path=folder / "truth.json")
    url = settings.warehouse_url
    warehouse.migrate(url)
    reference.import_samples(url)
    try:
        summary = run_batch(settings, inbox)
    finally:
        warehouse.dispose(url)
    held = [f"{r.record_id}: {r.reason}" for r in summary.records if r.status is not RecordStatus.archived]
    if held:
        raise RuntimeError(f"sample records not archived: {'; '.join(held)}")
    return [Source(r.record_id, Path(r.pdf_path or ""), r.page_count) for r in summary.records]


def variants(settings: Settings, pki: TestPki, token_spec: KeySpec) -> list[Variant]:
    """B-B verified against the root; B-T with a TSA and no trust roots (with both, the pipeline
    signs B-LTA); B-LTA with both."""
    p12 = KeySpec("pkcs12", pki.agency_p12)
    trusted = settings.model_copy(update={"sign_trust": pki.root_pem})
    untrusted = settings.model_copy(update={"sign_trust": None})
    tsa = pki.tsa_url
    return [
        Variant("PKCS#12 B-B", "B-B", AgencyKey(p12, P12_PASSWORD), trusted),
        Variant("PKCS#12 B-T", "B-T", AgencyKey(p12, P12_PASSWORD, tsa), untrusted),
        Variant(LONG_TERM, "B-T", AgencyKey(p12, P12_PASSWORD, tsa), trusted),
        Variant("SoftHSM2 B-B", "B-B", AgencyKey(token_spec, TOKEN_PIN), trusted),
        Variant("SoftHSM2 B-T", "B-T", AgencyKey(token_spec, TOKEN_PIN, tsa), untrusted),
    ]


def _sign_alone(variant: Variant, src: Path, out: Path) -> None:
    """What :func:`sign_and_verify` does before it verifies."""
    with open_signer(variant.key.spec, variant.key.pin) as signer:
        sign_pdf(src, out, signer, location=AGENCY_NAME, tsa_url=variant.key.tsa)


def _copy(src: Path, dst: Path) -> None:
    atomic_write_bytes(dst, src.read_bytes())


def _timestamp(url: str) -> None:
    digest = hashlib.sha256(b"kyso-bench").digest()
    asyncio.run(HTTPTimeStamper(url, timeout=NETWORK_TIMEOUT).async_timestamp(digest, "sha256"))


def _extended_and_verified(signed: Path, out: Path, tsa_url: str, trust: Sequence[Path],
                           context: ValidationContext) -> None:
    """What :func:`pipeline.signing.renewal.renew_due` does to each B-T record after a batch."""
    extend_to_lta(signed, out, tsa_url=tsa_url, context=context)
    verdict = verify_pdf(out, trust)
    if not verdict.valid or verdict.level != "B-LTA":
        raise RuntimeError(f"{out}: {verdict.level} {verdict.problems}")


def _signed_and_verified(variant: Variant, source: Source, out: Path) -> None:
    info = sign_and_verify(variant.settings, variant.key, source.record_id, AGENCY_NAME, source.path, out)
    if info.level != variant.level:
        raise RuntimeError(f"{variant.label}: signed {info.level}, expected {variant.level}")


def measure(sources: Sequence[Source], signing: Sequence[Variant], tsa_url: str, n_records: int,
            work: Path) -> dict[str, Samples]:
    """Every operation on ``n_records`` records (the sources in turn), after one untimed round."""
    found: dict[str, Samples] = {"copy": _empty(), "verify": _empty(), "timestamp request": _empty()}
    for variant in signing:
        found[variant.label] = _empty()
        found[f"{variant.label}, sign alone"] = _empty()
    found[AFTER_BATCH] = _empty()
    copy = work / "copy.pdf"
    long_term = next(v for v in signing if v.label == LONG_TERM)
    trust = trust_roots(long_term.settings)
    # one for the run, as after a batch: the first record fetches the revocation data
    context = fetching_context(trust)
    for variant in signing:
        _signed_and_verified(variant, sources[0], work / f"warm-{variant.slug}.pdf")
    _extended_and_verified(work / f"warm-{long_term.slug}.pdf", work / "warm-lta.pdf", tsa_url,
                           trust, context)
    for n in range(n_records):
        source = sources[n % len(sources)]
        log.info("record %d/%d: %s", n + 1, n_records, source.record_id)
        copy_seconds, _ = _timed(partial(_copy, source.path, copy))
        found["copy"].seconds.append(copy_seconds)
        for variant in signing:
            out = work / f"{variant.slug}.pdf"
            seconds, _ = _timed(partial(_signed_and_verified, variant, source, out))
            signature, validation = _increments(source.size, out)
            sample = found[variant.label]
            sample.seconds.append(seconds)
            sample.added_seconds.append(seconds - copy_seconds)
            sample.bytes_added.append(out.stat().st_size - source.size)
            sample.signature_bytes.append(signature)
            sample.validation_bytes.append(validation)
            alone, _ = _timed(partial(_sign_alone, variant, source.path, work / "alone.pdf"))
            found[f"{variant.label}, sign alone"].seconds.append(alone)
        signed_bt, lta = work / f"{long_term.slug}.pdf", work / "lta.pdf"
        seconds, _ = _timed(partial(_extended_and_verified, signed_bt, lta, tsa_url, trust, context))
        after = found[AFTER_BATCH]
        after.seconds.append(seconds)
        after.added_seconds.append(seconds)
        after.bytes_added.append(lta.stat().st_size - signed_bt.stat().st_size)
        after.signature_bytes.append(0)
        after.validation_bytes.append(lta.stat().st_size - signed_bt.stat().st_size)
        # the first way of signing is PKCS#12 B-B, verified against the root
        signed = work / f"{signing[0].slug}.pdf"
        verify_seconds, verdict = _timed(partial(verify_pdf, signed, trust_roots(signing[0].settings)))
        if not verdict.valid:
            raise RuntimeError(f"{signed}: {verdict.problems}")
        found["verify"].seconds.append(verify_seconds)
        found["timestamp request"].seconds.append(_timed(partial(_timestamp, tsa_url))[0])
    return found


def figures(found: dict[str, Samples], signing: Sequence[Variant]) -> dict[str, Any]:
    """Per operation: seconds, and for a signing one seconds and bytes added; the goals."""
    operations = []
    for name, sample in found.items():
        row: dict[str, Any] = {"operation": name, "seconds": _stats(sample.seconds)}
        if sample.bytes_added:
            row |= {"added_seconds": _stats(sample.added_seconds),
                    "bytes_added": _stats(sample.bytes_added),
                    "signature_bytes": _stats(sample.signature_bytes),
                    "validation_bytes": _stats(sample.validation_bytes)}
        operations.append(row)
    by_name = {row["operation"]: row for row in operations}
    goals = [{"goal": f"{variant.slug}-{unit}", "label": f"{variant.label}: {what}", "unit": unit,
              "target": f"<= {budget:g}", "value": by_name[variant.label][figure][stat],
              "met": by_name[variant.label][figure][stat] <= budget}
             for unit, figure, stat, what, budget in GOALS for variant in signing]
    return {"operations": operations, "goals": goals}


def render_table(report: dict[str, Any]) -> str:
    env = report["environment"]
    pages = sum(s["pages"] for s in report["sources"])
    kb = sum(s["bytes"] for s in report["sources"]) / 1024
    lines = [
        f"# Ký số benchmark {report['started_at']}: {report['records']} records signed, from "
        f"{len(report['sources'])} archived PDF/A-2b ({pages} pages, {kb:.0f} KB)",
        "",
        f"{env['cpus']} CPUs, load average {env['load_average'][0]:.2f} at the start, "
        f"{env['load_average_end'][0]:.2f} at the end; pyHanko {env['pyhanko']}.",
        "",
        "| operation | median s | p90 s | added median s | added p90 s | bytes added median | "
        "signature bytes max | validation data bytes max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["operations"]:
        cells = [row["operation"], f"{row['seconds']['median']:.3f}", f"{row['seconds']['p90']:.3f}"]
        if "added_seconds" in row:
            cells += [f"{row['added_seconds']['median']:.3f}", f"{row['added_seconds']['p90']:.3f}",
                      f"{row['bytes_added']['median']:.0f}", f"{row['signature_bytes']['max']:.0f}",
                      f"{row['validation_bytes']['max']:.0f}"]
        else:
            cells += [""] * 5
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "copy: the record read and written durably (what archiving costs without a signature); "
        "verify: a PKCS#12 B-B record verified alone; timestamp request: one RFC 3161 request "
        "(a worker's first B-T signature makes two: one to size the signature). A signing row is "
        "sign + verify, as the pipeline does it; 'sign alone' leaves out the verification. "
        "Added: minus the copy of the same record. TSA and OCSP on 127.0.0.1.",
        "",
        "## Goals",
        "",
        "| goal | value | target | met |",
        "|---|---|---|---|",
    ]
    lines += [f"| {g['label']} | {g['value']:.{3 if g['unit'] == 's' else 0}f} | {g['target']} | "
              f"{'yes' if g['met'] else 'NO'} |" for g in report["goals"]]
    return "\n".join(lines) + "\n"


def run_benchmark(out: Path, n_records: int, argv: Sequence[str]) -> dict[str, Any]:
    if not SOFTHSM_MODULE.is_file() or shutil.which("softhsm2-util") is None:
        raise RuntimeError("SoftHSM2 is not installed (Debian softhsm2; scripts/setup.sh installs it)")
    started_at = dt.datetime.now().isoformat(timespec="seconds")
    environment: dict[str, Any] = {
        "cpus": len(os.sched_getaffinity(0)), "load_average": os.getloadavg(),
        "python": platform.python_version(), "platform": platform.platform(),
        "pyhanko": importlib.metadata.version("pyhanko"),
        "command": [sys.executable, "-m", "pipeline.demo.bench_signing", *argv],
    }
    with tempfile.TemporaryDirectory(prefix="kyso-bench-") as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        log.info("archiving %d sample records unsigned", min(n_records, SOURCE_RECORDS))
        sources = archived_sources(folder / "batch", min(n_records, SOURCE_RECORDS))
        pki = stack.enter_context(running_pki(folder / "pki"))
        token = stack.enter_context(softhsm_token(folder / "softhsm", pki))
        signing = variants(bench_settings(folder / "data", None), pki, parse_key_spec(token.key_spec))
        work = folder / "signed"
        work.mkdir()
        found = measure(sources, signing, pki.tsa_url, n_records, work)
        source_rows = [{"record_id": s.record_id, "pages": s.pages, "bytes": s.size} for s in sources]
    environment["load_average_end"] = os.getloadavg()
    report = {"benchmark": "pipeline.demo.bench_signing", "started_at": started_at,
              "finished_at": dt.datetime.now().isoformat(timespec="seconds"),
              "environment": environment, "records": n_records, "sources": source_rows,
              **figures(found, signing)}
    return report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline.demo.bench_signing",
                                description="What signing adds to archiving a record, in time and bytes.")
    p.add_argument("--records", type=int, default=20, help="records signed per way of signing (default 20)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for bench-signing.json and .md (default var/bench/signing-<timestamp>)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    start_logging()
    # B-T is also verified without trust roots (an agency not kept long term): pyHanko's
    # traceback for the chain it cannot build is expected, once per record
    logging.getLogger("pyhanko.sign.validation.generic_cms").setLevel(logging.ERROR)
    if args.records < 1:
        print("--records must be at least 1", file=sys.stderr)
        return 2
    return report_main("signing", args.out, lambda out: run_benchmark(out, args.records, argv),
                       render_table)


if __name__ == "__main__":
    sys.exit(main())
