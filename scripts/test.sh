#!/usr/bin/env bash
# Set up (apt-get + pip) and run the whole test suite, PostGIS tests included, on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test

# the PostGIS tests talk to the real local server; start it if it is not running
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "test: starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect 15 main start || pg_ctlcluster 15 main start
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

.venv/bin/ruff check .
.venv/bin/mypy layers blueprint checks approval runtime --exclude "runtime/migrations/"  # Alembic scripts: untyped by design
exec .venv/bin/python -m pytest "$@"
