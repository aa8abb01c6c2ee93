"""The benchmark's readable table (``bench.md``) of the figures in ``bench.json``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.demo.bench_figures import CER_GROUP_LABELS, CER_GROUPS, SYSTEMS, dig
from pipeline.demo.bench_measure import COLOUR_RENDER_DPI, MEASURE_DPI
from pipeline.demo.bench_phases import RSS_SAMPLE_SECONDS


def _fmt(value: float | None, kind: str) -> str:
    """``kind``: "pct", "x" (a ratio) or the number of decimals."""
    if value is None:
        return "—"
    if kind == "pct":
        return f"{value:.2%}"
    if kind == "x":
        return f"{value:.2f}×"
    return f"{value:.{kind}f}"


def table_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    """(metric, ours, baseline, Tesseract alone, ratio, target) rows of the readable table."""
    s = report["systems"]
    ours, base, tess = s.get("ours") or {}, s.get("baseline") or {}, s.get("tesseract") or {}
    r = report["ratios"]

    def row(metric: str, kind: str, keys: tuple[str, ...], ratio_value: float | None = None,
            target: str = "", systems: Sequence[str] = SYSTEMS) -> tuple[str, ...]:
        cells = [_fmt(dig(d, *keys), kind) if name in systems else ""
                 for name, d in (("ours", ours), ("baseline", base), ("tesseract", tess))]
        return (metric, *cells, _fmt(ratio_value, "x"), target)

    def osd(d: dict[str, Any]) -> str:
        o = d.get("orientation")
        if not o:
            return "—"
        unknown = f", {o['osd_unknown']} unknown" if o["osd_unknown"] else ""
        return f"{o['osd_upright']}/{d['pages']}{unknown}"

    def found(d: dict[str, Any]) -> str:
        o = d.get("orientation")
        return f"{o['rotation_correct']}/{o['rotation_checked']}" if o and o["rotation_checked"] else "—"

    rows: list[tuple[str, ...]] = [
        ("pages (without output)", *(f"{d['pages']} ({d['failed_pages']})" if d else "—"
                                     for d in (ours, base, tess)), "", ""),
        row("wall time (s)", "1", ("wall_seconds",)),
        row("seconds per page", "2", ("seconds_per_page",), r.get("seconds_ours_vs_baseline")),
        row("pages per minute", "1", ("pages_per_minute",), r.get("throughput_ours_vs_baseline"),
            ">= 4× baseline"),
        ("s/page, ours vs Tesseract alone", _fmt(ours.get("seconds_per_page"), "2"), "",
         _fmt(tess.get("seconds_per_page"), "2"), _fmt(r.get("seconds_ours_vs_tesseract"), "x"),
         ""),
        ("cleanup only (s/page)", "", "", _fmt(tess.get("cleanup_seconds_per_page"), "2"), "", ""),
        ("CPU s/page, all cores (ours vs Tesseract alone)", _fmt(ours.get("cpu_seconds_per_page"), "2"),
         _fmt(base.get("cpu_seconds_per_page"), "2"), _fmt(tess.get("cpu_seconds_per_page"), "2"),
         _fmt(r.get("cpu_ours_vs_tesseract"), "x"), "<= 1.3×"),
    ]
    paired = tess.get("side_by_side")
    if paired:
        rows.append((f"CPU s/page, all cores (ours vs Tesseract alone, {paired['jobs']} at a time "
                     "as our workers)", _fmt(ours.get("cpu_seconds_per_page"), "2"), "",
                     _fmt(paired["cpu_seconds_per_page"], "2"),
                     _fmt(r.get("cpu_ours_vs_tesseract_side_by_side"), "x"), ""))
    split = ours.get("cpu_split")
    if split:
        rows += [
            ("CPU s per batch, fixed (ours, outside its records; of it start and imports / "
             "warehouse set-up)",
             f"{split['fixed_seconds']:.1f} ({split['start_seconds']:.1f} / "
             f"{split['setup_seconds']:.1f})", "", "", "", ""),
            ("CPU s/page, marginal: in the records (ours vs Tesseract alone)",
             _fmt(split["marginal_seconds_per_page"], "2"), "",
             _fmt(tess.get("cpu_seconds_per_page"), "2"),
             _fmt(r.get("cpu_marginal_vs_tesseract"), "x"), ""),
            *([("CPU s/page, marginal (ours vs Tesseract alone, as many at a time as our "
                "workers)", _fmt(split["marginal_seconds_per_page"], "2"), "",
                _fmt(paired["cpu_seconds_per_page"], "2"),
                _fmt(r.get("cpu_marginal_vs_tesseract_side_by_side"), "x"), "")]
              if paired else []),
            ("of it, the programs the records ran (Tesseract, Poppler) / the workers' own",
             f"{split['programs_seconds_per_page']:.2f} / {split['own_seconds_per_page']:.2f}",
             "", "", "", ""),
            (f"CPU s/page, a batch of {split['projected_pages']} pages (ours, projected)",
             _fmt(split["projected_seconds_per_page"], "2"), "",
             _fmt(tess.get("cpu_seconds_per_page"), "2"),
             _fmt(r.get("cpu_projected_vs_tesseract"), "x"), ""),
        ]
    for group in CER_GROUPS:
        rows.append(row(f"CER, {CER_GROUP_LABELS[group]}", "pct", ("cer", group),
                        dig(r, "cer_ours_vs_baseline", group),
                        "<= 0.5× baseline" if group == "hard" else ""))
    rows += [
        row("residual skew, mean |°|", "3", ("residual_skew", "mean"), None, "< 0.15",
            ("ours", "baseline")),
        row("residual skew, max |°|", "3", ("residual_skew", "max"), None, "< 0.5",
            ("ours", "baseline")),
        row("skew removed - truth, mean |°|", "3", ("skew_error_vs_truth", "mean"), None, "",
            ("ours",)),
        row("skew removed - truth, max |°|", "3", ("skew_error_vs_truth", "max"), None, "",
            ("ours",)),
        ("rotation found = truth", found(ours), "", "", "", "every page"),
        ("upright on output (OSD)", osd(ours) if ours else "—", osd(base) if base else "—", "", "",
         "every page"),
    ]
    for group, label, target in (("all", "all pages", ""), ("bw300", "B/W 300 dpi", "<= 100"),
                                 ("seal", "colour seal", "<= 250"), ("bw200", "B/W 200 dpi", "")):
        rows.append(row(f"KB per page, {label}", "0", ("kb_per_page", group),
                        dig(r, "kb_ours_vs_baseline", group), target, ("ours", "baseline")))
    rows += [
        ("colour pages measured", *(f"{d['colour']['measured']}/{d['colour']['pages']}"
                                    if d.get("colour") else "" for d in (ours, base)), "", "", ""),
        row("colour kept, red (pooled)", "pct", ("colour", "red"), None, ">= 90%",
            ("ours", "baseline")),
        row("colour kept, blue (pooled)", "pct", ("colour", "blue"), None, ">= 80%",
            ("ours", "baseline")),
        row("colour kept, red, worst page", "pct", ("colour", "min_page_red"), None, ">= 70%",
            ("ours", "baseline")),
        row("peak RSS, largest process (MB)", "0", ("rss", "peak_rss_mb")),
        row("peak memory, process tree, PSS (MB)", "0", ("rss", "tree_peak_pss_mb")),
        row("peak memory, process tree, RSS sum (MB)", "0", ("rss", "tree_peak_rss_mb")),
    ]
    stack = report.get("stack")
    if stack:
        rows += [
            (f"multi-page TIFF, {stack['pages']} pages: s/page",
             _fmt(stack.get("seconds_per_page"), "2"), "", "", "", ""),
            ("multi-page TIFF: peak memory PSS / RSS sum / largest (MB)",
             f"{_fmt(stack['rss']['tree_peak_pss_mb'], '0')} / "
             f"{_fmt(stack['rss']['tree_peak_rss_mb'], '0')} / "
             f"{_fmt(stack['rss']['peak_rss_mb'], '0')}", "", "", "", "< 1024"),
        ]
    return rows


def methods_table(methods: dict[str, Any]) -> list[str]:
    lines = ["", "## Methods compared on the corpus pages", "",
             "| orientation method | right | wrong | undecided | ms/page |", "|---|---|---|---|---|"]
    lines += [f"| {m} | {v['right']} | {v['wrong']} | {v['undecided']} | {v['ms']:.0f} |"
              for m, v in methods["orientation"].items()]
    lines += ["", "| deskew method | mean error (°) | max error (°) | ms/page |", "|---|---|---|---|"]
    lines += [f"| {m} | {v['mean_error']:.3f} | {v['max_error']:.3f} | {v['ms']:.0f} |"
              for m, v in methods["skew"].items()]
    lines += ["", "The pipeline reads orientation from the layout and asks OSD only where the "
              "layout is undecided; it deskews with the method its scanner profile names."]
    return lines


def render_table(report: dict[str, Any]) -> str:
    header = ("metric", "ours", "baseline (ocrmypdf)", "Tesseract alone", "ratio ours/other",
              "target")
    rows = [header, *table_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    corpus = report["corpus"]
    hardness = f"{corpus['hard_pages']} hard, {corpus['easy_pages']} easy"
    title = (f"# Benchmark {report['started_at']}: {corpus['pages']} pages ({hardness}), "
             f"{report['environment']['cpus']} CPUs")
    notes = [
        "",
        "ratio: ours / baseline, except the Tesseract-alone row (ours / Tesseract alone).",
        "CER: edit distance / reference characters, NFC, whitespace ignored, pooled over pages; "
        "a page without output counts as 100%.",
        "Tesseract alone: OCR time only (our cleanup is the 'cleanup only' row).",
        "CPU s: user + system of the phase's process and every descendant. Marginal: what the "
        "records took themselves (each one's worker and its Tesseract while on it) per page; "
        "fixed: the rest of the run; the projection is fixed / pages + marginal.",
        f"Memory sampled every {RSS_SAMPLE_SECONDS} s; for the baseline and Tesseract alone, "
        "of their processes only. PSS counts a shared page once; the RSS sum once per process.",
        "Residual skew and OSD are measured on the output PDF rasterised at "
        f"{MEASURE_DPI} dpi; KB per page = output file size / its pages.",
        "Hard pages: seal, typewriter, show-through, 200 dpi or turned; a page can be in several "
        "classes (200 dpi counts every page of 200 dpi, a seal page too).",
        "Colour kept: of the scan's strongly red (R>150, G<90, B<90) and strongly blue (B>120, "
        "R<90, G<110) pixels at 100 dpi, the share still so on the output page; the scan is "
        "turned upright from the ground truth and matched to the output page around its marks; "
        f"the output is rendered at {COLOUR_RENDER_DPI} dpi and area-averaged to 100 dpi "
        "(poppler's direct 100 dpi rendering of 1-bit masks is a third of a pixel off). Red and "
        "blue are pooled by pixel over the seal pages; a seal page without a figure makes the "
        "worst page 0%.",
    ]
    goals = ["", "## Goals", "", "| goal | value | target | met |", "|---|---|---|---|"]
    for g in report["goals"]:
        met = {True: "yes", False: "NO", None: "not measured"}[g["met"]]
        value = "—" if g["value"] is None else f"{g['value']:.3g}"
        goals.append(f"| {g['label']} | {value} | {g['target']} | {met} |")
    methods = methods_table(report["methods"]) if report.get("methods") else []
    return "\n".join([title, "", *lines, *notes, *goals, *methods]) + "\n"
