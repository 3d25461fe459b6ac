#!/usr/bin/env bash
# MLflow tracking server + model registry for Modera.
#
#   mlflow/server.sh local        UI/server over the embedded store in $MODERA_DATA_DIR (default ~/.modera)
#   mlflow/server.sh production   PostgreSQL backend + object-store artifacts, for a cluster
#
# production needs:
#   MLFLOW_BACKEND_STORE_URI   e.g. postgresql+psycopg2://mlflow:secret@db:5432/mlflow
#   MLFLOW_ARTIFACTS_DESTINATION  e.g. s3://my-bucket/mlflow (or a shared path)
# Optional: MLFLOW_HOST (default 127.0.0.1), MLFLOW_PORT (5000), MLFLOW_ALLOWED_HOSTS (host names that
# may call the server; MLflow answers 403 to other Host headers), MLFLOW_WORKERS (4).
# Clients then set MODERA_TRACKING_URI=http://<host>:<port>.
set -euo pipefail

mode="${1:-local}"
host="${MLFLOW_HOST:-127.0.0.1}"
port="${MLFLOW_PORT:-5000}"
# MLflow's background job workers cost ~1 GB and Modera does not use them.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"

case "$mode" in
  local)
    data_dir="${MODERA_DATA_DIR:-$HOME/.modera}"
    mkdir -p "$data_dir/mlflow/artifacts"
    backend="sqlite:///$(cd "$data_dir" && pwd)/mlflow/mlflow.db"
    artifacts="$(cd "$data_dir" && pwd)/mlflow/artifacts"
    echo "MLflow UI on http://$host:$port  (store: $backend)"
    exec mlflow server --backend-store-uri "$backend" --default-artifact-root "file://$artifacts" \
      --host "$host" --port "$port"
    ;;
  production)
    : "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI (postgresql+psycopg2://user:pass@host:5432/db)}"
    : "${MLFLOW_ARTIFACTS_DESTINATION:?set MLFLOW_ARTIFACTS_DESTINATION (s3://bucket/prefix or a shared path)}"
    extra=()
    [[ -n "${MLFLOW_ALLOWED_HOSTS:-}" ]] && extra+=(--allowed-hosts "$MLFLOW_ALLOWED_HOSTS")
    exec mlflow server --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
      --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" --serve-artifacts \
      --host "$host" --port "$port" --workers "${MLFLOW_WORKERS:-4}" "${extra[@]}"
    ;;
  *)
    echo "usage: $0 local|production" >&2
    exit 2
    ;;
esac
