"""What the CPU savings of issue 15 must not change: a batch's OCR workers, forked from a
forkserver that started earlier, work in the batch's environment and directory; and the CPU a
record reports for itself, which the benchmark's per-page figure sums."""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

import pytest

from pipeline import batch
from pipeline._exec import cpu_seconds
from pipeline.config import Settings
from pipeline.demo import samples
from pipeline.models import RecordStatus
from pipeline.record import process_record
from pipeline.registration import record_tasks, register_batch

VARIABLE = "DIGITIZE_TEST_WORKER_SEES"


def _seen() -> tuple[str | None, str]:
    return os.environ.get(VARIABLE), os.getcwd()


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
    assert later == {("second", str(tmp_path))}


def _imported(module: str) -> bool:
    return module in sys.modules


def test_workers_start_with_the_pdfa_module_a_first_record_needs() -> None:
    """pikepdf's PDF/A module (with fontTools) is imported once by the forkserver, not by each
    worker on its first record: 0.2 CPU s a worker (issue 15)."""
    with batch._worker_pool(2) as pool:
        assert pool.submit(_imported, "pikepdf.pdfa").result(timeout=120)


def test_a_records_cpu_figure_holds_the_programs_it_ran(tmp_path: Path,
                                                        reference_settings: Settings) -> None:
    """What the benchmark's marginal part sums (issue 15): the record's Tesseract runs are
    child processes, most of the record's CPU, and count."""
    batch_dir = tmp_path / "scans" / samples.DEFAULT_AGENCY / "B-CPU"
    samples.generate_batch(batch_dir, n_records=1, seed=3, batch_id="B-CPU",
                           truth_path=tmp_path / "truth.json")
    plan, batch_pk, docs = register_batch(reference_settings, batch_dir)
    (task,) = record_tasks(plan, batch_pk, docs)
    own, children = cpu_seconds(), cpu_seconds(resource.RUSAGE_CHILDREN)
    result = process_record(reference_settings, task)
    own, children = cpu_seconds() - own, cpu_seconds(resource.RUSAGE_CHILDREN) - children
    assert result.status == RecordStatus.archived, result.errors
    assert result.cpu_seconds is not None
    assert children > own  # Tesseract did most of the work
    assert children <= result.cpu_seconds <= own + children + 0.01  # rounded to ms
    assert result.programs_cpu_seconds is not None
    assert result.programs_cpu_seconds == pytest.approx(children, abs=0.002)
    assert result.programs_cpu_seconds < result.cpu_seconds
