"""The archivists' search page: find an archived result by its words and filters, open its PDF.

The Airflow plugin ``plugins/digitize_search.py`` mounts :func:`create_app` in the Airflow API
server beside the progress page (with Airflow's authentication, the ``digitize_warehouse``
connection and the Airflow user as the :class:`Reader`); nothing here depends on Airflow, so the
same app runs under any ASGI server or FastAPI's TestClient::

    create_app(settings_provider, *, reader, dependencies=(), login_url=None) -> FastAPI
    Reader(name, personal_data)        # who reads, as the access log names them
    Asked(...)                         # the form as filled in: its filters, page and purpose

Routes (relative to where the app is mounted, ``/digitize-search`` in Airflow):

- ``GET /?q=&agency=&procedure=&level=&year_from=&year_to=&phase=&still_valid=&purpose=&page=`` —
  the page (``templates/search_page.html.j2``): the form, and with ``q`` the results of
  :func:`pipeline.access.search.search`, ``PAGE_SIZE`` a page, best first, each with its snippet
  (matched words in ``<mark>``) and its PDF: a download link, which works inside the Airflow UI
  (its iframe is sandboxed without pop-ups, and Chromium shows no PDF in a sandboxed frame),
  and, on the page opened on its own, a link that shows it in a new tab. Without ``q``: the
  empty form. An empty, too long or unusable query, an unknown agency, level or phase, a bad
  year, page or purpose: HTTP 400, the page with the form as filled in and the Vietnamese
  message of :class:`~pipeline.errors.QueryError`. An unreachable or unmigrated warehouse: 503.
- ``GET /pdf/<agency>/<record_id>?purpose=`` — the record's current PDF, served as the read
  API serves it (:func:`pipeline.access.api.pdf_response`: SHA-256 checked against the warehouse
  before a byte is sent, ETag, ranges, one ``pdf`` row in ``access_log`` with the reader's name
  and the purpose; 404 no such archived record, 409 a file changed on disk).

Personal data (Decree 13/2023): holder names and ids are on the page only for a reader whose
role may read them (``Reader.personal_data``); for anyone else the snippets are masked
(:func:`pipeline.access.search.masked`). A page that shows holder data is a read of personal
data: each hit shown is written to ``access_log`` (action ``record``) with the purpose, before
the page is sent. The purpose is the form's *Mục đích khai thác*, ``tra cứu lưu trữ`` when left
empty; the PDF links carry it.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote, urlencode

from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipeline.errors import ConfigError, QueryError

if TYPE_CHECKING:
    from pipeline.access.search import Filters, Hit, Page
    from pipeline.config import Settings

log = logging.getLogger(__name__)

PAGE_TITLE = "Tra cứu hồ sơ số hóa"
PAGE_SIZE = 20
DEFAULT_PURPOSE = "tra cứu lưu trữ"
STILL_VALID = {"true": True, "false": False}  # the form's values -> Filters.still_valid
# Authenticated results: a shared proxy must not keep them for the next person.
NO_SHARED_CACHE = {"Cache-Control": "private, no-cache"}
_ECHO = 80  # characters of a bad value repeated in a message
_MAX_PAGE_DIGITS = 6
# the page's own templates first; the reporting stage's layout (styles, frame) is shared
TEMPLATES = Environment(
    loader=ChoiceLoader([PackageLoader("pipeline.access"), PackageLoader("pipeline.reporting")]),
    autoescape=select_autoescape(["html.j2"]), undefined=StrictUndefined, trim_blocks=True,
    lstrip_blocks=True)


@dataclass(frozen=True)
class Reader:
    """Who reads the page: their name as the access log writes it, and whether their role may
    read holder names and ids."""

    name: str
    personal_data: bool


def _echo(value: str) -> str:
    value = value.strip()
    return value if len(value) <= _ECHO else value[:_ECHO - 1] + "…"


def _year(value: str, which: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not re.fullmatch(r"\d{4}", value, re.ASCII):
        raise QueryError(f"Năm ban hành {which} “{_echo(value)}” không hợp lệ: ghi năm bốn chữ số, "
                         "ví dụ 2015.")
    return int(value)


@dataclass(frozen=True)
class Asked:
    """The form as the reader filled it in, as text: echoed back into the form and the links."""

    q: str | None = None  # None: the page opened without a search
    agency: str = ""
    procedure: str = ""
    level: str = ""
    year_from: str = ""
    year_to: str = ""
    phase: str = ""
    still_valid: str = ""
    purpose: str = ""
    page: str = ""

    @property
    def level_key(self) -> str:
        """``level`` as the warehouse writes it (``Huyện`` -> ``huyen``); unknown values as typed."""
        from pipeline.reporting.plan import LEVEL_ALIASES

        level = self.level.strip()
        return LEVEL_ALIASES.get(level.lower(), level)

    def filters(self) -> Filters:
        """The search's filters; :class:`QueryError` for a value it cannot use (the search itself
        refuses unknown agencies, levels and phases)."""
        from pipeline.access.search import Filters

        still_valid = self.still_valid.strip()
        if still_valid and still_valid not in STILL_VALID:
            raise QueryError(f"Hiệu lực “{_echo(still_valid)}” không có: chọn còn hiệu lực, hết hiệu "
                             "lực hoặc để trống (tất cả).")
        return Filters(agency=self.agency.strip() or None,
                       procedure_code=self.procedure.strip() or None,
                       level=self.level_key or None,
                       year_from=_year(self.year_from, "từ"), year_to=_year(self.year_to, "đến"),
                       phase=self.phase.strip() or None,
                       still_valid=STILL_VALID.get(still_valid))

    def page_number(self) -> int:
        page = self.page.strip()
        if not page:
            return 1
        if not re.fullmatch(rf"\d{{1,{_MAX_PAGE_DIGITS}}}", page, re.ASCII) or int(page) < 1:
            raise QueryError(f"Trang “{_echo(page)}” không hợp lệ: ghi số trang, từ 1.")
        return int(page)

    def purpose_text(self) -> str:
        """What the access log keeps as the reason for reading."""
        from pipeline.access.api import PURPOSE_MAX

        purpose = " ".join(self.purpose.split()) or DEFAULT_PURPOSE
        if len(purpose) > PURPOSE_MAX:
            raise QueryError(f"Mục đích khai thác dài {len(purpose)} ký tự, quá {PURPOSE_MAX}: ghi "
                             "ngắn gọn, ví dụ số hồ sơ một cửa đang giải quyết.")
        return purpose

    def link(self, **changes: str) -> str:
        """The query string of this search with ``changes`` (the filled-in fields only)."""
        fields = {k: v for k, v in {**asdict(self), **changes}.items() if v}
        return urlencode(fields)


class Agency(NamedTuple):
    code: str
    name: str
    level: str | None


class Choices(NamedTuple):
    """What the form's lists offer."""

    agencies: list[Agency]
    phases: list[tuple[str, str]]  # (id, "Giai đoạn 2 (ban hành 2006–2021)"): phases that digitize results


class HitView(NamedTuple):
    """One result as the page shows it."""

    title: str
    facts: list[str]
    agency: str
    holder: str | None
    snippet: Markup
    pdf_href: str


class PageLink(NamedTuple):
    text: str
    href: str | None  # None: the page shown, or a gap
    css: str


class Results(NamedTuple):
    summary: str
    hits: list[HitView]
    first: int  # the number of the first hit (the list's start)
    pages: list[PageLink]


def _choices(settings: Settings) -> Choices:
    from sqlalchemy import select

    from pipeline.store import warehouse

    a = warehouse.agencies
    with warehouse.engine_for(settings.warehouse_url).connect() as conn:
        agencies = [Agency(*row) for row in conn.execute(
            select(a.c.code, a.c.name, a.c.level).order_by(a.c.code))]
    phases = [(p.id, f"{p.name} (ban hành {p.issued.start.year}–{p.issued.end.year})")
              for p in settings.plan.phases if p.issued is not None]
    return Choices(agencies, phases)


def _number(n: int) -> str:
    return f"{n:,}".replace(",", ".")


def _hit_view(hit: Hit, agencies: dict[str, Agency], pdf_href: str) -> HitView:
    from pipeline.access.search import snippet_html

    facts = [f"Số {hit.result_number}" if hit.result_number else None,
             f"ngày ban hành {hit.issued_on:%d/%m/%Y}" if hit.issued_on else None,
             f"mã TTHC {hit.procedure_code}" if hit.procedure_code else None,
             f"mã hồ sơ {hit.record_id}",
             {True: "còn hiệu lực", False: "hết hiệu lực", None: None}[hit.still_valid],
             f"ký số {hit.signature_level}" if hit.signature_level else "chưa ký số",
             f"bản {hit.version}" if hit.version > 1 else None]
    agency = agencies.get(hit.agency_code)
    holder = " — ".join(x for x in (hit.holder_name, hit.holder_id and f"mã định danh {hit.holder_id}")
                        if x) or None
    return HitView(title=hit.procedure_name or hit.procedure_code or "Kết quả TTHC",
                   facts=[f for f in facts if f],
                   agency=f"{hit.agency_code} {agency.name}" if agency else hit.agency_code,
                   holder=holder, snippet=Markup(snippet_html(hit.snippet)), pdf_href=pdf_href)


def _page_links(asked: Asked, action: str, current: int, last: int) -> list[PageLink]:
    """Previous, the first, a window around the current page, the last, next."""
    def to(n: int, text: str, css: str = "page") -> PageLink:
        return PageLink(text, f"{action}?{asked.link(page=str(n))}", css)

    if last <= 1 and current <= 1:
        return []
    centre = min(current, last)  # a page past the last one (an old link) leads back to the last
    window = range(max(1, centre - 2), min(last, centre + 2) + 1)
    links = [to(min(current - 1, last), "« Trang trước", "previous")] if current > 1 else []
    if window[0] > 1:
        links.append(to(1, "1"))
        if window[0] > 2:
            links.append(PageLink("…", None, "gap"))
    links += [PageLink(str(n), None, "current") if n == current else to(n, str(n)) for n in window]
    if window[-1] < last:
        if window[-1] < last - 1:
            links.append(PageLink("…", None, "gap"))
        links.append(to(last, str(last)))
    if current < last:
        links.append(to(current + 1, "Trang sau »", "next"))
    return links


def _summary(asked: Asked, page: Page, current: int) -> str:
    if page.total == 0:
        return (f"Không tìm thấy hồ sơ nào có đủ các từ “{_echo(asked.q or '')}” trong phạm vi đã lọc. "
                "Thử bớt từ, kiểm tra chính tả hoặc bỏ bớt bộ lọc.")
    if not page.hits:
        return (f"Có {_number(page.total)} hồ sơ; trang {current} không còn hồ sơ nào "
                f"(có {math.ceil(page.total / PAGE_SIZE)} trang).")
    shown = f"{_number(page.offset + 1)}–{_number(page.offset + len(page.hits))}"
    return f"Tìm thấy {_number(page.total)} hồ sơ, phù hợp nhất trước; đang hiện {shown}."


def _pdf_href(action: str, hit: Hit, purpose: str) -> str:
    # every character of a record id kept: "/" inside an id is a part of it, not a path step
    return (f"{action}pdf/{quote(hit.agency_code, safe='')}/{quote(hit.record_id, safe='')}"
            f"?{urlencode({'purpose': purpose})}")


def _search(settings: Settings, asked: Asked, reader: Reader, choices: Choices, action: str) -> Results:
    """The results the page shows; :class:`QueryError` for a search that cannot run. A page
    with holder data is logged (one ``record`` row per hit shown) before it is made."""
    from pipeline.access.accesslog import log_access
    from pipeline.access.search import search
    from pipeline.store import warehouse

    filters, current, purpose = asked.filters(), asked.page_number(), asked.purpose_text()
    page = search(settings.warehouse_url, asked.q or "", filters, limit=PAGE_SIZE,
                  offset=(current - 1) * PAGE_SIZE, personal=reader.personal_data, settings=settings)
    if reader.personal_data and page.hits:
        with warehouse.engine_for(settings.warehouse_url).begin() as conn:
            log_access(conn, reader.name, "record",
                       [(h.agency_code, h.record_id) for h in page.hits], purpose)
    agencies = {a.code: a for a in choices.agencies}
    hits = [_hit_view(h, agencies, _pdf_href(action, h, purpose)) for h in page.hits]
    last = max(1, math.ceil(page.total / PAGE_SIZE))
    return Results(_summary(asked, page, current), hits, page.offset + 1,
                   _page_links(asked, action, current, last))


def _message_page(status: int, title: str, message: str, back: str) -> HTMLResponse:
    body = TEMPLATES.get_template("search_message.html.j2").render(
        title=title, page_title=PAGE_TITLE, message=message, back=back)
    return HTMLResponse(body, status_code=status, headers=NO_SHARED_CACHE)


_ERROR_TITLES = {400: "Yêu cầu không hợp lệ", 404: "Không có hồ sơ này", 409: "Không gửi được tệp PDF"}
UNAVAILABLE_TITLE = "Chưa tra cứu được"
UNREADABLE = ("Không đọc được kho dữ liệu (cơ sở dữ liệu không kết nối được hoặc chưa được cập nhật "
              "cấu trúc). Báo bộ phận quản trị hệ thống; chi tiết trong nhật ký của Airflow API server.")


def create_app(settings_provider: Callable[[], Settings], *, reader: Callable[..., Reader],
               dependencies: Sequence[Any] = (),
               login_url: Callable[[Request], str] | None = None) -> FastAPI:
    """The search page's app. ``settings_provider`` is called on each request (the warehouse as
    it is now); ``reader`` is a FastAPI dependency giving the :class:`Reader` of the request;
    ``dependencies`` run before every route (Airflow's authentication); ``login_url(request)``,
    when given, is where a browser without a valid login is sent instead of a bare 401/403."""
    from sqlalchemy.exc import SQLAlchemyError

    app = FastAPI(title=PAGE_TITLE, dependencies=list(dependencies), docs_url=None, redoc_url=None,
                  openapi_url=None)
    # the reader as a default, not Annotated: this module's annotations are strings, resolved
    # against its globals, where ``reader`` is not
    who_reads = Depends(reader)

    @app.exception_handler(StarletteHTTPException)
    async def _answer(request: Request, exc: StarletteHTTPException) -> Response:
        wants_page = "text/html" in request.headers.get("accept", "")
        if login_url is not None and exc.status_code in (401, 403) and wants_page \
                and request.method == "GET":
            return RedirectResponse(login_url(request), status_code=303)
        if wants_page and exc.status_code in _ERROR_TITLES:
            return _message_page(exc.status_code, _ERROR_TITLES[exc.status_code], str(exc.detail),
                                 request.url_for("search_page").path)
        return await http_exception_handler(request, exc)

    def _unavailable(back: str, exc: Exception) -> HTMLResponse:
        if isinstance(exc, ConfigError):
            log.error("search page: %s", exc)
            return _message_page(503, UNAVAILABLE_TITLE, f"Cấu hình hoặc kho dữ liệu chưa sẵn sàng: {exc}",
                                 back)
        log.error("search page: the warehouse could not be read (%s)", type(exc).__name__)
        return _message_page(503, UNAVAILABLE_TITLE, UNREADABLE, back)

    @app.get("/", name="search_page", response_class=HTMLResponse)
    def search_page(request: Request, q: str | None = None, agency: str = "",
                    procedure: str = "", level: str = "", year_from: str = "", year_to: str = "",
                    phase: str = "", still_valid: str = "", purpose: str = "",
                    page: str = "", who: Reader = who_reads) -> Response:
        from pipeline.access.search import LEVELS, MAX_QUERY_CHARS
        from pipeline.reporting.plan import LEVEL_NAMES

        action = request.url_for("search_page").path
        asked = Asked(q=q, agency=agency, procedure=procedure, level=level, year_from=year_from,
                      year_to=year_to, phase=phase, still_valid=still_valid, purpose=purpose,
                      page=page)
        results, error, status = None, None, 200
        try:
            settings = settings_provider()
            choices = _choices(settings)
            if q is not None:
                try:
                    results = _search(settings, asked, who, choices, action)
                except QueryError as exc:
                    error, status = str(exc), 400
        except (ConfigError, SQLAlchemyError) as exc:
            return _unavailable(action, exc)
        body = TEMPLATES.get_template("search_page.html.j2").render(
            page_title=PAGE_TITLE, action=action, asked=asked, choices=choices, error=error,
            results=results, personal_data=who.personal_data, max_query=MAX_QUERY_CHARS,
            levels=[(key, LEVEL_NAMES[key]) for key in LEVELS], default_purpose=DEFAULT_PURPOSE,
            own_address=str(request.url.replace(query=asked.link())))
        return HTMLResponse(body, status_code=status, headers=NO_SHARED_CACHE)

    @app.get("/pdf/{agency_code}/{record_id:path}", name="pdf")
    def pdf(request: Request, agency_code: str, record_id: str, purpose: str = "",
            who: Reader = who_reads) -> Response:
        from pipeline.access.api import autocommit, pdf_response
        from pipeline.access.search import get_record

        back = request.url_for("search_page").path
        try:
            settings = settings_provider()
            reason = Asked(purpose=purpose).purpose_text()
        except QueryError as exc:
            return _message_page(400, _ERROR_TITLES[400], str(exc), back)
        except ConfigError as exc:
            return _unavailable(back, exc)
        try:
            with autocommit(settings.warehouse_url) as conn:
                hit = get_record(conn, agency_code, record_id)
                if hit is None:
                    return _message_page(404, _ERROR_TITLES[404], (
                        f"Không có hồ sơ {record_id} đã lưu trữ của cơ quan {agency_code}."), back)
                # as the read API hands files out: hash checked, ETag and ranges, the read logged
                return pdf_response(request, conn, who.name, hit, reason)
        except SQLAlchemyError as exc:
            return _unavailable(back, exc)

    return app
