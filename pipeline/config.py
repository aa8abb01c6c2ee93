"""Settings (environment / .env) and scanner profiles (YAML), validated at start."""

from __future__ import annotations

import datetime as dt
import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL

from pipeline.errors import ConfigError
from pipeline.reporting.plan import PhasePlan, load_plan

PROJECT_DIR = Path(__file__).resolve().parent.parent


class CleanupProfile(BaseModel):
    orientation: bool = True
    orientation_min_confidence: float = Field(2.0, ge=0)
    deskew: bool = True
    max_skew: float = Field(6.0, gt=0, le=45)
    skew_method: Literal["projection", "hough", "line_fit"] = "projection"
    remove_dark_border: bool = True
    despeckle: bool = True
    flatten_illumination: bool = True


class OcrProfile(BaseModel):
    colour_dropout: bool = True
    min_mean_confidence: float = Field(60, ge=0, le=100)
    # a PDF page that carries its own visible text: keep it as issued, or rasterise and OCR it
    born_digital: Literal["keep", "redo"] = "keep"
    # Tesseract's time on one page before the record is held (ocr_failed): a page it cannot
    # finish is a scan to look at, not a page to archive without its text
    page_timeout_seconds: float = Field(600, gt=0)


# at or above this confidence (0-1) a field drafted from a page is taken as read, below it the
# clerk is asked to check it (pipeline.drafting.fields); the least auto_confidence may be
DRAFT_SURE = 0.8


class ScannerProfile(BaseModel):
    name: str
    description: str = ""
    # manifest: one manifest.csv row per record names its files; separator_sheets: the batch is
    # one scanned stack with a printed cover sheet (QR) before each record (pipeline.intake.separator)
    batch_layout: Literal["manifest", "separator_sheets"] = "manifest"
    fallback_dpi: int = Field(300, ge=72, le=1200)
    languages: list[str] = Field(default_factory=lambda: ["vie"], min_length=1)
    settle_seconds: int = Field(120, ge=0)
    cleanup: CleanupProfile = Field(default_factory=CleanupProfile)
    ocr: OcrProfile = Field(default_factory=OcrProfile)
    # where a manifest-layout batch's manifest.csv comes from (docs/manifest-draft.md): typed by
    # the clerk; drafted by the watcher from the first pages and held until the clerk checks it
    # and renames it manifest.csv; or drafted and used as it is when every field of every row is
    # read at auto_confidence or above (else held as under draft)
    manifest: Literal["typed", "draft", "auto"] = "typed"
    # lower than DRAFT_SURE would archive fields the draft itself asks a person to check
    auto_confidence: float = Field(DRAFT_SURE, ge=DRAFT_SURE, le=1)
    # first pages the watcher reads per look (Tesseract: seconds each), so that a big batch being
    # drafted delays the other batches' starts by a bounded time; the rest is read next look
    draft_pages_per_look: int = Field(40, ge=1)

    @model_validator(mode="after")
    def _drafts_need_manifest_layout(self) -> ScannerProfile:
        if self.manifest != "typed" and self.batch_layout != "manifest":
            # a stack's records and ids come from its cover sheets, which no draft replaces
            raise ValueError(f"manifest: {self.manifest} needs batch_layout: manifest")
        return self


class Settings(BaseSettings):
    """``DIGITIZE_*`` environment variables (or a ``.env`` file in the working directory)."""

    model_config = SettingsConfigDict(env_prefix="DIGITIZE_", env_file=".env", extra="ignore")

    data_dir: Path = Path("./var")
    db_url: str | None = None
    profile: str = "default"
    profiles_dir: Path = PROJECT_DIR / "scanner_profiles"
    phase_plan: Path = PROJECT_DIR / "schemas" / "phase_plan.yaml"
    # OCRmyPDF worker processes per record; 0 means one per available core
    ocr_jobs: int = Field(0, ge=0)
    # slots of the Airflow "ocr" pool set by `digitize airflow`; 0 means the cores of this
    # machine (one machine); with Celery workers, the OCR cores of all the workers together
    ocr_pool_slots: int = Field(0, ge=0)
    # Where people reach the Airflow UI / API server (scheme, host, port and any path prefix,
    # like Airflow's [api] base_url): the Data Docs links in quarantine notes and task logs are
    # made with it (pipeline.reporting.dashboard.docs_url), as a worker's file:// path opens nowhere else
    ui_base_url: str = Field("http://localhost:8080", pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    # Ký số (pipeline.signing). The key that signs every agency's records, "pkcs12:/path/x.p12" or
    # "pkcs11:/path/module.so?token=LABEL&key=LABEL", unless the table ``sign_keys`` (YAML:
    # agency code -> key, pin_env, tsa) gives the agency its own. With neither, records are
    # archived unsigned: a state the warehouse, the events and the report show.
    sign_key: str | None = None
    # the PIN of the token, or the PKCS#12 file's password; SecretStr keeps it out of reprs
    sign_pin: SecretStr | None = None
    # an RFC 3161 timestamp server: PAdES B-T instead of B-B
    sign_tsa: str | None = Field(None, pattern=r"^https?://\S+$")
    sign_keys: Path | None = None
    # PEM file of the CA certificates that signatures chain to: checked before a signed file is
    # archived, and what makes B-LT (revocation data embedded) possible
    sign_trust: Path | None = None
    # days before a B-LTA record's archive timestamp certificate expires that it gets a new one
    sign_renew_days: int = Field(365, ge=0)

    @property
    def warehouse_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(self.data_dir / 'warehouse.sqlite').resolve()}"

    @property
    def jobs(self) -> int:
        return self.ocr_jobs or len(os.sched_getaffinity(0))

    def dir(self, name: str) -> Path:
        """One of the DESIGN's data folders (inbox, archive, quarantine, done, reports, work)."""
        return (self.data_dir / name).resolve()

    @property
    def readings_dir(self) -> Path:
        """Tesseract's readings of drafted first pages, until their pages are archived
        (:mod:`pipeline.imaging.readings`)."""
        return self.dir("work") / "readings"

    @cached_property
    def scanner_profile(self) -> ScannerProfile:
        return load_profile(self.profiles_dir / f"{self.profile}.yaml")

    @cached_property
    def plan(self) -> PhasePlan:
        """The province's phase plan (``DIGITIZE_PHASE_PLAN``), validated: :mod:`pipeline.reporting.plan`."""
        return load_plan(self.phase_plan)

    @cached_property
    def issued_range(self) -> tuple[dt.date, dt.date]:
        """Earliest and latest plausible issue date: the union of the phase plan's ranges."""
        return self.plan.issued_range


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        out[key] = (_merged(out[key], value) if isinstance(value, dict)
                    and isinstance(out.get(key), dict) else value)
    return out


def _profile_data(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The profile's YAML; ``base: <name>`` starts from another profile of the same folder, so a
    variant states only what differs."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ConfigError(f"Scanner profile {path} is not a YAML mapping of settings.")
    base = raw.pop("base", None)
    if base is None:
        return raw
    base_path = path.parent / f"{base}.yaml"
    if base_path in seen:
        raise ConfigError(f"Scanner profile {path}: 'base: {base}' leads back to itself.")
    return _merged(_profile_data(base_path, (*seen, path)), raw)


def load_profile(path: Path) -> ScannerProfile:
    try:
        return ScannerProfile.model_validate(_profile_data(path))
    except FileNotFoundError as exc:
        available = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError(
            f"Scanner profile {path} does not exist. Set DIGITIZE_PROFILE to one of {available}."
        ) from exc
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"Scanner profile {path} is invalid: {exc}") from exc


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with a clear message instead of a traceback."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(f"Invalid DIGITIZE_* setting: {exc}") from exc
    settings.scanner_profile  # noqa: B018 - validate the profile at start, not mid-batch
    return settings


def url_from_connection(conn: Any) -> str:
    """The warehouse's SQLAlchemy URL from an orchestrator connection (``conn_type``, ``host``,
    ``schema``, ``login``, ``password``, ``port``, ``extra_dejson``, as Airflow's have).

    ``extra.sqlalchemy_url`` wins; otherwise a ``postgres`` connection becomes a psycopg2 URL and
    a ``sqlite`` connection's host is the database file.
    """
    extra = conn.extra_dejson or {}
    if extra.get("sqlalchemy_url"):
        return str(extra["sqlalchemy_url"])
    if conn.conn_type in ("postgres", "postgresql"):
        return URL.create("postgresql+psycopg2", username=conn.login or None,
                          password=conn.password or None, host=conn.host or None,
                          port=conn.port or None,
                          database=conn.schema or None).render_as_string(hide_password=False)
    if conn.conn_type == "sqlite" and conn.host:
        return f"sqlite:///{conn.host}"
    raise ConfigError(
        f"The warehouse connection (type {conn.conn_type!r}) names no database. Give it the type "
        "postgres with host, login and schema, the type sqlite with the file as host, or an "
        "extra {\"sqlalchemy_url\": \"...\"}.")


def settings_for_connection(conn: Any | None, sign_conn: Any | None = None,
                            **overrides: object) -> Settings:
    """Settings whose warehouse is the orchestrator connection ``conn`` (None: the default).

    ``sign_conn``, when given, holds the signing key instead of the environment: its password is
    the PIN (kept in the orchestrator's secrets, never in a task's arguments or results), its
    extra ``key``, ``tsa`` and ``keys`` are DIGITIZE_SIGN_KEY, _TSA and _KEYS.
    """
    if conn is not None:
        overrides = {"db_url": url_from_connection(conn), **overrides}
    if sign_conn is not None:
        extra = sign_conn.extra_dejson or {}
        signing = {f"sign_{name}": extra[name] for name in ("key", "tsa", "keys") if extra.get(name)}
        if sign_conn.password:
            signing["sign_pin"] = sign_conn.password
        overrides = {**signing, **overrides}
    return load_settings(**overrides)


# Third-party INFO chatter (schema migration steps, expectation suites, PDF library bridges) that
# hides the pipeline's own lines: 214 of a retried record's 233 task-log lines were
# great-expectations'.
NOISY_LIBRARIES = ("alembic", "pikepdf", "great_expectations", "img2pdf", "ocrmypdf", "PIL",
                   "fontTools")


def quiet_libraries() -> None:
    """Keep library loggers at WARNING, in the CLI and in every Airflow task."""
    import logging

    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
