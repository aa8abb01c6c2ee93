#!/usr/bin/env bash
# Run one component of the multi-machine (CeleryExecutor) deployment in the foreground, with the
# project's airflow.cfg, dags/ and plugins/ (through `digitize airflow`, see pipeline/cli.py) and
# the deployment's settings from the environment file.
#
#   deploy/celery/run.sh ROLE [extra arguments for the airflow command]
#
# ROLE, on the main machine:
#   init           once at installation and after each upgrade, before the others: migrate the
#                  metadata database, set the "ocr" pool to DIGITIZE_OCR_POOL_SLOTS
#   api-server     UI, REST API and the Execution API the workers' tasks talk to
#   scheduler
#   dag-processor  parses dags/ into the metadata database
#   triggerer      only needed by deferrable tasks (the project's DAGs have none today)
# on each worker machine:
#   worker         `airflow celery worker`: queue DIGITIZE_WORKER_QUEUES (default "default"),
#                  --concurrency DIGITIZE_WORKER_CONCURRENCY (default: the cores of this machine)
#
# Environment file: DIGITIZE_AIRFLOW_ENV, default deploy/celery/airflow.env (copy
# airflow.env.example). The digitize program: DIGITIZE_BIN, default .venv/bin/digitize of this
# checkout, else the one on PATH. The process replaces this script (exec), so a service manager's
# stop signal reaches Airflow: a worker stopped with SIGTERM finishes its running tasks first.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
roles="init | api-server | scheduler | dag-processor | triggerer | worker"

die() { echo "run.sh: $*" >&2; exit 2; }

role=${1:-}
[[ -n $role ]] || die "usage: $0 ROLE [airflow arguments...]   (ROLE: $roles)"
shift
case $role in
  init | api-server | scheduler | dag-processor | triggerer | worker) ;;
  *) die "unknown role '$role' (ROLE: $roles)" ;;
esac

env_file=${DIGITIZE_AIRFLOW_ENV:-$here/airflow.env}
[[ -r $env_file ]] || die "no environment file $env_file: copy $here/airflow.env.example there and fill it in (or set DIGITIZE_AIRFLOW_ENV)"
set -a
# shellcheck disable=SC1090
. "$env_file"
set +a

# Settings every component must have, and have the same on every machine.
required=(
  AIRFLOW__CORE__EXECUTOR AIRFLOW__DATABASE__SQL_ALCHEMY_CONN
  AIRFLOW__CELERY__BROKER_URL AIRFLOW__CELERY__RESULT_BACKEND
  AIRFLOW__CORE__FERNET_KEY AIRFLOW__API_AUTH__JWT_SECRET AIRFLOW__API__SECRET_KEY
  AIRFLOW__CORE__EXECUTION_API_SERVER_URL DIGITIZE_DATA_DIR DIGITIZE_DB_URL
)
for name in "${required[@]}"; do
  value=${!name:-}
  [[ -n $value ]] || die "$name is not set in $env_file"
  [[ $value != *CHANGE_ME* ]] || die "$name in $env_file still reads CHANGE_ME"
done
[[ $AIRFLOW__CORE__EXECUTOR == CeleryExecutor ]] \
  || die "AIRFLOW__CORE__EXECUTOR is $AIRFLOW__CORE__EXECUTOR, this deployment needs CeleryExecutor"
for name in AIRFLOW__DATABASE__SQL_ALCHEMY_CONN DIGITIZE_DB_URL; do
  [[ ${!name} != sqlite* ]] || die "$name is SQLite: several machines need PostgreSQL"
done

# DATA/ is shared storage mounted at the same path everywhere. A worker that wrote into a local
# folder because the share is not mounted would hide archives from everyone else: refuse.
[[ $DIGITIZE_DATA_DIR == /* ]] || die "DIGITIZE_DATA_DIR must be an absolute path (the same on every machine)"
marker=$DIGITIZE_DATA_DIR/.digitize-shared-data
if [[ $role == init ]]; then
  [[ -d $DIGITIZE_DATA_DIR ]] || die "DIGITIZE_DATA_DIR $DIGITIZE_DATA_DIR does not exist: mount the shared DATA folder there"
  [[ -f $marker ]] || echo "shared DATA folder of this deployment (written by deploy/celery/run.sh init)" > "$marker"
elif [[ ! -f $marker ]]; then
  die "$marker not found: is the shared DATA folder mounted at $DIGITIZE_DATA_DIR on this machine? (run '$0 init' once on the main machine first)"
fi

digitize=${DIGITIZE_BIN:-$repo/.venv/bin/digitize}
if [[ ! -x $digitize ]]; then
  digitize=$(command -v digitize) || die "no digitize program: run scripts/setup.sh in $repo (or set DIGITIZE_BIN)"
fi

case $role in
  init)
    # migrates, sets the pool, then shows it
    exec "$digitize" airflow pools get ocr "$@" ;;
  api-server | scheduler | dag-processor | triggerer)
    exec "$digitize" airflow --no-prepare "$role" "$@" ;;
  worker)
    exec "$digitize" airflow --no-prepare celery worker \
      --queues "${DIGITIZE_WORKER_QUEUES:-default}" \
      --concurrency "${DIGITIZE_WORKER_CONCURRENCY:-$(nproc)}" "$@" ;;
esac
