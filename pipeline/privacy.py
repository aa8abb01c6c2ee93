"""Personal data (citizen id, tax code) never appears whole in logs, reports or quarantine notes;
and a holder id as the warehouse compares it."""

import re

_SEPARATORS = re.compile(r"[\s.]+")
# the shapes a holder id may have once spaces and dots are gone: a 12-digit personal id, the old
# 9-digit identity card number, a 10- or 13-digit tax code (a branch's written 0101234567-001)
_SHAPES = re.compile(r"\d{9}|\d{12}|\d{10}|\d{13}|\d{10}-\d{3}")


def holder_key(text: str | None) -> str | None:
    """The id's digits as the warehouse keeps them (``records.holder_key``); None for an empty id
    or one of no known shape (a manifest's typo stays in ``holder_id``, it just cannot be looked
    up)."""
    compact = _SEPARATORS.sub("", text or "")
    if not _SHAPES.fullmatch(compact):
        return None
    return compact.replace("-", "")


def mask_personal_id(value: str | None) -> str:
    """Keep the last 3 characters, enough for a clerk to match a paper against the row."""
    if not value:
        return ""
    return "*" * max(0, len(value) - 3) + value[-3:]


def mask_shape(value: str | None) -> str:
    """:func:`mask_personal_id` that keeps what a format rule checks: the length, and which
    characters are digits (each masked digit becomes 0, anything else ``*``).

    What the manifest rules see of a holder id, because their results (unexpected values) are
    rendered as Data Docs into the reports folder.
    """
    if not value:
        return ""
    head = "".join("0" if c.isdigit() else "*" for c in value[:-3])
    return head + value[-3:]
