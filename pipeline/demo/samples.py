"""Synthetic scanner batches of Vietnamese administrative-procedure results.

The demo, the tests and the benchmark need inbox batches that look like what a digitization team
drops into the watched folder: decree-style pages (Nghị định 30/2020/NĐ-CP layout) printed or
typed, sealed and signed, then scanned crooked, turned, dusty and saved as TIFF / JPEG / PNG /
image-only PDF, plus the ``manifest.csv`` the clerk fills in. Everything is derived from one
seed, so a failing test or benchmark run can be reproduced byte for byte.

What a record says comes from :mod:`pipeline.demo.content`, how it is laid out on pages (and the
ground truth convention) from :mod:`pipeline.demo.layout`, the drawing from
:mod:`pipeline.demo.render` and the scanner's defects from :mod:`pipeline.demo.defects`; this
module plans the pages and files of a batch or a benchmark corpus and writes them.

Manifest ``still_valid`` values: "có" with Vietnamese headers, "true" with English headers.

Needs only Pillow, numpy, OpenCV and img2pdf, plus the fonts :mod:`pipeline.intake.typeset` finds.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import img2pdf
from PIL import Image, TiffImagePlugin

from pipeline.demo.content import DEFAULT_AGENCY, PROCEDURES, Content, record_content
from pipeline.demo.defects import OLD_PAPER, degrade, on_paper
from pipeline.demo.layout import Line, Row, fit, page_text, record_page_lines
from pipeline.demo.render import render_page

ENGLISH_HEADERS = (
    "record_id", "procedure_code", "result_number", "issued_on",
    "holder_name", "holder_id", "still_valid", "files",
)
VIETNAMESE_HEADERS = (
    "Mã hồ sơ", "Mã TTHC", "Số ký hiệu", "Ngày ban hành",
    "Tên chủ hồ sơ", "Số định danh", "Còn hiệu lực", "Tệp",
)


@dataclass(frozen=True)
class SamplePage:
    file: str  # file name inside the batch dir holding this page
    page_in_file: int  # 1-based page index inside that file (multi-page TIFF / PDF)
    text: str  # ground truth: exact text drawn, NFC, one line per text line
    rotation: int  # turned clockwise by this; rotate counter-clockwise by it to restore
    skew: float  # degrees, positive = counter-clockwise, in [-5, 5]
    dpi: int
    style: str  # "serif" or "typewriter"
    seal: bool  # red seal + blue signature over the signature block
    bleed: bool = False  # the reverse side's text shows through (see degrade)


def is_hard(page: SamplePage) -> bool:
    """Pages OCR is known to struggle with: a seal over the text, typed text, show-through,
    200 dpi or less, or turned. The benchmark reports these apart from the easy ones."""
    return (page.seal or page.style == "typewriter" or page.bleed or page.dpi < 300
            or page.rotation != 0)


@dataclass(frozen=True)
class SampleRecord:
    record_id: str
    procedure_code: str
    result_number: str
    issued_on: dt.date
    holder_name: str
    holder_id: str
    files_field: str
    pages: tuple[SamplePage, ...]

    @property
    def text(self) -> str:
        return "\n".join(p.text for p in self.pages)


@dataclass(frozen=True)
class SampleBatch:
    batch_dir: Path
    agency_code: str
    batch_id: str
    records: tuple[SampleRecord, ...]
    truth_path: Path | None = None

    def ground_truth(self) -> dict[str, str]:
        """record_id -> the text of its pages, joined with "\\n"."""
        return {r.record_id: r.text for r in self.records}


@dataclass
class _PagePlan:
    style: str
    dpi: int
    rotation: int
    skew: float
    seal: bool
    speckle: bool
    blur: bool
    border: bool
    file: str = ""
    page_in_file: int = 0
    bleed: bool = False


@dataclass
class _FilePlan:
    name: str
    fmt: str  # tif | jpg | png | pdf
    mode: str  # L | RGB
    dpi: int
    pages: list[tuple[int, int]] = field(default_factory=list)  # (record index, page index)


def _skew(rng: random.Random) -> float:
    return round(rng.choice((-1, 1)) * rng.uniform(0.5, 4.0), 2)


def _plan(
    n_records: int, rng: random.Random, dpis: Sequence[int]
) -> tuple[list[list[_PagePlan]], list[_FilePlan], list[str]]:
    """Decide pages, files and manifest ``files`` cells. The first three records are fixed in
    shape so every batch of three or more covers each format, rotation and style."""
    lo, hi = min(dpis), max(dpis)
    records: list[list[_PagePlan]] = []
    files: list[_FilePlan] = []
    cells: list[str] = []
    counter = 0

    def new_file(prefix: str, fmt: str, mode: str, dpi: int) -> _FilePlan:
        nonlocal counter
        counter += 1
        plan = _FilePlan(f"{prefix}_{counter:04d}.{fmt}", fmt, mode, dpi)
        files.append(plan)
        return plan

    def page(style: str, dpi: int, rotation: int, *, seal: bool = False,
             skew: float | None = None) -> _PagePlan:
        return _PagePlan(
            style=style, dpi=dpi, rotation=rotation, skew=_skew(rng) if skew is None else skew,
            seal=seal, speckle=rng.random() < 0.7, blur=rng.random() < 0.5,
            border=rng.random() < 0.5,
        )

    def attach(fplan: _FilePlan, rec: int, idx: int) -> None:
        fplan.pages.append((rec, idx))
        p = records[rec][idx]
        p.file, p.page_in_file = fplan.name, len(fplan.pages)

    fixed = [
        # Two-page printed record in one multi-page greyscale TIFF, second sheet upside down.
        [page("serif", hi, 0), page("serif", hi, 180)],
        # An old typed page scanned to an image-only PDF.
        [page("typewriter", lo, 0, skew=round(rng.uniform(-0.4, 0.4), 2))],
        # Three sheets scanned one by one: a photo JPEG turned sideways, a PNG, a sealed TIFF.
        [page("serif", lo, 90), page("serif", lo, 0),
         page("serif", hi, rng.choice((0, 270)), seal=True)],
    ]
    for rec, pages in enumerate(fixed[:n_records]):
        records.append(pages)
        if rec == 0:
            tif = new_file("scan", "tif", "L", hi)
            attach(tif, rec, 0)
            attach(tif, rec, 1)
            cells.append(tif.name)
        elif rec == 1:
            pdf = new_file("scan", "pdf", "L", lo)
            attach(pdf, rec, 0)
            cells.append(pdf.name)
        else:
            names = []
            for idx, (fmt, mode) in enumerate((("jpg", "RGB"), ("png", "L"), ("tif", "RGB"))):
                fplan = new_file("scan" if fmt == "tif" else "img", fmt, mode, pages[idx].dpi)
                attach(fplan, rec, idx)
                names.append(fplan.name)
            cells.append(";".join(names))

    def random_page(dpi: int, style: str) -> _PagePlan:
        rotation = rng.choices((0, 90, 180, 270), weights=(55, 15, 15, 15))[0]
        return page(style, dpi, rotation)

    # Later records cycle through the remaining shapes, a shared stack first so that any batch
    # of five or more has page ranges cutting one file between two records.
    others = ["multi_tif", "pdf", "singles", "singles"]
    rng.shuffle(others)
    shapes = ["split", *others]
    rec = len(records)
    turn = 0
    while rec < n_records:
        style = "typewriter" if rng.random() < 0.25 else "serif"
        dpi = rng.choice(list(dpis))
        shape = shapes[turn % len(shapes)]
        turn += 1
        if shape == "split" and rec + 2 <= n_records:
            # One scanner stack, two records: ranges in the manifest cut it.
            counts = (rng.randint(1, 2), rng.randint(1, 2))
            tif = new_file("scan", "tif", "L", dpi)
            for k, count in enumerate(counts):
                pages = [random_page(dpi, style) for _ in range(count)]
                records.append(pages)
                first = len(tif.pages) + 1
                for idx in range(count):
                    attach(tif, rec + k, idx)
                last = len(tif.pages)
                cells.append(f"{tif.name}[{first}]" if first == last
                             else f"{tif.name}[{first}-{last}]")
            rec += 2
            continue
        count = rng.randint(1, 3)
        pages = [random_page(dpi, style) for _ in range(count)]
        if rng.random() < 0.6:
            pages[-1].seal = True
        records.append(pages)
        if shape in ("multi_tif", "pdf", "split"):
            fmt = "pdf" if shape == "pdf" else "tif"
            mode = "RGB" if pages[-1].seal else "L"
            fplan = new_file("scan", fmt, mode, dpi)
            for idx in range(count):
                attach(fplan, rec, idx)
            cells.append(fplan.name)
        else:
            names = []
            for idx, pg in enumerate(pages):
                fmt = rng.choice(("tif", "jpg", "png"))
                mode = "RGB" if pg.seal or (fmt == "jpg" and rng.random() < 0.5) else "L"
                fplan = new_file("scan" if fmt == "tif" else "img", fmt, mode, dpi)
                attach(fplan, rec, idx)
                names.append(fplan.name)
            cells.append(";".join(names))
        rec += 1
    return records, files, cells


def _atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    tmp = path.with_name(f".{path.name}.part")
    try:
        with tmp.open("w+b") as fh:  # the multi-page TIFF writer reads back what it wrote
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _save_images(path: Path, fplan: _FilePlan, images: list[Image.Image]) -> None:
    dpi = (fplan.dpi, fplan.dpi)
    images = [im.convert(fplan.mode) if im.mode != fplan.mode else im for im in images]

    def write(fh: io.BufferedWriter) -> None:
        if fplan.fmt == "tif":
            images[0].save(fh, format="TIFF", save_all=True, append_images=images[1:],
                           compression="tiff_lzw", dpi=dpi)
        elif fplan.fmt == "jpg":
            images[0].save(fh, format="JPEG", quality=85, dpi=dpi)
        elif fplan.fmt == "png":
            images[0].save(fh, format="PNG", dpi=dpi, compress_level=3)
        else:
            # Image-only PDF as scanners write it: JPEG pages, page size = pixels / dpi. The
            # internal engine and no dates keep the bytes a function of the seed alone.
            jpegs = []
            for im in images:
                buf = io.BytesIO()
                im.save(buf, format="JPEG", quality=85, dpi=dpi)
                jpegs.append(buf.getvalue())
            fh.write(img2pdf.convert(
                jpegs, layout_fun=img2pdf.get_fixed_dpi_layout_fun(dpi), nodate=True,
                engine=img2pdf.Engine.internal,
            ))

    _atomic_write(path, write)


def _truth_json(batch: SampleBatch, seed: int, truth_dir: Path) -> dict[str, object]:
    return {
        "generator": "pipeline.demo.samples",
        "seed": seed,
        "batch_id": batch.batch_id,
        "agency_code": batch.agency_code,
        # Relative to this file, so that the same seed gives the same truth wherever it runs.
        "batch_dir": os.path.relpath(batch.batch_dir, truth_dir),
        "text_order": "rows top to bottom; fragments in a row left to right; pages joined by \\n",
        "records": [
            {
                "record_id": r.record_id, "procedure_code": r.procedure_code,
                "result_number": r.result_number, "issued_on": r.issued_on.isoformat(),
                "holder_name": r.holder_name, "holder_id": r.holder_id,
                "files_field": r.files_field, "text": r.text,
                "pages": [
                    {"file": p.file, "page_in_file": p.page_in_file, "rotation": p.rotation,
                     "skew": p.skew, "dpi": p.dpi, "style": p.style, "seal": p.seal,
                     # only when set: truth files of batches without show-through stay as
                     # they always were, byte for byte
                     **({"bleed": True} if p.bleed else {}),
                     "text": p.text}
                    for p in r.pages
                ],
            }
            for r in batch.records
        ],
    }


def load_truth(path: Path) -> SampleBatch:
    """Read back the ground truth written by :func:`generate_batch`."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    records = tuple(
        SampleRecord(
            record_id=r["record_id"], procedure_code=r["procedure_code"],
            result_number=r["result_number"], issued_on=dt.date.fromisoformat(r["issued_on"]),
            holder_name=r["holder_name"], holder_id=r["holder_id"], files_field=r["files_field"],
            pages=tuple(SamplePage(**p) for p in r["pages"]),
        )
        for r in data["records"]
    )
    batch_dir = Path(os.path.normpath(Path(path).parent / data["batch_dir"]))
    return SampleBatch(batch_dir, data["agency_code"], data["batch_id"], records,
                       truth_path=Path(path))


def _default_batch_id(seed: int) -> str:
    day = dt.date(2022, 1, 3) + dt.timedelta(days=abs(seed) % 1400)
    return f"B{day:%Y%m%d}-{abs(seed) % 1000:03d}"


def generate_batch(
    batch_dir: Path, *, agency_code: str = DEFAULT_AGENCY, batch_id: str | None = None,
    n_records: int = 3, seed: int = 0, dpis: Sequence[int] = (200, 300),
    vietnamese_headers: bool = True, truth_path: Path | None = None,
) -> SampleBatch:
    """Write a scanner batch (page files + ``manifest.csv``) into ``batch_dir`` and its ground
    truth JSON to ``truth_path`` (default ``<batch_dir parent>/<batch_id>.truth.json``, never
    inside the batch dir). The manifest is written last, as the inbox watcher expects.
    Regenerating into the same dir replaces the files; a dir holding other files is refused."""
    if n_records < 1:
        raise ValueError("n_records must be at least 1")
    if not dpis or any(int(d) < 50 for d in dpis):
        raise ValueError(f"dpis must be scanner resolutions, got {dpis!r}")
    dpis = [int(d) for d in dpis]
    batch_dir = Path(batch_dir)
    batch_id = batch_id or _default_batch_id(seed)
    truth_path = _truth_location(batch_dir, batch_id, truth_path)

    rng = random.Random(f"batch:{seed}:{agency_code}")
    page_plans, file_plans, cells = _plan(n_records, rng, dpis)
    _refuse_strays(batch_dir, [f.name for f in file_plans])
    procedures = list(PROCEDURES)
    rng.shuffle(procedures)
    sequence = rng.sample(range(1, 10000), n_records)

    contents: list[Content] = []
    record_rows: list[list[list[Row]]] = []
    for i, pages in enumerate(page_plans):
        procedure = procedures[i % len(procedures)]
        # Typed pages are old; an old paper often has no 12-digit id to copy into the manifest.
        issued = None
        if pages[0].style == "typewriter":
            issued = dt.date(2005, 1, 1) + dt.timedelta(days=rng.randrange(1500))
        # The fixed first three: ids on the printed records, none on the typed one.
        with_id = rng.random() < 0.8 if i >= 3 else i != 1
        content = record_content(rng, agency_code, procedure, with_id, issued)
        contents.append(content)
        record_rows.append(fit(content.doc, pages[0].style, len(pages), rng))

    # File by file, so that at most one file's pages are held in memory.
    for fplan in file_plans:
        scans = [
            _scan(record_rows[i][j], page_plans[i][j], random.Random(f"page:{seed}:{i}:{j}"),
                  contents[i].doc.seal_text)
            for i, j in fplan.pages
        ]
        _save_images(batch_dir / fplan.name, fplan, scans)

    records = _sample_records(agency_code, page_plans, contents, record_rows, cells, sequence)
    batch = SampleBatch(batch_dir, agency_code, batch_id, tuple(records), truth_path=truth_path)
    _write_truth_and_manifest(batch, seed, vietnamese_headers)
    return batch


@dataclass(frozen=True)
class _CorpusShape:
    """One record of the benchmark corpus: what its pages are like and how they are saved."""

    style: str
    dpi: int
    rotations: tuple[int, ...]  # one per page
    fmt: str  # tif | jpg | png | pdf; a record's pages share one file
    seal: bool = False
    bleed: bool = False
    clean: bool = False  # upright, not skewed, no dust, blur or scanner border


# Sixteen pages that cover every case the benchmark reports on; the first two are one easy and
# one hard page, so that even a two-page smoke run has both groups.
_CORPUS_SHAPES = (
    _CorpusShape("serif", 300, (0,), "tif", clean=True),
    _CorpusShape("serif", 300, (90,), "jpg", seal=True),
    _CorpusShape("typewriter", 300, (0,), "png"),
    _CorpusShape("serif", 300, (0,), "tif", bleed=True),
    _CorpusShape("serif", 200, (0,), "pdf"),
    _CorpusShape("serif", 300, (180,), "jpg"),
    _CorpusShape("serif", 300, (0, 0), "tif"),  # two sheets in one multi-page TIFF
    _CorpusShape("serif", 300, (270,), "tif", seal=True),
    _CorpusShape("typewriter", 200, (90,), "tif", bleed=True),
    _CorpusShape("serif", 300, (0,), "pdf", seal=True),
    _CorpusShape("serif", 200, (270,), "png"),
    _CorpusShape("serif", 300, (0,), "png", clean=True),
    _CorpusShape("typewriter", 300, (180,), "pdf"),
    _CorpusShape("serif", 200, (0,), "jpg", seal=True, bleed=True),
    _CorpusShape("serif", 300, (0,), "jpg"),
)


def generate_corpus(
    batch_dir: Path, *, n_pages: int = 30, seed: int = 0, agency_code: str = DEFAULT_AGENCY,
    batch_id: str | None = None, truth_path: Path | None = None,
) -> SampleBatch:
    """A benchmark batch of exactly ``n_pages`` pages with controlled variety, written like
    :func:`generate_batch` (page files, ``manifest.csv``, ground truth outside the batch dir).

    Records of one page (a few of two, in a multi-page TIFF) cycle through a fixed list of
    shapes, so every 16 pages hold: clean pages (upright, no skew, no artefacts), seals,
    typewriter pages, show-through, 200 and 300 dpi, all four rotations, TIFF / JPEG / PNG /
    image-only PDF. All but the clean pages lie 0.3-5 degrees askew either way, every fifth
    page 4.5-5 degrees. Each record's pages are of one kind (dpi, seal, colour), so a
    per-record size is a per-kind size. See :func:`is_hard` for the hard pages.
    """
    if not 1 <= n_pages <= 5000:
        raise ValueError("n_pages must be between 1 and 5000")
    batch_dir = Path(batch_dir)
    batch_id = batch_id or f"BENCH-{seed}"
    truth_path = _truth_location(batch_dir, batch_id, truth_path)
    rng = random.Random(f"corpus:{seed}:{agency_code}")

    page_plans: list[list[_PagePlan]] = []
    file_plans: list[_FilePlan] = []
    page_no = 0
    while page_no < n_pages:
        shape = _CORPUS_SHAPES[len(page_plans) % len(_CORPUS_SHAPES)]
        prefix = "img" if shape.fmt in ("jpg", "png") else "scan"
        fplan = _FilePlan(f"{prefix}_{len(file_plans) + 1:04d}.{shape.fmt}", shape.fmt,
                          "RGB" if shape.seal else "L", shape.dpi)
        pages = []
        for idx, rotation in enumerate(shape.rotations[:n_pages - page_no]):
            skew = 0.0
            if not shape.clean:
                least = 4.5 if (page_no + idx) % 5 == 4 else 0.3  # every fifth near the limit
                skew = round(rng.choice((-1, 1)) * rng.uniform(least, 5.0), 2)
            pages.append(_PagePlan(
                style=shape.style, dpi=shape.dpi, rotation=rotation, skew=skew, seal=shape.seal,
                speckle=not shape.clean, blur=not shape.clean and rng.random() < 0.5,
                border=not shape.clean and rng.random() < 0.5, file=fplan.name,
                page_in_file=idx + 1, bleed=shape.bleed,
            ))
            fplan.pages.append((len(page_plans), idx))
        page_plans.append(pages)
        file_plans.append(fplan)
        page_no += len(pages)
    _refuse_strays(batch_dir, [f.name for f in file_plans])

    procedures = list(PROCEDURES)
    rng.shuffle(procedures)
    sequence = rng.sample(range(1, 10000), len(page_plans))
    contents: list[Content] = []
    record_rows: list[list[list[Row]]] = []
    reverses: list[list[Line]] = []
    for i, pages in enumerate(page_plans):
        style = pages[0].style
        # Typed pages are old, as in generate_batch.
        issued = (dt.date(2005, 1, 1) + dt.timedelta(days=rng.randrange(1500))
                  if style == "typewriter" else None)
        content = record_content(rng, agency_code, procedures[i % len(procedures)],
                                 rng.random() < 0.8, issued)
        contents.append(content)
        record_rows.append(fit(content.doc, style, len(pages), rng))
        # The back of the sheet carries another document of the same office.
        back_seed = rng.randrange(10**9)
        reverses.append(record_page_lines(seed=back_seed, style=style, agency_code=agency_code)[0]
                        if pages[0].bleed else [])

    for fplan in file_plans:
        scans = [
            _scan(record_rows[i][j], page_plans[i][j],
                  random.Random(f"corpus-page:{seed}:{i}:{j}"), contents[i].doc.seal_text,
                  reverses[i])
            for i, j in fplan.pages
        ]
        _save_images(batch_dir / fplan.name, fplan, scans)

    records = _sample_records(agency_code, page_plans, contents, record_rows,
                              [f.name for f in file_plans], sequence)
    batch = SampleBatch(batch_dir, agency_code, batch_id, tuple(records), truth_path=truth_path)
    _write_truth_and_manifest(batch, seed, vietnamese_headers=True)
    return batch


def generate_stack(
    batch_dir: Path, *, n_pages: int, seed: int = 0, agency_code: str = DEFAULT_AGENCY,
    batch_id: str | None = None, truth_path: Path | None = None, dpi: int = 300,
) -> SampleBatch:
    """A batch of one record whose ``n_pages`` pages are one multi-page greyscale TIFF, as a
    sheet feeder writes a long stack; for memory checks. Three scanned pages repeat, and the
    file is written page by page, so generating it holds three pages in memory however long
    the stack is."""
    if n_pages < 1:
        raise ValueError("n_pages must be at least 1")
    batch_dir = Path(batch_dir)
    batch_id = batch_id or f"STACK-{seed}"
    truth_path = _truth_location(batch_dir, batch_id, truth_path)
    name = "stack_0001.tif"
    _refuse_strays(batch_dir, [name])
    rng = random.Random(f"stack:{seed}:{agency_code}")
    content = record_content(rng, agency_code, rng.choice(PROCEDURES), True)
    rows = fit(content.doc, "serif", 3, rng)
    distinct = [
        _PagePlan(style="serif", dpi=dpi, rotation=0, skew=_skew(rng), seal=False, speckle=True,
                  blur=rng.random() < 0.5, border=False)
        for _ in rows
    ]
    scans = [_scan(r, plan, random.Random(f"stack-page:{seed}:{k}"), content.doc.seal_text)
             for k, (r, plan) in enumerate(zip(rows, distinct, strict=True))]

    def write(fh: io.BufferedWriter) -> None:
        with TiffImagePlugin.AppendingTiffWriter(fh) as tiff:
            for n in range(n_pages):
                scans[n % len(scans)].save(tiff, format="TIFF", compression="tiff_lzw",
                                           dpi=(dpi, dpi))
                tiff.newFrame()

    _atomic_write(batch_dir / name, write)
    plans = [replace(distinct[n % len(distinct)], file=name, page_in_file=n + 1)
             for n in range(n_pages)]
    page_rows = [rows[n % len(rows)] for n in range(n_pages)]
    records = _sample_records(agency_code, [plans], [content], [page_rows], [name],
                              [rng.randrange(1, 10000)])
    batch = SampleBatch(batch_dir, agency_code, batch_id, tuple(records), truth_path=truth_path)
    _write_truth_and_manifest(batch, seed, vietnamese_headers=True)
    return batch


def _truth_location(batch_dir: Path, batch_id: str, truth_path: Path | None) -> Path:
    """Where the ground truth goes (default ``<batch_dir parent>/<batch_id>.truth.json``);
    creates both folders. The truth never lives in the batch dir: the pipeline must not see it."""
    truth_path = Path(truth_path) if truth_path else batch_dir.parent / f"{batch_id}.truth.json"
    if truth_path.resolve().is_relative_to(batch_dir.resolve()):
        raise ValueError(f"{truth_path}: the ground truth must not live in the batch dir")
    batch_dir.mkdir(parents=True, exist_ok=True)
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    return truth_path


def _refuse_strays(batch_dir: Path, names: Iterable[str]) -> None:
    # A batch dir must hold exactly what the manifest names; refuse to mix in another batch.
    ours = {*names, "manifest.csv"}
    stray = sorted(p.name for p in batch_dir.iterdir() if p.name not in ours)
    if stray:
        raise FileExistsError(
            f"{batch_dir} already holds files this batch would not list: {stray[:5]}; "
            "generate into an empty or new directory."
        )


# The grey of the aged paper the typed pages of the 2000s are on (white is 255).
def _scan(rows: Sequence[Line], plan: _PagePlan, rng: random.Random, seal_text: str,
          reverse: Sequence[Line] = ()) -> Image.Image:
    """One page as the scanner saves it, a typed one on grey paper; ``reverse`` is what is
    printed on the back of the sheet, shown through when ``plan.bleed``."""
    clean = render_page(rows, dpi=plan.dpi, style=plan.style, seal=plan.seal, rng=rng,
                        seal_text=seal_text)
    if not plan.seal:
        # Only a sealed page needs colour; grey halves the work.
        clean = clean.convert("L")
    if plan.style == "typewriter":
        clean = on_paper(clean, OLD_PAPER)
    back = (render_page(reverse, dpi=plan.dpi, style=plan.style, rng=rng).convert("L")
            if plan.bleed else None)
    return degrade(clean, rotation=plan.rotation, skew=plan.skew, rng=rng, speckle=plan.speckle,
                   blur=plan.blur, border=plan.border, dpi=plan.dpi, bleed=back)


def _sample_records(
    agency_code: str, page_plans: Sequence[Sequence[_PagePlan]], contents: Sequence[Content],
    record_rows: Sequence[Sequence[Sequence[Row]]], cells: Sequence[str], sequence: Sequence[int],
) -> list[SampleRecord]:
    records = []
    for i, (pages, content) in enumerate(zip(page_plans, contents, strict=True)):
        day = content.issued_on
        records.append(SampleRecord(
            record_id=f"{agency_code}-{day:%y%m%d}-{sequence[i]:04d}",
            procedure_code=content.procedure.code,
            result_number=content.result_number,
            issued_on=day,
            holder_name=content.holder.person.name,
            holder_id=content.holder.citizen_id,
            files_field=cells[i],
            pages=tuple(
                SamplePage(file=p.file, page_in_file=p.page_in_file,
                           text=page_text(record_rows[i][j]), rotation=p.rotation,
                           skew=p.skew, dpi=p.dpi, style=p.style, seal=p.seal, bleed=p.bleed)
                for j, p in enumerate(pages)
            ),
        ))
    return records


def _write_truth_and_manifest(batch: SampleBatch, seed: int, vietnamese_headers: bool) -> None:
    assert batch.truth_path is not None
    truth = json.dumps(_truth_json(batch, seed, batch.truth_path.parent), ensure_ascii=False,
                       indent=2)
    truth += "\n"
    _atomic_write(batch.truth_path, lambda fh: fh.write(truth.encode("utf-8")))
    # The manifest comes last: the inbox watcher takes a batch with a manifest as complete.
    _write_manifest(batch.batch_dir / "manifest.csv", batch.records, vietnamese_headers)


def _write_manifest(path: Path, records: Sequence[SampleRecord], vietnamese: bool) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(VIETNAMESE_HEADERS if vietnamese else ENGLISH_HEADERS)
    for i, r in enumerate(records):
        # Clerks mostly type dd/mm/yyyy; some rows come from a system export in ISO form.
        issued = r.issued_on.isoformat() if i % 3 == 1 else f"{r.issued_on:%d/%m/%Y}"
        writer.writerow([
            r.record_id, r.procedure_code, r.result_number, issued, r.holder_name, r.holder_id,
            "có" if vietnamese else "true", r.files_field,
        ])
    data = buf.getvalue().encode("utf-8-sig" if vietnamese else "utf-8")
    _atomic_write(path, lambda fh: fh.write(data))
