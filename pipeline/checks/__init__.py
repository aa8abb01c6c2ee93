"""Checks: reference data, manifest validation, the page against its row, duplicates."""
