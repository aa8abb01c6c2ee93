"""The holder's store: every archived, still-valid result of one citizen or organisation.

A holder is looked up by the ids printed on their papers: the 12-digit personal id (số định
danh cá nhân), the 9-digit identity card number that results before 2016 carry (one person may
be asked for by both at once), or a 10- or 13-digit tax code (a branch's written
``0101234567-001``). The warehouse keeps each record's id as its digits (``records.holder_key``),
so that the lookup is one index probe whatever the clerk typed.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.errors import QueryError
from pipeline.privacy import holder_key

SHAPES_HELP = ("số định danh cá nhân 12 chữ số, số chứng minh nhân dân cũ 9 chữ số, hoặc mã số "
               "thuế 10 hay 13 chữ số (có thể viết 0101234567-001)")


def normalize_holder_id(text: str) -> str:
    """:func:`holder_key` of an id a caller looks up: ``0101234567-001`` -> ``0101234567001``;
    anything of another shape is refused, naming the shapes (the id itself is not repeated: it
    is personal data and the message may be logged)."""
    key = holder_key(text)
    if key is None:
        raise QueryError(f"Mã người được cấp không đúng dạng: cần {SHAPES_HELP}.")
    return key


def holder_keys(holder_ids: Sequence[str]) -> list[str]:
    """The keys of several ids of one holder, each checked; at least one is needed."""
    if not holder_ids:
        raise QueryError(f"Cần ít nhất một mã người được cấp: {SHAPES_HELP}.")
    return sorted({normalize_holder_id(i) for i in holder_ids})
