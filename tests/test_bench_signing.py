"""The ký số benchmark runs end to end on two records (real pipeline batch, real PKI with its TSA
and OCSP on 127.0.0.1, real SoftHSM2 token) and writes every figure and goal row; the figures'
values are the benchmark's business, not the test's."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import skip_or_fail

from pipeline.demo import bench_signing
from pipeline.demo.pki import SOFTHSM_MODULE

SIGNING = ("PKCS#12 B-B", "PKCS#12 B-T", bench_signing.LONG_TERM, "SoftHSM2 B-B", "SoftHSM2 B-T")


def _numbers(data: Any) -> list[Any]:
    """Every leaf of a figures dict."""
    if isinstance(data, dict):
        return [leaf for value in data.values() for leaf in _numbers(value)]
    return [data]


@pytest.mark.slow
def test_the_signing_benchmark_writes_every_figure_and_goal(tmp_path: Path) -> None:
    if not SOFTHSM_MODULE.is_file() or shutil.which("softhsm2-util") is None:
        skip_or_fail("SoftHSM2 is not installed (Debian softhsm2; scripts/setup.sh installs it)")
    out = tmp_path / "out"

    assert bench_signing.main(["--records", "2", "--out", str(out)]) == 0

    report = json.loads((out / "bench-signing.json").read_text(encoding="utf-8"))
    assert report["records"] == 2
    assert len(report["sources"]) == 2
    assert all(s["pages"] >= 1 and s["bytes"] > 0 for s in report["sources"])
    operations = {row["operation"]: row for row in report["operations"]}
    assert set(operations) == {"copy", "verify", "timestamp request", *SIGNING,
                               *(f"{name}, sign alone" for name in SIGNING), bench_signing.AFTER_BATCH}
    for name, row in operations.items():
        leaves = _numbers({k: v for k, v in row.items() if k != "operation"})
        assert leaves and all(isinstance(v, int | float) and math.isfinite(v) for v in leaves), name
        assert 0 < row["seconds"]["median"] <= row["seconds"]["p90"] <= row["seconds"]["max"], name
    for name in SIGNING:
        row = operations[name]
        # in the record's path nothing follows the signature: B-LTA comes after the batch
        assert row["bytes_added"]["median"] == pytest.approx(row["signature_bytes"]["median"])
        assert row["signature_bytes"]["median"] > 0, name
        assert row["validation_bytes"]["max"] == 0, name
    after = operations[bench_signing.AFTER_BATCH]
    assert after["validation_bytes"]["median"] == after["bytes_added"]["median"] > 0

    goals = {g["label"]: g for g in report["goals"]}
    assert len(goals) == 2 * len(SIGNING)
    for name in SIGNING:
        for kind in ("seconds added per record", "bytes added by the signature"):
            (label,) = [label for label in goals if label.startswith(f"{name}: {kind}")]
            goal = goals[label]
            assert isinstance(goal["value"], int | float) and isinstance(goal["met"], bool), label

    table = (out / "bench-signing.md").read_text(encoding="utf-8")
    for name in operations:
        assert f"| {name} |" in table
    goal_rows = table.split("## Goals", 1)[1]
    for label in goals:
        assert f"| {label} |" in goal_rows
