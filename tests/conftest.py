"""Shared fixtures. Everything here talks to the real programs and servers.

In CI (CI=true) a missing dependency fails the test instead of skipping it: the set-up is
supposed to have installed it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pipeline.config import Settings, load_settings
from pipeline.reporting.plan import PhasePlan, load_plan

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# The longest test files (whole files, by --durations), run first: with two workers the file
# one of them takes last decides how long the other idles at the end. scripts/test.sh keeps
# this order (--no-loadscope-reorder: xdist would order the files by their count of tests,
# which put these, one to a few tests each, last).
LONGEST_FIRST = ("test_crash_safety.py", "test_standalone.py", "test_bad_inputs.py",
                 "test_stack_batch.py", "test_dags.py", "test_nothing_lost.py",
                 "test_celery_deployment.py", "test_fixity.py", "test_end_to_end.py",
                 "test_concurrency.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: n for n, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files stay whole
PG_ADMIN_URL = os.environ.get("DIGITIZE_TEST_PG_URL",
                              "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
# The scanner resolution of sample batches (samples.generate_batch(dpis=...)) where what a test
# checks does not depend on it: a 200 dpi page has less than half the pixels of a 300 dpi one,
# which the samples otherwise mix in, and is cleaned and OCR'd faster.
QUICK_DPIS = (200,)
# what the migrate_airflow fixture gives: prepares the metadata database of an airflow_env()
MigrateAirflow = Callable[[dict[str, str]], None]


def free_port() -> int:
    """A TCP port free on loopback now, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 80) -> str:
    """The end of a server's log file, for a failure message."""
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"({exc})"


DOCS_SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def update_docs_screenshot(shot: Path, name: str) -> None:
    """Copy a test's screenshot into the documentation, only when asked
    (``DIGITIZE_UPDATE_SCREENSHOTS=1``): the UI's clock and data change on every run, and a
    test run must not leave the checkout modified."""
    if os.environ.get("DIGITIZE_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOTS / name)


CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def start_chromium(window: str = "1400,1000", downloads: Path | None = None) -> Any:
    """Headless Debian Chromium through Debian's chromedriver (the caller quits it); files the
    page downloads go to ``downloads``."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        skip_or_fail(f"{CHROMIUM} or {CHROMEDRIVER} missing (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        skip_or_fail("selenium is not installed (pip install -e '.[test]')")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={window}", "--lang=vi-VN", "--no-first-run"):
        options.add_argument(arg)
    if downloads is not None:
        options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                                  "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    return driver


def digitize(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``digitize ARGS`` as a child process with environment ``env`` would run it, run in this
    process: the same code (``pipeline.cli.main``), without paying for each of the suite's many
    runs an interpreter's start and the imports (4.4 s of CPU, great-expectations 2.4 s of it).

    ``env`` replaces the environment for the call; the command's log lines go to the returned
    stderr as it writes them, its output to stdout; its warehouse connections are closed after
    (a test's PostgreSQL database is dropped at its end), those the test opened are left open.
    Tests of the command itself, of
    processes killed or run side by side, start real processes instead.
    """
    from pipeline import cli
    from pipeline.store import warehouse

    saved_env, root = dict(os.environ), logging.getLogger()
    engines_before = set(warehouse._engines)
    saved_logging = root.handlers[:], root.level
    out, err = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(env)
    root.handlers = []  # main()'s logging.basicConfig then writes to err, as in a child
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(list(args))
            except SystemExit as exc:  # argparse's usage errors
                code = exc.code if isinstance(exc.code, int) else 2
        # the engines the command made (not the test's own, whose connections stay as they were)
        for key in set(warehouse._engines) - engines_before:
            warehouse._engines.pop(key).dispose()
    finally:
        root.handlers, root.level = saved_logging
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(["digitize", *args], code, out.getvalue(), err.getvalue())


def skip_or_fail(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the set-up must provide it)")
    pytest.skip(reason)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings on a fresh data folder with the embedded SQLite warehouse."""
    data = tmp_path / "var"
    monkeypatch.setenv("DIGITIZE_DATA_DIR", str(data))
    monkeypatch.delenv("DIGITIZE_DB_URL", raising=False)
    return load_settings()


@pytest.fixture
def settled_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Scanner profiles with ``settle_seconds: 0`` (DIGITIZE_PROFILES_DIR, which the Airflow
    commands inherit): the watcher takes a batch at its first look. A batch cannot be made to
    look settled by backdating its files: their ctimes, and the watcher's memory, tell."""
    import yaml

    from pipeline.config import PROJECT_DIR

    profiles = tmp_path / "scanner_profiles"
    shutil.copytree(PROJECT_DIR / "scanner_profiles", profiles)
    for path in profiles.glob("*.yaml"):
        profile = yaml.safe_load(path.read_text(encoding="utf-8"))
        profile["settle_seconds"] = 0
        path.write_text(yaml.safe_dump(profile, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("DIGITIZE_PROFILES_DIR", str(profiles))
    return profiles


@pytest.fixture(scope="session")
def migrated_airflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Airflow's SQLite metadata database as ``airflow db migrate`` leaves it, made once per
    session: the migration takes seconds, and many tests run ``airflow dags test``."""
    from pipeline.cli import airflow_env

    env = airflow_env(load_settings(data_dir=tmp_path_factory.mktemp("airflow") / "var"))
    subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], env=env,
                   check=True, capture_output=True)
    return Path(env["AIRFLOW_HOME"]) / "airflow.db"


@pytest.fixture
def migrate_airflow(migrated_airflow_db: Path) -> MigrateAirflow:
    """``airflow db migrate`` for an environment of ``pipeline.cli.airflow_env`` (its SQLite
    database under AIRFLOW_HOME): a copy of the session's migrated database."""

    def migrate(env: dict[str, str]) -> None:
        target = Path(env["AIRFLOW_HOME"]) / "airflow.db"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{target}"
        shutil.copyfile(migrated_airflow_db, target)

    return migrate


@pytest.fixture(scope="session")
def pg_server() -> str:
    try:
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no server"
        skip_or_fail(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    return PG_ADMIN_URL


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"digitize_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_server).set(database=name).render_as_string(hide_password=False)
    yield url
    from pipeline.store import warehouse
    warehouse.dispose(url)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def import_reference(data_dir: Path, db_url: str | None = None) -> str:
    """Load the sample catalogue, agency registry and inventory, which every batch is validated
    against, into the warehouse of ``data_dir`` (or ``db_url``); returns the warehouse URL."""
    from pipeline.checks import reference
    from pipeline.store import warehouse
    overrides: dict[str, object] = {"data_dir": data_dir}
    if db_url:
        overrides["db_url"] = db_url
    url = load_settings(**overrides).warehouse_url
    warehouse.migrate(url)
    reference.import_samples(url)
    return url


@pytest.fixture
def reference_settings(settings: Settings) -> Settings:
    """:func:`settings` with the sample reference data imported."""
    import_reference(settings.data_dir)
    return settings


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty warehouse database: SQLite, then real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'w.sqlite'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def plan(tmp_path: Path) -> PhasePlan:
    """The hand-worked phase plan of tests/progress_fixtures.py, validated."""
    from progress_fixtures import write_plan

    return load_plan(write_plan(tmp_path))


def edit_manifest(batch_dir: Path, changes: dict[int, dict[str, str]]) -> None:
    """Change cells of a batch's manifest.csv as a clerk would: data row (0-based) -> column ->
    value."""
    import csv

    path = batch_dir / "manifest.csv"
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for index, cells in changes.items():
        rows[index].update(cells)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def qr_page(text: str, dpi: int, *, stained: bool = False, module_mm: float = 0.6) -> Any:
    """A white A4 page (RGB array) at ``dpi`` with one QR code of ``text``, as printed; with
    ``stained``, a band of ink across the middle of the code: its finder patterns are still
    found, its data no longer decodes."""
    import cv2
    import numpy as np
    import zxingcpp

    code = np.array(zxingcpp.write_barcode_to_image(
        zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level="Q")))
    scale = module_mm / 25.4 * dpi
    code = cv2.resize(code, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    width, height = round(210 / 25.4 * dpi), round(297 / 25.4 * dpi)
    page = np.full((height, width), 255, np.uint8)
    top, right = dpi // 2, width - dpi // 2
    page[top:top + code.shape[0], right - code.shape[1]:right] = code
    if stained:
        middle, half = top + code.shape[0] // 2, code.shape[0] // 8
        page[middle - half:middle + half, :] = 0
    return np.stack([page] * 3, axis=-1)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The test PKI of pipeline/demo/pki.py (root, agency signers, TSA and OCSP on 127.0.0.1)."""
    from pipeline.demo.pki import running_pki

    with running_pki(tmp_path_factory.mktemp("pki")) as served:
        yield served


@pytest.fixture(scope="session")
def hsm(tmp_path_factory: pytest.TempPathFactory, pki: Any) -> Iterator[Any]:
    """A SoftHSM2 token holding the agency's key and certificate (PKCS#11)."""
    import shutil

    from pipeline.demo.pki import SOFTHSM_MODULE, softhsm_token

    if not SOFTHSM_MODULE.is_file() or shutil.which("softhsm2-util") is None:
        skip_or_fail("SoftHSM2 is not installed (Debian softhsm2; scripts/setup.sh installs it)")
    with softhsm_token(tmp_path_factory.mktemp("softhsm"), pki) as token:
        yield token
