"""OCRmyPDF: image PDF -> searchable PDF/A-2b, always in a process of its own.

``ocrmypdf.ocr()`` is not thread-safe and installs plugins process-wide. A process made an OCR
worker (``become_worker``: one record at a time, nothing else running: a worker of
``digitize run``'s pool, an Airflow record task) calls it directly and saves the interpreter
start; anywhere else each call runs in a fresh ``python -m pipeline._exec.ocrmypdf`` child whose
stderr goes to our log.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import sys
from dataclasses import asdict, dataclass

from pipeline._exec import run, tesseract

log = logging.getLogger(__name__)

PLUGIN = "pipeline._exec.ocrmypdf_plugin"


@dataclass(frozen=True)
class OcrJob:
    input_pdf: str
    output_pdf: str
    hocr_dir: str
    view_dir: str  # page n is read from <view_dir>/<n:06d>.tif (pipeline.imaging.ocr.write_view)
    languages: list[str]
    jobs: int
    title: str
    author: str
    subject: str
    keywords: str
    pages: str | None = None  # OCR only these pages ("1,3"); the others are kept without text
    # some pages carry their own text (born digital): copy them as they are, OCR the others
    keep_text: bool = False
    # a page whose view was read before (a drafted first page) is taken from there
    readings_dir: str | None = None


class OcrmypdfError(Exception):
    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(f"OCRmyPDF exit code {exit_code}: {message}")
        self.exit_code = exit_code


def version() -> str:
    import ocrmypdf

    return ocrmypdf.__version__


_in_worker = False


def become_worker(log_level: int, single_threaded: bool) -> None:
    """This process now runs OCR jobs one at a time, in itself: for a process pool's initializer,
    and for an Airflow record task (one record, one slot of the "ocr" pool), where a child for
    each record cost about 1 CPU s more than the record's own work (Python's start, OCRmyPDF's
    imports, its probes: 7 records of 8 pages took 28.6 CPU s so, 21.5 in the task, issue 15).

    With one worker per core, Tesseract's own OpenMP threads only compete with the other
    workers, so they are turned off. Called again (a second record in one ``airflow dags test``
    process), it has nothing left to do.
    """
    global _in_worker
    if _in_worker:
        return
    _in_worker = True
    if single_threaded:
        os.environ["OMP_THREAD_LIMIT"] = "1"
    logging.basicConfig(level=log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")
    # Imported now, while the pool's parent is still busy, rather than on the first record.
    import ocrmypdf  # noqa: F401

    import pipeline._exec.ocrmypdf_plugin  # noqa: F401

    _probe_once()


def _probe_once() -> None:
    """Let OCRmyPDF ask each program for its version, and Tesseract for its languages, once in
    this process instead of on every record.

    It checks them on every call: ten processes (tesseract, gs, pngquant, jbig2) and 0.1 CPU s
    per record, a tenth of what Tesseract's reading of a page costs (issue 15). A worker's
    programs do not change while it lives; a program found missing is asked again.
    """
    from ocrmypdf._exec import _probe
    from ocrmypdf._exec import tesseract as ocrmypdf_tesseract

    _probe.get_version = functools.cache(_probe.get_version)
    ocrmypdf_tesseract.get_languages = functools.cache(ocrmypdf_tesseract.get_languages)


def make_pdfa(job: OcrJob, timeout: float = 1800) -> None:
    """Run OCRmyPDF on ``job.input_pdf``; raise OcrmypdfError unless it reports success."""
    if _in_worker:
        code, message = _ocr(job)
        if code != 0:
            raise OcrmypdfError(code, message)
        return
    env_args = [sys.executable, "-m", "pipeline._exec.ocrmypdf", json.dumps(asdict(job))]
    try:
        proc = run(env_args, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise OcrmypdfError(-1, f"timed out after {timeout:.0f} s") from exc
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
        raise OcrmypdfError(proc.returncode, " | ".join(tail))


def _ocr(job: OcrJob) -> tuple[int, str]:
    """OCRmyPDF's exit code and, on failure, its message."""
    import ocrmypdf

    from pipeline._exec.ocrmypdf_plugin import HOCR_DIR_ENV, READINGS_DIR_ENV, VIEW_DIR_ENV

    os.environ[HOCR_DIR_ENV] = job.hocr_dir
    os.environ[VIEW_DIR_ENV] = job.view_dir
    # set or cleared for each job: a pool's worker keeps its environment from one to the next
    os.environ[READINGS_DIR_ENV] = job.readings_dir or ""
    try:
        code = ocrmypdf.ocr(
            job.input_pdf,
            job.output_pdf,
            language=job.languages,
            output_type="pdfa-2",
            mode="skip" if job.keep_text else "default",
            # Ghostscript would re-render the pages kept as they are, and OCRmyPDF refuses
            # Debian 12's Ghostscript 10.0 in skip mode; OCRmyPDF's own PDF/A conversion leaves
            # the page content alone and fails, rather than degrades, what it cannot convert
            pdfa_backend="internal" if job.keep_text else "auto",
            jobs=job.jobs,
            tesseract_pagesegmode=tesseract.PAGE_SEGMENTATION_MODE,
            # Tesseract's own text-only PDF page, with its hOCR from the same run (for the word
            # confidences): OCRmyPDF's default renderer (fpdf2) rebuilds the page from the
            # hOCR in Python, 0.11 CPU s/page more for the same text (issue 15)
            pdf_renderer="sandwich",
            tesseract_config=["hocr"],
            # nothing left to optimise: compose writes G4 stencils and JPEGs, and deflates a
            # background's JPEG itself (compose._deflate_jpegs), which was all the optimizer
            # changed, for 12 CPU ms a record (issue 15)
            optimize=0,
            title=job.title,
            author=job.author,
            subject=job.subject,
            keywords=job.keywords,
            pages=job.pages,
            plugins=[PLUGIN],
            progress_bar=False,
        )
    except ocrmypdf.exceptions.ExitCodeException as exc:
        return int(exc.exit_code), f"{type(exc).__name__}: {exc}"
    return int(code), "" if code == 0 else f"exit code {int(code)}"


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    exit_code, failure = _ocr(OcrJob(**json.loads(sys.argv[1])))
    if failure:
        print(failure, file=sys.stderr)
    sys.exit(exit_code)
