"""The multi-machine deployment (deploy/celery/) for real, on this machine: API server, scheduler,
DAG processor and TWO Celery workers as separate processes started by ``deploy/celery/run.sh``,
Redis as the broker, a fresh PostgreSQL database as Airflow's metadata database and Celery result
backend, another as the warehouse. Two sample batches are dropped into the inbox; the inbox
watcher (``digitize_watch``) starts one ``digitize_batch`` run for each. One record of the second
batch names a procedure that is not in the catalogue: its task fails (map index = its record
id, the log opening with the Vietnamese explanation) while the others succeed; the archivist
fixes the row and clears the failed tasks, and the re-run archives it with no duplicate rows or
files. The test checks that every record was archived and that both workers ran
``process_record`` tasks.

Needs PostgreSQL (DIGITIZE_TEST_PG_URL) and Redis (DIGITIZE_TEST_REDIS_URL, default
redis://127.0.0.1:6379/5: that database is flushed). A few minutes on 2 cores.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import yaml
from conftest import QUICK_DPIS, import_reference, skip_or_fail
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from pipeline.cli import airflow_env
from pipeline.config import PROJECT_DIR, load_settings
from pipeline.demo import samples
from pipeline.intake import inbox
from pipeline.store import archive, warehouse

pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.postgres]

DEPLOY = PROJECT_DIR / "deploy" / "celery"
REDIS_URL = os.environ.get("DIGITIZE_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
AGENCY = "000.00.12.H12"
BATCHES = {"CELERY-A": 101, "CELERY-B": 202}  # batch id -> sample seed
RECORDS_PER_BATCH = 2
WORKERS = ("w1", "w2")
RUNS_TIMEOUT = 15 * 60
REVIEW_BATCH = "CELERY-B"
BAD_CODE = "9.999999"
SETTLE_SECONDS = 5
# the DAG ids the dags/ folder defines (digitize_batch, digitize_watch, ...)
PROJECT_DAGS = {m for f in (PROJECT_DIR / "dags").glob("*.py")
                for m in re.findall(r'dag_id="(\w+)"', f.read_text(encoding="utf-8"))}
# task_instance.hostname is what the task's own process reports. On separate machines that is
# each machine's name; here both workers share one, so each worker's tasks report its Celery
# node name instead (test-only [core] hostname_callable, loaded through PYTHONPATH).
HOSTNAME_MODULE = '''\
import os
import socket


def hostname() -> str:
    return os.environ.get("DIGITIZE_TEST_WORKER_NAME") or socket.getfqdn()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"({exc})"


@pytest.fixture
def redis_db() -> Iterator[str]:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no server"
        skip_or_fail(f"Redis not reachable at {REDIS_URL}: {exc}")
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture
def databases(pg_server: str) -> Iterator[tuple[str, str]]:
    """Two fresh PostgreSQL databases: Airflow's metadata (+ Celery results) and the warehouse."""
    suffix = uuid.uuid4().hex[:10]
    names = (f"digitize_airflow_{suffix}", f"digitize_wh_{suffix}")
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    urls = tuple(make_url(pg_server).set(database=n).render_as_string(hide_password=False)
                 for n in names)
    yield urls  # type: ignore[misc]
    warehouse.dispose(urls[1])
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class Deployment:
    """The components as process groups, each with its own log file; stops them all."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, role: str, *args: str, env: dict[str, str] | None = None) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            [str(DEPLOY / "run.sh"), role, *args], env={**self.env, **(env or {})},
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        assert not dead, f"components exited: {dead}"

    def log_text(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(encoding="utf-8", errors="replace")

    def wait_for(self, what: str, check: Callable[[], object], timeout: float,
                 every: float = 2.0) -> object:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(every)

    def stop(self) -> None:
        # Task processes run in process groups of their own: collect every descendant first.
        family: list[psutil.Process] = []
        for proc in self.procs.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                family += psutil.Process(proc.pid).children(recursive=True)
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 45
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        _, alive = psutil.wait_procs(family, timeout=5)
        for leftover in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                leftover.kill()

    def print_logs(self, airflow_home: Path) -> None:
        for name in self.procs:
            print(f"\n===== {name} (last lines of {self.logs / (name + '.log')}) =====")
            print(tail(self.logs / f"{name}.log"))
        for task_log in sorted((airflow_home / "logs").glob("dag_id=*/**/*.log")):
            content = task_log.read_text(encoding="utf-8", errors="replace")
            if '"level":"error"' in content or "ERROR" in content:
                print(f"\n===== task log {task_log} =====")
                print(tail(task_log, 40))


def test_two_celery_workers_archive_two_batches(tmp_path: Path, databases: tuple[str, str],
                                                 redis_db: str) -> None:
    started = time.monotonic()
    assert {"digitize_batch", "digitize_watch"} <= PROJECT_DAGS, PROJECT_DAGS
    meta_url, warehouse_url = databases
    data = tmp_path / "DATA"
    data.mkdir()
    settings = load_settings(data_dir=data, db_url=warehouse_url)

    # The deployment's environment file: the template with this machine's values. Every value
    # the test needs must be one the template documents.
    port = free_port()
    from cryptography.fernet import Fernet

    overrides = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta_url,
        "AIRFLOW__CELERY__BROKER_URL": redis_db,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{meta_url}",
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(48),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "DIGITIZE_OCR_POOL_SLOTS": "4",
        "DIGITIZE_DATA_DIR": str(data),
        "DIGITIZE_DB_URL": warehouse_url,
    }
    template = read_env_file(DEPLOY / "airflow.env.example")
    assert template["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert set(overrides) <= set(template), set(overrides) - set(template)
    values = {**template, **overrides}
    env_file = tmp_path / "airflow.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")

    hostname_dir = tmp_path / "hostname_module"
    hostname_dir.mkdir()
    (hostname_dir / "digitize_test_hostname.py").write_text(HOSTNAME_MODULE, encoding="utf-8")

    logs = tmp_path / "logs"
    logs.mkdir()
    # The scanner profile with a short settle time: the watcher takes a batch once nothing in it
    # has changed for settle_seconds (120 s in the real profile).
    profiles = tmp_path / "scanner_profiles"
    shutil.copytree(PROJECT_DIR / "scanner_profiles", profiles)
    profile = yaml.safe_load((profiles / f"{values['DIGITIZE_PROFILE']}.yaml").read_text(encoding="utf-8"))
    profile["settle_seconds"] = SETTLE_SECONDS
    (profiles / f"{values['DIGITIZE_PROFILE']}.yaml").write_text(
        yaml.safe_dump(profile, allow_unicode=True), encoding="utf-8")

    base_env = {**os.environ, "DIGITIZE_AIRFLOW_ENV": str(env_file),
                "DIGITIZE_BIN": str(Path(sys.executable).with_name("digitize")),
                "DIGITIZE_PROFILES_DIR": str(profiles),
                "AIRFLOW__API__WORKERS": "1"}  # one machine with 2 cores: no need for 4
    deployment = Deployment(base_env, logs)
    airflow_home = Path(airflow_env(settings)["AIRFLOW_HOME"])  # as run.sh's `digitize airflow`
    meta: Engine = create_engine(meta_url)

    def query(sql: str, **params: object) -> list[tuple]:
        with meta.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]

    try:
        # 1. sample batches and the reference data they are validated against
        batches = {
            batch_id: samples.generate_batch(
                settings.dir("inbox") / AGENCY / batch_id, agency_code=AGENCY, batch_id=batch_id,
                n_records=RECORDS_PER_BATCH, seed=seed, truth_path=tmp_path / f"{batch_id}.truth.json",
                vietnamese_headers=False, dpis=QUICK_DPIS)
            for batch_id, seed in BATCHES.items()
        }
        # the clerk typed a code that is not in the catalogue on one row of the second batch
        review_batch = batches[REVIEW_BATCH]
        bad = review_batch.records[1]
        manifest = review_batch.batch_dir / "manifest.csv"
        good_manifest = manifest.read_text(encoding="utf-8")
        manifest.write_text(good_manifest.replace(f"{bad.record_id},{bad.procedure_code},",
                                                  f"{bad.record_id},{BAD_CODE},"), encoding="utf-8")
        assert BAD_CODE in manifest.read_text(encoding="utf-8")
        # the watcher names each run after its batch (small batches: one run each)
        expected_runs = {run.run_id for b in batches.values() for run in inbox.batch_runs(b.batch_dir)}
        assert len(expected_runs) == len(BATCHES)
        import_reference(data, warehouse_url)

        # 2. run.sh init: metadata database migrated, "ocr" pool = DIGITIZE_OCR_POOL_SLOTS
        init = subprocess.run([str(DEPLOY / "run.sh"), "init"], env=base_env, capture_output=True,
                              text=True, timeout=600)
        assert init.returncode == 0, (init.stdout + init.stderr)[-4000:]
        assert query("select slots from slot_pool where pool = 'ocr'") == [(4,)]
        print(f"[{time.monotonic() - started:.0f} s] metadata database migrated, ocr pool = 4")

        # 3. the components
        deployment.start("api-server", "api-server")
        deployment.start("scheduler", "scheduler")
        deployment.start("dag-processor", "dag-processor")
        for name in WORKERS:
            deployment.start(name, "worker", "--celery-hostname", f"{name}@%h", "--concurrency", "1",
                             env={"PYTHONPATH": str(hostname_dir),
                                  "AIRFLOW__CORE__HOSTNAME_CALLABLE": "digitize_test_hostname.hostname",
                                  "DIGITIZE_TEST_WORKER_NAME": f"{name}@{socket.gethostname()}",
                                  # both log servers on one machine: one port each
                                  "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())})

        def api_healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health",
                                            timeout=5) as response:
                    return response.status == 200
            except OSError:
                return False

        deployment.wait_for("the API server", api_healthy, timeout=240)
        for name in WORKERS:
            deployment.wait_for(f"worker {name}", lambda name=name: " ready." in deployment.log_text(name),
                                timeout=240)

        def dags_parsed() -> bool:
            errors = query("select filename, stacktrace from import_error")
            assert not errors, f"DAG import errors: {errors}"
            parsed = {d for (d,) in query("select d.dag_id from dag d join serialized_dag s "
                                          "on s.dag_id = d.dag_id where not d.is_stale")}
            return parsed >= PROJECT_DAGS

        deployment.wait_for(f"the DAG processor to parse {sorted(PROJECT_DAGS)}", dags_parsed,
                            timeout=240)
        # airflow.cfg: dags_are_paused_at_creation = False, so the watcher starts on its own
        assert query("select dag_id, is_paused from dag order by dag_id") == [
            (d, False) for d in sorted(PROJECT_DAGS)]
        print(f"[{time.monotonic() - started:.0f} s] API server, scheduler, DAG processor, "
              f"2 workers up; {sorted(PROJECT_DAGS)} parsed and unpaused")

        # 4. digitize_watch finds the settled batches and starts one digitize_batch run for each:
        # its first (scheduled) look sees them and starts their settle time; the look after it
        # is triggered, as the archivist's Trigger button starts one, not left to the schedule
        # (2 minutes of the test's 3 were spent waiting for it)
        def first_look_done() -> bool:
            return bool(query("select 1 from dag_run where dag_id = 'digitize_watch' "
                              "and state = 'success'"))

        deployment.wait_for("the watcher's first look", first_look_done, timeout=240)
        time.sleep(SETTLE_SECONDS + 1)
        look = subprocess.run(
            [str(Path(sys.executable).with_name("digitize")), "airflow", "--no-prepare", "dags",
             "trigger", "digitize_watch"], env={**base_env, **values}, capture_output=True,
            text=True, timeout=300)
        assert look.returncode == 0, (look.stdout + look.stderr)[-3000:]

        def runs_finished() -> dict[str, str] | None:
            runs = dict(query("select run_id, state from dag_run where dag_id = 'digitize_batch'"))
            assert set(runs) <= expected_runs, f"unexpected runs: {set(runs) - expected_runs}"
            if set(runs) == expected_runs and set(runs.values()) <= {"success", "failed"}:
                return runs
            return None

        runs = deployment.wait_for("both digitize_batch runs to finish", runs_finished,
                                   timeout=RUNS_TIMEOUT)
        review_run = next(r.run_id for r in inbox.batch_runs(review_batch.batch_dir))
        assert runs == {**dict.fromkeys(expected_runs, "success"), review_run: "failed"}, runs

        # 5. the bad record's own task failed, named by its record id; the others went through
        failed = query("select task_id, map_index, rendered_map_index from task_instance "
                       "where dag_id = 'digitize_batch' and state = 'failed' order by task_id")
        ((finalize_task, _, _), (_, bad_index, bad_name)) = failed  # ordered by task id
        assert (bad_name, finalize_task) == (bad.record_id, "finalize"), failed
        task_log = (airflow_home / "logs" / "dag_id=digitize_batch" / f"run_id={review_run}"
                    / "task_id=process_record" / f"map_index={bad_index}" / "attempt=1.log")
        events = [json.loads(line) for line in task_log.read_text(encoding="utf-8").splitlines()
                  if line.startswith("{")]
        first_said = next(e["event"] for e in events if e.get("level") in ("warning", "error"))
        assert first_said.startswith(
            f"Hồ sơ {bad.record_id} chưa được lưu trữ (catalogue_mismatch):\nDòng 3 của "
            f"manifest.csv: Mã TTHC '{BAD_CODE}' không có trong danh mục"), first_said
        assert first_said.endswith("bấm Clear ô này để chạy lại; hồ sơ đã lưu trữ không bị ảnh hưởng.")
        print(f"[{time.monotonic() - started:.0f} s] {bad.record_id} failed on its own; its log "
              f"opens with: {first_said.splitlines()[0]}")

        # 6. the archivist fixes the row and clears the failed tasks: the run completes
        manifest.write_text(good_manifest, encoding="utf-8")
        clear = subprocess.run(
            [str(Path(sys.executable).with_name("digitize")), "airflow", "--no-prepare", "tasks",
             "clear", "digitize_batch", "--only-failed", "--yes"],  # as Clear on the failed tasks
            env={**base_env, **values}, capture_output=True, text=True, timeout=300)
        assert clear.returncode == 0, (clear.stdout + clear.stderr)[-3000:]

        def review_run_done() -> str | None:
            ((state,),) = query("select state from dag_run where run_id = :r", r=review_run)
            return state if state in ("success", "failed") else None

        assert deployment.wait_for("the cleared run", review_run_done,
                                   timeout=RUNS_TIMEOUT) == "success"
        runs = dict(query("select run_id, state from dag_run where dag_id = 'digitize_batch'"))
        timing = query("select run_id, extract(epoch from start_date - queued_at), "
                       "extract(epoch from end_date - start_date) from dag_run "
                       "where dag_id = 'digitize_batch' order by run_id")
        print(f"[{time.monotonic() - started:.0f} s] runs finished: {runs}; queued -> started, "
              f"started -> ended (s): {[(r, round(q or 0), round(d or 0)) for r, q, d in timing]}")
        states = query("select task_id, map_index, state, hostname from task_instance "
                       "where dag_id = 'digitize_batch' order by task_id, map_index")
        assert set(runs.values()) == {"success"}, states  # type: ignore[union-attr]
        assert {s for _, _, s, _ in states} == {"success"}, states

        # every record archived: warehouse rows, PDFs on the shared DATA, batches moved to done/
        with create_engine(warehouse_url).connect() as conn:
            records = {r.record_id: r for r in conn.execute(text(
                "select record_id, status, pdf_path from records where agency_code = :a"),
                {"a": AGENCY})}
        assert len(records) == len(BATCHES) * RECORDS_PER_BATCH
        # nothing twice: one row per record and page, one PDF per record
        counts = warehouse.row_counts(warehouse_url)
        assert counts["records"] == len(records)
        assert counts["pages"] == sum(len(r.pages) for b in batches.values() for r in b.records)
        assert len(list(settings.dir("archive").rglob("*.pdf"))) == len(records)
        for batch_id, batch in batches.items():
            for record in batch.records:
                row = records[record.record_id]
                assert row.status == "archived", (record.record_id, row.status)
                year = str(record.issued_on.year)
                pdf = archive.archive_path(settings.dir("archive"), AGENCY, int(year),
                                           record.record_id)
                assert pdf.is_file() and Path(row.pdf_path).resolve() == pdf.resolve()
            assert not batch.batch_dir.exists()
            assert (settings.dir("done") / AGENCY / batch_id / "manifest.csv").is_file()

        # the record tasks ran on both workers
        hosts = [h for task_id, _, _, h in states if task_id == "process_record"]
        assert len(hosts) == len(BATCHES) * RECORDS_PER_BATCH
        assert {h.split("@")[0] for h in hosts} == set(WORKERS), hosts
        per_worker = {w: sum(h.startswith(f"{w}@") for h in hosts) for w in WORKERS}
        print(f"[{time.monotonic() - started:.0f} s] {len(records)} records archived; "
              f"process_record tasks per worker: {per_worker}")
    except BaseException:
        deployment.print_logs(airflow_home)
        raise
    finally:
        deployment.stop()
        meta.dispose()
