"""OCRmyPDF: image PDF -> searchable PDF/A-2b, always in a process of its own.

``ocrmypdf.ocr()`` is not thread-safe and installs plugins process-wide. A process that a pool
made an OCR worker (``become_worker``: one record at a time, nothing else running) calls it
directly and saves the interpreter start; anywhere else each call runs in a fresh
``python -m pipeline._exec.ocrmypdf`` child whose stderr goes to our log.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import asdict, dataclass

from pipeline._exec import run

log = logging.getLogger(__name__)

PLUGIN = "pipeline._exec.ocrmypdf_plugin"


@dataclass(frozen=True)
class OcrJob:
    input_pdf: str
    output_pdf: str
    hocr_dir: str
    languages: list[str]
    jobs: int
    colour_dropout: bool
    title: str
    author: str
    subject: str
    keywords: str
    pages: str | None = None  # OCR only these pages ("1,3"); the others are kept without text
    # some pages carry their own text (born digital): copy them as they are, OCR the others
    keep_text: bool = False


class OcrmypdfError(Exception):
    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(f"OCRmyPDF exit code {exit_code}: {message}")
        self.exit_code = exit_code


def version() -> str:
    import ocrmypdf

    return ocrmypdf.__version__


_in_worker = False


def become_worker(log_level: int, single_threaded: bool) -> None:
    """Process-pool initializer: this process now runs OCR jobs one at a time, in itself.

    With one worker per core, Tesseract's own OpenMP threads only compete with the other
    workers, so they are turned off.
    """
    global _in_worker
    _in_worker = True
    if single_threaded:
        os.environ["OMP_THREAD_LIMIT"] = "1"
    logging.basicConfig(level=log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")
    # Imported now, while the pool's parent is still busy, rather than on the first record.
    import ocrmypdf  # noqa: F401

    import pipeline._exec.ocrmypdf_plugin  # noqa: F401
    import pipeline.runner  # noqa: F401


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

    from pipeline._exec.ocrmypdf_plugin import COLOUR_DROPOUT_ENV, HOCR_DIR_ENV

    os.environ[HOCR_DIR_ENV] = job.hocr_dir
    os.environ[COLOUR_DROPOUT_ENV] = "1" if job.colour_dropout else "0"
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
            # Tesseract's "single column of text of variable sizes": measured on the hard pages
            # (issue 15) 14 % fewer character errors than its default (3), at no extra time; it
            # reads a two-column header in order and list dashes as dashes
            tesseract_pagesegmode=4,
            # OCRmyPDF reads a page at its images' highest resolution and counts no stencil
            # masks, so a mixed page (compose: print and inks as stencils over a 100 dpi
            # background) was read at 100 dpi. At 200 its seal pages read at 1.3 % CER instead
            # of 2.2 %; 300 gained little more (1.0 %) for a third more CPU, as it also
            # upsamples every 200 dpi scan
            oversample=200,
            optimize=1,
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
