#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the whole test suite against real Tesseract, OCRmyPDF,
# Airflow and PostgreSQL (DIGITIZE_TEST_PG_URL, default postgresql://postgres@127.0.0.1:5432/postgres).
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow" for the quick subset.
# ruff checks the code first: a lint error fails the run before any test starts.
# Two test files run at a time (pytest-xdist, a file's tests together so that its module fixtures
# are made once): OCR keeps a core busy, but Airflow, Celery and servers starting wait.
# DIGITIZE_TEST_WORKERS=N sets how many; 0 runs everything in this one process.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
workers="${DIGITIZE_TEST_WORKERS:-2}"
if [ "$workers" = 0 ]; then
    exec .venv/bin/python -m pytest "$@"
fi
# --no-loadscope-reorder: the longest files first, as tests/conftest.py orders them
exec .venv/bin/python -m pytest -n "$workers" --dist loadfile --no-loadscope-reorder "$@"
