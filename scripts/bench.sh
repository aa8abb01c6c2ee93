#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the OCR benchmark: ours vs plain OCRmyPDF vs Tesseract alone
# on a generated corpus (default 30 pages). Figures go to var/bench/<timestamp>/bench.{json,md}.
# Extra arguments go to the benchmark, e.g. scripts/bench.sh --pages 60 --tiff-pages 300
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/digitize bench "$@"
