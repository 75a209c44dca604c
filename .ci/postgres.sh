#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on loopback for the shared-storage sweep tests.
# Prints the line to eval:  eval "$(bash .ci/postgres.sh)"
#   export OPTLAB_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:PORT/optlab
#   export OPTLAB_TEST_POSTGRES_DIR=DATA_DIR   (stop with: su postgres -c "pg_ctl -D DIR stop -m fast")
# Everything else goes to stderr. Installs postgresql with apt-get when pg_ctl is missing.
set -euo pipefail

find_bin() {
  if command -v pg_ctl >/dev/null 2>&1; then dirname "$(readlink -f "$(command -v pg_ctl)")"; return; fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

BIN="$(find_bin)"
if [ -z "$BIN" ] || [ ! -x "$BIN/pg_ctl" ]; then
  echo "postgres.sh: installing postgresql" >&2
  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql) >&2
  BIN="$(find_bin)"
fi

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
DIR="$(mktemp -d /tmp/optlab-pg.XXXXXX)"
chown postgres "$DIR"
su postgres -s /bin/bash -c "'$BIN/initdb' -D '$DIR/data' -A trust -U postgres" >&2
su postgres -s /bin/bash -c "'$BIN/pg_ctl' -D '$DIR/data' -o \"-p $PORT -k /tmp -c listen_addresses=127.0.0.1\" -l '$DIR/log' start -w" >&2
su postgres -s /bin/bash -c "'$BIN/createdb' -h 127.0.0.1 -p $PORT -U postgres optlab" >&2
echo "export OPTLAB_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:$PORT/optlab"
echo "export OPTLAB_TEST_POSTGRES_DIR=$DIR/data"
