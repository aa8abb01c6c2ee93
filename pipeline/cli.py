"""``digitize``: the command line over the same stage functions the Airflow DAGs run."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from pipeline import __version__
from pipeline.config import PROJECT_DIR, Settings, load_settings
from pipeline.errors import DigitizeError, ExitCode, exit_code_for
from pipeline.models import BatchSummary, RecordResult, RecordStatus

log = logging.getLogger("pipeline")

DEMO_AGENCY = "000.00.12.H12"
BATCH_DAG = "digitize_batch"


def _record_json(result: RecordResult) -> dict[str, object]:
    return {
        "record_id": result.record_id,
        "status": result.status.value,
        "pdf": result.pdf_path,
        "pages": result.page_count,
        "rotation": [p.rotation for p in result.pages],
        "skew": [p.skew for p in result.pages],
        "ocr_mean_confidence": result.mean_confidence,
        "already_archived": result.already_archived,
        "reason": result.reason,
        "errors": result.errors,
    }


def _print_summary(summary: BatchSummary, elapsed: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Lô {summary.agency_code}/{summary.batch_id} — {elapsed:.0f} s")
    for column in ("Mã hồ sơ", "Trạng thái", "Trang", "Xoay", "Nghiêng (°)", "Độ tin cậy OCR",
                   "Tệp PDF/A / lý do"):
        table.add_column(column)
    for r in summary.records:
        archived = r.status is RecordStatus.archived
        table.add_row(
            r.record_id,
            ("đã lưu (có sẵn)" if r.already_archived else "đã lưu") if archived else "cách ly",
            str(r.page_count),
            " ".join(str(p.rotation) for p in r.pages),
            " ".join(f"{p.skew:+.1f}" for p in r.pages),
            f"{r.mean_confidence:.0f}" if r.mean_confidence is not None else "",
            r.pdf_path if archived else "\n".join(r.errors),
        )
    console = Console()
    console.print(table)
    console.print(f"Đã lưu trữ: {summary.archived}   Cách ly: {summary.quarantined}"
                  + (f"   Lô đã chuyển tới: {summary.moved_to}" if summary.moved_to else ""))


def cmd_run(args: argparse.Namespace, settings: Settings) -> ExitCode:
    from rich.progress import Progress

    from pipeline import runner

    started = time.monotonic()
    if args.jobs:
        settings = settings.model_copy(update={"ocr_jobs": args.jobs})
    with Progress(disable=args.json or not sys.stderr.isatty(), transient=True) as bar:
        job = bar.add_task("Số hóa", total=None)
        summary = runner.run_batch(
            settings, Path(args.batch_dir), args.agency, args.batch_id,
            on_start=lambda total: bar.update(job, total=total),
            on_record=lambda _result: bar.advance(job),
        )
    if args.json:
        for result in summary.records:
            print(json.dumps(_record_json(result), ensure_ascii=False))
    else:
        _print_summary(summary, time.monotonic() - started)
    return ExitCode.some_quarantined if summary.quarantined else ExitCode.ok


def cmd_sample(args: argparse.Namespace, settings: Settings) -> ExitCode:
    from pipeline import samples

    batch = samples.generate_batch(Path(args.out), agency_code=args.agency,
                                   n_records=args.records, seed=args.seed)
    print(batch.batch_dir)
    return ExitCode.ok


def cmd_bench(args: argparse.Namespace, settings: Settings) -> ExitCode:
    from pipeline import bench

    return ExitCode(bench.main(args.passthrough))


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> ExitCode:
    from pipeline import warehouse

    warehouse.migrate(settings.warehouse_url)
    print(f"warehouse at latest schema: {settings.warehouse_url}")
    return ExitCode.ok


def airflow_env(settings: Settings) -> dict[str, str]:
    """Environment for the project's Airflow: its airflow.cfg, dags/ and plugins/, home in DATA."""
    home = settings.dir("airflow")
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(PROJECT_DIR / "airflow.cfg"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_DIR / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_DIR / "plugins"),
        "DIGITIZE_DATA_DIR": str(settings.data_dir.resolve()),
        "DIGITIZE_DB_URL": settings.warehouse_url,
    })
    env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home / 'airflow.db'}")
    return env


def airflow(settings: Settings, *args: str) -> None:
    """Run an ``airflow`` command for this project; its output goes straight to the terminal."""
    exe = shutil.which("airflow") or str(Path(sys.executable).with_name("airflow"))
    subprocess.run([exe, *args], env=airflow_env(settings), check=True)


def prepare_airflow(settings: Settings) -> None:
    """Metadata database at the latest schema and the ``ocr`` pool sized to the cores."""
    airflow(settings, "db", "migrate")
    airflow(settings, "pools", "set", "ocr", str(settings.jobs), "OCR slots (one per core)")


def cmd_airflow(args: argparse.Namespace, settings: Settings) -> ExitCode:
    prepare_airflow(settings)
    airflow(settings, *args.passthrough)
    return ExitCode.ok


def cmd_demo(args: argparse.Namespace, settings: Settings) -> ExitCode:
    from pipeline import progress, samples

    started = time.monotonic()
    batch_id = f"DEMO-{time.strftime('%Y%m%d-%H%M%S')}"
    inbox = settings.dir("inbox") / DEMO_AGENCY / batch_id
    samples_dir = settings.dir("samples")
    batch = samples.generate_batch(inbox, agency_code=DEMO_AGENCY, batch_id=batch_id,
                                   n_records=args.records, seed=args.seed,
                                   truth_path=samples_dir / f"{batch_id}.truth.json")
    print(f"Sample batch of {len(batch.records)} records written to {inbox}")
    if args.no_airflow:
        from pipeline import runner

        summary = runner.run_batch(settings, inbox)
        _print_summary(summary, time.monotonic() - started)
    else:
        prepare_airflow(settings)
        airflow(settings, "dags", "test", BATCH_DAG, "--conf", json.dumps({"batch_dir": str(inbox)}))
    rows = progress.summary(settings.warehouse_url)
    paths = progress.write_summary(settings)
    print()
    print(f"Done in {time.monotonic() - started:.0f} s.")
    print(f"  PDF/A files:       {settings.dir('archive') / DEMO_AGENCY}")
    print(f"  Quarantine:        {settings.dir('quarantine')}")
    print(f"  Warehouse:         {settings.warehouse_url}")
    print(f"  Progress summary:  {paths['csv']}  (and .json)")
    print(f"  Ground truth text: {samples_dir / f'{batch_id}.truth.json'}")
    for row in rows:
        print(f"  {row['agency_code']}: {row['archived']} of {row['records']} records archived, "
              f"{row['pages']} pages, {row['quarantined']} to review")
    return ExitCode.ok


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digitize",
        description="Turn scanned batches of TTHC results into verified, searchable PDF/A "
                    "records in the archive warehouse. Settings come from DIGITIZE_* variables "
                    "(or .env): DIGITIZE_DATA_DIR (default ./var), DIGITIZE_DB_URL (default "
                    "SQLite in the data folder), DIGITIZE_PROFILE (scanner profile, default "
                    "'default').",
        epilog="Exit codes: 0 all archived, 3 some records quarantined, 2 bad usage or "
               "configuration, 1 unexpected error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run one batch folder end to end",
                         description="Ingest, clean, OCR, validate, archive and load one batch "
                                     "folder (manifest.csv + page files). Bad records go to "
                                     "quarantine with their reason; the rest are archived.")
    run.add_argument("batch_dir", help="the batch folder, e.g. var/inbox/<agency>/<batch>")
    run.add_argument("--agency", help="agency code (default: the parent folder's name)")
    run.add_argument("--batch-id", help="batch id (default: the folder's name)")
    run.add_argument("--json", action="store_true",
                     help="print one JSON object per record instead of the table")
    run.add_argument("--jobs", type=int, metavar="N",
                     help="records processed in parallel (default: DIGITIZE_OCR_JOBS or the "
                          "number of cores available)")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="generate a sample batch and run it through Airflow",
                          description="Generates a realistic sample batch into the inbox, "
                                      "runs the batch DAG on it with `airflow dags test` and "
                                      "says where the PDF/A files, warehouse and summary are.")
    demo.add_argument("--records", type=int, default=4, help="records in the sample batch")
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--no-airflow", action="store_true",
                      help="run the stages directly instead of through the Airflow DAG")
    demo.set_defaults(func=cmd_demo)

    sample = sub.add_parser("sample", help="write a generated sample batch (for trials/tests)")
    sample.add_argument("out", help="batch folder to create")
    sample.add_argument("--agency", default=DEMO_AGENCY)
    sample.add_argument("--records", type=int, default=3)
    sample.add_argument("--seed", type=int, default=0)
    sample.set_defaults(func=cmd_sample)

    af = sub.add_parser("airflow", help="run an airflow command with this project's settings",
                        description="Runs `airflow ARGS...` with AIRFLOW_HOME in the data folder, "
                                    "the project's airflow.cfg, dags/ and plugins/, after "
                                    "migrating its metadata database and creating the ocr pool. "
                                    "Example: digitize airflow dags test digitize_batch --conf "
                                    "'{\"batch_dir\": \"/abs/var/inbox/AGENCY/BATCH\"}'")
    af.set_defaults(func=cmd_airflow, passthrough=[])

    bench = sub.add_parser("bench", help="benchmark our pipeline against plain OCRmyPDF",
                           add_help=False,
                           description="Generates a varied corpus and measures our pipeline, "
                                       "plain OCRmyPDF and Tesseract alone in the same run; "
                                       "`digitize bench --help` lists its options.")
    bench.set_defaults(func=cmd_bench, passthrough=[])

    migrate = sub.add_parser("migrate", help="create or upgrade the warehouse schema")
    migrate.set_defaults(func=cmd_migrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `airflow` and `bench` hand every further argument to the program they run
    if hasattr(args, "passthrough"):
        args.passthrough = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO if not getattr(args, "json", False)
        else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # third-party INFO chatter (schema migration steps, PDF library bridges) hides our progress
    for noisy in ("alembic", "pikepdf", "great_expectations", "img2pdf"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        settings = load_settings()
        return int(args.func(args, settings))
    except DigitizeError as exc:
        log.error("%s", exc)
        return int(exit_code_for(exc))
    except subprocess.CalledProcessError as exc:
        log.error("%s failed with exit code %s", " ".join(map(str, exc.cmd[:4])), exc.returncode)
        return int(ExitCode.unexpected)
    except Exception:
        log.exception("unexpected error; please report it with the lines above")
        return int(ExitCode.unexpected)


if __name__ == "__main__":
    sys.exit(main())
