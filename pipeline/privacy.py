"""Personal data (citizen id, tax code) never appears whole in logs, reports or quarantine notes."""


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
