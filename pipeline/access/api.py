"""The read API for the one-stop system (Một cửa điện tử): JSON over HTTP, its own server.

    create_app(settings) -> FastAPI      # the app; every route under /api/v1
    app_from_environment() -> FastAPI   # `digitize serve`'s workers (pipeline.access.serving)

Routes (docs/api.md; each needs ``Authorization: Bearer <token>`` of pipeline.access.tokens):

- ``GET /api/v1/holders/{holder_id}/records?purpose=&also=&limit=&offset=`` — the holder's
  archived, still-valid results, newest first; one access-log row per record handed out.
- ``GET /api/v1/records/{agency_code}/{record_id}`` — one record's metadata (record ids may hold
  "/"); logged as ``record``.
- ``GET /api/v1/records/{agency_code}/{record_id}/pdf?purpose=`` — the current PDF, its SHA-256
  checked against the warehouse first (409 if it differs), ETag, If-None-Match, Range; ``pdf``.
- ``GET /api/v1/search?q=&agency=&procedure=&level=&year_from=&year_to=&phase=&still_valid=``
- ``GET /api/v1/openapi.json``, ``GET /api/v1/docs``.

401 without a live token, 403 for an agency outside the token's, 400 with the Vietnamese message
for a bad parameter, query or holder id, always as ``{"error": "..."}``. Holder names and ids are
in a response only for a token with ``personal_data``; search hits never carry them (search reads
no personal data, so it is not logged), a record's metadata does.

No log line holds a holder id: uvicorn's access log (the URL, with the id in the path and the
``also`` ids in the query) is off; :class:`RequestLog` writes the line instead, with the id masked
and no query string.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, unquote

import anyio.to_thread
import pydantic_core
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline import __version__
from pipeline.access import search as core
from pipeline.access.accesslog import log_access
from pipeline.access.tokens import Caller, caller_for
from pipeline.config import Settings
from pipeline.errors import QueryError, WarehouseUnavailableError
from pipeline.intake.ingest import sha256_file
from pipeline.privacy import mask_personal_id
from pipeline.store import warehouse

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
MAX_LIMIT = 100
MAX_HOLDER_IDS = 5  # one person: citizen id, old id, tax code; more is a trawl, not a lookup
PURPOSE_MAX = 255
# searches and PDFs a worker process answers at once, each in its own thread with its own
# connection: no more than the warehouse's pool keeps open, so that none pays for a new one (the
# calls on the event loop hold one more, one at a time)
THREADS = warehouse.POOL_SIZE
UNEXPECTED = "Lỗi không mong đợi ở máy chủ API; báo quản trị hệ thống (xem nhật ký của digitize serve)."
UNAVAILABLE = "Kho dữ liệu tạm thời không truy cập được; thử lại sau ít phút."
# What a bad parameter must look like, for the 400 message (FastAPI's own would be English)
PARAM_HINTS = {
    "purpose": f"phải ghi mục đích khai thác (bắt buộc, tối đa {PURPOSE_MAX} ký tự), ví dụ "
               "purpose=giai-quyet-ho-so-000.00.12.H12-2405-0001",
    "limit": f"phải là số nguyên từ 1 đến {MAX_LIMIT}",
    "offset": "phải là số nguyên không âm",
    "year_from": "phải là năm bốn chữ số, ví dụ 2015",
    "year_to": "phải là năm bốn chữ số, ví dụ 2021",
    "still_valid": "phải là true hoặc false",
    "q": "phải có: các từ cần tìm",
}


class Record(BaseModel):
    """One archived result. ``holder_name``/``holder_id`` appear only for a token allowed
    personal data; ``pdf_url`` still needs ``purpose``."""

    agency_code: str
    record_id: str
    procedure_code: str | None
    procedure_name: str | None
    result_number: str | None
    issued_on: str | None
    still_valid: bool | None
    version: int
    signature_level: str | None
    pdf_sha256: str
    pdf_url: str
    holder_name: str | None = None
    holder_id: str | None = None


class SearchHit(Record):
    snippet_html: str
    score: float


class RecordPage(BaseModel):
    total: int
    limit: int
    offset: int
    next: str | None
    records: list[Record]


class SearchPage(BaseModel):
    total: int
    limit: int
    offset: int
    next: str | None
    hits: list[SearchHit]


class Error(BaseModel):
    error: str


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Error} for code in (400, 401, 403, 404, 503)}


# the characters quote() leaves as they are: most agency codes and record ids have no others, and
# quoting them anyway cost a fiftieth of a holder lookup
_UNQUOTED = re.compile(r"[A-Za-z0-9_.~/-]*")


def _quoted(part: str, safe: str) -> str:
    return part if _UNQUOTED.fullmatch(part) and ("/" in safe or "/" not in part) else quote(part, safe=safe)


def _record(base: str, hit: core.Hit, personal: bool, **extra: Any) -> dict[str, Any]:
    """``hit`` as the API shows it; ``base`` the server's address as the caller reached it
    (:func:`_base`)."""
    fields: dict[str, Any] = {
        "agency_code": hit.agency_code, "record_id": hit.record_id,
        "procedure_code": hit.procedure_code, "procedure_name": hit.procedure_name,
        "result_number": hit.result_number,
        "issued_on": hit.issued_on.isoformat() if hit.issued_on else None,
        "still_valid": hit.still_valid, "version": hit.version,
        "signature_level": hit.signature_level, "pdf_sha256": hit.pdf_sha256,
        "pdf_url": f"{base}{PREFIX}/records/{_quoted(hit.agency_code, safe='')}/"
                   f"{_quoted(hit.record_id, safe='/')}/pdf",
        **extra,
    }
    if personal:
        fields.update(holder_name=hit.holder_name, holder_id=hit.holder_id)
    return fields


def _base(request: Request) -> str:
    # once per answer, not per record: Starlette builds it anew each time it is asked
    return str(request.base_url).rstrip("/")


def _page(request: Request, total: int, limit: int, offset: int) -> dict[str, Any]:
    following = offset + limit
    return {"total": total, "limit": limit, "offset": offset,
            "next": str(request.url.include_query_params(offset=following)) if following < total
            else None}


def _purpose(text: str) -> str:
    purpose = " ".join(text.split())
    if not purpose:
        raise HTTPException(400, f"Tham số purpose {PARAM_HINTS['purpose']}.")
    return purpose


def _url(request: Request) -> str:
    return request.app.state.url


@contextlib.contextmanager
def autocommit(url: str) -> Iterator[Connection]:
    """A connection for one call, in autocommit: each statement is its own transaction, so the
    access log's rows are durable as soon as their INSERT returns, before the answer leaves, and
    a call pays no BEGIN, COMMIT or ROLLBACK round trips (under 50 concurrent calls, the round
    trips to PostgreSQL were most of a call's time)."""
    with warehouse.engine_for(url).connect() as conn:
        yield conn.execution_options(isolation_level="AUTOCOMMIT")


_bearer = HTTPBearer(auto_error=False, description="Mã truy cập của hệ thống gọi API "
                                                   "(`digitize tokens create`).")


def _checked(request: Request, conn: Connection,
             credentials: HTTPAuthorizationCredentials | None) -> Caller:
    """The caller whose live token the request bears, or 401."""
    caller = caller_for(conn, credentials.credentials) if credentials else None
    if caller is None:
        raise HTTPException(401, "Thiếu mã truy cập, hoặc mã không đúng hay đã bị thu hồi: gửi "
                                 "'Authorization: Bearer <mã>' do quản trị kho cấp.",
                            headers={"WWW-Authenticate": "Bearer"})
    request.state.caller = caller.name  # for RequestLog's line
    return caller


Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]


# The token's check, a holder's records and one record's metadata are run on the event loop, not
# in a thread: each is an index probe or two and an insert, about a millisecond, and a hop to a
# thread and back cost more than that (under 50 concurrent calls, the hops took a third of a
# worker's CPU). Search and PDFs, which may take hundreds of milliseconds, run in threads, and
# check the token on a connection of its own: one held from the event loop while they wait for a
# thread could leave the loop waiting for a connection only the loop can give back.
async def _caller(request: Request, credentials: Credentials) -> Caller:
    with _called(request, credentials) as called:
        return called.caller


@dataclass(frozen=True)
class Called:
    """A call answered on the event loop: its caller, and the one connection the whole call
    uses (the token, the read, the access log: a pool checkout cost as much as the token's
    query)."""

    caller: Caller
    conn: Connection


@contextlib.contextmanager
def _called(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Iterator[Called]:
    """The caller and an autocommit connection for the call, or 401.

    A context manager the routes enter themselves, not a FastAPI dependency with ``yield``: that
    machinery cost a tenth of a holder lookup's CPU. The connection comes from the pool without
    a ping (another tenth): the token's query goes first, and when it finds the connection
    dropped (PostgreSQL restarted, a backend ended) it is asked again on a new one, before
    anything was read or logged."""
    engine = warehouse.engine_for(_url(request), ping=False)
    try:
        called = _checked_on(engine.connect(), request, credentials)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        called = _checked_on(engine.connect(), request, credentials)
    with called.conn:
        yield called


def _checked_on(conn: Connection, request: Request,
                credentials: HTTPAuthorizationCredentials | None) -> Called:
    """The call on ``conn`` (autocommit) once the token is checked; ``conn`` closed if not."""
    try:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        return Called(_checked(request, conn, credentials), conn)
    except BaseException:
        conn.close()
        raise


CallerDep = Annotated[Caller, Depends(_caller)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Offset = Annotated[int, Query(ge=0)]
Purpose = Annotated[str, Query(max_length=PURPOSE_MAX, description="why the caller reads this")]


def _logged(conn: Connection, reader: str, action: str,
            reads: list[tuple[str | None, str | None]], purpose: str) -> None:
    """The access log's rows (agency, record id), committed before the answer leaves: a read
    that cannot be logged is not answered. (On an :func:`autocommit` connection the commit has
    nothing left to do.)"""
    log_access(conn, reader, action, reads, purpose)
    conn.commit()


def _in_scope(caller: Caller, agency_code: str) -> None:
    if not caller.may_read(agency_code):
        raise HTTPException(403, f"Mã truy cập của {caller.name} không được đọc hồ sơ của cơ quan "
                                 f"{agency_code}; xin cấp mã có cơ quan này.")


router = APIRouter(prefix=PREFIX, responses=ERRORS)


class HolderQuery(BaseModel):
    """The holder lookup's query parameters (others in the query are ignored, as FastAPI does)."""

    purpose: Annotated[str, Field(max_length=PURPOSE_MAX, description="why the caller reads this")]
    also: Annotated[list[str], Field(description="the same holder's other ids")] = []
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = 20
    offset: Annotated[int, Field(ge=0)] = 0


class HolderPath(BaseModel):
    """The holder lookup's path parameter."""

    holder_id: Annotated[str, Field(description="12-digit citizen id, 9-digit old id, or tax code")]


def _parameters(model: type[BaseModel], where: str) -> list[dict[str, Any]]:
    """``model``'s fields as OpenAPI parameters ``where`` (path, query)."""
    schema = model.model_json_schema()
    return [{"name": name, "in": where, "required": name in schema.get("required", ()),
             "schema": field} for name, field in schema["properties"].items()]


def _holder_query(request: Request) -> HolderQuery:
    """The lookup's parameters, or 400 as for any route's (:func:`_bad_parameter`)."""
    query = request.query_params
    given: dict[str, Any] = {name: query[name] for name in ("purpose", "limit", "offset") if name in query}
    if "also" in query:
        given["also"] = query.getlist("also")
    try:
        return HolderQuery.model_validate(given)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


# The one-stop system's everyday call, answered by the thousand: its parameters and its token are
# read here, by pydantic, not by FastAPI, which looks at every parameter's annotation again on
# every call (an eighth of a lookup's instructions, issue 18); ``openapi_extra`` documents them.
@router.get("/holders/{holder_id}/records", response_model=RecordPage,
            openapi_extra={"parameters": _parameters(HolderPath, "path") + _parameters(HolderQuery, "query"),
                           "security": [{_bearer.scheme_name: []}]})
async def holder_records(request: Request) -> Response:
    """Every archived, still-valid result of one holder (citizen id, old id, tax code; ``also``
    for the same person's other ids), newest first, within the token's agencies."""
    asked = _holder_query(request)
    purpose = _purpose(asked.purpose)
    ids = [request.path_params["holder_id"], *asked.also]
    if len(ids) > MAX_HOLDER_IDS:
        raise HTTPException(400, f"Một lần tra cứu nhận tối đa {MAX_HOLDER_IDS} mã của cùng một người.")
    limit, offset = asked.limit, asked.offset
    with _called(request, await _bearer(request)) as called:
        caller, conn = called.caller, called.conn
        page = core.holder_records(conn, ids, core.Filters(agencies=caller.agencies),
                                   personal=caller.personal_data,
                                   settings=request.app.state.settings, snippets=False,
                                   limit=limit, offset=offset)
        # one row per record handed out; a lookup that found nothing is logged too
        _logged(conn, caller.name, "holder_lookup",
                [(h.agency_code, h.record_id) for h in page.hits] or [(None, None)], purpose)
    base = _base(request)
    return _json({**_page(request, page.total, limit, offset),
                  "records": [_record(base, h, caller.personal_data) for h in page.hits]})


def _found(conn: Connection, caller: Caller, agency_code: str, record_id: str) -> core.Hit:
    _in_scope(caller, agency_code)
    hit = core.get_record(conn, agency_code, record_id, personal=caller.personal_data)
    if hit is None:
        raise HTTPException(404, f"Không có hồ sơ {record_id} đã lưu trữ của cơ quan {agency_code}.")
    return hit


# Declared before the metadata route, whose {record_id:path} would take "<id>/pdf" as an id
@router.get("/records/{agency_code}/{record_id:path}/pdf", response_class=FileResponse,
            responses={200: {"content": {"application/pdf": {}}}, 206: {"description": "a range"},
                       304: {"description": "unchanged (If-None-Match)"}, 409: {"model": Error}})
def record_pdf(request: Request, caller: CallerDep, agency_code: str, record_id: str,
               purpose: Purpose) -> Response:
    """The record's current (signed) PDF, as archived: ``ETag`` is its SHA-256 in quotes;
    ``If-None-Match`` answers 304, ``Range: bytes=a-b`` 206. The file is hashed and compared
    with the warehouse before a byte is sent: a file changed on disk is never served (409)."""
    reason = _purpose(purpose)
    with autocommit(_url(request)) as conn:
        return pdf_response(request, conn, caller.name, _found(conn, caller, agency_code, record_id),
                            reason)


def pdf_response(request: Request, conn: Connection, reader: str, hit: core.Hit,
                 purpose: str) -> Response:
    """The archived PDF of ``hit`` as a response to ``request`` (ETag, 304, ranges), after the
    file's SHA-256 matched the warehouse's and the read was logged for ``reader`` on ``conn``:
    the read API and the archivists' search page hand out files the same way."""
    agency_code, record_id = hit.agency_code, hit.record_id
    etag = f'"{hit.pdf_sha256}"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    wanted = {t.strip().removeprefix("W/") for t in request.headers.get("if-none-match", "").split(",")}
    if etag in wanted or "*" in wanted:
        _logged(conn, reader, "pdf", [(agency_code, record_id)], purpose)
        return Response(status_code=304, headers=headers)
    path = Path(hit.pdf_path)
    try:
        actual = sha256_file(path)
    except OSError:
        actual = None
    if actual != hit.pdf_sha256:
        log.error("archived PDF of %s/%s not served: %s (%s); run digitize fixity", agency_code,
                  record_id, "missing" if actual is None else "its SHA-256 differs from the warehouse's",
                  path)
        raise HTTPException(409, f"Tệp PDF của hồ sơ {record_id} ({agency_code}) "
                                 f"{'không còn trong kho lưu trữ' if actual is None else 'đã bị thay đổi'}"
                                 ", không khớp mã SHA-256 trong kho dữ liệu, nên không được gửi. Báo "
                                 "quản trị kho kiểm tra (`digitize fixity`).")
    _logged(conn, reader, "pdf", [(agency_code, record_id)], purpose)
    return FileResponse(path, media_type="application/pdf", headers=headers, filename=path.name,
                        content_disposition_type="inline")


@router.get("/records/{agency_code}/{record_id:path}", response_model=Record)
async def record(request: Request, credentials: Credentials, agency_code: str, record_id: str,
                 purpose: Annotated[str, Query(max_length=PURPOSE_MAX)] = "") -> Response:
    """One archived record's metadata (with the holder for a token allowed personal data)."""
    with _called(request, credentials) as called:
        caller, conn = called.caller, called.conn
        hit = _found(conn, caller, agency_code, record_id)
        _logged(conn, caller.name, "record", [(agency_code, record_id)], " ".join(purpose.split()))
    return _json(_record(_base(request), hit, caller.personal_data))


@router.get("/search", response_model=SearchPage, response_model_exclude_unset=True)
def search(request: Request, caller: CallerDep, q: str, agency: str | None = None,
           procedure: str | None = None, level: str | None = None, year_from: int | None = None,
           year_to: int | None = None, phase: str | None = None, still_valid: bool | None = None,
           limit: Limit = 20, offset: Offset = 0) -> dict[str, Any]:
    """Archived records whose text or metadata match ``q`` (tone marks and đ/d ignored), ranked,
    with a snippet (matched words in ``<mark>``), within the token's agencies."""
    if agency is not None:
        _in_scope(caller, agency)
    filters = core.Filters(agencies=caller.agencies, agency=agency, procedure_code=procedure,
                           level=level, year_from=year_from, year_to=year_to, phase=phase,
                           still_valid=still_valid)
    page = core.search(_url(request), q, filters, limit=limit, offset=offset,
                       settings=request.app.state.settings)
    base = _base(request)
    return {**_page(request, page.total, limit, offset),
            "hits": [_record(base, h, False, snippet_html=core.snippet_html(h.snippet),
                             score=h.score)
                     for h in page.hits]}


def _json(content: dict[str, Any]) -> Response:
    """An answer already in its model's shape (the route's ``response_model`` documents it):
    validating it again through pydantic took a tenth of a holder lookup's CPU. Written by
    pydantic's serializer (compiled): the standard library's took a twelfth of a lookup's
    instructions."""
    return Response(pydantic_core.to_json(content), media_type="application/json")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, str(exc.detail), exc.headers)


async def _bad_parameter(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    names = list(dict.fromkeys(str(e["loc"][-1]) for e in exc.errors()))
    return _error(400, "; ".join(f"Tham số {n} {PARAM_HINTS.get(n, 'không hợp lệ')}" for n in names) + ".")


async def _bad_query(request: Request, exc: Exception) -> Response:
    return _error(400, str(exc))


async def _unavailable(request: Request, exc: Exception) -> Response:
    log.error("warehouse unavailable: %s", type(exc).__name__)
    return _error(503, UNAVAILABLE)


_HOLDER_PATH = re.compile(rf"^({re.escape(PREFIX)}/holders/)([^/]+)")


def masked_path(path: str) -> str:
    """The request path as logged: a holder's id masked like everywhere else (pipeline.privacy)."""
    return _HOLDER_PATH.sub(lambda m: m[1] + mask_personal_id(unquote(m[2])), path)


class RequestLog:
    """One log line per request (client, method, path with the holder id masked, no query string,
    status, time, caller), and an exception that escapes a route answered 500 and logged by its
    type and frames only: its message may quote SQL parameters, holder ids among them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        state = scope.setdefault("state", {})
        status: list[int] = []

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        path = masked_path(scope["path"])
        try:
            await self.app(scope, receive, watched)
        except Exception as exc:  # noqa: BLE001 - the last line of defence, logged below
            log.error("%s on %s %s; traceback (message left out):\n%s", type(exc).__name__,
                      scope["method"], path, "".join(traceback.format_tb(exc.__traceback__)))
            if not status:
                await _error(500, UNEXPECTED)(scope, receive, watched)
        client = scope.get("client") or ("-", 0)
        log.info('%s "%s %s" %s %.0f ms caller=%s', client[0], scope["method"], path,
                 status[0] if status else "-", (time.monotonic() - started) * 1000,
                 state.get("caller", "-"))


@contextlib.asynccontextmanager
async def _threads(app: FastAPI) -> AsyncIterator[None]:
    # anyio's default, 40 threads, would let calls beyond the pool open and close connections
    anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
    yield


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(title="Kho dữ liệu số hóa — API tra cứu cho hệ thống Một cửa", version=__version__,
                  description="Read API of the province's archive of digitized TTHC results: "
                              "docs/api.md.",
                  openapi_url=f"{PREFIX}/openapi.json", docs_url=f"{PREFIX}/docs", redoc_url=None,
                  lifespan=_threads)
    app.state.settings = settings
    app.state.url = settings.warehouse_url
    app.include_router(router)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _bad_parameter)
    app.add_exception_handler(QueryError, _bad_query)
    app.add_exception_handler(OperationalError, _unavailable)
    app.add_exception_handler(WarehouseUnavailableError, _unavailable)
    app.add_middleware(RequestLog)
    return app


def app_from_environment() -> FastAPI:
    """The app of each worker process of ``digitize serve --workers N``: its settings from the
    environment, as the command read them; its log lines as the command writes them."""
    from pipeline.config import load_settings

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app(load_settings())
