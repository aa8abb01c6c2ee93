"""``digitize serve`` and ``digitize tokens create|revoke|list``: their arguments and their short
command functions (``pipeline.cli.build_parser`` calls :func:`add_commands`). Nothing heavy is
imported until a command runs: ``digitize --help`` stays quick."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from pipeline.errors import ConfigError, ExitCode

if TYPE_CHECKING:
    from pipeline.config import Settings


def cmd_serve(args: argparse.Namespace, settings: Settings) -> ExitCode:
    from pipeline.access.serving import serve
    if args.workers < 1:
        raise ConfigError(f"--workers phải từ 1 trở lên (đang là {args.workers}).")
    serve(settings, args.host, args.port, args.workers)
    return ExitCode.ok


def cmd_tokens(args: argparse.Namespace, settings: Settings) -> ExitCode:
    from pipeline.access import tokens
    from pipeline.store import warehouse

    url = settings.warehouse_url
    warehouse.migrate(url)
    if args.action == "create":
        token = tokens.create_token(url, args.name, args.agency, args.personal_data)
        print(f"Mã truy cập của hệ thống {args.name} (chỉ hiện lần này, kho chỉ giữ mã băm SHA-256: "
              "lưu ngay vào cấu hình của hệ thống gọi API):", file=sys.stderr)
        print(token)
    elif args.action == "revoke":
        tokens.revoke_token(url, args.name)
        print(f"Đã thu hồi mã truy cập {args.name}.")
    else:
        rows: list[dict[str, Any]] = [{
            "name": t.name, "agencies": sorted(t.agencies) if t.agencies is not None else None,
            "personal_data": t.personal_data, "created_at": t.created_at.isoformat(" ", "seconds"),
            "revoked_at": t.revoked_at.isoformat(" ", "seconds") if t.revoked_at else None,
        } for t in tokens.list_tokens(url)]
        if args.json:
            print(json.dumps(rows, ensure_ascii=False, indent=2))
            return ExitCode.ok
        for r in rows:
            print(f"{r['name']}\t{','.join(r['agencies']) if r['agencies'] else 'toàn tỉnh'}\t"
                  f"{'có' if r['personal_data'] else 'không'} dữ liệu cá nhân\ttạo {r['created_at']}\t"
                  + (f"thu hồi {r['revoked_at']}" if r["revoked_at"] else "còn hiệu lực"))
    return ExitCode.ok


def add_commands(sub: Any) -> None:
    """The read API's commands, added to ``digitize``'s sub-parsers ``sub``."""
    serve = sub.add_parser(
        "serve", help="run the read API for the one-stop system (JSON over HTTP)",
        description="Serves the read API (docs/api.md) on HOST:PORT until stopped: records by "
                    "holder id, one record, its PDF, search; OpenAPI at /api/v1/openapi.json. "
                    "Callers need a token from `digitize tokens create`.",
        epilog="Exit codes: 0 stopped, 2 bad configuration or warehouse unreachable.")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    serve.add_argument("--port", type=int, default=8090, help="TCP port (default 8090)")
    serve.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                       help="processes answering calls (default: one per core)")
    serve.set_defaults(func=cmd_serve)

    tok = sub.add_parser("tokens", help="tokens of the systems that call the read API")
    actions = tok.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", help="make a token for a calling system and print it once",
        description="Prints a new random token for the system NAME (only its SHA-256 is kept). "
                    "Without --agency it reads the whole province.",
        epilog="Exit codes: 0 created, 2 bad name, name taken or unknown agency.")
    create.add_argument("name", help="the calling system, as the access log names it, e.g. motcua-tinh")
    create.add_argument("--agency", action="append", metavar="CODE",
                        help="an agency whose records it may read (repeat for several)")
    create.add_argument("--personal-data", action="store_true",
                        help="it may see holder names and ids (Decree 13/2023: only if its role needs them)")
    revoke = actions.add_parser("revoke", help="refuse a token from now on",
                                epilog="Exit codes: 0 revoked, 2 no such live token.")
    revoke.add_argument("name")
    listing = actions.add_parser("list", help="the tokens, live and revoked (never the tokens themselves)")
    listing.add_argument("--json", action="store_true", help="print them as JSON")
    tok.set_defaults(func=cmd_tokens)
