"""Search over the archived records, and the holder's store, on SQLite or PostgreSQL.

One query function, two back ends (the index is :mod:`pipeline.store.search_index`): the query's
words are folded as the documents were (no case, no tone marks, đ as d), so that ``giay phep
xay dung`` finds "Giấy phép xây dựng" on both, ranked by bm25 (SQLite FTS5) or ``ts_rank_cd``
(PostgreSQL; a query matching more than ``RANKED`` records is ranked in tiers of that many, the
most recently archived first, so that its first page stays fast at a million records). On
PostgreSQL a query word that no text contains (an OCR slip, in the text or in the query) is
replaced by the words of the texts most similar to it (``pg_trgm``). The query is only ever
data: its words are bound parameters made of letters and digits.

Only archived records are found. Holder names and ids are in a hit only with ``personal=True``
(a caller whose role may read them, Decree 13/2023): for anyone else the snippet masks long
numbers and the holder's name. Whoever hands hits out writes the access log
(:mod:`pipeline.access.accesslog`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import html
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    bindparam,
    column,
    func,
    literal_column,
    select,
    table,
    text,
)

from pipeline.access.holders import holder_keys, normalize_holder_id
from pipeline.errors import QueryError
from pipeline.privacy import mask_personal_id
from pipeline.store import search_index as index
from pipeline.store import warehouse

if TYPE_CHECKING:
    from sqlalchemy.engine import Row

    from pipeline.config import Settings

__all__ = ["Filters", "Hit", "Page", "QueryError", "check_page", "get_record", "holder_records",
           "normalize_holder_id", "search", "snippet_html", "snippet_text"]

MAX_QUERY_CHARS = 500
MAX_LIMIT = 100
LEVELS = ("tinh", "huyen", "xa")
MARK_START, MARK_END = "\x02", "\x03"
SNIPPET_WORDS = 30  # words of the original text around the matches
# PostgreSQL: a query word no text contains is replaced by at most this many similar words of
# the texts, at least this similar (pg_trgm). Short words share few trigrams: "dumg" and "dung"
# are 0.25 alike, under pg_trgm's default threshold of 0.3.
SIMILAR_WORDS = 3
SIMILARITY = 0.2
# PostgreSQL: matches ranked together (ts_rank_cd reads each one's whole tsvector); a query that
# matches more is ranked in tiers of this many, the most recently archived first (_postgresql_page)
RANKED = 1000


@dataclass(frozen=True)
class Filters:
    """What a search or a holder lookup is limited to; ``agencies`` is the caller's scope (None:
    the whole province), the rest what the caller asked for."""

    agencies: frozenset[str] | None = None
    agency: str | None = None
    procedure_code: str | None = None
    level: str | None = None  # tinh | huyen | xa (agencies.level)
    year_from: int | None = None  # issue year
    year_to: int | None = None
    phase: str | None = None  # a phase id of the phase plan: its issue-date range
    still_valid: bool | None = None


@dataclass(frozen=True)
class Hit:
    agency_code: str
    record_id: str
    procedure_code: str | None
    procedure_name: str | None
    result_number: str | None
    issued_on: dt.date | None
    still_valid: bool | None
    pdf_path: str
    pdf_sha256: str
    version: int
    signature_level: str | None
    snippet: str  # plain text; the matched words between MARK_START and MARK_END
    score: float
    holder_name: str | None = None  # only for a caller allowed personal data
    holder_id: str | None = None


@dataclass(frozen=True)
class Page:
    total: int
    hits: list[Hit] = field(default_factory=list)
    limit: int = 20
    offset: int = 0


def snippet_html(snippet: str) -> str:
    """The snippet for a web page: escaped, the matched words in ``<mark>``."""
    return (html.escape(snippet).replace(MARK_START, "<mark>").replace(MARK_END, "</mark>"))


def snippet_text(snippet: str) -> str:
    """The snippet for a terminal or JSON: the matched words in «guillemets»."""
    return snippet.replace(MARK_START, "«").replace(MARK_END, "»")


def query_words(query: str) -> list[str]:
    """The query's folded words, each once; a query that cannot be searched is refused."""
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(f"Câu tìm kiếm dài {len(query)} ký tự, quá {MAX_QUERY_CHARS}: hãy chỉ "
                         "ghi vài từ đặc trưng của hồ sơ cần tìm.")
    found = list(dict.fromkeys(index.words(query)))
    if sum(map(len, found)) < 2:
        raise QueryError("Câu tìm kiếm cần ít nhất 2 chữ cái hoặc chữ số, ví dụ: giay phep xay "
                         "dung, hoặc số ký hiệu của kết quả.")
    return found


def _conditions(conn: Connection, filters: Filters,
                settings: Settings | None) -> list[ColumnElement[bool]]:
    """The WHERE conditions on ``records`` of the filters (that the record is archived is the
    caller's); an unknown value is refused."""
    r, a = warehouse.records, warehouse.agencies
    where: list[ColumnElement[bool]] = []
    if filters.agencies is not None:
        where.append(r.c.agency_code.in_(sorted(filters.agencies)))
    if filters.agency is not None:
        if conn.execute(select(a.c.code).where(a.c.code == filters.agency)).first() is None:
            raise QueryError(f"Không có cơ quan mã {filters.agency!r} trong kho dữ liệu: kiểm tra "
                             "mã định danh của cơ quan (ví dụ 000.00.12.H12).")
        where.append(r.c.agency_code == filters.agency)
    if filters.procedure_code is not None:
        where.append(r.c.procedure_code == filters.procedure_code)
    if filters.level is not None:
        if filters.level not in LEVELS:
            raise QueryError(f"Cấp {filters.level!r} không có: dùng tinh, huyen hoặc xa.")
        where.append(r.c.agency_code.in_(select(a.c.code).where(a.c.level == filters.level)))
    for year in (filters.year_from, filters.year_to):
        if year is not None and not 1900 <= year <= 2100:
            raise QueryError(f"Năm ban hành {year} không hợp lệ: ghi năm bốn chữ số, ví dụ 2015.")
    if filters.year_from is not None and filters.year_to is not None \
            and filters.year_from > filters.year_to:
        raise QueryError(f"Khoảng năm ban hành {filters.year_from}–{filters.year_to} bị ngược: "
                         "năm đầu phải không sau năm cuối.")
    if filters.year_from is not None:
        where.append(r.c.issued_on >= dt.date(filters.year_from, 1, 1))
    if filters.year_to is not None:
        where.append(r.c.issued_on <= dt.date(filters.year_to, 12, 31))
    if filters.phase is not None:
        if settings is None:
            from pipeline.config import load_settings
            settings = load_settings()
        plan = settings.plan
        try:
            issued = plan.phase(filters.phase).issued
        except KeyError:
            raise QueryError(f"Kế hoạch không có giai đoạn {filters.phase!r}; các giai đoạn: "
                             f"{', '.join(p.id for p in plan.phases)}.") from None
        if issued is None:
            raise QueryError(f"Giai đoạn {filters.phase} không số hóa kết quả nào (không có khoảng "
                             "ngày ban hành trong kế hoạch): chọn giai đoạn khác.")
        where.append(r.c.issued_on.between(issued.start, issued.end))
    if filters.still_valid is not None:
        where.append(r.c.still_valid.is_(filters.still_valid))
    return where


# The opening of a record's text that a snippet without matched words needs (SNIPPET_WORDS
# words, long ones included): a holder's records and a single record read no more of their text
OPENING_CHARS = 40 * SNIPPET_WORDS


# Statements built once (cached): they are immutable, and building one took longer than running
# it for a holder lookup
@functools.cache
def _hit_select(with_text: str = "whole") -> Select[Any]:
    """A hit's columns and, for its snippet, its ``whole`` text, its ``opening`` or ``none``."""
    r, p = warehouse.records, warehouse.procedures
    texts = {"whole": [r.c.text], "opening": [func.substr(r.c.text, 1, OPENING_CHARS).label("text")],
             "none": []}[with_text]
    return select(r.c.id, r.c.agency_code, r.c.record_id, r.c.procedure_code,
                  p.c.name.label("procedure_name"), r.c.result_number, r.c.issued_on,
                  r.c.still_valid, r.c.pdf_path, r.c.pdf_sha256, r.c.version,
                  r.c.signature_level, r.c.holder_name, r.c.holder_id, *texts)


def _with_procedures(source: Any) -> Any:
    r, p = warehouse.records, warehouse.procedures
    return source.outerjoin(p, p.c.code == r.c.procedure_code)


@functools.cache
def _record_select(with_text: str = "opening") -> Select[Any]:
    """An archived record's hit, with the opening of its text (``none``: without; a record's
    text is in PostgreSQL's TOAST, read only to be cut)."""
    return _hit_select(with_text).select_from(_with_procedures(warehouse.records)).where(_archived())


# personal ids and tax codes (9, 10, 12, 13 digits) wherever a text shows them
_LONG_NUMBER = re.compile(r"\d{9,}")


def masked(snippet: str, holder_name: str | None) -> str:
    """The snippet for a caller not allowed personal data: every long number (an id, a tax
    code) masked but its last 3 digits, the record's holder's name as ``***`` (the marks
    between its words kept out of the way)."""
    out = _LONG_NUMBER.sub(lambda m: mask_personal_id(m.group()), snippet)
    names = holder_name.split() if holder_name else []
    if names:
        marks = f"[{MARK_START}{MARK_END}]*"
        pattern = marks + (marks + r"\s+" + marks).join(map(re.escape, names)) + marks
        out = re.sub(pattern, "***", out, flags=re.IGNORECASE)
    return out


def _hit(row: Row[Any], marked: set[str] | None, score: float, personal: bool) -> Hit:
    """The hit of a row; ``marked`` None: without a snippet."""
    snippet = "" if marked is None else make_snippet(
        [row.text, row.procedure_name, row.result_number] + ([row.holder_name] if personal else []),
        marked)
    return Hit(
        agency_code=row.agency_code, record_id=row.record_id, procedure_code=row.procedure_code,
        procedure_name=row.procedure_name, result_number=row.result_number,
        issued_on=row.issued_on, still_valid=row.still_valid, pdf_path=row.pdf_path,
        pdf_sha256=row.pdf_sha256, version=row.version, signature_level=row.signature_level,
        # nothing to mask in no snippet (a holder lookup's): masking builds a pattern per name
        snippet=snippet if personal or not snippet else masked(snippet, row.holder_name),
        score=round(float(score), 6),
        holder_name=row.holder_name if personal else None,
        holder_id=row.holder_id if personal else None,
    )


_ORIGINAL_WORD = re.compile(r"[^\W_]+")


@functools.lru_cache(maxsize=1 << 16)
def _folded(word: str) -> frozenset[str]:
    """A word of the original text as the index has it; texts repeat their words, and a page of
    hits folds thousands of them."""
    return frozenset(index.words(word))


def make_snippet(sources: Sequence[str | None], marked: set[str],
                 width: int = SNIPPET_WORDS) -> str:
    """About ``width`` words of the first source that holds a marked (folded) word, around the
    most marked words, those words between MARK_START and MARK_END; the first source's opening
    words when none holds one."""
    texts = [s.replace(MARK_START, " ").replace(MARK_END, " ") for s in sources if s]
    if not texts:
        return ""
    for candidate in texts if marked else ():
        found = list(_ORIGINAL_WORD.finditer(candidate))
        hits = [i for i, m in enumerate(found) if not marked.isdisjoint(_folded(m.group()))]
        if hits:
            break
    else:
        # the opening words: no more of the text is read (a holder's records are shown so)
        candidate, hits = texts[0], []
        found = list(itertools.islice(_ORIGINAL_WORD.finditer(candidate), width + 1))
    if not found:
        return " ".join(candidate.split())
    best = max(hits, key=lambda h: sum(h <= o < h + width for o in hits), default=0)
    start = max(0, best - width // 6)
    end = min(len(found), start + width)
    chosen = set(hits)
    parts, at = [], found[start].start()
    for i in range(start, end):
        m = found[i]
        parts.append(candidate[at:m.start()])
        parts.append(f"{MARK_START}{m.group()}{MARK_END}" if i in chosen else m.group())
        at = m.end()
    body = " ".join("".join(parts).split())
    return ("… " if start > 0 else "") + body + (" …" if end < len(found) else "")


def _similar_words(conn: Connection, words: list[str]) -> dict[str, list[str]]:
    """PostgreSQL: each query word no text contains -> the texts' words most similar to it."""
    known = set(conn.execute(text("SELECT word FROM search_words WHERE word = ANY(:w)"),
                             {"w": words}).scalars())
    unknown = [w for w in words if w not in known]
    if not unknown:
        return {}
    # local to this transaction: the threshold the % operator (and its GIN index) use
    conn.execute(text("SELECT set_config('pg_trgm.similarity_threshold', :t, true)"),
                 {"t": str(SIMILARITY)})
    similar = text("SELECT word FROM search_words WHERE word % :w "
                   "ORDER BY similarity(word, :w) DESC, word LIMIT :n")
    return {w: list(conn.execute(similar, {"w": w, "n": SIMILAR_WORDS}).scalars())
            for w in unknown}


@functools.cache
def _archived() -> ColumnElement[bool]:
    """That a record is archived, in a form no index on ``status`` can serve: SQLite's planner,
    without statistics (a warehouse is never ANALYZEd), would rather walk every archived record
    by the progress index than probe the holder's index or the few rowids a search found."""
    return (warehouse.records.c.status + "") == "archived"


def _sqlite_page(conn: Connection, words: list[str], filters: list[ColumnElement[bool]],
                 limit: int, offset: int) -> tuple[int, list[Row[Any]]]:
    """SQLite: (how many records match, the page's rows with their bm25 score)."""
    r = warehouse.records
    where = [_archived(), *filters]
    fts = table("records_fts", column("rowid"))
    # each word quoted: FTS5 reads it as a plain term, never as query syntax
    expression = " ".join(f'"{w}"' for w in words)
    condition = text("records_fts MATCH :match").bindparams(match=expression)
    # the index read first, once: joined to records the planner may otherwise walk records and
    # test each one against the full-text query
    total = conn.execute(select(func.count()).select_from(r).where(
        r.c.id.in_(select(fts.c.rowid).where(condition)), *where)).scalar_one()
    matches = (select(fts.c.rowid.label("pk"),
                      (-func.bm25(literal_column("records_fts"))).label("score"))
               .where(condition).cte("matches").prefix_with("MATERIALIZED"))
    rows = conn.execute(_hit_select().add_columns(matches.c.score)
                        .select_from(_with_procedures(matches.join(r, r.c.id == matches.c.pk)))
                        .where(*where).order_by(matches.c.score.desc(), r.c.id)
                        .limit(limit).offset(offset)).all()
    return total, rows


def _postgresql_page(conn: Connection, tsquery: str, filters: list[ColumnElement[bool]],
                     limit: int, offset: int) -> tuple[int, list[Row[Any]]]:
    """PostgreSQL: (how many records match, the page's rows with their ts_rank_cd score).

    Ranking reads a record's whole tsvector (from TOAST), which for a query most records match
    would mean reading most of the index's table: the matches are ranked in tiers of
    ``RANKED``, the most recently archived first (tier 0 holds the last ``RANKED`` archived),
    best first within a tier, and only the tiers the page needs are ranked. A query matching
    no more than ``RANKED`` records is ranked as a whole. Every record the index holds is
    archived (:mod:`pipeline.store.search_index` writes archived records only), so without
    filters neither the count nor the tiers read ``records``."""
    r = warehouse.records
    docs = table("search_documents", column("record_pk"), column("document"))
    query = func.to_tsquery(literal_column(f"'{index.CONFIG}'::regconfig"),
                            bindparam("tsquery", tsquery))
    matching = docs.c.document.op("@@")(query)
    if filters:
        where = [r.c.id.in_(select(docs.c.record_pk).where(matching)), r.c.status == "archived",
                 *filters]
        counted, pk = select(func.count()).select_from(r).where(*where), r.c.id
        candidates = select(r.c.id.label("pk")).where(*where)
    else:
        counted, pk = select(func.count()).select_from(docs).where(matching), docs.c.record_pk
        candidates = select(docs.c.record_pk.label("pk")).where(matching)
    # local to this transaction: the planner takes a tsvector test for cheap and would rather
    # test every document than use the GIN index, which says which match without reading one
    conn.execute(text("SELECT set_config('enable_seqscan', 'off', true)"))
    total = conn.execute(counted).scalar_one()
    first, last = offset // RANKED, (offset + limit - 1) // RANKED
    wanted = (last + 1) * RANKED
    # The newest matches two ways: walking the records newest first until enough match (reads
    # about wanted × documents / total of them: cheap for a word most records hold), or taking
    # every match from the GIN index and keeping the newest (reads the total: cheap for a rare
    # one). At 1,000,000 records the walk for a name and a number that 309 records hold read the
    # whole table (1.3 s); "+ 0" keeps the planner off the walk.
    documents = conn.execute(text(
        "SELECT greatest(reltuples, 1) FROM pg_class WHERE relname = 'search_documents'")).scalar()
    newest = pk.desc() if total * total > wanted * (documents or 1) else (pk + 0).desc()
    latest = candidates.order_by(newest).limit(wanted).subquery("latest")
    numbered = select(latest.c.pk, (func.row_number().over(order_by=latest.c.pk.desc()) - 1)
                      .label("n")).subquery("numbered")
    tiers = (select(numbered.c.pk, (numbered.c.n // RANKED).label("tier"))
             .where(numbered.c.n >= first * RANKED).subquery("tiers"))
    score = func.ts_rank_cd(docs.c.document, query)
    source = _with_procedures(tiers.join(r, r.c.id == tiers.c.pk)
                              .join(docs, docs.c.record_pk == tiers.c.pk))
    rows = conn.execute(_hit_select().add_columns(score.label("score")).select_from(source)
                        .order_by(tiers.c.tier, score.desc(), r.c.id)
                        .limit(limit).offset(offset - first * RANKED)).all()
    return total, rows


def check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        raise QueryError(f"Số kết quả mỗi trang phải từ 1 đến {MAX_LIMIT} và vị trí bắt đầu không "
                         f"âm (đã nhận limit={limit}, offset={offset}).")


def search(url: str, query: str, filters: Filters = Filters(), *, limit: int = 20, offset: int = 0,
           personal: bool = False, settings: Settings | None = None) -> Page:
    """The archived records whose text or metadata hold every word of ``query``, best first."""
    words = query_words(query)
    check_page(limit, offset)
    with warehouse.engine_for(url).connect() as conn:
        where = _conditions(conn, filters, settings)
        if conn.dialect.name == "sqlite":
            found = set(words)
            total, rows = _sqlite_page(conn, words, where, limit, offset)
        else:
            similar = _similar_words(conn, words)
            alternatives = [[w, *similar.get(w, [])] for w in words]
            found = {w for alts in alternatives for w in alts}
            total, rows = _postgresql_page(
                conn, " & ".join("(" + " | ".join(alts) + ")" for alts in alternatives), where,
                limit, offset)
    return Page(total=total, hits=[_hit(row, found, row.score, personal) for row in rows],
                limit=limit, offset=offset)


@functools.cache
def _holder_selects(with_text: str, scoped: bool, paged: bool) -> tuple[Select[Any], Select[Any]]:
    """A holder's records and their count, their values as parameters: ``keys`` (the holder's
    keys), ``agencies`` when ``scoped``, ``offset`` and, when ``paged``, ``limit``.

    Built once (cached) and used again: a statement SQLAlchemy has seen needs neither building
    nor a new cache key, which cost more than half of a lookup's CPU (issue 18)."""
    r = warehouse.records
    where = [r.c.holder_key.in_(bindparam("keys", expanding=True)), r.c.still_valid.is_(True)]
    if scoped:
        where.append(r.c.agency_code.in_(bindparam("agencies", expanding=True)))
    rows = _record_select(with_text).where(*where).order_by(
        r.c.issued_on.desc().nulls_last(), r.c.id.desc()).offset(bindparam("offset"))
    counted = select(func.count()).select_from(r).where(_archived(), *where)
    return rows.limit(bindparam("limit")) if paged else rows, counted


def holder_records(source: str | Connection, holder_ids: Sequence[str], filters: Filters = Filters(),
                   *, personal: bool = False, settings: Settings | None = None,
                   snippets: bool = True, limit: int | None = None, offset: int = 0) -> Page:
    """The archived, still-valid records of the holder known by any of ``holder_ids`` (their
    12-digit and 9-digit ids, a tax code), within the filters, newest first: ``limit`` of them
    (None: all) from ``offset``, and how many there are. ``source`` is the warehouse's URL or a
    connection to it. ``snippets=False`` for a caller that shows none (the read API: they were a
    third of a lookup's time).

    The page is cut in SQL: an organisation's tax code may hold thousands of results, and the
    read API answers a lookup on its event loop."""
    params: dict[str, Any] = {"keys": holder_keys(holder_ids), "offset": offset, "limit": limit}
    if limit is not None:
        check_page(limit, offset)
    if filters.agencies is not None:
        params["agencies"] = sorted(filters.agencies)
    with warehouse.connection(source) as conn:
        rows_query, count_query = _holder_selects("opening" if snippets else "none",
                                                  filters.agencies is not None, limit is not None)
        # the caller's own filters (the command line's): rare, so their statement is built anew
        more = _conditions(conn, dataclasses.replace(filters, agencies=None), settings)
        if more:
            rows_query, count_query = rows_query.where(*more), count_query.where(*more)
        rows = conn.execute(rows_query, params).all()
        total = offset + len(rows)
        if (limit is not None and len(rows) == limit) or (offset and not rows):
            # a full page may have more after it; past the end says nothing of what came before
            total = conn.execute(count_query, params).scalar_one()
    return Page(total=total, hits=[_hit(row, set() if snippets else None, 0.0, personal)
                                   for row in rows],
                limit=len(rows) if limit is None else limit, offset=offset)


def get_record(source: str | Connection, agency_code: str, record_id: str, *,
               personal: bool = False) -> Hit | None:
    """One archived record, its snippet the opening of its text; None when there is none."""
    r = warehouse.records
    with warehouse.connection(source) as conn:
        row = conn.execute(_record_select().where(r.c.agency_code == agency_code,
                                                  r.c.record_id == record_id)).first()
    return None if row is None else _hit(row, set(), 0.0, personal)
