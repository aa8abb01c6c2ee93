"""Benchmark: our pipeline against plain OCRmyPDF on a generated corpus (not part of the tests).

    python -m pipeline.demo.bench [--pages 30] [--seed 0] [--out DIR] [--skip-baseline] [--jobs N]
                             [--tiff-pages N]

One run generates a corpus with :func:`pipeline.demo.samples.generate_corpus` and processes it with

- **ours**: ``pipeline.batch.run_batch`` on the corpus batch, timed as one wall clock for the batch;
- **baseline**: what a user would otherwise run, ``ocrmypdf -l vie --rotate-pages --deskew
  --clean --output-type pdfa-2 IN OUT.pdf``, once per page file, sequentially;
- **Tesseract alone**: our cleanup on each page (timed apart), then Tesseract on the very OCR
  view our OCR reads (``ocr.write_view``), with our languages and page segmentation mode and
  ``OMP_THREAD_LIMIT=1``, one page after another: the floor our OCR stage can approach. It runs
  before ours and again after, and its CPU is the mean of the two runs (both in ``bench.json``).
  Each run then reads the views again as many at a time as our OCR workers (``--jobs``): the
  same work under the same sharing of the machine, a second denominator for the CPU ratios;
- with ``--tiff-pages N``, our pipeline on one record of an N-page multi-page TIFF, for memory.

Every phase runs in a fresh child process of this one, so that its memory is its own. The
parent samples the memory of the phase's process tree: its total (PSS, and the RSS sum; OCR
workers run side by side, and ``ru_maxrss`` only knows single processes) and the largest
process. ``getrusage`` figures are kept too, but Linux charges a child with the memory of
whoever spawned it (the pre-exec image), so ``RUSAGE_CHILDREN`` is never below the spawning
Python's size.

Then the parent measures every output page against the ground truth: CER (NFC, whitespace
ignored; a page without output counts as 1.0), residual skew and orientation measured on the
output PDF rasterised, KB per page, and on the seal pages how much of the red stamp and the blue
signature stays red / blue (see :func:`pipeline.demo.bench_measure.colour_kept`). It writes
``OUT/bench.json`` and ``OUT/bench.md`` and prints the table. Figures on a shared machine are
noisy: compare runs made on a quiet one.

This module is the command line and the run; the phases are in :mod:`pipeline.demo.bench_phases`,
the measuring in :mod:`pipeline.demo.bench_measure`, the figures in
:mod:`pipeline.demo.bench_figures` and the table in :mod:`pipeline.demo.bench_report`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import shutil
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pipeline.demo import samples
from pipeline.demo.bench_figures import build_report, build_rows, corpus_meta, page_files, throughput
from pipeline.demo.bench_measure import compare_methods, measure_baseline, measure_ours, measure_tesseract
from pipeline.demo.bench_phases import (
    PHASES,
    TRUTH_NAME,
    bench_settings,
    first_line,
    run_phase,
    spawn_phase,
    tool,
    write_json,
)
from pipeline.demo.bench_report import render_table
from pipeline.demo.content import DEFAULT_AGENCY
from pipeline.store.archive import atomic_write_bytes

log = logging.getLogger("pipeline.demo.bench")

def _environment(argv: Sequence[str]) -> dict[str, Any]:
    return {
        "cpus": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(), "python": platform.python_version(),
        "platform": platform.platform(), "tesseract": first_line(["tesseract", "--version"]),
        "ocrmypdf": first_line([tool("ocrmypdf"), "--version"]),
        "command": [sys.executable, "-m", "pipeline.demo.bench", *argv],
    }


def run_benchmark(out: Path, *, n_pages: int, seed: int, skip_baseline: bool, jobs: int | None,
                  tiff_pages: int, argv: Sequence[str]) -> dict[str, Any]:
    started_at = dt.datetime.now().isoformat(timespec="seconds")
    environment = _environment(argv)
    log.info("generating a corpus of %d pages into %s", n_pages, out / "corpus")
    batch = samples.generate_corpus(out / "corpus" / DEFAULT_AGENCY / f"BENCH-{seed}",
                                    n_pages=n_pages, seed=seed, truth_path=out / "corpus" / TRUTH_NAME)
    # The baseline reads its own copy, so nothing our run does to the batch can touch it.
    if not skip_baseline:
        for name in page_files(batch):
            dest = out / "baseline" / "in" / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(batch.batch_dir / name, dest)
    stack_batch = None
    if tiff_pages:
        log.info("generating a %d-page multi-page TIFF", tiff_pages)
        stack_batch = samples.generate_stack(
            out / "stack" / "corpus" / DEFAULT_AGENCY / f"STACK-{seed}", n_pages=tiff_pages,
            seed=seed, truth_path=out / "stack" / TRUTH_NAME)

    # Tesseract alone runs before ours and again after, and its CPU is the mean of the two: this
    # machine's speed drifted by up to 1.5x within an hour, and a run of Tesseract alone after
    # ours only put the two ratios of one code 0.3 apart (issue 15); a steady drift cancels
    before = spawn_phase("tesseract", out, jobs)
    phases = {"ours": spawn_phase("ours", out, jobs)}
    if not skip_baseline:
        phases["baseline"] = spawn_phase("baseline", out, jobs)
    after = spawn_phase("tesseract_again", out, jobs)
    runs = [before["ocr_cpu_seconds"], after["ocr_cpu_seconds"]]
    paired = [before["side_by_side"]["ocr_cpu_seconds"], after["side_by_side"]["ocr_cpu_seconds"]]
    phases["tesseract"] = {**before, "ocr_cpu_seconds": sum(runs) / 2, "ocr_cpu_seconds_runs": runs,
                           "side_by_side": {**before["side_by_side"],
                                            "ocr_cpu_seconds": sum(paired) / 2,
                                            "ocr_cpu_seconds_runs": paired}}
    stack = None
    if stack_batch is not None:
        result = spawn_phase("stack", out, jobs)
        (record,) = result["records"]
        stack = {"pages": tiff_pages, "status": record["status"],
                 "wall_seconds": result["wall_seconds"], "rss": result["rss"],
                 **throughput(tiff_pages, result["wall_seconds"])}

    log.info("measuring the outputs")
    rows = build_rows(batch)
    workers = jobs or len(os.sched_getaffinity(0))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        measure_ours(rows, phases["ours"], pool, batch.batch_dir)
        if "baseline" in phases:
            measure_baseline(rows, phases["baseline"], pool, batch.batch_dir)
    measure_tesseract(rows, phases["tesseract"])
    log.info("comparing orientation and deskew methods")
    profile = bench_settings(out / "ours", jobs).scanner_profile
    methods = compare_methods(batch, profile.cleanup.max_skew,
                              profile.cleanup.orientation_min_confidence)
    environment["load_average_end"] = os.getloadavg()
    meta = {
        "benchmark": "pipeline.demo.bench", "started_at": started_at,
        "finished_at": dt.datetime.now().isoformat(timespec="seconds"),
        "environment": environment, "corpus": corpus_meta(batch, seed),
        "settings": {"profile": phases["ours"]["profile"], "ocr_jobs": phases["ours"]["ocr_jobs"],
                     "jobs_option": jobs, "skip_baseline": skip_baseline,
                     "baseline_command": phases["baseline"]["command"] if "baseline" in phases else None},
        "stack": stack,
        "methods": methods,
    }
    report = build_report(rows, phases, meta)
    write_json(out / "bench.json", report)
    table = render_table(report)
    atomic_write_bytes(out / "bench.md", table.encode())
    print(table)
    return report


def _default_out() -> Path:
    return Path("var") / "bench" / dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline.demo.bench",
        description="Benchmark our pipeline against plain OCRmyPDF on a generated corpus.")
    p.add_argument("--pages", type=int, default=30, help="corpus pages (default 30)")
    p.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder, new or empty (default var/bench/<timestamp>)")
    p.add_argument("--skip-baseline", action="store_true", help="do not run plain OCRmyPDF")
    p.add_argument("--jobs", type=int, default=None,
                   help="OCR worker processes for ours (DIGITIZE_OCR_JOBS) and the baseline "
                        "(ocrmypdf --jobs); default: every available core")
    p.add_argument("--tiff-pages", type=int, default=0,
                   help="also measure our peak memory on one record of an N-page multi-page "
                        "TIFF (default 0: skip)")
    p.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)  # internal: child process
    return p


def start_logging() -> None:
    """Our progress at INFO; libraries (great-expectations is chatty) only when they warn."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pipeline").setLevel(logging.INFO)


def used(out: Path) -> bool:
    """Whether ``out`` holds files already (said on stderr): an old run's archive would make a
    new run's records "already archived" and its figures meaningless."""
    if out.exists() and any(out.iterdir()):
        print(f"{out} is not empty; give a new folder with --out", file=sys.stderr)
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    start_logging()
    out = (args.out or _default_out()).resolve()
    if args.phase:
        run_phase(args.phase, out, args.jobs)
        return 0
    if args.pages < 1 or args.tiff_pages < 0 or (args.jobs is not None and args.jobs < 1):
        print("--pages and --jobs must be at least 1, --tiff-pages at least 0", file=sys.stderr)
        return 2
    if used(out):
        return 2
    out.mkdir(parents=True, exist_ok=True)
    try:
        run_benchmark(out, n_pages=args.pages, seed=args.seed, skip_baseline=args.skip_baseline,
                      jobs=args.jobs, tiff_pages=args.tiff_pages, argv=argv)
    except RuntimeError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
