"""A real ``airflow api-server`` for the tests of the pages Airflow serves (progress, search):
the project's plugins, the simple auth manager with one user, a copy of the session's migrated
metadata database, and small HTTP helpers."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.client import HTTPConnection
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest
from conftest import tail

from pipeline.cli import airflow_env
from pipeline.config import Settings

USER, PASSWORD = "sotttt", "mat-khau-thu-nghiem"


def server_env(settings: Settings, tmp: Path, migrated_airflow_db: Path, warehouse_url: str,
               role: str = "viewer") -> dict[str, str]:
    """The API server's environment: the project's airflow.cfg, dags/ and plugins/; a copy of
    the migrated metadata database; the warehouse as the ``digitize_warehouse`` connection (and
    DIGITIZE_DB_URL pointing elsewhere: the pages must read the connection, as the DAGs do); the
    simple auth manager with one user of ``role`` (documented [core] options), so that the pages
    ask for a login and the test logs in through Airflow's own form."""
    env = airflow_env(settings)
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(migrated_airflow_db, home / "airflow.db")
    passwords = tmp / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}), encoding="utf-8")
    return {
        **env,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW_CONN_DIGITIZE_WAREHOUSE": json.dumps(
            {"conn_type": "generic", "extra": {"sqlalchemy_url": warehouse_url}}),
        "DIGITIZE_DB_URL": f"sqlite:///{tmp / 'not-the-warehouse.sqlite'}",
        "DIGITIZE_UI_BASE_URL": settings.ui_base_url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": settings.ui_base_url,
        "AIRFLOW__API_AUTH__JWT_SECRET": "test-secret-" + "x" * 40,
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:{role}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
    }


@contextlib.contextmanager
def serving(env: dict[str, str], port: int, log: Path) -> Iterator[ApiServer]:
    """The server started (the caller waits for it), its log's end printed if anything fails,
    stopped at the end."""
    server = ApiServer(env, port, log)
    try:
        server.start()
        yield server
    except BaseException:
        print(f"\n===== API server log ({server.log}) =====\n{tail(server.log)}")
        raise
    finally:
        server.stop()


class ApiServer:
    """``airflow api-server`` as a process group of its own, with its log in a file."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = str(Path(sys.executable).with_name("airflow"))
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([exe, "api-server", "--host", "127.0.0.1", "--port", str(self.port)],
                                         env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"the API server exited ({self.proc.returncode}):\n{tail(self.log)}")
            with contextlib.suppress(OSError), urllib.request.urlopen(
                    f"{self.base}/api/v2/monitor/health", timeout=5) as response:
                if response.status == 200:
                    return
            if time.monotonic() > deadline:
                pytest.fail(f"the API server was not up after {timeout:.0f} s:\n{tail(self.log)}")
            time.sleep(1)

    def stop(self) -> None:
        if self.proc is not None:
            stop_session(self.proc)


def stop_session(proc: subprocess.Popen[bytes]) -> None:
    """A process started in a session of its own stopped with all it started: SIGTERM to the
    group, SIGKILL to what is left; children that left the group (Airflow's task supervisors)
    are collected first and killed too."""
    family: list[psutil.Process] = []
    with contextlib.suppress(psutil.NoSuchProcess):
        family = psutil.Process(proc.pid).children(recursive=True)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    _, alive = psutil.wait_procs(family, timeout=20)
    for leftover in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            leftover.kill()
    psutil.wait_procs(alive, timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything still in the group


def load_plugin(path: Path) -> ModuleType:
    """A plugin file as Airflow loads it: a module of the plugins folder, by its file name."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def http(url: str, *, headers: dict[str, str] | None = None,
         data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def raw_get(base: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET ``path`` sent byte for byte (no redirect followed, no ``..`` cleaned up, no escaping
    undone), as a hostile client would send it."""
    netloc = urlsplit(base).netloc
    conn = HTTPConnection(netloc, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def wait_until(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if result := check():
                return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


