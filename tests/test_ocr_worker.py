"""An OCR pool worker runs real OCRmyPDF and Tesseract on a real page; what it starts per record."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

# Runs in a process of its own: a worker's probe cache must not outlive it into the test
# process, where other tests take programs away from PATH on purpose.
_WORKER = r"""
import json, logging, random, subprocess, sys
from pathlib import Path

import numpy as np

from pipeline._exec import ocrmypdf as ocrmypdf_exec
from pipeline.demo import render
from pipeline.imaging import compose, ocr

work = Path(sys.argv[1])
page = np.asarray(render.render_page(["GIẤY PHÉP XÂY DỰNG", "Số: 712/GPXD"], dpi=200,
                                     style="serif", rng=random.Random(1)).convert("RGB"))
ocr.write_view(page, 200, True, work, 1)
compose.page_pdf(page, 200, work / "page.pdf")
pdf = compose.join_pdfs([work / "page.pdf"], work / "pages.pdf")
(work / "hocr").mkdir()
ocrmypdf_exec.become_worker(logging.WARNING, True)

def job(n):
    return ocrmypdf_exec.OcrJob(str(pdf), str(work / f"record-{n}.pdf"), str(work / "hocr"),
                                str(work / ocr.VIEW_DIR), ["vie"], 1, "t", "a", "s", "k")

started = []
real_init = subprocess.Popen.__init__
def spy(self, args, *a, **k):
    started.append([str(x) for x in args])
    return real_init(self, args, *a, **k)
subprocess.Popen.__init__ = spy
results = [ocrmypdf_exec._ocr(job(n)) for n in (1, 2)]
first = len(started)
results.append(ocrmypdf_exec._ocr(job(3)))
print(json.dumps({"results": results, "first_two": started[:first], "third": started[first:]}))
"""


def test_a_worker_asks_for_program_versions_once_and_then_only_reads_pages(tmp_path: Path
                                                                             ) -> None:
    proc = subprocess.run([sys.executable, "-c", _WORKER, str(tmp_path)], capture_output=True,
                          text=True, timeout=300, check=True)
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(code == 0 for code, _ in seen["results"]), seen["results"]
    probes = [args for args in seen["third"] if args[-1] in ("--version", "--list-langs")]
    # a program that is not installed (jbig2enc is optional) is looked for again, cheaply
    assert all(shutil.which(args[0]) is None for args in probes), probes
    readers = [args for args in seen["third"] if args[0] == "tesseract" and "--psm" in args]
    assert len(readers) == 1
    # the first record did ask, so the cache is what spares the third one
    assert ["tesseract", "--version"] in seen["first_two"]
    assert (tmp_path / "record-3.pdf").stat().st_size > 0
