"""The `digitize` command line: help, usage errors and their exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def digitize(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=300)


def test_help_explains_every_command() -> None:
    out = digitize("--help")
    assert out.returncode == 0
    for command in ("run", "demo", "sample", "airflow", "bench", "migrate"):
        assert command in out.stdout
    assert "Exit codes" in out.stdout
    run_help = digitize("run", "--help").stdout
    assert "--json" in run_help and "batch_dir" in run_help


def test_missing_manifest_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "B1").mkdir()
    out = digitize("run", str(tmp_path / "B1"), env={"DIGITIZE_DATA_DIR": str(tmp_path / "var")})
    assert out.returncode == 2
    assert "no manifest.csv" in out.stderr and str(tmp_path / "B1") in out.stderr


def test_not_a_folder_is_a_usage_error(tmp_path: Path) -> None:
    out = digitize("run", str(tmp_path / "nope"), env={"DIGITIZE_DATA_DIR": str(tmp_path / "var")})
    assert out.returncode == 2 and "not a folder" in out.stderr


@pytest.mark.parametrize(("env", "fragment"), [
    ({"DIGITIZE_PROFILE": "no-such-scanner"}, "Set DIGITIZE_PROFILE to one of ['default', 'draft', 'stack']"),
    ({"DIGITIZE_OCR_JOBS": "-1"}, "Invalid DIGITIZE_* setting"),
])
def test_bad_settings_are_reported_before_any_work(tmp_path: Path, env: dict[str, str],
                                                   fragment: str) -> None:
    out = digitize("run", str(tmp_path), env={"DIGITIZE_DATA_DIR": str(tmp_path / "var"), **env})
    assert out.returncode == 2
    assert fragment in out.stderr
    assert not (tmp_path / "var").exists()


def test_missing_tesseract_language_data_says_what_to_install(tmp_path: Path) -> None:
    """Failure injection: Tesseract pointed at an empty tessdata folder has no `vie`."""
    (tmp_path / "tessdata").mkdir()
    out = digitize("run", str(tmp_path), env={"DIGITIZE_DATA_DIR": str(tmp_path / "var"),
                                              "TESSDATA_PREFIX": str(tmp_path / "tessdata")})
    assert out.returncode == 2
    assert "tesseract-ocr-vie" in out.stderr and "scripts/setup.sh" in out.stderr
