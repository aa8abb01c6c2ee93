"""``digitize search``: its arguments, and its results as text or JSON.

Kept out of ``pipeline/cli.py``, which only wires the sub-command. Nothing heavy is imported at
the top: building the parser must not load SQLAlchemy (``digitize --help``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import TYPE_CHECKING

from pipeline.errors import ExitCode, QueryError

if TYPE_CHECKING:
    from pipeline.access.search import Filters, Hit
    from pipeline.config import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    search = sub.add_parser(
        "search", help="find archived records by words or by holder id",
        description="Searches the OCR text and metadata of archived records (tone marks and đ/d "
                    "ignored: 'giay phep xay dung' finds 'Giấy phép xây dựng'), best first; or, "
                    "with --holder-id, lists every archived, still-valid record of one holder, "
                    "newest first. A lookup by holder id is written to the access log with the "
                    "system user and --purpose.",
        epilog="Exit codes: 0 searched (found or not), 2 bad query or filter.")
    search.add_argument("query", nargs="?", default="", metavar="QUERY",
                        help="words to find (not with --holder-id)")
    search.add_argument("--holder-id", action="append", default=[], metavar="ID",
                        help="the holder's 12-digit or 9-digit id or tax code; repeat it for "
                             "several ids of one holder")
    search.add_argument("--agency", metavar="CODE", help="only this agency's records")
    search.add_argument("--procedure", metavar="CODE", help="only this procedure (mã TTHC)")
    search.add_argument("--level", choices=("tinh", "huyen", "xa"),
                        help="only the agencies of one level")
    search.add_argument("--year-from", type=int, metavar="Y", help="issued in year Y or later")
    search.add_argument("--year-to", type=int, metavar="Y", help="issued in year Y or earlier")
    search.add_argument("--phase", metavar="ID", help="issued within this phase of the plan")
    search.add_argument("--limit", type=int, default=20, metavar="N",
                        help="at most N results, 1-100 (default 20)")
    search.add_argument("--offset", type=int, default=0, metavar="N",
                        help="skip the first N results (the next page)")
    search.add_argument("--json", action="store_true", help="print the results as JSON")
    search.add_argument("--purpose", default="", metavar="TEXT",
                        help="why the holder's records are looked up (the access log keeps it)")
    return search


def hit_json(hit: Hit) -> dict[str, object]:
    """A hit for JSON: dates as ISO text, the snippet's marks as «»."""
    from pipeline.access.search import snippet_text

    out = dataclasses.asdict(hit)
    out["issued_on"] = hit.issued_on.isoformat() if hit.issued_on else None
    out["snippet"] = snippet_text(hit.snippet)
    return out


def hit_lines(hit: Hit) -> list[str]:
    """A hit for the terminal: who issued what, the file, the snippet."""
    from pipeline.access.search import snippet_text

    what = ", ".join(x for x in (
        hit.procedure_name or hit.procedure_code,
        f"số {hit.result_number}" if hit.result_number else None,
        f"ngày {hit.issued_on:%d/%m/%Y}" if hit.issued_on else None,
        f"người được cấp {hit.holder_name}" if hit.holder_name else None,
        f"mã {hit.holder_id}" if hit.holder_id else None) if x)
    lines = [f"{hit.agency_code} {hit.record_id}: {what}", f"  {hit.pdf_path}"]
    if hit.snippet:
        lines.append(f"  {snippet_text(hit.snippet)}")
    return lines


def _filters(args: argparse.Namespace) -> Filters:
    from pipeline.access.search import Filters

    return Filters(agency=args.agency, procedure_code=args.procedure, level=args.level,
                   year_from=args.year_from, year_to=args.year_to, phase=args.phase)


def run(args: argparse.Namespace, settings: Settings) -> ExitCode:
    """The search or holder lookup asked for, printed; the holder lookup logged."""
    from pipeline.access import search
    from pipeline.access.accesslog import cli_caller, log_access
    from pipeline.store import warehouse

    url = settings.warehouse_url
    if args.holder_id:
        if args.query:
            raise QueryError("Tìm theo mã người được cấp (--holder-id) thì không kèm từ tìm kiếm: "
                             "bỏ một trong hai.")
        page = search.holder_records(url, args.holder_id, _filters(args), personal=True,
                                     settings=settings, limit=args.limit, offset=args.offset)
        # the records shown are the records handed out: each one logged
        with warehouse.engine_for(url).begin() as conn:
            log_access(conn, cli_caller(), "holder_lookup",
                       [(h.agency_code, h.record_id) for h in page.hits] or [(args.agency, None)],
                       args.purpose)
    else:
        page = search.search(url, args.query, _filters(args), limit=args.limit,
                             offset=args.offset, personal=True, settings=settings)
    if args.json:
        print(json.dumps({"total": page.total, "limit": page.limit, "offset": page.offset,
                          "hits": [hit_json(h) for h in page.hits]}, ensure_ascii=False, indent=2))
        return ExitCode.ok
    if not page.hits:
        print("Không tìm thấy hồ sơ nào." if not page.total else
              f"Có {page.total} hồ sơ; trang này (từ {page.offset + 1}) không còn hồ sơ nào.")
        return ExitCode.ok
    for hit in page.hits:
        print("\n".join(hit_lines(hit)))
    shown = f"{page.offset + 1}–{page.offset + len(page.hits)}"
    print(f"Tìm thấy {page.total} hồ sơ; đang hiện {shown}.")
    return ExitCode.ok
