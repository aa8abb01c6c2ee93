"""OCR candidates on the benchmark's pages, and their errors sorted by cause (issue 15).

    python -m pipeline.demo.ocr_candidates [--pages N] [--seed S] [--out DIR] [--only NAME,...]
                                      [--wordlist PATH]

A benchmark tool, not a pipeline stage: nothing in the pipeline imports it.

One run generates the corpus exactly as ``pipeline.demo.bench`` does
(:func:`pipeline.demo.samples.generate_corpus`), cleans every page once with the real cleanup and the
default scanner profile, and writes each page's OCR view with :func:`pipeline.imaging.ocr.write_view`,
as ``bench_phases.phase_tesseract`` does (what the ``chosen`` candidate reads), and the grey view it is
made from (:func:`pipeline.imaging.ocr.grey_view`), which the other candidates vary. Then every
candidate reads every page, one page after another in this one process, Tesseract with
``OMP_THREAD_LIMIT=1`` and OpenCV on one thread:

- **CPU seconds per page**: Tesseract's (children's rusage) plus this process's own for what
  the candidate does in Python (a view derived from the page, a second pass, a correction).
  Writing the page's own view is not counted (the pipeline writes it anyway). A Tesseract run
  on the same input image with the same model and mode as one already made is not repeated:
  its result and its CPU seconds are taken over (a candidate that leaves a page's view as it is,
  or builds on the chosen first pass, is charged that pass's CPU as if it had run it);
- **CER** pooled per page class with ``bench``'s grouping (:data:`pipeline.demo.bench_figures.CER_GROUPS`);
- **errors by cause** (:func:`pipeline.demo.ocr_errors.classify_errors`): the truth's and the
  OCR's words aligned, each wrong truth word put down to one cause.

It writes ``OUT/candidates.json`` and ``OUT/candidates.md`` and prints the markdown. A
candidate that needs something not installed (Tesseract language data, a word list) stops
the run before anything is read, naming what to install.

The views candidates read are in :mod:`pipeline.demo.ocr_views`, Tesseract's TSV and the
post-correction by word list in :mod:`pipeline.demo.ocr_wordlist`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from pipeline import _exec
from pipeline._exec import cpu_seconds, tesseract
from pipeline.checks import crosscheck
from pipeline.demo import samples
from pipeline.demo.bench import start_logging, used
from pipeline.demo.bench_figures import (
    CER_GROUPS,
    Measured,
    PageRow,
    build_rows,
    corpus_meta,
    corpus_pages,
    pooled_cer,
    select,
)
from pipeline.demo.bench_phases import TRUTH_NAME, bench_settings, first_line, write_json
from pipeline.demo.content import DEFAULT_AGENCY
from pipeline.demo.ocr_errors import CAUSE_LABELS, CAUSES, ErrorCounts, classify_errors
from pipeline.demo.ocr_views import (
    SAUVOLA_K,
    SAUVOLA_R,
    SAUVOLA_WINDOW_MM,
    Page,
    ViewFn,
    save_view,
    view_archived_render,
    view_as_it_is,
    view_grey,
    view_otsu_upscaled,
    view_sauvola,
    view_seal_white,
    view_show_through,
    view_show_through_otsu,
    view_show_through_otsu_upscaled,
    view_upscaled,
)
from pipeline.demo.ocr_wordlist import (
    LOW_CONFIDENCE,
    Lexicon,
    MissingRequirement,
    TsvLine,
    load_lexicon,
    oov_share,
    parse_tsv,
    post_correct,
    tsv_text,
    wordlist_text,
)
from pipeline.demo.quality import cer
from pipeline.imaging import cleanup, ocr
from pipeline.intake import pages
from pipeline.models import ManifestRow
from pipeline.store.archive import atomic_write_bytes

log = logging.getLogger("pipeline.demo.ocr_candidates")

CHOSEN = "chosen"
CPU_BUDGET = 1.3  # "within the speed budget": at most 30 % more CPU per page than the chosen one
# Where each language's data comes from (Debian packages).
LANGUAGE_PACKAGES = {"vie": "tesseract-ocr-vie", "Vietnamese": "tesseract-ocr-script-viet"}
# The page classes reported, bench's groups; the markdown's CER columns.
GROUPS = CER_GROUPS
MD_CER_GROUPS = ("all", "hard", "typewriter", "seal", "dpi200", "bleed")
MD_GROUP_LABELS = {"all": "all", "hard": "hard", "easy": "easy", "typewriter": "typewriter",
                   "seal": "seal", "dpi200": "200 dpi", "bleed": "show-through"}


# --- running Tesseract ----------------------------------------------------------------------------
@dataclass
class OcrRun:
    text: str | None  # None: Tesseract failed on the page
    tsv: str
    cpu_seconds: float  # Tesseract's
    wall_seconds: float


def run_tesseract(image: Path, out_base: Path, lang: str, psm: int, *,
                  outputs: Sequence[str] = ("txt", "tsv")) -> OcrRun:
    """``tesseract IMAGE OUT_BASE -l LANG --psm PSM txt tsv`` on one thread."""
    t0, cpu0 = time.perf_counter(), cpu_seconds(resource.RUSAGE_CHILDREN)
    proc = _exec.run(["tesseract", str(image), str(out_base), "-l", lang, "--psm", str(psm),
                      *outputs], check=False, timeout=600, env={"OMP_THREAD_LIMIT": "1"})
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - cpu0
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        log.warning("tesseract exit %d on %s: %s", proc.returncode, image,
                    " | ".join(proc.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]))
        return OcrRun(None, "", cpu, wall)

    def read(ext: str) -> str:
        path = out_base.with_name(out_base.name + "." + ext)
        return path.read_text(encoding="utf-8") if path.exists() else ""

    return OcrRun(read("txt") if "txt" in outputs else "", read("tsv"), cpu, wall)


# --- candidates -----------------------------------------------------------------------------------
@dataclass
class Context:
    out: Path
    lexicon_path: Path | None
    cache: dict[tuple[int, str, str, int], OcrRun] = field(default_factory=dict)
    lexicon: Lexicon | None = None


@dataclass
class Outcome:
    text: str | None
    note: dict[str, int] = field(default_factory=dict)


# A second stage over the chosen first pass: (context, page, first pass, candidate) -> outcome.
PostFn = Callable[["Context", Page, OcrRun, "Candidate"], Outcome]


@dataclass(frozen=True)
class Candidate:
    name: str
    description: str
    lang: str = "vie"
    psm: int = tesseract.PAGE_SEGMENTATION_MODE
    view: ViewFn | None = None  # None: the page's OCR view as written
    post: PostFn | None = None  # reads the first pass (lang, psm, view) and makes the text
    second_lang: str | None = None  # the second pass's model
    needs_wordlist: bool = False

    @property
    def languages(self) -> set[str]:
        langs = set(self.lang.split("+"))
        if self.second_lang:
            langs |= set(self.second_lang.split("+"))
        return langs


LINE_PAD = 0.3  # of a line's height, around its crop for the second pass


def _second_pass(ctx: Context, page: Page, first: OcrRun, cand: Candidate,
                 binarise: bool) -> Outcome:
    lines = parse_tsv(first.tsv)
    low = [k for k, line in enumerate(lines) if line.confidence < LOW_CONFIDENCE]
    if not low:
        return Outcome(tsv_text(lines), {"lines_low": 0, "lines_replaced": 0})
    folder = ctx.out / "runs" / cand.name / f"{page.n:06d}-lines"
    folder.mkdir(parents=True, exist_ok=True)
    listing = []
    h_img, w_img = page.view.shape
    for k in low:
        left, top, width, height = lines[k].box
        pad = max(4, round(height * LINE_PAD))
        crop = page.view[max(0, top - pad):min(h_img, top + height + pad),
                         max(0, left - pad):min(w_img, left + width + pad)]
        if binarise:
            _, crop = cv2.threshold(crop, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        path = folder / f"{k:04d}.png"
        Image.fromarray(crop).save(path, dpi=(page.dpi, page.dpi))
        listing.append(str(path))
    (folder / "list.txt").write_text("\n".join(listing) + "\n", encoding="utf-8")
    run = run_tesseract(folder / "list.txt", folder / "second", cand.second_lang or "vie", 7,
                        outputs=("tsv",))
    again: dict[int, list[TsvLine]] = {}
    for line in parse_tsv(run.tsv):
        again.setdefault(line.key[0], []).append(line)
    replaced = 0
    for image_no, k in enumerate(low, start=1):
        redo = again.get(image_no, [])
        words = [w for line in redo for w in line.words]
        if not words:
            continue
        confidence = sum(w.conf for w in words) / len(words)
        if confidence > lines[k].confidence:
            lines[k] = TsvLine(lines[k].key, lines[k].box, words)
            replaced += 1
    return Outcome(tsv_text(lines), {"lines_low": len(low), "lines_replaced": replaced})


def post_second_pass_model(ctx: Context, page: Page, first: OcrRun, cand: Candidate) -> Outcome:
    return _second_pass(ctx, page, first, cand, binarise=False)


def post_second_pass_otsu(ctx: Context, page: Page, first: OcrRun, cand: Candidate) -> Outcome:
    return _second_pass(ctx, page, first, cand, binarise=True)


def _lexicon(ctx: Context) -> Lexicon:
    if ctx.lexicon is None:
        ctx.lexicon = load_lexicon(ctx.lexicon_path)
    return ctx.lexicon


def post_correct_words(ctx: Context, page: Page, first: OcrRun, cand: Candidate) -> Outcome:
    lines, changed = post_correct(_lexicon(ctx), parse_tsv(first.tsv))
    return Outcome(tsv_text(lines), {"words_changed": changed})


def post_correct_context(ctx: Context, page: Page, first: OcrRun, cand: Candidate) -> Outcome:
    lex = _lexicon(ctx)
    lines, changed = post_correct(lex, parse_tsv(first.tsv))
    # then the words that are syllables, by their (corrected) neighbours
    lines, more = post_correct(lex, lines, context_only=True)
    return Outcome(tsv_text(lines), {"words_changed": changed + more})


CANDIDATES: tuple[Candidate, ...] = (
    Candidate(CHOSEN, "vie, psm 4, the pipeline's OCR view (ocr.ocr_view): the grey view "
              "binarised at Otsu's level"),
    Candidate("grey-view", "the grey view as it is: the cleaned page in grey, colour dropped by "
              "the lightest channel (the OCR view before issue 15's choice)", view=view_as_it_is),
    Candidate("archived-render", "the OCR before issue 15: the archived page rendered again by "
              "OCRmyPDF's pypdfium rasteriser (200 dpi at least; black-and-white pages in grey, "
              "then 1-bit by Pillow)", view=view_archived_render),
    Candidate("psm3", "page segmentation mode 3 (fully automatic)", psm=3),
    Candidate("psm6", "page segmentation mode 6 (one uniform block of text)", psm=6),
    Candidate("grey", "no colour drop-out: the cleaned page in plain grey (luma)", view=view_grey),
    Candidate("seal-white", "stronger drop-out: coloured pixels whose lightest channel > 128 "
              "turn white (seal and pen strokes with no print under them)", view=view_seal_white),
    Candidate("sauvola", f"grey view binarised, Sauvola (window {SAUVOLA_WINDOW_MM:g} mm, "
              f"k {SAUVOLA_K}, R {SAUVOLA_R:g}; own box-filter code: no opencv-contrib, "
              "no scikit-image)", view=view_sauvola),
    Candidate("show-through", "show-through suppression: on pages with much light grey away "
              "from the letters, levels stretched so the Otsu level between the print and the "
              "light grey turns white",
              view=view_show_through),
    Candidate("show-through-otsu", "Otsu binarisation on the pages the show-through test "
              "finds, the grey view as it is on the others", view=view_show_through_otsu),
    Candidate("show-through-otsu-up", "on the pages the show-through test finds: 200 dpi "
              "upscaled to 300, then Otsu; the grey view as it is on the others",
              view=view_show_through_otsu_upscaled),
    Candidate("upscale200", "200 dpi pages upscaled to 300 dpi (INTER_CUBIC), dpi updated",
              view=view_upscaled),
    Candidate("otsu-upscale200", "200 dpi pages upscaled to 300 dpi, then every page "
              "binarised (Otsu)", view=view_otsu_upscaled),
    Candidate("viet", "the `Vietnamese` script model (tesseract-ocr-script-viet) alone",
              lang="Vietnamese"),
    Candidate("vie+viet", "vie+Vietnamese", lang="vie+Vietnamese"),
    Candidate("pass2-viet", "chosen, then lines of mean word confidence < 60 re-read by "
              "`Vietnamese` (psm 7 on the line crop); the line with the higher mean kept",
              post=post_second_pass_model, second_lang="Vietnamese"),
    Candidate("pass2-otsu", "chosen, then lines of mean word confidence < 60 re-read by vie on "
              "the Otsu-binarised line crop (psm 7); the line with the higher mean kept",
              post=post_second_pass_otsu, second_lang="vie"),
    Candidate("postcorrect", "chosen, then words of confidence < 60 that are no Vietnamese "
              "syllable replaced by the syllable one edit away (pyvi word list), by context",
              post=post_correct_words, needs_wordlist=True),
    Candidate("postcorrect-ctx", "postcorrect, and low-confidence syllables re-marked where "
              "another spelling of their letters makes a listed word with a neighbour",
              post=post_correct_context, needs_wordlist=True),
)
BY_NAME = {c.name: c for c in CANDIDATES}


def check_requirements(cands: Iterable[Candidate], lexicon_path: Path | None) -> None:
    """Raise MissingRequirement naming what to install for every candidate that cannot run."""
    installed = tesseract.languages()
    problems = []
    for cand in cands:
        for lang in sorted(cand.languages - installed):
            package = LANGUAGE_PACKAGES.get(lang, f"the Tesseract data for {lang!r}")
            problems.append(f"candidate {cand.name!r} needs Tesseract language data {lang!r}: "
                            f"install the Debian package {package} "
                            f"(apt-get install -y {package})")
        if cand.needs_wordlist:
            try:
                wordlist_text(lexicon_path)
            except MissingRequirement as exc:
                problems.append(f"candidate {cand.name!r}: {exc}")
    if problems:
        raise MissingRequirement("; ".join(problems))


def _ocr(ctx: Context, page: Page, key: str, image: Path, lang: str, psm: int,
         cand_name: str) -> tuple[OcrRun, float]:
    """Tesseract on ``image``, or the result of the same run made before (and its CPU seconds,
    to charge: 0.0 where this call's own run is measured by the rusage around it)."""
    cached = ctx.cache.get((page.n, key, lang, psm))
    if cached is not None:
        return cached, cached.cpu_seconds
    base = ctx.out / "runs" / cand_name / f"{page.n:06d}"
    base.parent.mkdir(parents=True, exist_ok=True)
    run = run_tesseract(image, base, lang, psm)
    ctx.cache[(page.n, key, lang, psm)] = run
    return run, 0.0


@dataclass
class PageResult:
    n: int
    cer: float | None
    cpu_seconds: float
    wall_seconds: float
    reused_seconds: float  # of cpu_seconds, taken over from an identical earlier run
    note: dict[str, int]
    text: str | None = field(default=None, repr=False)


def run_candidate(ctx: Context, cand: Candidate, page: Page, truth: str) -> PageResult:
    self0, child0 = cpu_seconds(resource.RUSAGE_SELF), cpu_seconds(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    note: dict[str, int] = {}
    key, image = "view", page.view_path
    if cand.view is not None:
        derived = cand.view(page)
        key, image = "grey-view", page.grey_path
        if derived is not None and not (derived[0].shape == page.view.shape
                                        and np.array_equal(derived[0], page.view)):
            key = cand.name
            image = ctx.out / "views" / cand.name / f"{page.n:06d}.tif"
            save_view(derived[0], derived[1], image)
            note["pages_changed"] = 1
    first, reused = _ocr(ctx, page, key, image, cand.lang, cand.psm, cand.name)
    outcome = Outcome(first.text)
    if cand.post is not None and first.text is not None:
        outcome = cand.post(ctx, page, first, cand)
    wall = time.perf_counter() - t0
    cpu = (cpu_seconds() - self0) + (cpu_seconds(resource.RUSAGE_CHILDREN) - child0) + reused
    note.update(outcome.note)
    return PageResult(page.n, cer(truth, outcome.text) if outcome.text is not None else None,
                      cpu, wall + (first.wall_seconds if reused else 0.0), reused, note,
                      outcome.text)


# --- the run ---------------------------------------------------------------------------------------
def prepare_pages(out: Path, n_pages: int, seed: int) -> tuple[samples.SampleBatch, list[Page]]:
    """The bench corpus, each page cleaned once and its OCR view written."""
    batch = samples.generate_corpus(out / "corpus" / DEFAULT_AGENCY / f"BENCH-{seed}",
                                    n_pages=n_pages, seed=seed,
                                    truth_path=out / "corpus" / TRUTH_NAME)
    profile = bench_settings(out / "settings", None).scanner_profile
    prepared = []
    (out / "views").mkdir(parents=True, exist_ok=True)
    for n, sample in enumerate(corpus_pages(batch), start=1):
        image, dpi = pages.load_page(batch.batch_dir / sample.file, sample.page_in_file,
                                     profile.fallback_dpi)
        cleaned = cleanup.clean_page(image, dpi, profile.cleanup)
        ocr.write_view(cleaned.image, dpi, profile.ocr.colour_dropout, out / "views", n)
        path = out / "views" / ocr.VIEW_DIR / f"{n:06d}.tif"
        view = ocr.grey_view(cleaned.image, profile.ocr.colour_dropout)
        grey_path = out / "views" / "grey-view" / f"{n:06d}.tif"
        save_view(view, dpi, grey_path)
        colour = cleaned.image
        if colour.ndim == 2 or (np.array_equal(colour[..., 0], colour[..., 1])
                                and np.array_equal(colour[..., 1], colour[..., 2])):
            colour = None
        prepared.append(Page(n, dpi, path, grey_path, view, colour))
        log.info("page %d: %s, %d dpi, %s%s%s", n, sample.style, dpi,
                 "seal, " if sample.seal else "", "show-through, " if sample.bleed else "",
                 "colour" if colour is not None else "grey")
    return batch, prepared


def aggregate(rows: Sequence[PageRow], name: str, results: Sequence[PageResult],
              errors: Sequence[ErrorCounts]) -> dict[str, Any]:
    n = len(results)
    by_group: dict[str, dict[str, Any]] = {}
    for group in GROUPS:
        members = {r.n for r in select(rows, group)}
        total = ErrorCounts()
        for result, counts in zip(results, errors, strict=True):
            if result.n in members:
                total.add(counts)
        by_group[group] = {"pages": len(members), **total.as_dict()}
    notes: dict[str, int] = {}
    for r in results:
        for k, v in r.note.items():
            notes[k] = notes.get(k, 0) + v
    return {
        "name": name, "description": BY_NAME[name].description if name in BY_NAME else "",
        "lang": BY_NAME[name].lang, "psm": BY_NAME[name].psm,
        "cer": {g: pooled_cer(select(rows, g), name) for g in GROUPS},
        "cpu_seconds_per_page": sum(r.cpu_seconds for r in results) / n if n else None,
        "wall_seconds_per_page": sum(r.wall_seconds for r in results) / n if n else None,
        "reused_cpu_seconds_per_page": sum(r.reused_seconds for r in results) / n if n else None,
        "notes": notes,
        "errors": by_group,
        "pages": [{k: v for k, v in asdict(r).items() if k != "text"} for r in results],
    }


def pick(report_rows: Sequence[dict[str, Any]]) -> dict[str, str | None]:
    """The lowest CER on all pages, and the lowest within the CPU budget of the chosen one."""
    scored = [r for r in report_rows if r["cer"]["all"] is not None]
    best = min(scored, key=lambda r: r["cer"]["all"])["name"] if scored else None
    chosen = next((r for r in report_rows if r["name"] == CHOSEN), None)
    within = None
    if chosen is not None:
        budget = chosen["cpu_seconds_per_page"] * CPU_BUDGET
        ok = [r for r in scored if r["cpu_seconds_per_page"] <= budget]
        within = min(ok, key=lambda r: r["cer"]["all"])["name"] if ok else None
    return {"best_cer": best, "best_within_budget": within}


def _pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f} %"


def fields_missed(batch: samples.SampleBatch, texts: Sequence[str | None]) -> dict[str, Any]:
    """On how many records' first pages the cross-check (the pipeline's own,
    :func:`pipeline.checks.crosscheck.check_first_page`) misses the result number or the issue date
    that the record has: what a misread digit costs, which CER hides."""
    missed = []
    first = 1  # texts are in corpus order: records in manifest order, then their pages
    for rec in batch.records:
        row = ManifestRow(line=2, record_id=rec.record_id, procedure_code=rec.procedure_code,
                          result_number=rec.result_number, issued_on=rec.issued_on)
        if crosscheck.check_first_page(row, texts[first - 1] or ""):
            missed.append(first)
        first += len(rec.pages)
    return {"missed": len(missed), "first_pages": len(batch.records), "pages": missed}


def render(report: dict[str, Any]) -> str:
    meta = report["corpus"]
    rows = report["candidates"]
    chosen = next((r for r in rows if r["name"] == CHOSEN), None)
    lines = [
        f"# OCR candidates: {meta['pages']} pages, seed {meta['seed']}",
        "",
        f"`{' '.join(report['environment']['command'])}`  ",
        f"{report['environment']['tesseract']}; {report['environment']['cpus']} CPUs, load "
        f"{report['environment']['load_average'][0]:.2f} at start; Tesseract with "
        "OMP_THREAD_LIMIT=1, one page at a time.  ",
        "Pages: " + ", ".join(f"{report['classes'][g]} {MD_GROUP_LABELS[g]}" for g in GROUPS),
        "",
        "| candidate | CER " + " | CER ".join(MD_GROUP_LABELS[g] for g in MD_CER_GROUPS)
        + " | number or date missed | CPU s/page | × chosen | notes |",
        "|---" * (len(MD_CER_GROUPS) + 5) + "|",
    ]
    for r in rows:
        ratio = (r["cpu_seconds_per_page"] / chosen["cpu_seconds_per_page"]
                 if chosen and chosen["cpu_seconds_per_page"] else None)
        notes = ", ".join(f"{k} {v}" for k, v in r["notes"].items())
        missed = r["fields_missed"]
        lines.append(f"| {r['name']} | " + " | ".join(_pct(r["cer"][g]) for g in MD_CER_GROUPS)
                     + f" | {missed['missed']} of {missed['first_pages']}"
                     + f" | {r['cpu_seconds_per_page']:.2f} | "
                     + ("–" if ratio is None else f"{ratio:.2f}") + f" | {notes} |")
    picks = report["picks"]
    lines += ["", f"Lowest CER on all pages: **{picks['best_cer']}**. Lowest within +30 % CPU of "
              f"the chosen one: **{picks['best_within_budget']}**.", ""]
    lines += ["Candidates:", ""] + [f"- `{r['name']}`: {r['description']}" for r in rows]

    def cause_table(title: str, columns: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
        out = ["", title, "", "| cause | " + " | ".join(c for c, _ in columns) + " |",
               "|---" * (len(columns) + 1) + "|"]
        for cause in (*CAUSES, "extra"):
            cells = [f"{e['words'][cause]} ({_pct(e['share_of_truth_words'][cause], 1)})"
                     for _, e in columns]
            out.append(f"| {CAUSE_LABELS[cause]} | " + " | ".join(cells) + " |")
        out.append("| wrong truth words | " + " | ".join(
            f"{e['wrong_words']} of {e['truth_words']}" for _, e in columns) + " |")
        out.append("| lines lost / out of place | " + " | ".join(
            f"{e['lost_lines']} / {e['moved_lines']}" for _, e in columns) + " |")
        return out

    if chosen is not None:
        lines += cause_table(
            "Errors of `chosen` by cause and page class: truth words (share of the class's truth "
            "words):", [(MD_GROUP_LABELS[g], chosen["errors"][g]) for g in GROUPS
                        if chosen["errors"][g]["pages"]])
    causes = (*CAUSES, "extra")
    lines += ["", "Errors by cause, every candidate, all pages: truth words (share of the truth "
              "words):", "",
              "| candidate | " + " | ".join(CAUSE_LABELS[c] for c in causes)
              + " | wrong truth words | lines lost / out of place |",
              "|---" * (len(causes) + 3) + "|"]
    for r in rows:
        e = r["errors"]["all"]
        lines.append(f"| {r['name']} | " + " | ".join(
            f"{e['words'][c]} ({_pct(e['share_of_truth_words'][c], 1)})" for c in causes)
            + f" | {e['wrong_words']} of {e['truth_words']} | {e['lost_lines']} / "
            f"{e['moved_lines']} |")
    lex = report.get("wordlist")
    if lex:
        lines += ["", f"Word list: {lex['source']}: {lex['entries']} entries, {lex['syllables']} "
                  f"syllable spellings; {_pct(lex['truth_oov'], 1)} of the truth's words are "
                  "no syllable in it (names, abbreviations)."]
    return "\n".join(lines) + "\n"


def _environment(argv: Sequence[str]) -> dict[str, Any]:
    tessdata = Path("/usr/share/tesseract-ocr/5/tessdata")
    return {
        "cpus": len(os.sched_getaffinity(0)), "load_average": os.getloadavg(),
        "python": platform.python_version(), "platform": platform.platform(),
        "tesseract": first_line(["tesseract", "--version"]),
        "traineddata": {p.name: p.stat().st_size for p in sorted(tessdata.glob("*.traineddata"))}
        if tessdata.is_dir() else {},
        "command": ["python", "-m", "pipeline.demo.ocr_candidates", *argv],
    }


def run(out: Path, *, n_pages: int, seed: int, names: Sequence[str], lexicon_path: Path | None,
        argv: Sequence[str]) -> dict[str, Any]:
    cands = [BY_NAME[n] for n in names]
    check_requirements(cands, lexicon_path)
    cv2.setNumThreads(1)
    started = dt.datetime.now().isoformat(timespec="seconds")
    environment = _environment(argv)
    log.info("generating and cleaning %d pages into %s", n_pages, out)
    batch, prepared = prepare_pages(out, n_pages, seed)
    rows = build_rows(batch)
    ctx = Context(out=out, lexicon_path=lexicon_path)
    if any(c.needs_wordlist for c in cands):
        _lexicon(ctx)  # loaded once, as a worker would, before anything is timed
    report_rows = []
    texts: dict[str, list[str | None]] = {}
    for cand in cands:
        results = []
        for page, row in zip(prepared, rows, strict=True):
            result = run_candidate(ctx, cand, page, row.truth)
            row.results[cand.name] = Measured(cer=result.cer, seconds=result.cpu_seconds)
            results.append(result)
        errors = [classify_errors(row.truth, r.text or "")[0]
                  for row, r in zip(rows, results, strict=True)]
        texts[cand.name] = [r.text for r in results]
        summary = aggregate(rows, cand.name, results, errors)
        summary["fields_missed"] = fields_missed(batch, [r.text for r in results])
        report_rows.append(summary)
        log.info("%s: CER %s, %.2f CPU s/page", cand.name, _pct(summary["cer"]["all"]),
                 summary["cpu_seconds_per_page"])
    wordlist = None
    if ctx.lexicon is not None:
        wordlist = {"source": ctx.lexicon.source, "entries": len(ctx.lexicon.words),
                    "syllables": len(ctx.lexicon.syllables),
                    "truth_oov": oov_share(ctx.lexicon, (row.truth for row in rows))}
    environment["load_average_end"] = os.getloadavg()
    report = {
        "tool": "pipeline.demo.ocr_candidates", "started_at": started,
        "finished_at": dt.datetime.now().isoformat(timespec="seconds"),
        "environment": environment, "corpus": corpus_meta(batch, seed),
        "classes": {g: len(select(rows, g)) for g in GROUPS},
        "cpu_budget_vs_chosen": CPU_BUDGET, "low_confidence": LOW_CONFIDENCE,
        "wordlist": wordlist,
        "candidates": report_rows,
        "picks": pick(report_rows),
        "page_classes": [{"n": r.n, "style": r.style, "dpi": r.dpi, "seal": r.seal,
                          "bleed": r.bleed, "hard": r.hard, "chars": r.chars} for r in rows],
    }
    for name, page_texts in texts.items():
        folder = out / "texts" / name
        folder.mkdir(parents=True, exist_ok=True)
        for n, text in enumerate(page_texts, start=1):
            (folder / f"{n:06d}.txt").write_text(text or "", encoding="utf-8")
    write_json(out / "candidates.json", report)
    table = render(report)
    atomic_write_bytes(out / "candidates.md", table.encode())
    print(table)
    return report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline.demo.ocr_candidates",
        description="OCR candidates (views, models, second pass, post-correction) on the "
                    "benchmark's pages, with their errors sorted by cause.")
    p.add_argument("--pages", type=int, default=16, help="corpus pages (default 16)")
    p.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder, new or empty (default var/ocr-candidates/<timestamp>)")
    p.add_argument("--only", default=None,
                   help="comma-separated candidates to run (default all): "
                        + ", ".join(c.name for c in CANDIDATES))
    p.add_argument("--wordlist", type=Path, default=None,
                   help="Vietnamese word list for post-correction: a words.txt (one word a line) "
                        "or a pyvi wheel; default pyvi's, if pyvi is installed")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    start_logging()
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else list(BY_NAME)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown or not names:
        print(f"unknown candidate(s) {unknown}; known: {', '.join(BY_NAME)}", file=sys.stderr)
        return 2
    if args.pages < 1:
        print("--pages must be at least 1", file=sys.stderr)
        return 2
    out = (args.out or Path("var") / "ocr-candidates"
           / dt.datetime.now().strftime("%Y%m%d-%H%M%S")).resolve()
    if used(out):
        return 2
    try:
        check_requirements([BY_NAME[n] for n in names], args.wordlist)
    except MissingRequirement as exc:
        print(f"cannot run: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    run(out, n_pages=args.pages, seed=args.seed, names=names, lexicon_path=args.wordlist,
        argv=argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
