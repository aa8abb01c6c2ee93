"""Personal data (citizen id, tax code) never appears whole in logs, reports or quarantine notes."""


def mask_personal_id(value: str | None) -> str:
    """Keep the last 3 characters, enough for a clerk to match a paper against the row."""
    if not value:
        return ""
    return "*" * max(0, len(value) - 3) + value[-3:]
