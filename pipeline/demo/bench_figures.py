"""The benchmark's figures: what a corpus page is and what each system made of it, and every
aggregate over them (CER by page group, skew, orientation, colour, size, the goals). No I/O."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from pipeline.demo import samples
from pipeline.demo.quality import normalise

SYSTEMS = ("ours", "baseline", "tesseract")
# a batch of a few hundred pages, as the back catalogue brings them
PROJECTED_PAGES = 300

# The goals: (key, label, how the value compares with the target, target).
GOALS: tuple[tuple[str, str, str, float], ...] = (
    ("throughput_vs_baseline", "pages/min, ours / baseline", ">=", 4.0),
    ("cer_hard_vs_baseline", "CER on hard pages, ours / baseline", "<=", 0.5),
    # the issue counts CPU: the wall clock lets our two workers race one Tesseract
    ("cpu_vs_tesseract", "CPU s/page, ours / Tesseract alone", "<=", 1.3),
    ("residual_skew_mean", "residual skew mean (deg)", "<", 0.15),
    ("residual_skew_max", "residual skew max (deg)", "<", 0.5),
    ("orientation_wrong", "pages wrongly oriented", "<=", 0),
    ("kb_bw300", "KB/page, B/W 300 dpi", "<=", 100),
    ("kb_seal", "KB/page, colour seal", "<=", 250),
    ("stack_peak_memory_mb", "peak memory (PSS), multi-page TIFF (MB)", "<", 1024),
    ("colour_red", "red kept, pooled over colour pages", ">=", 0.9),
    ("colour_blue", "blue kept, pooled over colour pages", ">=", 0.8),
    ("colour_red_min", "red kept, worst colour page", ">=", 0.7),
)
# CER is reported for these page groups: hard/easy and each class of hard page.
CER_GROUPS = ("all", "hard", "easy", "typewriter", "seal", "dpi200", "bleed")
CER_GROUP_LABELS = {"all": "all pages", "hard": "hard pages", "easy": "easy pages",
                    "typewriter": "typewriter pages", "seal": "seal pages",
                    "dpi200": "200 dpi pages", "bleed": "show-through pages"}


@dataclass
class Measured:
    """One system's result for one page; ``None`` where it was not measured or failed."""

    cer: float | None = None  # None: the page has no output (counts as 1.0 in aggregates)
    residual_skew: float | None = None  # measured on the output page, degrees
    osd_rotate: int | None = None  # Tesseract OSD on the output page; None: OSD failed
    osd_confidence: float | None = None
    kb: float | None = None  # output file size / pages in that file
    rotation_found: int | None = None  # ours: rotation the cleanup applied
    skew_found: float | None = None  # ours: skew the cleanup removed
    seconds: float | None = None  # Tesseract alone: OCR of this page
    cleanup_seconds: float | None = None  # Tesseract alone: our cleanup of this page
    # Colour pages: share of the source's strongly red / blue pixels still so on the output
    # page, and how many there were (the weight for pooling over pages).
    red_kept: float | None = None
    blue_kept: float | None = None
    red_pixels: int | None = None
    blue_pixels: int | None = None


@dataclass
class PageRow:
    """A corpus page: what it is (ground truth) and what each system made of it."""

    n: int  # 1-based, corpus order
    record_id: str
    page_no: int  # 1-based within the record
    file: str
    page_in_file: int
    kind: str  # see page_kind
    hard: bool
    chars: int  # reference length for the CER (NFC, no whitespace)
    rotation: int
    skew: float
    dpi: int
    style: str
    seal: bool
    bleed: bool
    truth: str = field(default="", repr=False)  # the page's ground-truth text
    results: dict[str, Measured] = field(default_factory=dict)

    @property
    def expected_rotation(self) -> int:
        return expected_rotation(self.rotation)


def expected_rotation(turned_cw: int) -> int:
    """The clockwise turn that makes upright a page the scanner turned ``turned_cw`` clockwise."""
    return (360 - turned_cw) % 360


def page_kind(page: samples.SamplePage) -> str:
    """Size class of a page: ``seal`` (colour), ``bw300`` / ``bw200`` (no colour) by dpi."""
    if page.seal:
        return "seal"
    return "bw300" if page.dpi >= 300 else "bw200"


def select(rows: Iterable[PageRow], group: str) -> list[PageRow]:
    """``all``, ``hard``, ``easy``, a page class (``typewriter``, ``dpi200``: 200 dpi or less
    whatever its colour, ``bleed``: show-through) or a page kind (``seal``, ``bw300``, ...)."""
    rows = list(rows)
    if group == "all":
        return rows
    if group in ("hard", "easy"):
        return [r for r in rows if r.hard == (group == "hard")]
    if group == "typewriter":
        return [r for r in rows if r.style == "typewriter"]
    if group == "dpi200":
        return [r for r in rows if r.dpi < 300]
    if group == "bleed":
        return [r for r in rows if r.bleed]
    return [r for r in rows if r.kind == group]


def pooled_cer(rows: Iterable[PageRow], system: str) -> float | None:
    """Character-weighted CER of ``system`` over ``rows`` (total edits / total characters).

    A page the system produced no text for counts as entirely wrong: a lost page is lost.
    """
    edits = chars = 0.0
    for row in rows:
        result = row.results.get(system)
        if result is None:
            continue
        edits += (1.0 if result.cer is None else result.cer) * row.chars
        chars += row.chars
    return edits / chars if chars else None


def _abs_stats(values: Sequence[float]) -> dict[str, float | int | None]:
    magnitudes = [abs(v) for v in values]
    return {"mean": float(np.mean(magnitudes)) if magnitudes else None,
            "max": max(magnitudes) if magnitudes else None, "measured": len(magnitudes)}


def skew_stats(rows: Iterable[PageRow], system: str) -> dict[str, float | int | None]:
    """|Skew| measured on the output pages."""
    return _abs_stats([r.results[system].residual_skew for r in rows
                       if system in r.results and r.results[system].residual_skew is not None])


def skew_error_stats(rows: Iterable[PageRow], system: str) -> dict[str, float | int | None]:
    """|Skew the system says it removed - skew the page really had|: the residual skew from the
    ground truth, free of the measuring detector's own error (about 0.1 degree)."""
    return _abs_stats([r.results[system].skew_found - r.skew for r in rows
                       if system in r.results and r.results[system].skew_found is not None])


def orientation_stats(rows: Iterable[PageRow], system: str) -> dict[str, int]:
    """OSD on the output pages (upright / not / unknown) and, where the system says what it
    turned, whether that matches the truth."""
    out = {"osd_upright": 0, "osd_wrong": 0, "osd_unknown": 0, "rotation_checked": 0,
           "rotation_correct": 0}
    for row in rows:
        result = row.results.get(system)
        if result is None:
            continue
        if result.osd_rotate is None:
            out["osd_unknown"] += 1
        elif result.osd_rotate == 0:
            out["osd_upright"] += 1
        else:
            out["osd_wrong"] += 1
        if result.rotation_found is not None:
            out["rotation_checked"] += 1
            out["rotation_correct"] += result.rotation_found == row.expected_rotation
    return out


def colour_stats(rows: Iterable[PageRow], system: str) -> dict[str, float | int | None]:
    """Colour kept on the seal pages: red and blue pooled by pixel over the pages (a page with
    a big stamp weighs more), and the worst page's red. A colour page the system ran but left
    without a figure (no output, or its page not found on the output) makes the worst page 0:
    a lost seal is lost."""
    seal_rows = [r for r in rows if r.seal and system in r.results]
    measured = [r.results[system] for r in seal_rows if r.results[system].red_pixels is not None]

    def pooled(kept: str, pixels: str) -> float | None:
        total = sum(getattr(m, pixels) or 0 for m in measured)
        return (sum((getattr(m, kept) or 0.0) * (getattr(m, pixels) or 0) for m in measured)
                / total if total else None)

    reds = [m.red_kept for m in measured if m.red_kept is not None]
    unmeasured = len(seal_rows) - len(measured)
    return {"pages": len(seal_rows), "measured": len(measured),
            "red": pooled("red_kept", "red_pixels"), "blue": pooled("blue_kept", "blue_pixels"),
            "min_page_red": 0.0 if unmeasured else (min(reds) if reds else None)}


def mean_kb(rows: Iterable[PageRow], system: str) -> float | None:
    # Each output file (ours: a record; baseline: a page file) holds pages of one kind, so the
    # mean of file size / pages over the pages is that kind's size per page.
    values = [r.results[system].kb for r in rows
              if system in r.results and r.results[system].kb is not None]
    return float(np.mean(values)) if values else None


def throughput(pages_done: int, seconds: float | None) -> dict[str, float | None]:
    if not seconds or not pages_done:
        return {"seconds_per_page": None, "pages_per_minute": None}
    return {"seconds_per_page": seconds / pages_done, "pages_per_minute": 60.0 * pages_done / seconds}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def summarise(rows: Sequence[PageRow], system: str, wall_seconds: float | None) -> dict[str, Any]:
    """Every aggregate figure of one system over the corpus."""
    mine = [r for r in rows if system in r.results]
    failed = sum(r.results[system].cer is None for r in mine)
    return {
        "pages": len(mine),
        "failed_pages": failed,
        "wall_seconds": wall_seconds,
        **throughput(len(mine), wall_seconds),
        "cer": {g: pooled_cer(select(mine, g), system) for g in CER_GROUPS},
        "residual_skew": skew_stats(mine, system),
        "skew_error_vs_truth": skew_error_stats(mine, system),
        "orientation": orientation_stats(mine, system),
        "kb_per_page": {g: mean_kb(select(mine, g), system)
                        for g in ("all", "bw300", "seal", "bw200")},
        "colour": colour_stats(mine, system),
    }


def evaluate_goals(values: dict[str, float | None]) -> list[dict[str, Any]]:
    """Each goal with its value and whether it is met (``None``: not measured in this run)."""
    checks: dict[str, Callable[[float, float], bool]] = {
        ">=": lambda v, t: v >= t, "<=": lambda v, t: v <= t, "<": lambda v, t: v < t}
    out = []
    for key, label, op, target in GOALS:
        value = values.get(key)
        out.append({"goal": key, "label": label, "target": f"{op} {target:g}", "value": value,
                    "met": None if value is None else checks[op](value, target)})
    return out


def dig(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...``, or None where a level is missing (a system that did not run)."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def corpus_pages(batch: samples.SampleBatch) -> list[samples.SamplePage]:
    """Every page of the batch in corpus order (records in manifest order, then their pages)."""
    return [page for record in batch.records for page in record.pages]


def page_files(batch: samples.SampleBatch) -> list[str]:
    """The batch's page files in corpus order, each once."""
    return list(dict.fromkeys(page.file for page in corpus_pages(batch)))


def build_rows(batch: samples.SampleBatch) -> list[PageRow]:
    rows: list[PageRow] = []
    for record in batch.records:
        for page_no, page in enumerate(record.pages, start=1):
            rows.append(PageRow(
                n=len(rows) + 1, record_id=record.record_id, page_no=page_no, file=page.file,
                page_in_file=page.page_in_file, kind=page_kind(page), hard=samples.is_hard(page),
                chars=len(normalise(page.text)), rotation=page.rotation, skew=page.skew,
                dpi=page.dpi, style=page.style, seal=page.seal, bleed=page.bleed, truth=page.text))
    return rows


def corpus_meta(batch: samples.SampleBatch, seed: int) -> dict[str, Any]:
    every = corpus_pages(batch)
    return {
        "seed": seed, "batch_dir": str(batch.batch_dir), "truth": str(batch.truth_path),
        "pages": len(every), "records": len(batch.records), "files": len(page_files(batch)),
        "hard_pages": sum(samples.is_hard(p) for p in every),
        "easy_pages": sum(not samples.is_hard(p) for p in every),
        "kinds": {k: sum(page_kind(p) == k for p in every) for k in ("bw300", "seal", "bw200")},
        "rotations": {str(r): sum(p.rotation == r for p in every) for r in (0, 90, 180, 270)},
        "typewriter": sum(p.style == "typewriter" for p in every),
        "bleed": sum(p.bleed for p in every),
        "max_abs_skew": max(abs(p.skew) for p in every),
    }


def cpu_split(ours: dict[str, Any], pages: int) -> dict[str, Any] | None:
    """Our CPU seconds of one run as ``fixed + marginal * pages``: what a batch pays once, what
    each page adds, and per page for a batch of PROJECTED_PAGES. None when a record has no
    figure of its own.

    The marginal part is what the records took themselves (each record's ``cpu_seconds``: its
    worker's and its Tesseract's while on it), per page; the fixed part is the rest of the run:
    the process's start and imports and the benchmark's warehouse set-up (said apart), the
    workers' start, the manifest validation and the batch's end. Two batches of different sizes
    split it before, but their pages were other documents: the difference carried their
    content's cost too (2.13 CPU s/page on the margin, where the records of a run 12 minutes
    later took 1.96, Tesseract alone 1.28 in both; issue 15).
    """
    records = [(r.get("cpu_seconds"), r.get("programs_cpu_seconds"))
               for r in ours.get("records", [])]
    if not records or None in {figure for pair in records for figure in pair}:
        return None
    marginal = sum(total for total, _ in records) / pages
    programs = sum(programs for _, programs in records) / pages
    fixed = ours["cpu_seconds"] - marginal * pages
    return {"pages": pages, "fixed_seconds": fixed, "start_seconds": ours["cpu_phases"]["start"],
            "setup_seconds": ours["cpu_phases"]["setup"],
            "marginal_seconds_per_page": marginal,
            # of it, the programs the records ran (Tesseract, Poppler) and the workers' own
            "programs_seconds_per_page": programs, "own_seconds_per_page": marginal - programs,
            "projected_pages": PROJECTED_PAGES,
            "projected_seconds_per_page": fixed / PROJECTED_PAGES + marginal}


def build_report(rows: list[PageRow], phases: dict[str, dict[str, Any]], meta: dict[str, Any]
                 ) -> dict[str, Any]:
    systems: dict[str, Any] = {}
    for name in SYSTEMS:
        if name not in phases:
            systems[name] = None
            continue
        summary = summarise(rows, name, phases[name]["wall_seconds"])
        summary["rss"] = phases[name]["rss"]
        systems[name] = summary
    ours, base, tess = systems["ours"], systems["baseline"], systems["tesseract"]
    if tess:
        tess["cleanup_seconds_per_page"] = phases["tesseract"]["cleanup_seconds"] / max(1, len(rows))
        # its OCR CPU per page of each run, before ours and after (the figure is their mean)
        tess["cpu_seconds_per_page_runs"] = [
            cpu / max(1, len(rows)) for cpu in phases["tesseract"].get("ocr_cpu_seconds_runs", [])]
        if paired := phases["tesseract"].get("side_by_side"):
            tess["side_by_side"] = {
                "jobs": paired["jobs"],
                "cpu_seconds_per_page": paired["ocr_cpu_seconds"] / max(1, len(rows)),
                "cpu_seconds_per_page_runs": [cpu / max(1, len(rows))
                                              for cpu in paired.get("ocr_cpu_seconds_runs", [])]}
    # CPU seconds a page costs on all cores together: the fair per-core comparison, where the
    # wall clock lets our two workers race single-threaded Tesseract.
    for name, key in (("ours", "cpu_seconds"), ("baseline", "cpu_seconds"),
                      ("tesseract", "ocr_cpu_seconds")):
        if systems[name] and phases[name].get(key) is not None:
            systems[name]["cpu_seconds_per_page"] = phases[name][key] / max(1, len(rows))

    split = None
    if ours and phases["ours"].get("cpu_seconds") is not None:
        split = cpu_split(phases["ours"], len(rows))
        ours["cpu_split"] = split
    tess_cpu = dig(tess, "cpu_seconds_per_page")
    paired_cpu = dig(tess, "side_by_side", "cpu_seconds_per_page")
    ratios = {
        "cpu_marginal_vs_tesseract": ratio(dig(split, "marginal_seconds_per_page"), tess_cpu),
        "cpu_marginal_vs_tesseract_side_by_side": ratio(dig(split, "marginal_seconds_per_page"),
                                                        paired_cpu),
        "cpu_ours_vs_tesseract_side_by_side": ratio(dig(ours, "cpu_seconds_per_page"), paired_cpu),
        "cpu_projected_vs_tesseract": ratio(dig(split, "projected_seconds_per_page"), tess_cpu),
        "throughput_ours_vs_baseline": ratio(dig(ours, "pages_per_minute"),
                                             dig(base, "pages_per_minute")),
        "seconds_ours_vs_baseline": ratio(dig(ours, "seconds_per_page"),
                                          dig(base, "seconds_per_page")),
        "seconds_ours_vs_tesseract": ratio(dig(ours, "seconds_per_page"),
                                           dig(tess, "seconds_per_page")),
        "cpu_ours_vs_tesseract": ratio(dig(ours, "cpu_seconds_per_page"),
                                       dig(tess, "cpu_seconds_per_page")),
        "cer_ours_vs_baseline": {g: ratio(dig(ours, "cer", g), dig(base, "cer", g))
                                 for g in CER_GROUPS},
        "kb_ours_vs_baseline": {g: ratio(dig(ours, "kb_per_page", g), dig(base, "kb_per_page", g))
                                for g in ("all", "bw300", "seal", "bw200")},
    }
    orientation = dig(ours, "orientation")
    stack = meta.get("stack")
    report = {
        **{k: v for k, v in meta.items() if k != "stack"},
        "systems": systems,
        "ratios": ratios,
        "stack": stack,
        "goals": evaluate_goals({
            "throughput_vs_baseline": ratios["throughput_ours_vs_baseline"],
            "cer_hard_vs_baseline": ratios["cer_ours_vs_baseline"]["hard"],
            "cpu_vs_tesseract": ratios["cpu_ours_vs_tesseract"],
            "residual_skew_mean": dig(ours, "residual_skew", "mean"),
            "residual_skew_max": dig(ours, "residual_skew", "max"),
            "orientation_wrong": (orientation["rotation_checked"] - orientation["rotation_correct"]
                                  + (ours["pages"] - orientation["rotation_checked"])
                                  if orientation else None),
            "kb_bw300": dig(ours, "kb_per_page", "bw300"),
            "kb_seal": dig(ours, "kb_per_page", "seal"),
            "stack_peak_memory_mb": dig(stack, "rss", "tree_peak_pss_mb"),
            "colour_red": dig(ours, "colour", "red"),
            "colour_blue": dig(ours, "colour", "blue"),
            "colour_red_min": dig(ours, "colour", "min_page_red"),
        }),
        "pages": [{**{k: v for k, v in asdict(r).items() if k not in ("results", "truth")},
                   **{name: asdict(m) for name, m in r.results.items()}} for r in rows],
    }
    return report
