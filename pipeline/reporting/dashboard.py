"""The progress dashboard: the quarterly report as a page with filters and downloads, as a FastAPI app.

The Airflow plugin ``plugins/digitize_progress.py`` mounts :func:`create_app` in the Airflow API
server (with Airflow's authentication and the ``digitize_warehouse`` connection); nothing here
depends on Airflow, so the same app runs under any ASGI server or FastAPI's TestClient::

    create_app(settings_provider, *, dependencies=(), login_url=None) -> FastAPI
    dashboard_report(url, plan, quarter=None, level=None, agency=None, phase=None, today=None)
        -> QuarterReport                     # FilterError (Vietnamese message) for a bad filter
    default_quarter(plan, today=None) -> str # the running quarter
    download_name(report, fmt) -> str        # bao-cao-tien-do-2023Q2-huyện.xlsx
    content_disposition(filename) -> str     # attachment; filename="..."; filename*=UTF-8''...
    validation_docs_dir(settings) -> Path    # DATA/reports/validation: the batches' Data Docs
    docs_url(settings, relative) -> str      # the served address of a file of that folder

Routes (relative to where the app is mounted, ``/digitize`` in Airflow):

- ``GET /`` — the page (``templates/dashboard.html.j2``): the page of
  ``pipeline.reporting.report.render_html`` for the filtered report, with its filter form
  (``quarter``, ``level``, ``agency``, ``phase``), the download links and a line naming the
  quarter shown as running ("đang thực hiện") or finished ("đã kết thúc") with links to the
  quarter before (and the running one). Without ``quarter`` it shows the running quarter, its
  figures up to today: work archived today is on the page the moment it is archived (the
  ``digitize_report`` DAG still writes the finished quarter's files). A running quarter is cut
  at today: its pace counts the working days passed so far and its forecast starts tomorrow. A
  quarter that has not started cannot be asked for.
- ``GET /bao-cao.{xlsx,csv,json,html}`` — the same report (same filters) as a file, the bytes of
  ``pipeline.reporting.report.render``, with a Content-Disposition file name safe for Vietnamese
  (``filename*=UTF-8''…`` beside an ASCII ``filename``).
- ``GET /kiem-tra/<agency>/<batch_id>/<path>`` — the great-expectations Data Docs of a batch's
  manifest validation, the static site under ``DATA/reports/validation/<agency>/<batch_id>/``
  (``index.html`` without a path), behind the same login as the page: quarantine notes and task
  logs link here (:func:`docs_url`) instead of to a file on the worker. Only regular files inside
  that batch's folder are served: ``..``, empty or absolute parts and symbolic links that lead
  out of it get 404, like a file that does not exist.

A bad filter (unknown agency, level or phase, a malformed or future quarter) gives HTTP 400 and
a page saying in Vietnamese what was wrong; an unreachable or unmigrated warehouse gives 503
with the reason (never a traceback, never credentials). No page or file holds personal data:
the report never reads holder names or ids (the Data Docs hold holder ids masked to their shape).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipeline.reporting.progress import Quarter
from pipeline.text import strip_marks

if TYPE_CHECKING:
    from pipeline.config import Settings
    from pipeline.reporting.plan import PhasePlan
    from pipeline.reporting.progress import QuarterReport

log = logging.getLogger(__name__)

PAGE_TITLE = "Tiến độ số hóa"
# Where plugins/digitize_progress.py mounts the app (its URL_PREFIX; the plugin file may not
# import this module, so the two are kept equal by a test). Only docs_url needs it: the
# addresses written into quarantine notes are made outside any request.
MOUNT_PATH = "/digitize"
DOCS_ROUTE = "kiem-tra"  # /digitize/kiem-tra/<agency>/<batch_id>/...: the batches' Data Docs
RUNNING, FINISHED = "đang thực hiện", "đã kết thúc"
CONTENT_TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "html": "text/html; charset=utf-8",
}
# Authenticated figures: a shared proxy must not keep them for the next person.
NO_SHARED_CACHE = {"Cache-Control": "private, no-cache"}
_ECHO = 80  # characters of a bad value repeated in a message


class FilterError(ValueError):
    """A filter value the report cannot use; the message is for the person who chose it."""


def _echo(value: str) -> str:
    value = value.strip()
    return value if len(value) <= _ECHO else value[:_ECHO - 1] + "…"


def plan_today(plan: PhasePlan) -> dt.date:
    """Today in the plan's time zone: quarters are cut at local midnight, as the report's."""
    import zoneinfo

    return dt.datetime.now(zoneinfo.ZoneInfo(plan.timezone)).date()


def default_quarter(plan: PhasePlan, today: dt.date | None = None) -> str:
    """The running quarter in the plan's time zone: what the page shows without ``quarter``, so
    that work archived today is on the page the first time it is opened."""
    from pipeline.reporting.progress import quarter_of

    return quarter_of(today or plan_today(plan)).label


class QuarterToDate(Quarter):
    """The running quarter cut at ``until`` (today): every figure of ``quarter_report`` is taken
    at the quarter's ``end``, so this makes them the figures up to today (archived by the end of
    today, pace over the working days passed, forecast from tomorrow) without a second code path.
    """

    until: dt.date

    @property
    def end(self) -> dt.date:
        return self.until


def dashboard_report(url: str, plan: PhasePlan, *, quarter: str | None = None, level: str | None = None,
                     agency: str | None = None, phase: str | None = None,
                     today: dt.date | None = None) -> QuarterReport:
    """The filtered report the page shows; :class:`FilterError` in Vietnamese for a bad filter.

    Empty values mean "no filter" (what an untouched form sends). ``today`` (default: now in
    the plan's time zone) decides which quarters exist yet and which one is running: that one
    (the default) is cut at ``today`` (:class:`QuarterToDate`) and says so in ``as_of``.
    """
    from pipeline.reporting.plan import LEVEL_ALIASES, LEVEL_NAMES
    from pipeline.reporting.progress import filter_report, parse_quarter, quarter_of, quarter_report

    today = today or plan_today(plan)
    label = (quarter or "").strip() or default_quarter(plan, today)
    try:
        q = parse_quarter(label)
    except ValueError:
        raise FilterError(f"Quý “{_echo(label)}” không hợp lệ: nhập theo dạng NNNNQn, "
                          "ví dụ 2023Q2 (quý 2 năm 2023).") from None
    if q.start > today:
        raise FilterError(f"{q.vi_label} chưa bắt đầu: chọn quý hiện tại hoặc một quý đã qua.")
    running = q == quarter_of(today)
    if running:
        q = QuarterToDate(year=q.year, number=q.number, until=today)
    level, agency, phase = ((v or "").strip() or None for v in (level, agency, phase))
    if level and level.lower() not in LEVEL_ALIASES:
        raise FilterError(f"Cấp “{_echo(level)}” không có: chọn "
                          f"{', '.join(LEVEL_NAMES.values())} hoặc để trống (tất cả các cấp).")
    report = quarter_report(url, q, plan)
    if running:  # the only "when" every format shows (page subtitle, XLSX, CSV, JSON)
        report = report.model_copy(update={"as_of": f"{RUNNING}, số liệu tính đến ngày {today:%d/%m/%Y}"})
    if agency and agency not in {a.code for a in report.choices.agencies}:
        raise FilterError(f"Cơ quan “{_echo(agency)}” không có trong báo cáo {report.quarter_label} "
                          "(không có số kiểm đếm hay hồ sơ nào): chọn cơ quan trong danh sách.")
    if phase and phase not in report.choices.phases:
        names = ", ".join(f"{p.id} ({p.name})" for p in report.phases)
        raise FilterError(f"Giai đoạn “{_echo(phase)}” không có: chọn {names} hoặc để trống "
                          "(tất cả giai đoạn).")
    return filter_report(report, level=level, agency=agency, phase=phase)


def download_name(report: QuarterReport, fmt: str) -> str:
    """``bao-cao-tien-do-2023Q2[-<cấp>][-<mã cơ quan>][-<giai đoạn>].<fmt>``, the level in Vietnamese."""
    from pipeline.reporting.plan import LEVEL_NAMES
    from pipeline.reporting.report import FILE_STEM

    parts = [FILE_STEM, report.quarter]
    if "level" in report.filters:
        parts.append(LEVEL_NAMES.get(report.filters["level"], report.filters["level"]).lower())
    parts += [report.filters[k] for k in ("agency", "phase") if k in report.filters]
    return f"{'-'.join(parts)}.{fmt}"


def content_disposition(filename: str) -> str:
    """An attachment header that keeps Vietnamese names (RFC 6266: ``filename*`` in UTF-8) with an
    ASCII ``filename`` (tone marks dropped, đ -> d) for clients that do not read ``filename*``."""
    folded = strip_marks(filename, compatibility=True)
    ascii_name = re.sub(r"[^A-Za-z0-9._-]+", "-", folded.encode("ascii", "ignore").decode()).strip("-")
    encoded = quote(unicodedata.normalize("NFC", filename), safe="")
    return f"attachment; filename=\"{ascii_name or 'bao-cao'}\"; filename*=UTF-8''{encoded}"


# --- which quarter the page shows, and the way to the others -------------------------------------
def _shift(quarter: Quarter, by: int) -> Quarter:
    n = quarter.year * 4 + quarter.number - 1 + by
    return Quarter(year=n // 4, number=n % 4 + 1)


class QuarterLink(NamedTuple):
    css: str  # previous, next, current
    href: str
    text: str


class QuarterNav(NamedTuple):
    """The line under the page's header (``after_header`` of dashboard.html.j2)."""

    quarter: str  # Quý 2/2023
    running: bool
    state: str  # đang thực hiện / đã kết thúc
    links: list[QuarterLink]


def quarter_nav(report: QuarterReport, today: dt.date, action: str) -> QuarterNav:
    """The quarter shown, running or finished, and links to the quarter before it, the one after
    it (when finished) and the running one, keeping the filters.

    The running quarter is what the page opens on; the finished one before it (what the
    quarterly report DAG writes) must stay one click away.
    """
    from pipeline.reporting.progress import parse_quarter, quarter_of

    shown, current = parse_quarter(report.quarter), quarter_of(today)

    def link(q: Quarter, css: str, text: str) -> QuarterLink:
        return QuarterLink(css, f"{action}?{urlencode({'quarter': q.label, **report.filters})}",
                           f"{text}: {q.label} ({RUNNING if q == current else FINISHED})")

    running = shown == current
    links = [link(_shift(shown, -1), "previous", "Quý trước")]
    if not running:
        after = _shift(shown, 1)
        if after != current:
            links.append(link(after, "next", "Quý sau"))
        links.append(link(current, "current", "Quý hiện tại"))
    return QuarterNav(shown.vi_label, running, RUNNING if running else FINISHED, links)


# --- the batches' Data Docs ------------------------------------------------------------------------
def validation_docs_dir(settings: Settings) -> Path:
    """``DATA/reports/validation``: one great-expectations Data Docs site per
    ``<agency>/<batch_id>/`` (written by the manifest validation, pipeline.checks.validate)."""
    return settings.dir("reports") / "validation"


def docs_url(settings: Settings, relative: str) -> str:
    """The address, for a person, of ``relative`` (a ``/``-separated path under
    :func:`validation_docs_dir`, ``<agency>/<batch_id>/...``) as the API server serves it.

    ``DIGITIZE_UI_BASE_URL`` is where people reach the Airflow UI; a ``file://`` path would name
    a file on the worker that the archivist's browser cannot open (nor should it, unauthenticated).
    """
    path = quote(relative.strip("/"), safe="/")
    return f"{settings.ui_base_url.rstrip('/')}{MOUNT_PATH}/{DOCS_ROUTE}/{path}"


def docs_file(root: Path, agency: str, batch_id: str, path: str) -> Path | None:
    """The regular file ``path`` of the Data Docs of ``<agency>/<batch_id>`` under ``root``, or
    None for anything else: a missing file, a folder, or a path that leaves the batch's folder
    (``..``, an empty or absolute part, a backslash, a symbolic link pointing out; the path
    arrives percent-decoded, so ``%2e%2e`` is ``..`` here)."""
    parts = [agency, batch_id, *(path.split("/") if path else ["index.html"])]
    if any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
        return None
    home = root.resolve() / agency / batch_id  # not resolved itself: a linked batch folder is out
    try:
        found = root.resolve().joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a symlink loop, a name too long
        return None
    if not found.is_relative_to(home) or not found.is_file():
        return None
    return found


def _message_page(status: int, title: str, message: str, back: str) -> HTMLResponse:
    """A short page for what went wrong, styled like the report (templates/message.html.j2)."""
    from pipeline.reporting.report import TEMPLATES

    body = TEMPLATES.get_template("message.html.j2").render(
        title=title, page_title=PAGE_TITLE, message=message, back=back)
    return HTMLResponse(body, status_code=status, headers=NO_SHARED_CACHE)


def create_app(settings_provider: Callable[[], Settings], *, dependencies: Sequence[Any] = (),
               login_url: Callable[[Request], str] | None = None) -> FastAPI:
    """The dashboard app. ``settings_provider`` is called on each request (warehouse URL and phase
    plan as they are now); ``dependencies`` run before every route (Airflow's authentication);
    ``login_url(request)``, when given, is where a browser without a valid login is sent instead
    of a bare 401/403."""
    app = FastAPI(title="Tiến độ số hóa", dependencies=list(dependencies), docs_url=None,
                  redoc_url=None, openapi_url=None)

    if login_url is not None:
        @app.exception_handler(StarletteHTTPException)
        async def _to_login(request: Request, exc: StarletteHTTPException) -> Response:
            wants_page = "text/html" in request.headers.get("accept", "")
            if exc.status_code in (401, 403) and wants_page and request.method == "GET":
                return RedirectResponse(login_url(request), status_code=303)
            return await http_exception_handler(request, exc)

    def _report(request: Request, quarter: str | None, level: str | None, agency: str | None,
                phase: str | None) -> tuple[QuarterReport, dt.date] | HTMLResponse:
        """The filtered report and the day it was made for (today in the plan's time zone)."""
        from sqlalchemy.exc import SQLAlchemyError

        from pipeline.errors import ConfigError

        back = request.url_for("dashboard").path
        try:
            settings = settings_provider()
            today = plan_today(settings.plan)
            return dashboard_report(settings.warehouse_url, settings.plan, quarter=quarter, level=level,
                                    agency=agency, phase=phase, today=today), today
        except FilterError as exc:
            return _message_page(400, "Bộ lọc không hợp lệ", str(exc), back)
        except ConfigError as exc:
            log.error("progress dashboard: %s", exc)
            return _message_page(503, "Chưa xem được báo cáo", f"Cấu hình hoặc kho dữ liệu chưa sẵn sàng: "
                                 f"{exc}", back)
        except SQLAlchemyError:
            log.exception("progress dashboard: the warehouse could not be read")
            return _message_page(503, "Chưa xem được báo cáo", "Không đọc được kho dữ liệu (cơ sở dữ "
                                 "liệu không kết nối được). Báo bộ phận quản trị hệ thống; chi tiết "
                                 "trong nhật ký của Airflow API server.", back)

    def _params(report: QuarterReport) -> str:
        return urlencode({"quarter": report.quarter, **report.filters})

    @app.get("/", name="dashboard", response_class=HTMLResponse)
    def dashboard(request: Request, quarter: str | None = None, level: str | None = None,
                  agency: str | None = None, phase: str | None = None) -> Response:
        from pipeline.reporting.report import FORMATS, TEMPLATES, page_context

        made = _report(request, quarter, level, agency, phase)
        if isinstance(made, HTMLResponse):
            return made
        report, today = made
        links = {fmt: f"{request.url_for('download', fmt=fmt).path}?{_params(report)}" for fmt in FORMATS}
        action = request.url_for("dashboard").path
        page = TEMPLATES.get_template("dashboard.html.j2").render(
            page_context(report, form_action=action, download_links=links),
            nav=quarter_nav(report, today, action))
        return HTMLResponse(page, headers=NO_SHARED_CACHE)

    @app.get("/bao-cao.{fmt}", name="download")
    def download(request: Request, fmt: str, quarter: str | None = None, level: str | None = None,
                 agency: str | None = None, phase: str | None = None) -> Response:
        from pipeline.reporting.report import render

        if fmt not in CONTENT_TYPES:
            return _message_page(404, "Không có định dạng này",
                                 f"Báo cáo có các định dạng {', '.join(CONTENT_TYPES)}, không có "
                                 f"“{_echo(fmt)}”.", request.url_for("dashboard").path)
        made = _report(request, quarter, level, agency, phase)
        if isinstance(made, HTMLResponse):
            return made
        report, _ = made
        headers = {**NO_SHARED_CACHE,
                   "Content-Disposition": content_disposition(download_name(report, fmt))}
        return Response(render(report, fmt), media_type=CONTENT_TYPES[fmt], headers=headers)

    @app.get(f"/{DOCS_ROUTE}/{{agency}}/{{batch_id}}/{{path:path}}", name="validation_docs")
    def validation_docs(request: Request, agency: str, batch_id: str, path: str) -> Response:
        from pipeline.errors import ConfigError

        back = request.url_for("dashboard").path
        try:
            root = validation_docs_dir(settings_provider())
        except ConfigError as exc:
            log.error("validation docs: %s", exc)
            return _message_page(503, "Chưa xem được kết quả kiểm tra", f"Cấu hình chưa sẵn sàng: {exc}",
                                 back)
        found = docs_file(root, agency, batch_id, path)
        if found is None:
            # the same answer for "missing" and "not allowed": nothing about what lies outside
            return _message_page(404, "Không có trang này",
                                 f"Không có trang kết quả kiểm tra dữ liệu “{_echo(path or 'index.html')}” "
                                 f"của lô {_echo(batch_id)} (cơ quan {_echo(agency)}). Mở liên kết "
                                 "trong thông báo cách ly hoặc nhật ký của tác vụ.", back)
        # nosniff: a file of the site is served as what its name says, never guessed as HTML
        return FileResponse(found, headers={**NO_SHARED_CACHE, "X-Content-Type-Options": "nosniff"})

    return app
