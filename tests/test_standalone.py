"""``digitize airflow standalone`` on one machine, as a fresh clone runs it (README "Airflow").

Fast tests check what ``airflow_env`` gives every Airflow process: this interpreter's ``bin``
first on PATH, one JWT secret (and API secret key) generated once and kept owner-only under
DATA/airflow/, the admin login, and the execution API on the API server's port.

The slow test starts ``digitize airflow standalone`` by its absolute path from an environment
without the virtualenv (PATH=/usr/bin:/bin), with a temporary DATA folder, free ports and a
scanner profile that settles in a few seconds. It logs in through the REST API with the
generated admin password, sees the watcher's first run succeed, then copies a sample batch into
the inbox file by file keeping its day-old mtimes (as ``cp -a`` would), with watcher runs
(triggered through the REST API) looking at it mid-copy and right after: none may start it. Once
it has settled, the scheduler archives it: the ``digitize_batch`` run succeeds, the records are
in the warehouse and the batch in done/. Headless Chromium (Debian's chromium and
chromedriver, through Selenium) then logs in to the UI and takes a screenshot of the run's grid,
copied to ``docs/screenshots/airflow-batch-run.png``, and of a record task's log.

On the same instance, a second batch of two records, one with a procedure code not in the
catalogue (issue 14, "what it must show"): its run fails, the record's own task and finalize
failed for review. The failed task's log, read through the REST API, opens with the reason in
Vietnamese and what to do (Clear), says the reason once, has no traceback and stays short; its
page in the UI is copied to ``docs/screenshots/nhat-ky-ho-so-loi.png``. The archivist fixes the
row and clears that one task (not finalize): its second try archives the record and brings the
rest up to date on its own: the progress summary, the note moved to resolved/, the batch in
done/ and its warehouse row 'done'.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import yaml
from airflow_server import stop_session, wait_until
from conftest import (
    QUICK_DPIS,
    edit_manifest,
    free_port,
    import_reference,
    start_chromium,
    tail,
    update_docs_screenshot,
)
from sqlalchemy import create_engine, text

from pipeline import cli
from pipeline.config import PROJECT_DIR, Settings, load_settings
from pipeline.demo import samples
from pipeline.intake import inbox
from pipeline.store import archive

DIGITIZE = Path(sys.executable).with_name("digitize")
DOCS_SCREENSHOT = PROJECT_DIR / "docs" / "screenshots" / "airflow-batch-run.png"
LOG_SCREENSHOT = PROJECT_DIR / "docs" / "screenshots" / "nhat-ky-ho-so-loi.png"
AGENCY = "000.00.12.H12"
BATCH = "STANDALONE-1"
RECORDS = 2
# the second batch: its first record's procedure code is not in the catalogue
REVIEW_BATCH = "STANDALONE-2"
BAD_CODE = "9.999999"
# what Airflow itself writes into a task's log around the task's own lines
AIRFLOW_EVENTS = ("Task started", "Log message source details", "DAG bundles loaded",
                  "Filling up the DagBag", "Worker startup parse complete")
SETTLE_SECONDS = 15
# what a fresh login shell has, without the virtualenv
CLEAN_PATH = "/usr/bin:/bin"


# --- what every Airflow process gets (no server) ----------------------------------------------------
def _env_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **extra: str) -> dict[str, str]:
    for name in [n for n in os.environ if n.startswith("AIRFLOW") or n.startswith("DIGITIZE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PATH", CLEAN_PATH)
    for name, value in extra.items():
        monkeypatch.setenv(name, value)
    return cli.airflow_env(load_settings(data_dir=tmp_path / "DATA"))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_process_finds_airflow_and_shares_one_jwt_secret(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env_for(tmp_path, monkeypatch)
    bin_dir = str(Path(sys.executable).parent)
    assert env["PATH"] == f"{bin_dir}:{CLEAN_PATH}"
    assert shutil.which("airflow", path=env["PATH"]) == str(Path(bin_dir) / "airflow")
    home = Path(env["AIRFLOW_HOME"])
    secrets_file = home / cli.AIRFLOW_SECRETS_FILE
    assert _mode(secrets_file) == 0o600 and _mode(home / cli.GENERATED_PASSWORDS_FILE) == 0o600
    jwt, key = env["AIRFLOW__API_AUTH__JWT_SECRET"], env["AIRFLOW__API__SECRET_KEY"]
    assert len(jwt) >= 40 and len(key) >= 40 and jwt != key
    # the next command (another component, a restart) gets the same secrets
    again = _env_for(tmp_path, monkeypatch)
    assert (again["AIRFLOW__API_AUTH__JWT_SECRET"], again["AIRFLOW__API__SECRET_KEY"]) == (jwt, key)
    assert json.loads(secrets_file.read_text(encoding="utf-8")) == {
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt, "AIRFLOW__API__SECRET_KEY": key}
    # a deployment's own secret (or key pair) wins
    own = _env_for(tmp_path, monkeypatch, AIRFLOW__API_AUTH__JWT_PRIVATE_KEY_PATH="/etc/k.pem",
                   AIRFLOW__API__SECRET_KEY="theirs")
    assert "AIRFLOW__API_AUTH__JWT_SECRET" not in own and own["AIRFLOW__API__SECRET_KEY"] == "theirs"
    # the login: user admin, its password generated once, owner-only
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    assert "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" not in env  # Airflow's own file
    generated = json.loads((home / cli.GENERATED_PASSWORDS_FILE).read_text(encoding="utf-8"))
    assert list(generated) == ["admin"] and len(generated["admin"]) >= 16
    assert json.loads((home / cli.GENERATED_PASSWORDS_FILE).read_text(encoding="utf-8")) == generated
    # tasks reach the API server on its port, not on Airflow's default 8080
    assert "AIRFLOW__CORE__EXECUTION_API_SERVER_URL" not in env
    moved = _env_for(tmp_path, monkeypatch, AIRFLOW__API__PORT="18080", AIRFLOW__API__HOST="127.0.0.1")
    assert moved["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"


def test_the_admin_password_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env_for(tmp_path, monkeypatch, DIGITIZE_AIRFLOW_ADMIN_PASSWORD="mật khẩu 1")
    path = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    assert path == Path(env["AIRFLOW_HOME"]) / cli.ADMIN_PASSWORD_FILE and _mode(path) == 0o600
    assert json.loads(path.read_text(encoding="utf-8")) == {"admin": "mật khẩu 1"}
    # a new password replaces the old one; other users' generated passwords stay
    path.write_text(json.dumps({"admin": "mật khẩu 1", "bob": "x"}), encoding="utf-8")
    _env_for(tmp_path, monkeypatch, DIGITIZE_AIRFLOW_ADMIN_PASSWORD="mật khẩu 2")
    assert json.loads(path.read_text(encoding="utf-8")) == {"admin": "mật khẩu 2", "bob": "x"}
    assert _mode(path) == 0o600


# --- the real thing --------------------------------------------------------------------------------
class Standalone:
    """``digitize airflow standalone`` as a process group of its own, its output in a file."""

    def __init__(self, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.env, self.cwd, self.log = env, cwd, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = time.monotonic()

    def start(self) -> None:
        with self.log.open("wb") as out:
            # by its absolute path, as a clerk's shortcut or a service unit would start it
            self.proc = subprocess.Popen([str(DIGITIZE), "airflow", "standalone"], env=self.env,
                                         cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(f"digitize airflow standalone exited ({self.proc.returncode}):\n{tail(self.log)}")
        # standalone outlives its components: one that could not start says so in the output
        output = self.log.read_text(encoding="utf-8", errors="replace")
        for death in ("No such file or directory: 'airflow'", "Address already in use"):
            assert death not in output, tail(self.log)

    def say(self, what: str) -> None:
        print(f"[{time.monotonic() - self.started:5.0f} s] {what}", flush=True)

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
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
        if self.proc is not None:
            stop_session(self.proc)


class Api:
    """Airflow's REST API with the admin's token."""

    def __init__(self, base: str) -> None:
        self.base, self.token = base, ""

    def call(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(f"{self.base}{path}", method=method, headers=headers,
                                         data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def healthy(self) -> bool:
        try:
            return self.call("GET", "/api/v2/monitor/health")[0] == 200
        except OSError:
            return False

    def log_in(self, user: str, password: str) -> None:
        status, body = self.call("POST", "/auth/token", {"username": user, "password": password})
        assert status == 201, (status, body)
        self.token = body["access_token"]

    def runs(self, dag_id: str) -> dict[str, dict[str, Any]]:
        status, body = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100")
        assert status == 200, (status, body)
        return {r["dag_run_id"]: r for r in body["dag_runs"]}

    def trigger(self, dag_id: str, run_id: str) -> None:
        status, body = self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                                 {"dag_run_id": run_id, "logical_date": None, "conf": {}})
        assert status == 200, (status, body)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        status, body = self.call(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances?limit=100")
        assert status == 200, (status, body)
        return body["task_instances"]


def _first_try_log(settings: Settings, dag_id: str, run_id: str, ti: dict[str, Any]) -> str:
    """The end of a task instance's first try's log, as Airflow's file task handler wrote it."""
    task = settings.dir("airflow") / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / \
        f"task_id={ti['task_id']}"
    if ti["map_index"] >= 0:
        task /= f"map_index={ti['map_index']}"
    log = task / "attempt=1.log"
    return log.read_text(encoding="utf-8", errors="replace")[-3000:] if log.is_file() else f"no {log}"


def _copy_keeping_mtimes(source: Path, target: Path, names: list[str]) -> None:
    """``cp -a`` of some files: the day-old mtimes come along, the ctimes are now."""
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(source / name, target / name)
    shutil.copystat(source, target)


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Any]:
    # started only when the batch is done: Chromium and the OCR would share 2 cores
    holder: dict[str, Any] = {}

    def start() -> Any:
        holder["driver"] = start_chromium(window="1400,900")
        return holder["driver"]

    try:
        yield start
    finally:
        if "driver" in holder:
            holder["driver"].quit()


@pytest.mark.slow
@pytest.mark.airflow
def test_standalone_from_a_clean_environment_archives_a_copied_batch(tmp_path: Path,
                                                                     chromium: Any) -> None:
    data = tmp_path / "DATA"
    data.mkdir()
    # the default scanner profile, settling in seconds instead of 2 minutes
    profiles = tmp_path / "scanner_profiles"
    shutil.copytree(PROJECT_DIR / "scanner_profiles", profiles)
    profile = yaml.safe_load((profiles / "default.yaml").read_text(encoding="utf-8"))
    profile["settle_seconds"] = SETTLE_SECONDS
    (profiles / "default.yaml").write_text(yaml.safe_dump(profile, allow_unicode=True), encoding="utf-8")
    warehouse_url = import_reference(data)
    settings = load_settings(data_dir=data)
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "PATH": CLEAN_PATH, "HOME": str(home), "LANG": "C.UTF-8",
        "DIGITIZE_DATA_DIR": str(data),
        "DIGITIZE_PROFILES_DIR": str(profiles),
        "DIGITIZE_UI_BASE_URL": base,
        # every port standalone opens, free ones: other tests and servers may be running
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
    }
    standalone = Standalone(env, tmp_path, tmp_path / "standalone.log")
    api = Api(base)
    batch = samples.generate_batch(tmp_path / "staging" / BATCH, agency_code=AGENCY, batch_id=BATCH,
                                   n_records=RECORDS, seed=14, truth_path=tmp_path / "truth.json",
                                   dpis=QUICK_DPIS)
    source = batch.batch_dir
    record_ids = sorted(r.record_id for r in batch.records)
    day_ago = time.time() - 86400
    for path in [source, *source.iterdir()]:
        os.utime(path, (day_ago, day_ago))
    target = settings.dir("inbox") / AGENCY / BATCH
    batch_run = inbox.run_name(AGENCY, BATCH)
    try:
        standalone.start()
        standalone.wait_for("the API server", api.healthy, timeout=240)
        # the documented login: user admin, the password Airflow keeps in DATA/airflow/
        passwords = settings.dir("airflow") / cli.GENERATED_PASSWORDS_FILE
        api.log_in("admin", json.loads(passwords.read_text(encoding="utf-8"))["admin"])
        standalone.say(f"API server up on {base}, logged in as admin")

        def watcher_ready() -> bool:
            status, body = api.call("GET", "/api/v2/dags/digitize_watch")
            return status == 200 and not body["is_paused"]

        # airflow.cfg: dags_are_paused_at_creation = False; unpaused through the API otherwise
        standalone.wait_for("the DAG processor to parse digitize_watch",
                            lambda: api.call("GET", "/api/v2/dags/digitize_watch")[0] == 200, timeout=180)
        for dag_id in ("digitize_watch", "digitize_batch"):
            status, body = api.call("GET", f"/api/v2/dags/{dag_id}")
            if status == 200 and body["is_paused"]:
                assert api.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})[0] == 200
        standalone.wait_for("digitize_watch unpaused", watcher_ready, timeout=60)
        # the watcher's first (scheduled) run, at start: it succeeds (it failed with "Invalid
        # auth token" when each component had its own JWT secret)
        first = standalone.wait_for(
            "the watcher's first run", lambda: [r for r in api.runs("digitize_watch").values()
                                                if r["state"] in ("success", "failed")], timeout=180)
        assert [r["state"] for r in first] == ["success"], first
        standalone.say(f"watcher's first run: {first[0]['dag_run_id']} success")

        def look(n: int, unsettled: str = batch_run) -> None:
            """One watcher run, triggered through the API, to its end: it must not start the
            batch of run ``unsettled``."""
            run_id = f"look-{n}"
            api.trigger("digitize_watch", run_id)
            state = standalone.wait_for(f"watcher run {run_id}", lambda: (
                s if (s := api.runs("digitize_watch")[run_id]["state"]) in ("success", "failed")
                else None), timeout=120, every=0.5)
            assert state == "success"
            assert unsettled not in api.runs("digitize_batch"), f"started by {run_id}"

        # the copy, file by file, manifest first (the worst case: the batch looks complete at
        # once), with the watcher looking in between: after the first files, in the middle of
        # the last one (half its bytes there, as a copy in progress leaves it), and at the end
        names = sorted(p.name for p in source.iterdir() if p.name != "manifest.csv")
        *first_files, last = names
        _copy_keeping_mtimes(source, target, ["manifest.csv", *first_files])
        look(1)
        standalone.say(f"copied manifest.csv and {', '.join(first_files)} with day-old mtimes: "
                       "not started")
        content = (source / last).read_bytes()
        (target / last).write_bytes(content[:len(content) // 2])
        shutil.copystat(source / last, target / last)  # cp -a sets the mtime as it goes
        look(2)
        with (target / last).open("ab") as rest:
            rest.write(content[len(content) // 2:])
        shutil.copystat(source / last, target / last)
        shutil.copystat(source, target)
        copied = time.time()
        assert max(p.stat().st_mtime for p in [target, *target.iterdir()]) < copied - 86000
        look(3)
        memory = json.loads((settings.dir("work") / inbox.LOOKS_FILE).read_text(encoding="utf-8"))
        first_seen = memory[f"{AGENCY}/{BATCH}"]["first_seen"]
        assert first_seen >= copied  # the wait started with the look after the copy
        standalone.say(f"copy of {len(names) + 1} files done; 3 looks, not started")

        # settled: the next look starts it (a scheduled one may come first: not before settled)
        time.sleep(max(0.0, first_seen + SETTLE_SECONDS + 1 - time.time()))
        api.trigger("digitize_watch", "look-4")
        run = standalone.wait_for("the batch run to be started",
                                  lambda: api.runs("digitize_batch").get(batch_run), timeout=120)
        assert run["conf"]["batch_dir"] == str(target)
        queued = dt.datetime.fromisoformat(run["queued_at"]).timestamp()
        assert queued >= copied + SETTLE_SECONDS - 1, (run["queued_at"], copied)
        standalone.say(f"{batch_run} started {queued - copied:.0f} s after the copy ended")
        run = standalone.wait_for("the batch run to finish", lambda: (
            r if (r := api.runs("digitize_batch")[batch_run])["state"] in ("success", "failed")
            else None), timeout=300, every=2)
        tis = api.task_instances("digitize_batch", batch_run)
        assert run["state"] == "success", [(t["task_id"], t["map_index"], t["state"]) for t in tis]
        assert sorted(t["rendered_map_index"] for t in tis if t["task_id"] == "process_record") == record_ids
        standalone.say(f"{batch_run}: success, {len(tis)} task instances")

        # the scheduler archived it: records in the warehouse, the batch in done/
        with create_engine(warehouse_url).connect() as conn:
            states = dict(conn.execute(text("select record_id, status from records "
                                            "where agency_code = :a"), {"a": AGENCY}).tuples().all())
        assert states == dict.fromkeys(record_ids, "archived")
        assert not target.exists()
        assert (settings.dir("done") / AGENCY / BATCH / "manifest.csv").is_file()
        # nothing failed on the way, not even one try: no run of any DAG failed, no task retried
        status, body = api.call("GET", "/api/v2/dags/~/dagRuns?state=failed")
        assert status == 200 and body["total_entries"] == 0, body
        # a look the scheduler started meanwhile (every 2 minutes) is left to end first: a
        # running look is no failure, and how it ends is what is checked
        def ended_looks() -> dict[str, dict[str, Any]] | None:
            looks = api.runs("digitize_watch")
            return looks if all(r["state"] in ("success", "failed") for r in looks.values()) else None

        looks = standalone.wait_for("the watcher's looks to end", ended_looks, timeout=120, every=2)
        for run_id in looks:
            retried = [t for t in api.task_instances("digitize_watch", run_id)
                       if t["try_number"] > 1 or t["state"] not in ("success", "skipped")]
            # the failed try's own log says why (a retry that succeeded hides it otherwise)
            assert not retried, (run_id, [(t["task_id"], t["state"], t["try_number"],
                                           _first_try_log(settings, "digitize_watch", run_id, t))
                                          for t in retried])
        assert all(t["try_number"] == 1 for t in tis), tis

        # a second batch: its first record's procedure code is not in the catalogue. Copied
        # now and looked at once (the settling starts), it settles while the screenshots are taken
        review = samples.generate_batch(
            tmp_path / "staging" / REVIEW_BATCH, agency_code=AGENCY, batch_id=REVIEW_BATCH,
            n_records=RECORDS, seed=24, vietnamese_headers=False, dpis=QUICK_DPIS,
            truth_path=tmp_path / "truth-review.json")
        bad = review.records[0]
        edit_manifest(review.batch_dir, {0: {"procedure_code": BAD_CODE}})
        for path in [review.batch_dir, *review.batch_dir.iterdir()]:
            os.utime(path, (day_ago, day_ago))
        review_target = settings.dir("inbox") / AGENCY / REVIEW_BATCH
        _copy_keeping_mtimes(review.batch_dir, review_target,
                             sorted(p.name for p in review.batch_dir.iterdir()))
        look(5, inbox.run_name(AGENCY, REVIEW_BATCH))
        memory = json.loads((settings.dir("work") / inbox.LOOKS_FILE).read_text(encoding="utf-8"))
        review_seen = memory[f"{AGENCY}/{REVIEW_BATCH}"]["first_seen"]

        # the archivist's view: the run's grid and a record's log, in the UI
        browser = chromium()
        _screenshots(browser, base, batch_run, record_ids, tmp_path)
        standalone.say("screenshots taken")

        _review_batch(standalone, api, browser, base, settings, warehouse_url, tmp_path,
                      review, bad, review_target, review_seen)
    except BaseException:
        print(f"\n===== digitize airflow standalone ({standalone.log}) =====\n{tail(standalone.log, 150)}")
        for task_log in sorted((settings.dir("airflow") / "logs").glob("dag_id=*/**/*.log")):
            content = task_log.read_text(encoding="utf-8", errors="replace")
            if '"level":"error"' in content:
                print(f"\n===== task log {task_log} =====\n{tail(task_log, 30)}")
        raise
    finally:
        standalone.stop()


def _review_batch(standalone: Standalone, api: Api, browser: Any, base: str, settings: Settings,
                  warehouse_url: str, tmp_path: Path, review: samples.SampleBatch,
                  bad: samples.SampleRecord, target: Path, first_seen: float) -> None:
    """The second batch, from its start to the archivist's fix (issue 14, "what it must show").

    The checks of the failed task's log are collected and asserted at the end, so that one
    failing still lets the screenshot, the Clear and what follows be seen."""
    from selenium.webdriver.common.by import By

    run_id = inbox.run_name(AGENCY, REVIEW_BATCH)
    run_path = f"/api/v2/dags/digitize_batch/dagRuns/{quote(run_id, safe='')}"
    time.sleep(max(0.0, first_seen + SETTLE_SECONDS + 1 - time.time()))
    api.trigger("digitize_watch", "look-6")
    standalone.wait_for("the second batch's run to be started",
                        lambda: api.runs("digitize_batch").get(run_id), timeout=120)
    run = standalone.wait_for("the second batch's run to finish", lambda: (
        r if (r := api.runs("digitize_batch")[run_id])["state"] in ("success", "failed")
        else None), timeout=300, every=2)
    tis = api.task_instances("digitize_batch", run_id)
    states = {(t["task_id"], t["rendered_map_index"]): t["state"] for t in tis}
    # failed for review: the bad record's own task and finalize; the other record archived
    assert run["state"] == "failed", states
    assert sorted(k for k, v in states.items() if v == "failed") == [
        ("finalize", None), ("process_record", bad.record_id)], states
    assert all(v == "success" for k, v in states.items() if k[0] == "process_record"
               and k[1] != bad.record_id), states
    map_index = next(t["map_index"] for t in tis if t["task_id"] == "process_record"
                     and t["rendered_map_index"] == bad.record_id)
    assert _summary_counts(settings) == (2 * RECORDS - 1, 1)
    held = settings.dir("quarantine") / AGENCY / REVIEW_BATCH
    note = f"{archive.record_name(AGENCY, bad.record_id)}.txt"
    assert (held / note).is_file(), sorted(p.name for p in held.iterdir()) if held.is_dir() else held
    standalone.say(f"{run_id}: failed for review ({bad.record_id}, finalize)")

    # what the archivist reads: the failed task's log, through the REST API
    log_path = f"{run_path}/taskInstances/process_record/logs/1?map_index={map_index}"
    status, body = api.call("GET", log_path)
    assert status == 200, (status, body)
    content = body["content"]
    log_problems = _log_problems(content, bad.record_id)
    standalone.say(f"{bad.record_id}'s log: {len(content)} events, {len(_rendered(content))} lines"
                   f"{'' if not log_problems else ' — ' + '; '.join(log_problems)}")

    # and in the UI (logged in since the first screenshots)
    browser.get(f"{base}/dags/digitize_batch/runs/{quote(run_id, safe='')}/tasks/process_record/"
                f"mapped/{map_index}")
    wait_until("the failed record's log in the UI", lambda: "không có trong danh mục"
          in browser.find_element(By.TAG_NAME, "body").text)
    time.sleep(2)
    shot = tmp_path / LOG_SCREENSHOT.name
    assert browser.save_screenshot(str(shot))
    update_docs_screenshot(shot, LOG_SCREENSHOT.name)

    # the archivist's fix: the row's real procedure code; then Clear on that task alone
    edit_manifest(target, {0: {"procedure_code": bad.procedure_code}})
    status, body = api.call("POST", "/api/v2/dags/digitize_batch/clearTaskInstances", {
        "dry_run": False, "dag_run_id": run_id, "task_ids": [["process_record", map_index]],
        "only_failed": True, "include_upstream": False, "include_downstream": False})
    assert status == 200, (status, body)
    assert [(t["task_id"], t["map_index"]) for t in body["task_instances"]] == [
        ("process_record", map_index)], body

    def second_try() -> dict[str, Any] | None:
        status, ti = api.call("GET", f"{run_path}/taskInstances/process_record/{map_index}")
        assert status == 200, (status, ti)
        return ti if ti["try_number"] == 2 and ti["state"] in ("success", "failed") else None

    ti = standalone.wait_for(f"{bad.record_id}'s second try", second_try, timeout=240, every=1)
    if ti["state"] != "success":
        _, again = api.call("GET", f"{run_path}/taskInstances/process_record/logs/2"
                                   f"?map_index={map_index}")
        pytest.fail(f"try 2 of {bad.record_id}: {ti['state']}\n" + "\n".join(
            _rendered(again["content"] if isinstance(again, dict) else [str(again)])))
    standalone.say(f"{bad.record_id} cleared after the fix: try 2 succeeded")

    # the record task alone brought the rest up to date: finalize was not run again
    finalize = next(t for t in api.task_instances("digitize_batch", run_id)
                    if t["task_id"] == "finalize")
    assert (finalize["state"], finalize["try_number"]) == ("failed", 1), finalize
    assert _summary_counts(settings) == (2 * RECORDS, 0)
    resolved = settings.dir("resolved") / AGENCY / REVIEW_BATCH
    assert not (held / note).exists() and (resolved / note).is_file()
    assert not target.exists()
    assert (settings.dir("done") / AGENCY / REVIEW_BATCH / "manifest.csv").is_file()
    with create_engine(warehouse_url).connect() as conn:
        row = conn.execute(text("select id, status, archived_count, quarantined_count from batches "
                                "where agency_code = :a and batch_id = :b"),
                           {"a": AGENCY, "b": REVIEW_BATCH}).one()
        records = dict(conn.execute(text("select record_id, status from records "
                                         "where batch_pk = :pk"), {"pk": row.id}).tuples().all())
    assert (row.status, row.archived_count, row.quarantined_count) == ("done", RECORDS, 0)
    assert records == {r.record_id: "archived" for r in review.records}
    standalone.say(f"{REVIEW_BATCH}: summary, note, done/ and warehouse up to date")
    assert not log_problems, "\n".join([
        f"{bad.record_id}'s log (try 1), through the REST API:", *log_problems,
        "----- the log as the API returns it -----", *_rendered(content)])


def _summary_counts(settings: Settings) -> tuple[int, int]:
    """The agency's (archived, in quarantine) in ``reports/progress_summary.json``."""
    rows = json.loads((settings.dir("reports") / "progress_summary.json").read_text(encoding="utf-8"))
    (row,) = [r for r in rows if r["agency_code"] == AGENCY]
    return row["archived"], row["quarantined"]


def _event(item: Any) -> dict[str, Any]:
    """One log event of the API's answer: a parsed event, or a line when it could not parse."""
    return item if isinstance(item, dict) else {"event": str(item)}


def _airflow_own(event: dict[str, Any]) -> bool:
    """Lines Airflow writes around the task's own: group markers, the start-up, the runner's."""
    said, logger = str(event.get("event", "")), str(event.get("logger") or "")
    return (said.startswith(("::group::", "::endgroup::", *AIRFLOW_EVENTS)) or not logger
            or logger == "task" or logger.startswith("airflow"))


def _rendered(content: list[Any]) -> list[str]:
    """The log's lines as the UI shows them: one per line of each event."""
    lines = []
    for item in map(_event, content):
        head = f"[{item.get('level', '')}] {item.get('logger', '')}: " if "level" in item else ""
        lines.extend(f"{head}{line}" for line in (str(item["event"]).splitlines() or [""]))
        if "error_detail" in item:
            lines.append(f"    error_detail: {json.dumps(item['error_detail'])[:400]}")
    return lines


def _log_problems(content: list[Any], record_id: str) -> list[str]:
    """What is wrong with a failed record task's log, for the archivist who opens it."""
    events = [_event(item) for item in content]
    problems = []
    ours = [e for e in events if not _airflow_own(e)]
    first = str(ours[0]["event"]) if ours else ""
    if not (first.startswith(f"Hồ sơ {record_id} chưa được lưu trữ (catalogue_mismatch)")
            and "Clear" in first):
        problems.append(f"the first line after Airflow's own is not the verdict: {first[:200]!r} "
                        f"(logger {ours[0].get('logger') if ours else None!r})")
    saying = [e for e in events if "không có trong danh mục" in str(e["event"])]
    if len(saying) != 1:
        problems.append(f"the reason is said {len(saying)} times, not once")
    traced = [e for e in events if "error_detail" in e or "exc_info" in e
              or "Traceback (most recent call last)" in str(e["event"])]
    if traced:
        problems.append(f"{len(traced)} event(s) with a traceback: {str(traced[0])[:300]}")
    if len(events) >= 30:
        problems.append(f"{len(events)} events (30 or more)")
    if len(_rendered(content)) >= 30:
        problems.append(f"{len(_rendered(content))} lines (30 or more)")
    return problems


def _screenshots(browser: Any, base: str, run_id: str, record_ids: list[str],
                 tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    run_page = f"{base}/dags/digitize_batch/runs/{quote(run_id, safe='')}"
    browser.get(run_page)
    # not logged in: the simple auth manager's login form, then back to the run
    user_box = wait_until("the login form", lambda: browser.find_element(By.NAME, "username"))
    user_box.send_keys("admin")
    passwords = tmp_path / "DATA" / "airflow" / cli.GENERATED_PASSWORDS_FILE
    browser.find_element(By.NAME, "password").send_keys(
        json.loads(passwords.read_text(encoding="utf-8"))["admin"])
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until("the run's page after the login", lambda: urlsplit(browser.current_url).path
          == urlsplit(run_page).path and run_id in browser.find_element(By.TAG_NAME, "body").text)
    # the record tasks, named by their record ids
    wait_until("the record tasks in the run's page", lambda: all(
        r in browser.find_element(By.TAG_NAME, "body").text for r in ["process_record", *record_ids]))
    time.sleep(2)  # the grid's cells are drawn after the data arrives
    shot = tmp_path / "airflow-batch-run.png"
    assert browser.save_screenshot(str(shot))
    update_docs_screenshot(shot, DOCS_SCREENSHOT.name)
    # one record task's log: what the archivist opens for a record
    browser.get(f"{run_page}/tasks/process_record/mapped/0")
    wait_until("the record task's log",
               lambda: "process_record" in browser.find_element(By.TAG_NAME, "body").text)
    time.sleep(2)
    assert browser.save_screenshot(str(tmp_path / "airflow-record-log.png"))
