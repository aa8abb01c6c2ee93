"""``digitize manifest draft BATCH_DIR [--out FILE] [--json]``: its arguments and its command
function (``pipeline.cli.build_parser`` calls :func:`add_commands`). Nothing heavy is imported
until the command runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import ExitCode

if TYPE_CHECKING:
    from pipeline.config import Settings
    from pipeline.drafting.draft import Catalogue


def load_catalogue(settings: Settings, batch_dir: Path, agency_code: str) -> Catalogue:
    """The catalogue and the agency's level from the warehouse, as registration reads them;
    BatchError (exit 2) when the agency or the catalogue is not imported yet."""
    from pipeline.drafting.draft import Catalogue
    from pipeline.registration import reference_for
    from pipeline.store import archive, warehouse

    archive.check_component(agency_code, "Mã cơ quan")
    url = settings.warehouse_url
    warehouse.migrate(url)
    with warehouse.engine_for(url).connect() as conn:
        reference = reference_for(conn, agency_code, batch_dir.name, batch_dir, [])
    return Catalogue(agency_code, reference.agency_level, reference.procedures)


def cmd_manifest_draft(args: argparse.Namespace, settings: Settings) -> ExitCode:
    from pipeline.drafting import draft
    from pipeline.errors import BatchError
    from pipeline.registration import check_tools

    batch_dir = Path(args.batch_dir).resolve()
    if not batch_dir.is_dir():
        raise BatchError(f"{batch_dir}: không phải thư mục. Chỉ đường dẫn tới một thư mục lô.")
    check_tools(settings)
    catalogue = load_catalogue(settings, batch_dir, args.agency or batch_dir.parent.name)
    rows = draft.draft_batch(batch_dir, catalogue, settings.scanner_profile,
                             store=settings.readings_dir)
    out = Path(args.out) if args.out else draft.default_out(batch_dir)
    draft.write_draft(rows, out)
    review = draft.review_count(rows)
    if args.json:
        print(json.dumps({"out": str(out), "records": len(rows), "needs_review": review,
                          "rows": draft.table(rows)}, ensure_ascii=False, indent=2))
    else:
        print(f"Đã lập bản nháp manifest cho {len(rows)} hồ sơ: {out}", file=sys.stderr)
        print(f"{review} hồ sơ có trường cần kiểm tra (cột needs_review, ô tô vàng trong bản "
              "Excel). Kiểm tra, sửa, lưu thành manifest.csv (CSV UTF-8) trong thư mục lô.",
              file=sys.stderr)
    return ExitCode.ok


def add_commands(sub: Any) -> None:
    """``digitize manifest draft``, added to ``digitize``'s sub-parsers ``sub``."""
    manifest = sub.add_parser("manifest", help="manifest tools: draft one from the pages")
    actions = manifest.add_subparsers(dest="action", required=True, metavar="ACTION")
    drafted = actions.add_parser(
        "draft", help="propose each record's manifest row from its own first page",
        description="Reads the first page of each record of BATCH_DIR (files of one record each, "
                    "or a stack split at its cover sheets under a separator_sheets profile) and "
                    "writes a draft manifest: the manifest's columns, each field's confidence "
                    "and the words it was read from, and needs_review naming the fields to "
                    "check. CSV (UTF-8 with BOM) unless FILE ends in .xlsx. See "
                    "docs/manifest-draft.md.",
        epilog="Exit codes: 0 draft written, 2 bad folder, agency or catalogue not imported, "
               "4 warehouse unreachable, 1 unexpected error.")
    drafted.add_argument("batch_dir", metavar="BATCH_DIR", help="the batch folder")
    drafted.add_argument("--out", metavar="FILE",
                         help="where to write the draft (default BATCH_DIR/manifest.draft.csv)")
    drafted.add_argument("--agency", metavar="CODE",
                         help="the issuing agency (default: the name of BATCH_DIR's parent)")
    drafted.add_argument("--json", action="store_true", help="print the rows as JSON")
    drafted.set_defaults(func=cmd_manifest_draft)
