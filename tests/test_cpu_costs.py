"""What the CPU savings of issue 15 must not change: a batch's OCR workers, forked from a
forkserver that started earlier, work in the batch's environment and directory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pipeline import batch

VARIABLE = "DIGITIZE_TEST_WORKER_SEES"


def _seen() -> tuple[str | None, str, str | None]:
    return os.environ.get(VARIABLE), os.getcwd(), os.environ.get("OMP_THREAD_LIMIT")


def test_a_later_batchs_workers_see_its_environment_not_the_servers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VARIABLE, "first")
    with batch._worker_pool(1) as pool:
        first = pool.submit(_seen).result(timeout=120)
    # the server lives on with the environment it started with; the next batch's differs
    monkeypatch.setenv(VARIABLE, "second")
    monkeypatch.chdir(tmp_path)
    with batch._worker_pool(2) as pool:
        later = {pool.submit(_seen).result(timeout=120) for _ in range(4)}
    assert first[0] == "first"
    # single-threaded Tesseract: one worker a core
    assert later == {("second", str(tmp_path), "1")}


def _imported(module: str) -> bool:
    return module in sys.modules


def test_workers_start_with_what_ocrmypdf_imports_on_a_first_record() -> None:
    with batch._worker_pool(2) as pool:
        assert pool.submit(_imported, "pikepdf.pdfa").result(timeout=120)
