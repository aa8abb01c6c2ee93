"""The progress dashboard: the quarterly report as a page with filters and downloads, as a FastAPI app.

The Airflow plugin ``plugins/digitize_progress.py`` mounts :func:`create_app` in the Airflow API
server (with Airflow's authentication and the ``digitize_warehouse`` connection); nothing here
depends on Airflow, so the same app runs under any ASGI server or FastAPI's TestClient::

    create_app(settings_provider, *, dependencies=(), login_url=None) -> FastAPI
    dashboard_report(url, plan, quarter=None, level=None, agency=None, phase=None, today=None)
        -> QuarterReport                     # FilterError (Vietnamese message) for a bad filter
    default_quarter(plan, today=None) -> str # the last finished quarter
    download_name(report, fmt) -> str        # bao-cao-tien-do-2023Q2-huyện.xlsx
    content_disposition(filename) -> str     # attachment; filename="..."; filename*=UTF-8''...

Routes (relative to where the app is mounted, ``/digitize`` in Airflow):

- ``GET /`` — the page: ``pipeline.report.render_html`` of the filtered report, with its filter
  form (``quarter``, ``level``, ``agency``, ``phase``) and the download links. Without
  ``quarter`` it shows the last finished quarter (the one the ``digitize_report`` DAG writes),
  not the running one: a running quarter's pace and forecast are computed over working days
  that have not passed yet. The running quarter can still be asked for; a later one cannot.
- ``GET /bao-cao.{xlsx,csv,json,html}`` — the same report (same filters) as a file, the bytes of
  ``pipeline.report.render``, with a Content-Disposition file name safe for Vietnamese
  (``filename*=UTF-8''…`` beside an ASCII ``filename``).

A bad filter (unknown agency, level or phase, a malformed or future quarter) gives HTTP 400 and
a page saying in Vietnamese what was wrong; an unreachable or unmigrated warehouse gives 503
with the reason (never a traceback, never credentials). No page or file holds personal data:
the report never reads holder names or ids.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

if TYPE_CHECKING:
    from pipeline.config import Settings
    from pipeline.plan import PhasePlan
    from pipeline.progress import QuarterReport

log = logging.getLogger(__name__)

PAGE_TITLE = "Tiến độ số hóa"
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


def default_quarter(plan: PhasePlan, today: dt.date | None = None) -> str:
    """The last finished quarter in the plan's time zone: what the page shows without ``quarter``."""
    import zoneinfo

    from pipeline.progress import previous_quarter

    today = today or dt.datetime.now(zoneinfo.ZoneInfo(plan.timezone)).date()
    return previous_quarter(today)


def dashboard_report(url: str, plan: PhasePlan, *, quarter: str | None = None, level: str | None = None,
                     agency: str | None = None, phase: str | None = None,
                     today: dt.date | None = None) -> QuarterReport:
    """The filtered report the page shows; :class:`FilterError` in Vietnamese for a bad filter.

    Empty values mean "no filter" (what an untouched form sends). ``today`` (default: now in
    the plan's time zone) decides which quarters exist yet.
    """
    import zoneinfo

    from pipeline.plan import LEVEL_ALIASES, LEVEL_NAMES
    from pipeline.progress import filter_report, parse_quarter, quarter_report

    today = today or dt.datetime.now(zoneinfo.ZoneInfo(plan.timezone)).date()
    label = (quarter or "").strip() or default_quarter(plan, today)
    try:
        q = parse_quarter(label)
    except ValueError:
        raise FilterError(f"Quý “{_echo(label)}” không hợp lệ: nhập theo dạng NNNNQn, "
                          "ví dụ 2023Q2 (quý 2 năm 2023).") from None
    if q.start > today:
        raise FilterError(f"{q.vi_label} chưa bắt đầu: chọn quý hiện tại hoặc một quý đã qua.")
    level, agency, phase = ((v or "").strip() or None for v in (level, agency, phase))
    if level and level.lower() not in LEVEL_ALIASES:
        raise FilterError(f"Cấp “{_echo(level)}” không có: chọn "
                          f"{', '.join(LEVEL_NAMES.values())} hoặc để trống (tất cả các cấp).")
    report = quarter_report(url, q, plan)
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
    from pipeline.plan import LEVEL_NAMES
    from pipeline.report import FILE_STEM

    parts = [FILE_STEM, report.quarter]
    if "level" in report.filters:
        parts.append(LEVEL_NAMES.get(report.filters["level"], report.filters["level"]).lower())
    parts += [report.filters[k] for k in ("agency", "phase") if k in report.filters]
    return f"{'-'.join(parts)}.{fmt}"


def content_disposition(filename: str) -> str:
    """An attachment header that keeps Vietnamese names (RFC 6266: ``filename*`` in UTF-8) with an
    ASCII ``filename`` (tone marks dropped, đ -> d) for clients that do not read ``filename*``."""
    folded = unicodedata.normalize("NFKD", filename.replace("đ", "d").replace("Đ", "D"))
    ascii_name = re.sub(r"[^A-Za-z0-9._-]+", "-", folded.encode("ascii", "ignore").decode()).strip("-")
    encoded = quote(unicodedata.normalize("NFC", filename), safe="")
    return f"attachment; filename=\"{ascii_name or 'bao-cao'}\"; filename*=UTF-8''{encoded}"


def _message_page(status: int, title: str, message: str, back: str) -> HTMLResponse:
    """A short page for what went wrong, styled like the report; the message is escaped."""
    from pipeline.report import CSS

    esc = html.escape
    body = "\n".join([
        "<!DOCTYPE html>", '<html lang="vi">', "<head>", '<meta charset="utf-8">',
        f"<title>{esc(title)} — {esc(PAGE_TITLE)}</title>",
        f"<style>{CSS}\np.error {{ color: var(--late); font-weight: 600; }}</style>", "</head>", "<body>",
        f"<h1>{esc(title)}</h1>", f'<p class="error" role="alert">{esc(message)}</p>',
        f'<p><a href="{esc(back)}">Xem báo cáo quý vừa qua (không lọc)</a></p>', "</body>", "</html>", ""])
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
                phase: str | None) -> QuarterReport | HTMLResponse:
        from sqlalchemy.exc import SQLAlchemyError

        from pipeline.errors import ConfigError

        back = request.url_for("dashboard").path
        try:
            settings = settings_provider()
            return dashboard_report(settings.warehouse_url, settings.plan, quarter=quarter, level=level,
                                    agency=agency, phase=phase)
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
        from pipeline.report import FORMATS, render_html

        report = _report(request, quarter, level, agency, phase)
        if isinstance(report, HTMLResponse):
            return report
        links = {fmt: f"{request.url_for('download', fmt=fmt).path}?{_params(report)}" for fmt in FORMATS}
        page = render_html(report, form_action=request.url_for("dashboard").path, download_links=links)
        return HTMLResponse(page, headers=NO_SHARED_CACHE)

    @app.get("/bao-cao.{fmt}", name="download")
    def download(request: Request, fmt: str, quarter: str | None = None, level: str | None = None,
                 agency: str | None = None, phase: str | None = None) -> Response:
        from pipeline.report import render

        if fmt not in CONTENT_TYPES:
            return _message_page(404, "Không có định dạng này",
                                 f"Báo cáo có các định dạng {', '.join(CONTENT_TYPES)}, không có "
                                 f"“{_echo(fmt)}”.", request.url_for("dashboard").path)
        report = _report(request, quarter, level, agency, phase)
        if isinstance(report, HTMLResponse):
            return report
        headers = {**NO_SHARED_CACHE,
                   "Content-Disposition": content_disposition(download_name(report, fmt))}
        return Response(render(report, fmt), media_type=CONTENT_TYPES[fmt], headers=headers)

    return app
