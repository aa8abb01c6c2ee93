"""The watcher drafts the manifest (issue 19): under a scanner profile with ``manifest: draft``
or ``auto``, a settled batch of files without ``manifest.csv`` gets its draft written into its
folder (``manifest.draft.csv``) with a note telling the clerk what to do (:data:`NOTE`), and is
held until the clerk has checked the draft and renamed it ``manifest.csv``. Under ``auto`` a
draft whose every field of every row was read at the profile's ``auto_confidence`` or above
is written as ``manifest.csv`` instead, and the batch starts at once.

What the draft read is kept outside the batch folder, where no clerk edits it, in
``DATA/work/manifest-drafts/<the batch's run name>.json`` (:func:`state_path`): each first
page's fields by the SHA-256 of its file, and the listing of the scans drafted (holder ids
among them: as personal as the manifest). Registration
(:func:`attach_readings`) compares each manifest field with what was read off its record's
first page: equal, the field was read; different, a person typed it (the typed value is the one
archived, and one that differs from a sure reading is a cross-check warning). It is dropped
when the batch is archived whole (:func:`forget`).

The draft is made once per scans: the files written beside them (draft, note, the clerk's
renamed manifest) are no scans and do not start it again, while a scan added, removed or
replaced does (its pages already read are not read again). Pages are read with Tesseract,
seconds each: at most the profile's ``draft_pages_per_look`` per look of the watcher, the rest at
the next looks, so the other batches' runs are never held up for long.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.drafting import draft
from pipeline.drafting import fields as found
from pipeline.errors import BatchError
from pipeline.intake import inbox
from pipeline.intake.ingest import MANIFEST, sha256_file
from pipeline.models import BatchPlan, PageRead
from pipeline.store.archive import atomic_write_bytes, write_once

if TYPE_CHECKING:
    from pipeline.config import Settings

log = logging.getLogger(__name__)

STATE_DIR = "manifest-drafts"  # under DATA/work/
NOTE = "DOC-TRUOC-KHI-DUYET.txt"  # "đọc trước khi duyệt": read before approving
# a draft the clerk had edited when new scans made a new one is kept under this name
EDITED = "manifest.draft.da-sua-{n}.csv"


def state_path(work_dir: Path, agency_code: str, folder: str) -> Path:
    """Where a batch folder's draft is kept: named as its run (:func:`inbox.run_name`), which
    no folder name can lead out of and no two batches share."""
    return work_dir / STATE_DIR / f"{inbox.run_name(agency_code, folder)}.json"


def forget(settings: Settings, agency_code: str, folder: str) -> None:
    """Drop what a batch's draft read, once the batch is archived whole: the warehouse holds
    which fields were read (``records.read_fields``), and the holder ids the pages showed are
    not kept beside it in the work folder any longer than needed."""
    state_path(settings.dir("work"), agency_code, folder).unlink(missing_ok=True)


def _load(path: Path) -> dict[str, Any]:
    """The kept state; a missing or broken one is empty: the batch is drafted again."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("%s cannot be read (%s): the batch's manifest is drafted again", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def _reading(data: dict[str, Any]) -> draft.PageReading:
    page = {name: found.Field(d["value"], d["confidence"], d["source"], tuple(d["candidates"]))
            for name, d in data["fields"].items()}
    return draft.PageReading(found.PageFields(**page), data["note"])


def _known(state: dict[str, Any]) -> dict[str, draft.PageReading]:
    try:
        return {sha: _reading(data) for sha, data in state.get("pages", {}).items()}
    except (KeyError, TypeError, AttributeError) as exc:
        log.warning("The kept readings are not as written (%s): the pages are read again", exc)
        return {}


def _confident(rows: Sequence[draft.DraftRow], threshold: float) -> bool:
    """Every field of every row read at ``threshold`` or above, and no row left with a note."""
    return bool(rows) and all(
        not row.note and not row.needs_review
        and all(row.confidence(name) >= threshold for name in ("record_id", *found.FIELDS))
        for row in rows)


def _note(agency_code: str, folder: str, rows: Sequence[draft.DraftRow],
          settle_seconds: int) -> str:
    """What the clerk reads beside the draft, in Vietnamese."""
    review = [row for row in rows if row.needs_review or row.note]
    lines = [
        "BẢN NHÁP MANIFEST - ĐỌC TRƯỚC KHI DUYỆT",
        f"Lô: {agency_code}/{folder}",
        f"Lập lúc: {dt.datetime.now(dt.UTC):%d/%m/%Y %H:%M} (giờ UTC)",
        "",
        "Lô chưa có manifest.csv nên hệ thống đã đọc trang đầu của từng hồ sơ và lập bản nháp "
        f"manifest.draft.csv: {len(rows)} hồ sơ, {len(review)} hồ sơ có trường cần kiểm tra. "
        "Lô đang được giữ lại, chưa xử lý.",
        "",
        "Việc cần làm:",
        "1. Mở manifest.draft.csv (Excel mở được ngay).",
        "2. Cột needs_review của mỗi dòng nêu các trường cần đối chiếu với bản giấy; cột "
        "<trường>_source cho biết chữ đã đọc được; cột ghi_chu nói vì sao một hồ sơ không đọc "
        "được (khi đó điền tay các trường).",
        "3. Sửa các giá trị sai cho đúng với bản giấy. Giá trị trong manifest là giá trị được "
        "lưu trữ.",
        "4. Lưu lại dạng CSV UTF-8, rồi đổi tên manifest.draft.csv thành manifest.csv. Lô được "
        f"xử lý khi thư mục lô không thay đổi trong {settle_seconds} giây.",
        "",
        "Không sửa, xóa hay đổi tên các tệp quét. Nếu thêm hoặc thay tệp quét, bản nháp được lập "
        "lại; bản nháp đã sửa trước đó được giữ lại với tên manifest.draft.da-sua-<số>.csv.",
    ]
    if review:
        lines += ["", "Hồ sơ cần kiểm tra (tệp: trường):"]
        lines += [f"- {row.files}: {', '.join(row.needs_review) or '-'}"
                  + (f" ({row.note})" if row.note else "") for row in review]
    return "\n".join(lines) + "\n"


def _keep_edited(batch: Path, written_sha256: str | None) -> None:
    """A draft the clerk changed is moved aside, never written over, before a new one."""
    current = draft.default_out(batch)
    if not current.is_file() or sha256_file(current) == written_sha256:
        return
    n = 1
    while (batch / EDITED.format(n=n)).exists():
        n += 1
    current.rename(batch / EDITED.format(n=n))
    log.info("Batch %s: the edited manifest.draft.csv is kept as %s", batch, EDITED.format(n=n))


def _draft_one(settings: Settings, batch: Path, budget: int) -> tuple[bool, int]:
    """Draft one batch, reading at most ``budget`` pages: (released, pages read or refused)."""
    from pipeline.drafting.commands import load_catalogue

    profile = settings.scanner_profile
    agency_code, folder = batch.parent.name, batch.name
    path = state_path(settings.dir("work"), agency_code, folder)
    state = _load(path)
    scans = inbox.fingerprint(batch, scans_only=True)
    if scans is None or (state.get("scans") == scans and state.get("drafted")
                         and draft.default_out(batch).is_file()):
        # vanished mid-look; or held, its draft of these scans waiting for the clerk (one the
        # clerk deleted is written again, from the pages read before)
        return False, 0
    known = _known(state)
    rows = draft.draft_batch(batch, load_catalogue(settings, batch, agency_code), profile,
                             known=known, budget=budget, store=settings.readings_dir)
    read = sum(not row.pending and row.sha256 not in known for row in rows)
    state = {"scans": scans, "drafted": False, "draft_sha256": state.get("draft_sha256"),
             "pages": {row.sha256: {"fields": asdict(row.fields), "note": row.note}
                       for row in rows if not row.pending}}
    pending = sum(row.pending for row in rows)
    if pending or (batch / MANIFEST).exists():
        # a manifest.csv the clerk put there meanwhile is the batch's: nothing is written
        atomic_write_bytes(path, json.dumps(state, ensure_ascii=False).encode("utf-8"))
        if pending:
            log.info("Batch %s: manifest draft under way, %d of %d first pages read; the rest "
                     "at the next looks", batch, len(rows) - pending, len(rows))
        return False, read
    review = draft.review_count(rows)
    data = draft.to_csv(rows)
    released = profile.manifest == "auto" and _confident(rows, profile.auto_confidence)
    if released:
        # never over a manifest.csv the clerk put there since: theirs is the batch's
        released = write_once(batch / MANIFEST, data)
        log.info("Batch %s: every field of its %d records read at %.2f or above: the draft %s "
                 "manifest.csv and the batch starts", batch, len(rows), profile.auto_confidence,
                 "is written as" if released else "is dropped for the clerk's")
    else:
        _keep_edited(batch, state["draft_sha256"])
        atomic_write_bytes(draft.default_out(batch), data)
        atomic_write_bytes(batch / NOTE, _note(agency_code, folder, rows,
                                               profile.settle_seconds).encode("utf-8"))
        state["draft_sha256"] = hashlib.sha256(data).hexdigest()
        log.warning("Batch %s held: manifest.draft.csv written, %d of %d records need review; "
                    "the clerk checks it against the paper and renames it manifest.csv (%s)",
                    batch, review, len(rows), NOTE)
    state["drafted"] = True
    atomic_write_bytes(path, json.dumps(state, ensure_ascii=False).encode("utf-8"))
    return released, read


def draft_held(settings: Settings, batches: Sequence[Path]) -> list[Path]:
    """Draft each settled batch that has no manifest; the batches released (under ``auto``,
    their draft written as manifest.csv). A batch whose draft fails is logged and stays held,
    tried again at the next look; the others go on."""
    budget = settings.scanner_profile.draft_pages_per_look
    released = []
    for batch in batches:
        try:
            done, read = _draft_one(settings, batch, budget)
        except Exception as exc:  # noqa: BLE001 - one batch's draft never stops the watcher
            # a traceback only for the unforeseen: a BatchError's message says it all
            log.warning("Batch %s: its manifest cannot be drafted, it stays held and is tried "
                        "again at the next look: %s", batch, exc,
                        exc_info=not isinstance(exc, BatchError | OSError))
            continue
        budget = max(0, budget - read)
        if done:
            released.append(batch)
    return released


def attach_readings(work_dir: Path, plan: BatchPlan) -> None:
    """Each record's ``read``: what the watcher's draft read off its first page (looked up by
    its file's SHA-256, so a scan replaced since has none), for registration to tell the fields
    read from those typed."""
    # keyed as the watcher keyed it: by the folder, whatever agency or batch id a run was given
    folder = plan.batch_dir
    known = _known(_load(state_path(work_dir, folder.parent.name, folder.name)))
    for rec in plan.records:
        first = rec.pages[0] if rec.pages else None
        if first is None or first.page_in_file != 1 or first.file not in plan.files:
            continue
        kept = known.get(plan.files[first.file].sha256)
        if kept is not None:
            rec.read = {name: PageRead(value=got.value, sure=got.sure)
                        for name in found.FIELDS if (got := kept.fields.get(name)).value}
