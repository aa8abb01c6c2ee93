#!/usr/bin/env bash
# Set up (scripts/setup.sh), then generate a sample batch and run it through the real Airflow DAG
# on the embedded defaults: SQLite warehouse and folders under ./var.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/digitize demo "$@"
