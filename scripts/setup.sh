#!/usr/bin/env bash
# Install everything the project needs, skipping what is already there:
#   1. Debian packages (Tesseract with Vietnamese, Ghostscript, Poppler, ...): needs root or sudo
#   2. PostgreSQL and Redis for the tests, when none answers on their local ports
#   3. a virtualenv in .venv with the package (editable) and its test tools
# Safe to run again; it takes seconds when nothing is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3 python3-venv python3-dev
  tesseract-ocr tesseract-ocr-vie tesseract-ocr-osd
  # Tesseract's Vietnamese script model: a candidate of python -m pipeline.demo.ocr_candidates
  tesseract-ocr-script-viet
  ghostscript poppler-utils qpdf unpaper pngquant
  fonts-dejavu-core fonts-liberation fonts-freefont-ttf
  sqlite3 make
  # headless browser for the progress page's test (tests/test_progress_plugin.py, Selenium)
  chromium chromium-driver
  # a real PKCS#11 token for the signing tests (tests/test_signing.py, SoftHSM2)
  softhsm2
  # the search benchmark's HTTP load generator (python -m pipeline.demo.bench_search)
  wrk
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: run as root (or install sudo) to install ${missing[*]}" >&2; exit 2; }
    SUDO="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The tests' PostgreSQL (127.0.0.1:5432, user postgres) and Redis (127.0.0.1:6379): servers
# already answering there are left alone; otherwise they are installed and started.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
if ! port_open 5432; then
  echo "setup: no PostgreSQL on 127.0.0.1:5432: installing and starting Debian's"
  dpkg-query -W -f='${Status}' postgresql 2>/dev/null | grep -q "install ok installed" ||
    { as_root apt-get update -qq; DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null; }
  hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -1)
  # The tests connect as postgres without a password, from this machine only; a server we
  # install here is a test server.
  grep -q "^host all postgres 127.0.0.1/32 trust" "$hba" ||
    as_root sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
  as_root service postgresql start >/dev/null
  for _ in $(seq 30); do port_open 5432 && break; sleep 1; done
  port_open 5432 || { echo "setup: PostgreSQL did not start" >&2; exit 2; }
fi
if ! port_open 6379; then
  echo "setup: no Redis on 127.0.0.1:6379: installing and starting Debian's"
  dpkg-query -W -f='${Status}' redis-server 2>/dev/null | grep -q "install ok installed" ||
    { as_root apt-get update -qq; DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-server >/dev/null; }
  as_root service redis-server start >/dev/null || as_root redis-server --daemonize yes --bind 127.0.0.1 >/dev/null
  for _ in $(seq 30); do port_open 6379 && break; sleep 1; done
  port_open 6379 || { echo "setup: Redis did not start" >&2; exit 2; }
fi

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  $PYTHON -m venv .venv
fi
stamp=.venv/.digitize-setup
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "setup: installing Python packages into .venv (a few minutes the first time)"
  .venv/bin/python -m pip install -q --upgrade pip wheel
  .venv/bin/python -m pip install -q -e ".[test]"
  echo "$want" > "$stamp"
fi
.venv/bin/digitize --version
