"""CPU of a record processed in a process of its own, as an Airflow record task processes it.

``digitize run``'s benchmark (:mod:`pipeline.demo.bench`) measures the pool path: workers that
start once and then take record after record. Under Airflow each record is a task, and each
task a fresh process: what it pays on top of the record's own work is not in that benchmark.
This one processes every record of a generated corpus in a fresh process twice, in turn:

- ``child``: OCRmyPDF in a child process of its own (``python -m pipeline._exec.ocrmypdf``),
  as every record task did before issue 15's change, the baseline;
- ``task``: OCRmyPDF in the task's own process (``become_worker``), as the record task does now.

Each run's CPU is that of the process and its children from just before the record's work to
its end (the imports both share are left out: the task pays them either way), user and system.

    python -m pipeline.demo.bench_task [--pages N] [--seed S] --out DIR

writes ``DIR/bench-task.json`` and ``DIR/bench-task.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipeline.demo import samples
from pipeline.demo.bench import start_logging, used
from pipeline.demo.bench_phases import bench_settings, tree_cpu_seconds

log = logging.getLogger(__name__)
MODES = ("child", "task")


def run_one(data: Path, batch_dir: Path, index: int, mode: str) -> dict[str, Any]:
    """Record ``index`` of the batch, in this (fresh) process, OCRmyPDF as ``mode`` says."""
    from pipeline import record
    from pipeline._exec import ocrmypdf as ocrmypdf_exec
    from pipeline.registration import record_tasks, register_batch

    settings = bench_settings(data, 1)
    # registered again by every process, as found (natural keys): not part of the record's work
    plan, batch_pk, docs = register_batch(settings, batch_dir)
    task = record_tasks(plan, batch_pk, docs)[index]
    started = tree_cpu_seconds()
    if mode == "task":
        ocrmypdf_exec.become_worker(logging.WARNING, single_threaded=True)
    result = record.process_record(settings, task)
    return {"mode": mode, "index": index, "record_id": result.record_id,
            "status": str(result.status), "pages": len(result.pages),
            "cpu_seconds": tree_cpu_seconds() - started}


def _data_dir(out: Path, mode: str, corpus: Path) -> tuple[Path, Path]:
    """A data folder with its warehouse (the sample catalogue) and its copy of the batch."""
    from pipeline.checks import reference
    from pipeline.store import warehouse

    data = out / mode
    url = bench_settings(data, 1).warehouse_url
    warehouse.migrate(url)
    reference.import_samples(url)
    batch_dir = data / "inbox" / samples.DEFAULT_AGENCY / corpus.name
    shutil.copytree(corpus, batch_dir)
    return data, batch_dir


def run(out: Path, n_pages: int, seed: int) -> dict[str, Any]:
    corpus = samples.generate_corpus(out / "corpus" / samples.DEFAULT_AGENCY / f"TASK-{seed}",
                                     n_pages=n_pages, seed=seed, batch_id=f"TASK-{seed}",
                                     truth_path=out / "corpus" / "truth.json")
    folders = {mode: _data_dir(out, mode, corpus.batch_dir) for mode in MODES}
    runs: list[dict[str, Any]] = []
    for index in range(len(corpus.records)):
        for mode in MODES:  # in turn: the machine's speed drifts within minutes
            data, batch_dir = folders[mode]
            proc = subprocess.run([sys.executable, "-m", "pipeline.demo.bench_task", "--one", str(data),
                                   str(batch_dir), str(index), mode],
                                  capture_output=True, text=True, check=True)
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            log.info("record %d, %s: %.2f CPU s", index, mode, runs[-1]["cpu_seconds"])
    pages = sum(r["pages"] for r in runs if r["mode"] == MODES[0])
    totals = {mode: sum(r["cpu_seconds"] for r in runs if r["mode"] == mode) for mode in MODES}
    return {"pages": pages, "records": len(corpus.records), "seed": seed, "runs": runs,
            "cpu_seconds": totals,
            "cpu_seconds_per_record": {m: t / len(corpus.records) for m, t in totals.items()},
            "cpu_seconds_per_page": {m: t / pages for m, t in totals.items()},
            "ratio_task_to_child": totals["task"] / totals["child"]}


def report(result: dict[str, Any]) -> str:
    per_page, per_record = result["cpu_seconds_per_page"], result["cpu_seconds_per_record"]
    return "\n".join([
        f"# Record tasks: {result['records']} records, {result['pages']} pages (seed {result['seed']})",
        "",
        "| OCRmyPDF | CPU s/record | CPU s/page |", "|---|---|---|",
        f"| in a child process (baseline) | {per_record['child']:.2f} | {per_page['child']:.2f} |",
        f"| in the task's process | {per_record['task']:.2f} | {per_page['task']:.2f} |",
        "", f"ratio task / child: {result['ratio_task_to_child']:.2f}", ""])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.demo.bench_task", description=__doc__.split("\n")[0])
    p.add_argument("--pages", type=int, default=8, help="corpus pages (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=False, help="output folder, new or empty")
    p.add_argument("--one", nargs=4, metavar=("DATA", "BATCH", "INDEX", "MODE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        data, batch_dir, index, mode = args.one
        print(json.dumps(run_one(Path(data), Path(batch_dir), int(index), mode)))
        return 0
    if args.out is None or args.pages < 1:
        p.error("--out is needed, and --pages must be at least 1")
    start_logging()
    if used(args.out):
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    result = run(args.out, args.pages, args.seed)
    (args.out / "bench-task.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    (args.out / "bench-task.md").write_text(report(result), encoding="utf-8")
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
