"""The benchmark's phases, each run in a fresh child process whose memory the parent samples:
our pipeline on the corpus (and on the multi-page TIFF), the baseline (plain OCRmyPDF) and
Tesseract alone."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

from pipeline._exec import cpu_seconds, run, tesseract
from pipeline.batch import run_batch
from pipeline.checks import reference
from pipeline.config import Settings, load_settings
from pipeline.demo import samples
from pipeline.demo.bench_figures import corpus_pages, page_files
from pipeline.errors import ToolMissingError
from pipeline.imaging import cleanup, ocr
from pipeline.intake import pages
from pipeline.store import warehouse
from pipeline.store.archive import atomic_write_bytes

log = logging.getLogger(__name__)

PHASES = ("ours", "baseline", "tesseract", "tesseract_again", "stack")
TRUTH_NAME = "truth.json"
RSS_SAMPLE_SECONDS = 0.1


def write_json(path: Path, data: object) -> None:
    atomic_write_bytes(path, (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode())


def report_main(kind: str, out: Path | None, run: Callable[[Path], dict[str, Any]],
                render: Callable[[dict[str, Any]], str]) -> int:
    """A benchmark command's run into ``out`` (default ``var/bench/<kind>-<timestamp>``), its
    figures written as ``bench-<kind>.json`` and ``.md`` and the table printed; 1 with the
    reason when it could not run."""
    folder = (out or Path("var") / "bench" / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    try:
        report = run(folder)
    except RuntimeError as exc:
        log.error("%s", exc)
        return 1
    table = render(report)
    write_json(folder / f"bench-{kind}.json", report)
    atomic_write_bytes(folder / f"bench-{kind}.md", table.encode())
    print(table)
    return 0


def tool(name: str) -> str:
    """A program of this virtualenv (next to the interpreter) before one on the PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name) or name


def first_line(args: list[str]) -> str:
    """The first line a program prints (its version, say), or why there is none."""
    try:
        proc = run(args, timeout=60, check=False)
    except (OSError, ToolMissingError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    out = (proc.stdout or proc.stderr).decode("utf-8", "replace").strip()
    return out.splitlines()[0] if out else ""


def tree_cpu_seconds() -> float:
    """CPU seconds of this process and of all its descendants so far.

    ``RUSAGE_CHILDREN`` only knows children reaped already; a process that lives until this one
    exits (a forkserver and the pool workers it reaped, multiprocessing's resource tracker)
    would be left out, so the living ones are asked directly, with what they reaped.
    """
    total = cpu_seconds(resource.RUSAGE_SELF) + cpu_seconds(resource.RUSAGE_CHILDREN)
    for proc in psutil.Process().children(recursive=True):
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue  # ended meanwhile: reaped by its parent, whose figure now holds it
        total += times.user + times.system + times.children_user + times.children_system
    return total


def _rusage_mb() -> dict[str, float]:
    # Linux reports ru_maxrss in KiB.
    return {"self_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "children_max_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def bench_settings(data_dir: Path, jobs: int | None) -> Settings:
    # The warehouse is named explicitly: a DIGITIZE_DB_URL in the environment must never
    # receive benchmark records.
    overrides: dict[str, object] = {
        "data_dir": data_dir, "db_url": f"sqlite:///{(data_dir / 'warehouse.sqlite').resolve()}"}
    if jobs:
        overrides["ocr_jobs"] = jobs
    return load_settings(**overrides)


def phase_ours(truth: Path, data_dir: Path, jobs: int | None) -> dict[str, Any]:
    # this process's start and imports: what any command running a batch pays first
    cpu_started = tree_cpu_seconds()
    batch = samples.load_truth(truth)
    settings = bench_settings(data_dir, jobs)
    # what the batch is validated against
    warehouse.migrate(settings.warehouse_url)
    reference.import_samples(settings.warehouse_url)
    cpu_ready = tree_cpu_seconds()
    started = time.perf_counter()
    summary = run_batch(settings, batch.batch_dir)
    wall = time.perf_counter() - started
    return {
        "wall_seconds": wall, "profile": settings.profile, "ocr_jobs": settings.jobs,
        "cpu_phases": {"start": cpu_started, "setup": cpu_ready - cpu_started,
                       "batch": tree_cpu_seconds() - cpu_ready},
        "records": [
            {"record_id": r.record_id, "status": str(r.status), "pdf_path": r.pdf_path,
             "cpu_seconds": r.cpu_seconds, "programs_cpu_seconds": r.programs_cpu_seconds,
             "pages": [{"page_no": p.page_no, "rotation": p.rotation, "skew": p.skew}
                       for p in r.pages]}
            for r in summary.records
        ],
    }


def phase_baseline(out: Path, jobs: int | None) -> dict[str, Any]:
    batch = samples.load_truth(out / "corpus" / TRUTH_NAME)
    inputs, outputs = out / "baseline" / "in", out / "baseline" / "out"
    outputs.mkdir(parents=True, exist_ok=True)
    files = []
    started = time.perf_counter()
    for name in page_files(batch):
        target = outputs / f"{name}.pdf"
        args = [tool("ocrmypdf"), "-l", "vie", "--rotate-pages", "--deskew", "--clean",
                "--output-type", "pdfa-2", *(["--jobs", str(jobs)] if jobs else []),
                str(inputs / name), str(target)]
        t0 = time.perf_counter()
        proc = subprocess.run(args, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            log.warning("baseline: ocrmypdf exit %d on %s: %s", proc.returncode, name,
                        " | ".join(proc.stderr.strip().splitlines()[-3:]))
        files.append({"file": name, "pdf": str(target) if target.is_file() else None,
                      "exit_code": proc.returncode, "seconds": seconds})
        log.info("baseline: %s in %.1f s", name, seconds)
    return {"wall_seconds": time.perf_counter() - started, "command": args[:-2] + ["IN", "OUT.pdf"],
            "files": files}


def phase_tesseract(out: Path, jobs: int | None) -> dict[str, Any]:
    batch = samples.load_truth(out / "corpus" / TRUTH_NAME)
    profile = bench_settings(out / "tesseract", None).scanner_profile
    images = out / "tesseract" / "cleaned"
    images.mkdir(parents=True, exist_ok=True)
    # This phase is a process of its own: Tesseract reads on one thread, as in our OCR workers.
    os.environ["OMP_THREAD_LIMIT"] = "1"
    rows = []
    for n, page in enumerate(corpus_pages(batch), start=1):
        image, dpi = pages.load_page(batch.batch_dir / page.file, page.page_in_file,
                                     profile.fallback_dpi)
        t0 = time.perf_counter()
        cleaned = cleanup.clean_page(image, dpi, profile.cleanup)
        cleanup_seconds = time.perf_counter() - t0
        # the very image and settings our OCR reads: the comparison is of everything else
        ocr.write_view(cleaned.image, dpi, profile.ocr.colour_dropout, images, n)
        path = images / ocr.VIEW_DIR / f"{n:06d}.tif"
        t0, cpu0 = time.perf_counter(), cpu_seconds(resource.RUSAGE_CHILDREN)
        try:
            text: str | None = tesseract.read_text(path, profile.languages)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            text = None  # counts as a page without output
        seconds = time.perf_counter() - t0
        rows.append({"n": n, "cleanup_seconds": cleanup_seconds, "seconds": seconds,
                     "cpu_seconds": cpu_seconds(resource.RUSAGE_CHILDREN) - cpu0, "text": text})
        log.info("tesseract alone: page %d cleaned in %.1f s, read in %.1f s", n,
                 cleanup_seconds, seconds)
    return {"cleanup_seconds": sum(r["cleanup_seconds"] for r in rows),
            "wall_seconds": sum(r["seconds"] for r in rows),
            "ocr_cpu_seconds": sum(r["cpu_seconds"] for r in rows), "pages": rows,
            "side_by_side": _side_by_side(sorted((images / ocr.VIEW_DIR).glob("*.tif")),
                                          profile.languages, jobs)}


def _side_by_side(views: list[Path], languages: list[str], jobs: int | None) -> dict[str, Any]:
    """The same reads again, as many at a time as our OCR workers run: what Tesseract costs when
    it shares the machine as it does in our batch (two single-threaded Tesseracts side by side
    cost each 4-6 % more CPU than one alone, issue 15), so that a ratio against it is of our own
    work only."""
    workers = jobs or len(os.sched_getaffinity(0))

    def read(view: Path) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            tesseract.read_text(view, languages)

    cpu0 = cpu_seconds(resource.RUSAGE_CHILDREN)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(read, views))
    return {"jobs": workers, "ocr_cpu_seconds": cpu_seconds(resource.RUSAGE_CHILDREN) - cpu0}


def run_phase(name: str, out: Path, jobs: int | None) -> None:
    """Run phase ``name`` in this process (the child :func:`spawn_phase` started) and write its
    result, with this process's memory and CPU seconds, to ``OUT/phases/NAME.json``."""
    if name == "ours":
        result = phase_ours(out / "corpus" / TRUTH_NAME, out / "ours", jobs)
    elif name == "stack":
        result = phase_ours(out / name / TRUTH_NAME, out / name / "ours", jobs)
    elif name == "baseline":
        result = phase_baseline(out, jobs)
    else:
        result = phase_tesseract(out, jobs)
    result["rss"] = _rusage_mb()
    # the pool's workers and every program they ran, however they were started
    result["cpu_seconds"] = tree_cpu_seconds()
    write_json(out / "phases" / f"{name}.json", result)


class TreeSampler(threading.Thread):
    """Peak memory of a process's descendants (and of itself ``with_root``), sampled, in bytes:
    ``peak`` and ``peak_pss`` of them all together, ``largest`` RSS of a single one.

    The PSS sum is the tree's real footprint: it shares each library page among the processes
    mapping it, where the RSS sum counts it once per process.
    """

    def __init__(self, pid: int, with_root: bool) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.with_root = with_root
        self.peak = self.peak_pss = self.largest = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            total = total_pss = 0
            try:
                procs = self.process.children(recursive=True)
            except psutil.Error:
                break
            if self.with_root:
                procs.append(self.process)
            for proc in procs:
                try:
                    info = proc.memory_full_info()
                except psutil.Error:
                    continue  # ended between listing and reading: it no longer holds memory
                total += info.rss
                total_pss += info.pss
                self.largest = max(self.largest, info.rss)
            self.peak = max(self.peak, total)
            self.peak_pss = max(self.peak_pss, total_pss)
            self.done.wait(RSS_SAMPLE_SECONDS)


def spawn_phase(name: str, out: Path, jobs: int | None) -> dict[str, Any]:
    """Run one phase in a fresh ``python -m pipeline.demo.bench --phase NAME`` child.

    Our pipeline runs inside that child, so its memory counts; the baseline and Tesseract
    alone are programs the child only starts, so there only the programs' memory counts.
    """
    in_process = name in ("ours", "stack")
    args = [sys.executable, "-m", "pipeline.demo.bench", "--phase", name, "--out", str(out)]
    if jobs:
        args += ["--jobs", str(jobs)]
    log.info("phase %s: starting", name)
    started = time.perf_counter()
    proc = subprocess.Popen(args)
    sampler = TreeSampler(proc.pid, with_root=in_process)
    sampler.start()
    code = proc.wait()
    sampler.done.set()
    sampler.join()
    result_path = out / "phases" / f"{name}.json"
    if code != 0 or not result_path.is_file():
        raise RuntimeError(f"benchmark phase {name} failed (exit code {code})")
    result = json.loads(result_path.read_text(encoding="utf-8"))
    rss = result["rss"]
    rss["tree_peak_rss_mb"] = sampler.peak / 2**20
    rss["tree_peak_pss_mb"] = sampler.peak_pss / 2**20
    rss["largest_process_rss_mb"] = sampler.largest / 2**20
    # In process, the kernel's exact high-water mark of our process can only be higher than a
    # sample; a program's RUSAGE_CHILDREN figure is inflated (see the module docstring).
    rss["peak_rss_mb"] = (max(rss["self_max_rss_mb"], rss["largest_process_rss_mb"]) if in_process
                          else rss["largest_process_rss_mb"])
    log.info("phase %s: done in %.0f s", name, time.perf_counter() - started)
    return result
