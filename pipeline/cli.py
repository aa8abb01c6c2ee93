"""``digitize``: the command line over the same stage functions the Airflow DAGs run."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import __version__
from pipeline.access.commands import add_commands
from pipeline.access.search_cli import add_parser as add_search_parser
from pipeline.config import PROJECT_DIR, Settings, load_settings, quiet_libraries
from pipeline.drafting.commands import add_commands as add_draft_commands
from pipeline.errors import DigitizeError, ExitCode, exit_code_for
from pipeline.models import BatchSummary, RecordResult, RecordStatus

if TYPE_CHECKING:  # the import itself is lazy: `digitize --help` must not load SQLAlchemy
    from pipeline.checks.reference import ImportReport
    from pipeline.store.fixity import FixityReport

log = logging.getLogger("pipeline")

DEMO_AGENCY = "000.00.12.H12"
BATCH_DAG = "digitize_batch"


def _record_json(result: RecordResult) -> dict[str, object]:
    return {
        "record_id": result.record_id,
        "status": result.status.value,
        "pdf": result.pdf_path,
        "version": result.version,
        "pages": result.page_count,
        "rotation": [p.rotation for p in result.pages],
        "skew": [p.skew for p in result.pages],
        "ocr_mean_confidence": result.mean_confidence,
        "already_archived": result.already_archived,
        "signature_level": result.signature_level,
        "signed_by": result.signed_by,
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

    from pipeline.batch import run_batch
    started = time.monotonic()
    if args.jobs:
        settings = settings.model_copy(update={"ocr_jobs": args.jobs})
    with Progress(disable=args.json or not sys.stderr.isatty(), transient=True) as bar:
        job = bar.add_task("Số hóa", total=None)
        summary = run_batch(
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
    from pipeline.demo import samples
    batch = samples.generate_batch(Path(args.out), agency_code=args.agency,
                                   n_records=args.records, seed=args.seed)
    print(batch.batch_dir)
    return ExitCode.ok


def cmd_bench(args: argparse.Namespace, settings: Settings) -> ExitCode:
    from pipeline.demo import bench
    return ExitCode(bench.main(args.passthrough))


IMPORT_TITLES = {"catalogue": "Danh mục thủ tục", "agencies": "Danh sách cơ quan",
                 "inventory": "Kiểm đếm"}


def _print_import_report(report: ImportReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{IMPORT_TITLES[report.kind]} — {report.rows} dòng, {report.seconds:.1f} s")
    for column in ("Thêm mới", "Thay đổi", "Không đổi", "Bị từ chối"):
        table.add_column(column, justify="right")
    table.add_row(str(report.added), str(report.changed), str(report.unchanged), str(report.rejected))
    console = Console()
    console.print(report.file, markup=False, highlight=False)
    console.print(table)
    for problem in report.problems:
        console.print(problem.message, markup=False, highlight=False)


def cmd_import(args: argparse.Namespace, settings: Settings) -> ExitCode:
    from pipeline.checks import reference
    from pipeline.store import warehouse
    warehouse.migrate(settings.warehouse_url)
    report = reference.IMPORTERS[args.kind](settings.warehouse_url, Path(args.file))
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        _print_import_report(report)
    return ExitCode.some_quarantined if report.rejected else ExitCode.ok


def cmd_cover_sheets(args: argparse.Namespace, settings: Settings) -> ExitCode:
    from pipeline.intake import coversheets
    report = coversheets.write_cover_sheets(settings, args.agency, Path(args.inventory),
                                            Path(args.out))
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        print("\n".join(coversheets.summary_lines(report)))
    return ExitCode.some_quarantined if report.rejected else ExitCode.ok


REPORT_FORMATS = ("xlsx", "csv", "json", "html")  # pipeline.reporting.report.FORMATS, without importing it


def _quarter(text: str) -> str:
    """argparse type of --quarter: a bad quarter is a usage error (exit 2) naming the form."""
    from pipeline.reporting.progress import parse_quarter

    try:
        return parse_quarter(text).label
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def cmd_report(args: argparse.Namespace, settings: Settings) -> ExitCode:
    from pipeline.errors import ConfigError
    from pipeline.reporting import progress, report
    from pipeline.store import warehouse
    from pipeline.store.archive import atomic_write_bytes

    out = Path(args.out) if args.out else None
    suffix = out.suffix.lower().lstrip(".") if out else ""
    fmt = args.format or (suffix if suffix in REPORT_FORMATS else "xlsx")
    out = out or report.report_path(settings.dir("reports"), args.quarter, fmt)
    plan = settings.plan  # a broken plan stops here, naming the file and the field
    warehouse.migrate(settings.warehouse_url)
    data = progress.quarter_report(settings.warehouse_url, args.quarter, plan)
    try:
        data = progress.filter_report(data, level=args.level, agency=args.agency, phase=args.phase)
    except ValueError as exc:
        raise ConfigError(f"digitize report: {exc}") from exc
    atomic_write_bytes(out, report.render(data, fmt))
    total = data.totals[-1] if data.totals else None
    print(f"{data.quarter_label} ({data.as_of}): {out}")
    if total is not None:
        percent = f"{total.percent:.1f}%" if total.percent is not None else "—"
        print(f"  {total.digitized} / {total.inventoried} đã số hóa ({percent}), "
              f"{total.quarantined} cần xử lý, {len(data.choices.agencies)} cơ quan")
    return ExitCode.ok


def _print_fixity(report: FixityReport, paths: dict[str, str]) -> None:
    from rich.console import Console
    from rich.table import Table

    from pipeline.store.fixity import KIND_NAMES, PROBLEM_NAMES, summary_lines

    console = Console()
    head, verdict, *_ = summary_lines(report)
    console.print(head, markup=False, highlight=False)
    if report.entries:
        table = Table(title="Tệp có vấn đề")
        for column in ("Vấn đề", "Loại", "Đường dẫn", "Hồ sơ / lô"):
            table.add_column(column, overflow="fold")
        for e in report.entries:
            table.add_row(PROBLEM_NAMES[e.problem], KIND_NAMES[e.kind], e.path, e.owner)
        console.print(table)
    console.print(verdict, markup=False, highlight=False)
    console.print(f"Báo cáo: {paths['json']} và {paths['csv']}", markup=False, highlight=False)


def cmd_fixity(args: argparse.Namespace, settings: Settings) -> ExitCode:
    from pipeline.store import fixity
    report = fixity.audit(settings)
    paths = fixity.write_report(settings, report, Path(args.out) if args.out else None)
    if args.json:
        print(fixity.render_json(report).decode("utf-8"))
    else:
        _print_fixity(report, paths)
    return ExitCode.ok if report.ok else ExitCode.some_quarantined


def cmd_roles(args: argparse.Namespace, settings: Settings) -> ExitCode:
    from pipeline.store import roles
    roles.apply_roles(settings.warehouse_url)
    print(f"roles {roles.LOADER} and {roles.REPORTING} applied to {settings.warehouse_url}")
    return ExitCode.ok


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> ExitCode:
    from pipeline.store import warehouse
    warehouse.migrate(settings.warehouse_url)
    print(f"warehouse at latest schema: {settings.warehouse_url}")
    return ExitCode.ok


# Files under DATA/airflow/ that every Airflow process of this checkout shares (owner-only).
AIRFLOW_SECRETS_FILE = "secrets.json"
ADMIN_PASSWORD_FILE = "admin-password.json"
ADMIN_PASSWORD_ENV = "DIGITIZE_AIRFLOW_ADMIN_PASSWORD"
# Airflow's own file when no password is given: [core] simple_auth_manager_passwords_file unset
GENERATED_PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
ADMIN_USER = "admin"
PRIVATE = 0o600  # the secrets and passwords files: owner-only
# Each [section] key that all processes must share, as its variable, and how to make one. Unset,
# Airflow invents one per process: the scheduler signs each task's token with its own JWT secret,
# the API server checks it with another, and every task fails ("Invalid auth token: Signature
# verification failed"); the API server signs its log requests to the log servers with
# [api] secret_key, which they then refuse.
SHARED_SECRETS = {
    "AIRFLOW__API_AUTH__JWT_SECRET": lambda: secrets.token_urlsafe(48),
    "AIRFLOW__API__SECRET_KEY": lambda: secrets.token_urlsafe(48),
}
# Set any of these and the deployment signs its tokens itself (asymmetric keys, a secrets
# backend, a command): a JWT secret of ours would clash with it ("mutually exclusive").
_OWN_JWT_SETTINGS = ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API_AUTH__JWT_SECRET_CMD",
                     "AIRFLOW__API_AUTH__JWT_SECRET_SECRET", "AIRFLOW__API_AUTH__JWT_PRIVATE_KEY_PATH")
_OWN_SETTINGS = {
    "AIRFLOW__API_AUTH__JWT_SECRET": _OWN_JWT_SETTINGS,
    "AIRFLOW__API__SECRET_KEY": ("AIRFLOW__API__SECRET_KEY", "AIRFLOW__API__SECRET_KEY_CMD",
                                 "AIRFLOW__API__SECRET_KEY_SECRET"),
}


def airflow_secrets(home: Path) -> dict[str, str]:
    """The secrets every Airflow process of this checkout shares, generated once into
    ``home/secrets.json`` (0600) and read from there ever after; a key added later is added to
    the file, the ones there never change (tokens already handed out stay valid)."""
    from pipeline.store import archive
    path = home / AIRFLOW_SECRETS_FILE
    for _ in range(3):  # created meanwhile by another process: read again
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            stored = {}
        missing = {k: make() for k, make in SHARED_SECRETS.items() if not stored.get(k)}
        if not missing:
            return {k: str(stored[k]) for k in SHARED_SECRETS}
        data = json.dumps({**stored, **missing}, indent=1).encode()
        if stored:  # only keys that were missing are added: the others are kept
            archive.atomic_write_bytes(path, data, PRIVATE)
        else:
            archive.write_once(path, data, PRIVATE)
    raise OSError(f"{path}: cannot be written and read back")


def _admin_login(env: dict[str, str], home: Path) -> None:
    """The simple auth manager's account ``admin`` (role admin), whose password is
    ``DIGITIZE_AIRFLOW_ADMIN_PASSWORD`` when set (kept in DATA/airflow/admin-password.json) or
    else generated once into Airflow's own DATA/airflow/simple_auth_manager_passwords.json.generated.
    We write both files, owner-only: Airflow would create its file readable by everyone (and
    ``airflow standalone`` would print the password only once, among the components' output)."""
    from pipeline.store import archive
    env.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", f"{ADMIN_USER}:admin")
    if "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in env:
        return  # the deployment's own file
    users = {u.split(":")[0].strip() for u in env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",")}
    password = env.get(ADMIN_PASSWORD_ENV)
    if not password:
        path = home / GENERATED_PASSWORDS_FILE
        if ADMIN_USER in users:
            generated = json.dumps({ADMIN_USER: secrets.token_urlsafe(12)}) + "\n"
            archive.write_once(path, generated.encode(), PRIVATE)
        with contextlib.suppress(OSError):  # one Airflow created before: readable by everyone
            path.chmod(0o600)
        return
    path = home / ADMIN_PASSWORD_FILE
    try:
        # Airflow adds the generated passwords of any other user named in the setting here
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        stored = {}
    if stored.get(ADMIN_USER) != password:
        archive.atomic_write_bytes(
            path, (json.dumps({**stored, ADMIN_USER: password}) + "\n").encode(), PRIVATE)
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(path)


def airflow_env(settings: Settings) -> dict[str, str]:
    """Environment for the project's Airflow: its airflow.cfg, dags/ and plugins/, home in DATA,
    this interpreter's ``bin`` first on PATH (``airflow standalone`` starts its components as
    ``airflow`` by name: without the virtualenv on PATH they die with FileNotFoundError), the
    secrets every process must share, and the admin login."""
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
    # not resolved: a virtualenv's python is a symlink to the system's, whose bin has no airflow
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, *(p for p in env.get("PATH", "").split(os.pathsep)
                                              if p and p != bin_dir)])
    env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home / 'airflow.db'}")
    # The DAGs' warehouse connection (dags/digitize_common.py), unless the deployment defines it.
    env.setdefault("AIRFLOW_CONN_DIGITIZE_WAREHOUSE", json.dumps(
        {"conn_type": "generic", "extra": {"sqlalchemy_url": settings.warehouse_url}}))
    wanted = [k for k in SHARED_SECRETS if not any(own in env for own in _OWN_SETTINGS[k])]
    if wanted:
        shared = airflow_secrets(home)
        env.update({k: shared[k] for k in wanted})
    # Tasks reach the API server at [core] execution_api_server_url, by default port 8080 whatever
    # [api] port says: another port alone would leave every task unable to start.
    if ("AIRFLOW__API__PORT" in env and "AIRFLOW__API__BASE_URL" not in env
            and "AIRFLOW__CORE__EXECUTION_API_SERVER_URL" not in env):
        host = env.get("AIRFLOW__API__HOST", "").strip("[]")
        host = "localhost" if host in ("", "0.0.0.0", "::") else f"[{host}]" if ":" in host else host
        env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = \
            f"http://{host}:{env['AIRFLOW__API__PORT']}/execution/"
    _admin_login(env, home)
    return env


def _airflow_exe() -> str:
    """This interpreter's ``airflow`` (the one installed with this package), not whichever
    ``airflow`` comes first on PATH; PATH only when there is none beside it."""
    beside = Path(sys.executable).with_name("airflow")
    return str(beside) if beside.exists() else (shutil.which("airflow") or str(beside))


def airflow(settings: Settings, *args: str) -> None:
    """Run an ``airflow`` command for this project; its output goes straight to the terminal."""
    subprocess.run([_airflow_exe(), *args], env=airflow_env(settings), check=True)


def prepare_airflow(settings: Settings) -> None:
    """Warehouse and metadata database at the latest schema, and the ``ocr`` pool sized to the
    cores (``DIGITIZE_OCR_POOL_SLOTS``, default the cores of this machine)."""
    from pipeline.store import warehouse
    # Once, before any task: at the first start the scheduler runs the watcher, the report and
    # the fixity audit at once, and each task migrating a new SQLite warehouse on its own
    # collided ("table agencies already exists", a failed try of the audit).
    warehouse.migrate(settings.warehouse_url)
    airflow(settings, "db", "migrate")
    airflow(settings, "pools", "set", "ocr", str(settings.ocr_pool_slots or settings.jobs),
            "OCR slots (one per core)")


def cmd_airflow(args: argparse.Namespace, settings: Settings) -> ExitCode:
    if not args.no_prepare:
        prepare_airflow(settings)
    # The airflow command replaces this process, so that a service manager's signals (stop =
    # SIGTERM: a Celery worker finishes its running tasks first) reach it directly.
    exe = _airflow_exe()
    env = airflow_env(settings)
    if (args.passthrough[:1] == ["standalone"]
            and env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == f"{ADMIN_USER}:admin"):
        _standalone_banner(env)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(exe, [exe, *args.passthrough], env)
    return ExitCode.unexpected  # not reached


def _standalone_banner(env: dict[str, str]) -> None:
    """Where the UI is and where its password is: Airflow prints neither plainly."""
    port = env.get("AIRFLOW__API__PORT", "8080")
    if env.get(ADMIN_PASSWORD_ENV):
        where = f"password: the value of {ADMIN_PASSWORD_ENV}"
    else:
        where = f"password in {Path(env['AIRFLOW_HOME']) / GENERATED_PASSWORDS_FILE}"
    print(f"Airflow UI: http://localhost:{port}/  user {ADMIN_USER}, {where}", flush=True)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> ExitCode:
    from pipeline.checks import reference
    from pipeline.demo import samples
    from pipeline.reporting import progress
    from pipeline.store import warehouse
    started = time.monotonic()
    # The batch is validated against the catalogue and counted against the inventory: load the
    # illustrative reference samples first (idempotent, so a second demo changes nothing).
    warehouse.migrate(settings.warehouse_url)
    for report in reference.import_samples(settings.warehouse_url):
        print(f"{IMPORT_TITLES[report.kind]} ({Path(report.file).name}): {report.added} thêm mới, "
              f"{report.changed} thay đổi, {report.unchanged} không đổi, {report.rejected} bị từ chối")
    batch_id = f"DEMO-{time.strftime('%Y%m%d-%H%M%S')}"
    seed = args.seed if args.seed is not None else int(time.time())
    inbox = settings.dir("inbox") / DEMO_AGENCY / batch_id
    samples_dir = settings.dir("samples")
    batch = samples.generate_batch(inbox, agency_code=DEMO_AGENCY, batch_id=batch_id,
                                   n_records=args.records, seed=seed,
                                   truth_path=samples_dir / f"{batch_id}.truth.json")
    print(f"Sample batch of {len(batch.records)} records written to {inbox}")
    if args.no_airflow:
        from pipeline.batch import run_batch
        summary = run_batch(settings, inbox)
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


STATUS_NAMES = {"archived": "đã lưu trữ", "quarantined": "đang cách ly", None: "chưa có kết quả"}


def cmd_history(args: argparse.Namespace, settings: Settings) -> ExitCode:
    from rich.console import Console
    from rich.table import Table

    from pipeline.checks.crosscheck import FIELD_NAMES
    from pipeline.store.history import record_history

    stories = record_history(settings.warehouse_url, args.record_id, args.agency)
    if args.json:
        print(json.dumps([s.model_dump(mode="json") for s in stories], ensure_ascii=False, indent=2))
        return ExitCode.ok if stories else ExitCode.bad_usage
    if not stories:
        log.error("Không có hồ sơ %s trong kho dữ liệu%s (no such record).", args.record_id,
                  f" của cơ quan {args.agency}" if args.agency else "")
        return ExitCode.bad_usage
    # piped into a file or another program, lines are not cut at 80 columns
    console = Console(width=None if sys.stdout.isatty() else 200)
    for story in stories:
        state = STATUS_NAMES.get(story.status, story.status)
        console.print(f"[bold]Hồ sơ {story.record_id}[/bold] — cơ quan {story.agency_code}: "
                      f"{state}" + (f" ({story.reason})" if story.reason else "")
                      + (f", phiên bản {story.version}: {story.pdf_path}" if story.version else ""))
        if story.read_fields:
            console.print("  đọc từ trang đầu, không gõ tay: "
                          + ", ".join(FIELD_NAMES.get(n, n) for n in story.read_fields))
        for v in story.versions:
            console.print(f"  phiên bản {v.version} ({v.reason}, lô {v.batch_id}, "
                          f"{v.created_at:%Y-%m-%d %H:%M:%S}): {v.pdf_path} sha256={v.pdf_sha256}")
        table = Table("Thời điểm (UTC)", "Lô", "Bước", "Kết quả", "Giây", "Chi tiết")
        for e in story.events:
            table.add_row(f"{e.at:%Y-%m-%d %H:%M:%S}", e.batch_id, e.stage, e.outcome,
                          f"{e.duration_s:.1f}" if e.duration_s is not None else "", e.detail)
        console.print(table)
    return ExitCode.ok


def cmd_sign(args: argparse.Namespace, settings: Settings) -> ExitCode:
    if args.renew_timestamps:
        if args.batch is not None:
            log.error("--batch không dùng cùng --renew-timestamps: việc gia hạn xét mọi hồ sơ "
                      "B-LTA của cơ quan (--agency) hoặc của tất cả các cơ quan.")
            return ExitCode.bad_usage
        return _renew_timestamps(args, settings)
    if args.agency is None or args.within_days is not None:
        log.error("Cần --agency MÃ_CƠ_QUAN để ký các hồ sơ chưa ký số; --within-days chỉ dùng cùng "
                  "--renew-timestamps.")
        return ExitCode.bad_usage
    from pipeline.signing.backfill import sign_archived, summary_lines

    def said(record_id: str, problem: str | None) -> None:
        print(f"Hồ sơ {record_id}: " + ("đã ký số." if problem is None else problem), flush=True)

    outcome = sign_archived(settings, args.agency, args.batch, on_record=said)
    print(summary_lines(outcome)[0])
    return ExitCode.ok if outcome.ok else ExitCode.some_quarantined


def _renew_timestamps(args: argparse.Namespace, settings: Settings) -> ExitCode:
    from pipeline.signing.renewal import renew_due, summary_lines

    def said(record_id: str, problem: str | None) -> None:
        print(f"Hồ sơ {record_id}: " + ("đã bổ sung hoặc gia hạn lưu trữ dài hạn (B-LTA)."
                                        if problem is None else problem), flush=True)

    outcome = renew_due(settings, within_days=args.within_days, agency_code=args.agency,
                        on_record=said)
    print(summary_lines(outcome)[0])  # the problems were told record by record above
    return ExitCode.ok if outcome.ok else ExitCode.some_quarantined


def cmd_search(args: argparse.Namespace, settings: Settings) -> ExitCode:
    from pipeline.access.search_cli import run
    return run(args, settings)


def cmd_verify(args: argparse.Namespace, settings: Settings) -> ExitCode:
    from pipeline.signing.verify import verify_pdf

    trust = [Path(t) for t in args.trust] or ([settings.sign_trust] if settings.sign_trust else [])
    verdicts, unusable = [], []
    for name in args.paths:
        try:
            verdicts.append(verify_pdf(Path(name), trust))
        except DigitizeError as exc:
            unusable.append({"path": name, "error": str(exc)})
    if args.json:
        print(json.dumps([v.as_json() for v in verdicts] + unusable, ensure_ascii=False,
                         indent=2, default=str))
    else:
        for v in verdicts:
            print("\n".join(v.lines()))
        for u in unusable:
            print(f"{u['path']}: KHÔNG DÙNG ĐƯỢC — {u['error']}")
    if unusable:
        return ExitCode.bad_usage
    return ExitCode.ok if all(v.valid for v in verdicts) else ExitCode.some_quarantined


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
    demo.add_argument("--seed", type=int, default=None,
                      help="sample seed (default: new records each time; the same seed again "
                           "gives the same record ids, which the second time are duplicates)")
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
    af.add_argument("--no-prepare", action="store_true",
                    help="skip the migration and the ocr pool (Celery workers, components "
                         "started after `deploy/celery/run.sh init`)")
    af.set_defaults(func=cmd_airflow, passthrough=[])

    bench = sub.add_parser("bench", help="benchmark our pipeline against plain OCRmyPDF",
                           add_help=False,
                           description="Generates a varied corpus and measures our pipeline, "
                                       "plain OCRmyPDF and Tesseract alone in the same run; "
                                       "`digitize bench --help` lists its options.")
    bench.set_defaults(func=cmd_bench, passthrough=[])

    for kind, what, help_ in (
        ("catalogue", "procedure catalogue (danh mục TTHC)",
         "Columns: Mã thủ tục/procedure_code, Tên thủ tục/name, Cấp thực hiện/levels, Lĩnh "
         "vực/field, Cơ quan thực hiện/implementing_agency, Hiệu lực từ/valid_from, Hiệu lực "
         "đến/valid_to."),
        ("agencies", "agency registry (mã định danh cơ quan)",
         "Columns: Mã định danh/code, Tên cơ quan/name, Cấp/level, Cơ quan cấp trên/parent_code."),
        ("inventory", "inventory (kiểm đếm) of still-valid results",
         "Columns: Mã cơ quan/agency_code, Năm ban hành/issue_year, Mã TTHC/procedure_code, Số "
         "lượng còn hiệu lực/still_valid_count. Import agencies and catalogue first."),
    ):
        ref = sub.add_parser(kind, help=f"import the {what}")
        ref_sub = ref.add_subparsers(dest="action", required=True, metavar="ACTION")
        imp = ref_sub.add_parser(
            "import", help=f"import the {what} from a CSV or XLSX file",
            description=f"Check every row of the {what} file (CSV UTF-8 with ',' or ';', or the "
                        f"first sheet of an .xlsx) and upsert the good rows. {help_} Rejected rows "
                        "are listed with line, column and what to fix; running it again is safe. "
                        "Samples: schemas/reference/.",
            epilog="Exit codes: 0 every row imported or unchanged, 3 some rows rejected, 2 the file "
                   "cannot be used (format, encoding, missing column), 1 unexpected error.")
        imp.add_argument("file", help="the CSV or XLSX file")
        imp.add_argument("--json", action="store_true", help="print the report as JSON")
        imp.set_defaults(func=cmd_import, kind=kind)

    cover = sub.add_parser(
        "cover-sheets", help="print QR cover sheets for scanning records as one stack",
        description="Writes one printable A4 cover sheet per record of the list (CSV UTF-8 with ',' "
                    "or ';', or the first sheet of an .xlsx; columns Mã hồ sơ/record_id, Mã "
                    "TTHC/procedure_code, Số ký hiệu/result_number, Ngày ban hành/issued_on, "
                    "optional Còn hiệu lực/still_valid; a manifest.csv will do). The clerk puts each "
                    "sheet in front of its record's paper and scans the stack at once (scanner "
                    "profile 'stack'). Records already archived for the agency, rows no longer valid "
                    "and rejected rows get no sheet; rejected rows are listed with line, column and "
                    "what to fix.",
        epilog="Exit codes: 0 written (or nothing left to print), 3 some rows rejected, 2 the file "
               "or the agency cannot be used, 1 unexpected error.")
    cover.add_argument("--agency", required=True, metavar="CODE",
                       help="agency code in the agency registry, e.g. 000.00.12.H12")
    cover.add_argument("--inventory", required=True, metavar="FILE",
                       help="the list of records to scan (CSV or XLSX)")
    cover.add_argument("--out", required=True, metavar="FILE", help="the PDF to write")
    cover.add_argument("--json", action="store_true", help="print the report as JSON")
    cover.set_defaults(func=cmd_cover_sheets)

    rep = sub.add_parser(
        "report", help="write the quarterly progress report (xlsx, csv, json or html)",
        description="The progress report of one quarter for Sở TT&TT: per agency, level and phase, "
                    "inventoried, digitized, percentage against the plan's targets, pages, records "
                    "to review and why, pace per working day and forecast completion. The phase "
                    "plan is DIGITIZE_PHASE_PLAN (default schemas/phase_plan.yaml). The same quarter "
                    "gives the same file whenever it is run again.",
        epilog="Exit codes: 0 written, 2 bad usage or configuration (quarter, phase plan, filter), "
               "1 unexpected error.")
    rep.add_argument("--quarter", required=True, type=_quarter, metavar="YYYYQn",
                     help="the quarter, e.g. 2023Q2")
    rep.add_argument("--format", choices=REPORT_FORMATS,
                     help="file format (default: from the suffix of --out, else xlsx)")
    rep.add_argument("--out", metavar="FILE",
                     help="file to write (default DATA/reports/bao-cao-tien-do-<quarter>.<format>)")
    rep.add_argument("--level", help="only the agencies of one level: tinh, huyen or xa")
    rep.add_argument("--agency", help="only one agency (its code, e.g. 000.00.12.H12)")
    rep.add_argument("--phase", help="only one phase of the plan (its id, e.g. GD2)")
    rep.set_defaults(func=cmd_report)

    hist = sub.add_parser(
        "history", help="a record's whole story: every attempt, every archived version",
        description="Prints every event of the record (one row per attempt of a stage, oldest "
                    "first: registration problems, quarantines with their reasons, archiving) "
                    "and every archived version of its PDF with its SHA-256.",
        epilog="Exit codes: 0 found, 2 no such record.")
    hist.add_argument("record_id", help="the record id (mã hồ sơ) as in the manifest")
    hist.add_argument("--agency", metavar="CODE", help="only this agency's record of that id")
    hist.add_argument("--json", action="store_true", help="print the story as JSON")
    hist.set_defaults(func=cmd_history)

    sign = sub.add_parser(
        "sign", help="ký số: sign an agency's records archived unsigned",
        description="Signs every archived record of the agency that is still unsigned (archived "
                    "before it had a key) with its key (DIGITIZE_SIGN_KEY or the table "
                    "DIGITIZE_SIGN_KEYS): each signed file is a new version of the record, the "
                    "unsigned one stays. Records already signed are left alone. With "
                    "--renew-timestamps: records kept long term brought to B-LTA where their "
                    "batch left them B-T, and a new document timestamp (with the last one's "
                    "validation data) for each B-LTA record whose timestamp certificate expires "
                    "soon, each again as a new version.",
        epilog="Exit codes: 0 all signed (renewed), 3 some could not be signed (renewed; each is "
               "named), 2 no key or a key that cannot sign (no timestamp server or trust roots "
               "to renew), 4 token or timestamp server away (run again later).")
    sign.add_argument("--agency", metavar="CODE",
                      help="the agency's code (required, except with --renew-timestamps: then "
                           "only this agency's records)")
    sign.add_argument("--batch", metavar="ID", help="only the records of this batch")
    sign.add_argument("--renew-timestamps", action="store_true",
                      help="bring B-T records of agencies kept long term to B-LTA, and renew the "
                           "archive timestamps of B-LTA records whose timestamp certificate "
                           "expires within DIGITIZE_SIGN_RENEW_DAYS")
    sign.add_argument("--within-days", type=int, metavar="N",
                      help="with --renew-timestamps: renew those expiring within N days instead")
    sign.set_defaults(func=cmd_sign)

    verify = sub.add_parser(
        "verify", help="check the digital signature of archived PDFs",
        description="For each PDF: intact since signing, signer, signing time, timestamp, "
                    "certificate chain trusted, revocation checked (its absence is a warning), "
                    "PDF/A identification present.",
        epilog="Exit codes: 0 all valid, 3 some not valid, 2 unusable input (not a PDF).")
    verify.add_argument("paths", nargs="+", metavar="PATH", help="PDF files")
    verify.add_argument("--trust", action="append", default=[], metavar="CA.pem",
                        help="trusted CA certificates, PEM (default DIGITIZE_SIGN_TRUST)")
    verify.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    verify.set_defaults(func=cmd_verify)

    migrate = sub.add_parser("migrate", help="create or upgrade the warehouse schema")
    migrate.set_defaults(func=cmd_migrate)
    add_commands(sub)  # serve, tokens: pipeline/access/commands.py
    add_search_parser(sub).set_defaults(func=cmd_search)  # pipeline/access/search_cli.py
    add_draft_commands(sub)  # manifest draft: pipeline/drafting/commands.py

    fix = sub.add_parser(
        "fixity", help="re-hash the archive and the source scans against the warehouse",
        description="Hashes every archived PDF/A and every registered source scan again and "
                    "compares them with the SHA-256 recorded in the warehouse: files missing, "
                    "changed, or on disk but unknown to the warehouse. The report goes to "
                    "DATA/reports/fixity-<date>.json and .csv.",
        epilog="Exit codes: 0 nothing wrong, 3 problems found, 2 bad configuration, 1 unexpected "
               "error.")
    fix.add_argument("--json", action="store_true", help="print the report as JSON")
    fix.add_argument("--out", metavar="FILE",
                     help="write the report to FILE (.json) and its .csv beside it instead")
    fix.set_defaults(func=cmd_fixity)

    roles = sub.add_parser("roles", help="PostgreSQL access roles (sql/roles.sql)")
    roles_sub = roles.add_subparsers(dest="action", required=True, metavar="ACTION")
    roles_sub.add_parser(
        "apply", help="create or refresh the roles digitize_loader and digitize_reporting",
        description="Creates the NOLOGIN roles digitize_loader (reads and writes the tables) and "
                    "digitize_reporting (the aggregate progress views only, no personal data) on "
                    "the PostgreSQL warehouse DIGITIZE_DB_URL and grants them; safe to repeat. Run "
                    "it as the owner of the tables after each `digitize migrate`.",
    ).set_defaults(func=cmd_roles)
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
    quiet_libraries()
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
