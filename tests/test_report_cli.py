"""`digitize report`: the quarterly report from the command line, and its usage errors."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import openpyxl
import pytest
from conftest import digitize as run_digitize
from progress_fixtures import H, fill, write_plan

from pipeline.reporting import progress, report
from pipeline.reporting.plan import load_plan


def digitize(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_digitize(*args, env={**os.environ, **env})


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    fill(url)
    return {"DIGITIZE_DATA_DIR": str(tmp_path / "var"), "DIGITIZE_DB_URL": url,
            "DIGITIZE_PHASE_PLAN": str(write_plan(tmp_path))}


@pytest.mark.parametrize("fmt", ["xlsx", "csv", "json", "html"])
def test_report_writes_the_quarter_in_each_format(env: dict[str, str], tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "out" / f"bao-cao.{fmt}"
    done = digitize("report", "--quarter", "2023Q2", "--format", fmt, "--out", str(out), env=env)
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stdout and "Quý 2/2023" in done.stdout
    plan = load_plan(Path(env["DIGITIZE_PHASE_PLAN"]))
    data = progress.quarter_report(env["DIGITIZE_DB_URL"], "2023Q2", plan)
    assert out.read_bytes() == report.render(data, fmt)
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]  # atomic


def test_format_from_the_suffix_default_place_and_filters(env: dict[str, str], tmp_path: Path) -> None:
    done = digitize("report", "--quarter", "2023q2", "--level", "huyen", env=env)
    assert done.returncode == 0, done.stderr
    default = tmp_path / "var" / "reports" / "bao-cao-tien-do-2023Q2.xlsx"
    book = openpyxl.load_workbook(default)
    assert "Lọc theo: cấp Huyện" in [c.value for c in book["Tổng hợp"]["A"] if c.value]
    codes = {r[0] for r in book["GD2 Giai đoạn 2"].iter_rows(values_only=True)}
    assert H in codes and "000.00.01.H12" not in codes
    out = tmp_path / "x.csv"
    assert digitize("report", "--quarter", "2023Q2", "--phase", "GD2", "--out", str(out),
                    env=env).returncode == 0
    assert "Giai đoạn 3" not in out.read_text(encoding="utf-8-sig")


@pytest.mark.parametrize(("args", "fragment"), [
    (["--quarter", "2023Q5"], "not of the form YYYYQn"),
    (["--quarter", "2023Q2", "--format", "pdf"], "invalid choice: 'pdf'"),
    (["--quarter", "2023Q2", "--phase", "GD9"], "unknown phase 'GD9'"),
    (["--quarter", "2023Q2", "--agency", "000.99.99.H12"], "000.99.99.H12"),
    ([], "--quarter"),
])
def test_usage_errors_exit_2(env: dict[str, str], args: list[str], fragment: str) -> None:
    done = digitize("report", *args, env=env)
    assert done.returncode == 2
    assert fragment in done.stderr


def test_a_broken_phase_plan_is_a_configuration_error(env: dict[str, str], tmp_path: Path) -> None:
    plan = Path(env["DIGITIZE_PHASE_PLAN"])
    plan.write_text(plan.read_text(encoding="utf-8").replace("final_deadline: 2025-12-31\n", ""),
                    encoding="utf-8")
    done = digitize("report", "--quarter", "2023Q2", env=env)
    assert done.returncode == 2
    assert str(plan) in done.stderr and "final_deadline: missing" in done.stderr


def test_help_lists_the_report_command(env: dict[str, str]) -> None:
    assert "report" in digitize("--help", env=env).stdout
    text = digitize("report", "--help", env=env).stdout
    assert "--quarter" in text and "xlsx,csv,json,html" in text
