#!/usr/bin/env bash
# A throwaway PostgreSQL server for the shared-ledger tests (tests/account/test_postgres.py).
#
#   eval "$(bash .ci/postgres.sh start)"  # prints the export lines of JAXGREEN_TEST_POSTGRES
#                                         # (its URL), JAXGREEN_REQUIRE_POSTGRES=1 and
#                                         # JAXGREEN_PG_DATA (its folder)
#   bash .ci/postgres.sh stop             # stops it and removes $JAXGREEN_PG_DATA
#
# Installs the Debian package postgresql when no initdb is found. As root, the server
# runs as the postgres user (initdb and postgres refuse root). It listens on 127.0.0.1
# only, on a free port, with trust authentication; its socket and data live in a fresh
# temporary folder. Only export lines go to stdout; everything else goes to stderr.
set -euo pipefail

bin_dir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
as_postgres() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

start() {
  local bin root port
  bin=$(bin_dir)
  if [[ -z $bin || ! -x $bin/initdb ]]; then
    echo "postgres.sh: installing postgresql" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >&2
    bin=$(bin_dir)
  fi
  [[ -n $bin && -x $bin/initdb ]] || { echo "postgres.sh: no initdb found" >&2; exit 1; }
  root=$(mktemp -d /tmp/jaxgreen-pg-XXXXXX)
  if [[ $(id -u) == 0 ]]; then chown postgres:postgres "$root"; fi
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_postgres "$bin/initdb" -D "$root/data" -U postgres -A trust -E UTF8 --no-sync >&2
  as_postgres "$bin/pg_ctl" -D "$root/data" -l "$root/log" -w -t 60 \
    -o "-p $port -k $root -c listen_addresses=127.0.0.1" start >&2
  for _ in $(seq 60); do
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
    sleep 1
  done
  if ! "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
    echo "postgres.sh: the server did not become ready; its log:" >&2
    cat "$root/log" >&2
    exit 1
  fi
  echo "export JAXGREEN_TEST_POSTGRES=postgresql://postgres@127.0.0.1:$port/postgres"
  echo "export JAXGREEN_REQUIRE_POSTGRES=1"
  echo "export JAXGREEN_PG_DATA=$root"
}

stop() {
  local root=${JAXGREEN_PG_DATA:-}
  if [[ -z $root || ! -d $root/data ]]; then
    echo "postgres.sh: no server to stop (JAXGREEN_PG_DATA is unset)" >&2
    return 0
  fi
  as_postgres "$(bin_dir)/pg_ctl" -D "$root/data" -m fast -w stop >&2 || true
  rm -rf "$root"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  *) echo "usage: bash .ci/postgres.sh start|stop" >&2; exit 2 ;;
esac
