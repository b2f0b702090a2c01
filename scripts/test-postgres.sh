#!/usr/bin/env bash
# A throwaway PostgreSQL server for the store tests, on 127.0.0.1; idempotent.
#
#   url=$(scripts/test-postgres.sh)        start it (or find it running); print its URL
#   export HEARTH_TEST_DATABASE_URL=$url   what tests/core/test_store*.py look for
#   scripts/test-postgres.sh stop          stop it (its files stay, for the next start)
#
# The cluster lives in HEARTH_TEST_PG_DIR (by default a folder under /tmp), trusts
# every local connection and listens on loopback only, on a free port. Debian's
# `postgresql` package is installed when missing and this runs as root. PostgreSQL
# refuses to run as root, so as root the server runs as the `postgres` user.
# Only the URL goes to stdout; everything else to stderr.
set -euo pipefail

DIR=${HEARTH_TEST_PG_DIR:-${TMPDIR:-/tmp}/hearth-test-postgres-$(id -u)}
DATA=$DIR/data
DATABASE=hearth_test
SUPERUSER=hearth
START_TIMEOUT_S=30

say() { echo "test-postgres: $*" >&2; }

bindir() {
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$found" ] && [ -x "$found/initdb" ] && echo "$found"
}

install_postgres() {
    if bindir >/dev/null; then return; fi
    if [ "$(id -u)" != 0 ]; then
        say "PostgreSQL is not installed: run 'apt-get install -y postgresql' as root"; exit 2
    fi
    say "installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends postgresql >&2
}

# Run a PostgreSQL program as the user that owns the cluster.
as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

running() { as_owner "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

init_cluster() {
    [ -f "$DATA/PG_VERSION" ] && return
    say "creating a cluster in $DATA"
    mkdir -p "$DIR"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$DIR"; fi
    as_owner "$BIN/initdb" -D "$DATA" -U "$SUPERUSER" --auth=trust -E UTF8 --no-sync >/dev/null
}

start() {
    local port
    port=$(free_port)
    say "starting on 127.0.0.1:$port"
    # fsync off: a test server loses nothing worth keeping when the machine crashes.
    as_owner "$BIN/pg_ctl" start -D "$DATA" -l "$DIR/server.log" -w -t "$START_TIMEOUT_S" \
        -o "-h 127.0.0.1 -p $port -k $DIR -c fsync=off -c synchronous_commit=off -c max_connections=200" \
        >/dev/null || { tail -n 20 "$DIR/server.log" >&2; exit 1; }
    echo "$port" > "$DIR/port"
}

create_database() {
    local psql=("$BIN/psql" -h 127.0.0.1 -p "$1" -U "$SUPERUSER" -d postgres -tAq -v ON_ERROR_STOP=1)
    if [ -z "$(as_owner "${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" ]; then
        as_owner "${psql[@]}" -c "CREATE DATABASE $DATABASE"
    fi
}

BIN=""
case "${1:-start}" in
    start)
        install_postgres
        BIN=$(bindir)
        init_cluster
        running || start
        port=$(cat "$DIR/port")
        create_database "$port"
        echo "postgresql://$SUPERUSER@127.0.0.1:$port/$DATABASE"
        ;;
    stop)
        BIN=$(bindir) || exit 0
        if [ -f "$DATA/PG_VERSION" ] && running; then
            as_owner "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t "$START_TIMEOUT_S" >/dev/null
            say "stopped"
        fi
        ;;
    *) say "unknown command '$1' (expected start or stop)"; exit 2 ;;
esac
