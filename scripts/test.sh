#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the whole test suite against real Tesseract, OCRmyPDF,
# Airflow and PostgreSQL (DIGITIZE_TEST_PG_URL, default postgresql://postgres@127.0.0.1:5432/postgres).
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow" for the quick subset.
# ruff checks the code first: a lint error fails the run before any test starts.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
