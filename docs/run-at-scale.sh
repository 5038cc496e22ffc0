#!/usr/bin/env bash
# Bring peerwatch up "at scale" on one machine, for trying (docs/scale.md):
#   a PostgreSQL cluster in ./var/pg with two databases (peerwatch, prefect),
#   a Prefect server on PostgreSQL at http://127.0.0.1:4200,
#   the process work pool "peerwatch", two workers, and every deployment in prefect.yaml.
#
#   docs/run-at-scale.sh          start (idempotent: what is already running is left alone)
#   docs/run-at-scale.sh stop     stop the workers, the Prefect server and PostgreSQL
#   docs/run-at-scale.sh status   what is running, and the URLs to export
#   docs/run-at-scale.sh check    only check the settings below (what start would bind, and how)
#
# Environment: PG_PORT (55432), PREFECT_PORT (4200), WORKERS (2), WORKER_LIMIT (4: flow runs one
# worker runs at once, so one worker does not take every due run while the others idle),
# PG_DIR (./var/pg: where the cluster lives; as root it must be reachable by the postgres user),
# DEMO=1 to load the demo data.
# The Prefect server's API always asks for a password (PREFECT_SERVER_API_AUTH_STRING, user:password;
# its clients send PREFECT_API_AUTH_STRING): given in the environment, or made once and kept in
# ./var/prefect-scale/api-auth-string (mode 0600). PREFECT_HOST (127.0.0.1) is where the server
# listens: any address other than loopback is refused unless an auth string is in force, and even
# then the password crosses the network in clear: put a TLS proxy in front (docs/scale.md).
# PREFECT_API_AUTH=off turns the password off, on loopback only.
# The audit key the workers sign with: PEERWATCH_AUDIT_KEY_FILE (./var/audit.key, mode 0600, made
# by `peerwatch init`); anchors of the audit chain go to PEERWATCH_ANCHOR_DIR (./var/anchors).
# Data stays in ./var/pg and ./var/prefect-scale; `make clean` removes it. Logs in ./var/log are
# appended to, each start marked, never overwritten (the Prefect server's log is evidence).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
VAR=$ROOT/var
PG=${PG_DIR:-$VAR/pg}
RUN=$VAR/run
LOGS=$VAR/log
PG_PORT=${PG_PORT:-55432}
PREFECT_PORT=${PREFECT_PORT:-4200}
WORKERS=${WORKERS:-2}
WORKER_LIMIT=${WORKER_LIMIT:-4}
BIN=${PEERWATCH_VENV_BIN:-$ROOT/.venv/bin}   # the virtual environment `make` builds

PREFECT_HOST=${PREFECT_HOST:-127.0.0.1}

export PEERWATCH_DATABASE_URL="postgresql+psycopg://peerwatch@127.0.0.1:$PG_PORT/peerwatch"
export PREFECT_API_DATABASE_CONNECTION_URL="postgresql+asyncpg://prefect@127.0.0.1:$PG_PORT/prefect"
export PREFECT_HOME=${PREFECT_HOME_DIR:-$VAR/prefect-scale}
export PREFECT_API_URL="http://127.0.0.1:$PREFECT_PORT/api"
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
export PEERWATCH_AUDIT_KEY_FILE=${PEERWATCH_AUDIT_KEY_FILE:-$VAR/audit.key}
export PEERWATCH_ANCHOR_DIR=${PEERWATCH_ANCHOR_DIR:-$VAR/anchors}
AUTH_FILE=$PREFECT_HOME/api-auth-string

log() { printf 'run-at-scale: %s\n' "$*"; }
is_loopback() { case "$1" in 127.*|::1|localhost|\[::1\]) return 0 ;; *) return 1 ;; esac; }

api_auth() {  # the API's password: given, kept from an earlier start, or made now (mode 0600)
    if [ -z "${PREFECT_SERVER_API_AUTH_STRING:-}" ] && [ "${PREFECT_API_AUTH:-on}" != off ]; then
        if [ ! -s "$AUTH_FILE" ]; then
            [ "${1:-}" = make ] || return 0
            mkdir -p "$PREFECT_HOME"
            (umask 077; printf 'peerwatch:%s\n' "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" >"$AUTH_FILE")
            log "made the Prefect API's password in $AUTH_FILE (mode 0600)"
        fi
        PREFECT_SERVER_API_AUTH_STRING=$(cat "$AUTH_FILE")
    fi
    if [ -n "${PREFECT_SERVER_API_AUTH_STRING:-}" ]; then
        export PREFECT_SERVER_API_AUTH_STRING PREFECT_API_AUTH_STRING=$PREFECT_SERVER_API_AUTH_STRING
    fi
}

check() {  # refuse an unprotected server on anything but loopback, before anything starts
    api_auth "${1:-}"
    local protected=${PREFECT_SERVER_API_AUTH_STRING:-}
    if [ -z "$protected" ] && [ "${PREFECT_API_AUTH:-on}" != off ]; then protected="made at start"; fi
    if [ -z "$protected" ] && ! is_loopback "$PREFECT_HOST"; then
        log "refusing to start the Prefect server on $PREFECT_HOST without an API password: anyone who can"
        log "reach it could read and start flow runs. Set PREFECT_SERVER_API_AUTH_STRING (user:password), or"
        log "leave PREFECT_API_AUTH unset so one is made, and put a TLS proxy in front (docs/scale.md)."
        exit 2
    fi
    if [ -n "$protected" ]; then
        log "the Prefect server will listen on $PREFECT_HOST:$PREFECT_PORT, its API behind a password"
    else
        log "the Prefect server will listen on $PREFECT_HOST:$PREFECT_PORT WITHOUT an API password (loopback only)"
    fi
    is_loopback "$PREFECT_HOST" || log "not loopback: the password crosses the network in clear unless a TLS proxy is in front"
}
pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
if [ "$(id -u)" = 0 ]; then as_pg() { runuser -u postgres -- "$@"; }; else as_pg() { "$@"; }; fi
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pid() {  # stop the process whose id we wrote to $1 (and its children: it leads its own group)
    local file=$1 pid
    alive "$file" || { rm -f "$file"; return 0; }
    pid=$(cat "$file")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; }
    rm -f "$file"
    log "stopped $(basename "$file" .pid) ($pid)"
}

stop() {
    for f in "$RUN"/worker-*.pid; do [ -e "$f" ] && stop_pid "$f"; done
    stop_pid "$RUN/prefect-server.pid"
    BINDIR=$(pg_bindir)
    if [ -n "$BINDIR" ] && [ -f "$PG/data/postmaster.pid" ]; then
        as_pg "$BINDIR/pg_ctl" -D "$PG/data" -m fast -w stop >/dev/null && log "stopped PostgreSQL"
    fi
}

status() {
    if [ -f "$PG/data/postmaster.pid" ]; then log "PostgreSQL on 127.0.0.1:$PG_PORT (data in $PG/data)"; else log "PostgreSQL: stopped"; fi
    if alive "$RUN/prefect-server.pid"; then log "Prefect server: http://127.0.0.1:$PREFECT_PORT"; else log "Prefect server: stopped"; fi
    for f in "$RUN"/worker-*.pid; do [ -e "$f" ] && alive "$f" && log "$(basename "$f" .pid) running ($(cat "$f"))"; done
    echo
    echo "export PEERWATCH_DATABASE_URL=$PEERWATCH_DATABASE_URL"
    echo "export PREFECT_API_URL=$PREFECT_API_URL"
    if [ -s "$AUTH_FILE" ]; then echo "export PREFECT_API_AUTH_STRING=\"\$(cat $AUTH_FILE)\""; fi
    echo "export PEERWATCH_AUDIT_KEY_FILE=$PEERWATCH_AUDIT_KEY_FILE"
    echo "# server log (kept across restarts): $LOGS/prefect-server.log; deployments pull from $ROOT"
    echo "# the fire-manual deployment acts as the owner of a personal access token: peerwatch token create NAME"
}

start_postgres() {
    BINDIR=$(pg_bindir)
    if [ -z "$BINDIR" ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            log "installing PostgreSQL from the OS packages"
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql </dev/null >/dev/null
            BINDIR=$(pg_bindir)
        else
            log "install PostgreSQL first (Debian/Ubuntu: sudo apt-get install postgresql)"; exit 2
        fi
    fi
    mkdir -p "$PG"
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$PG"
        # the postgres user must be able to reach ./var/pg
        for d in "$PG" "$VAR" "$ROOT"; do chmod o+x "$d" 2>/dev/null || true; done
        # ... and every directory above it: a clone under a mode-700 home (/root) cannot start
        # its PostgreSQL. Say which directory stops it rather than fail later in initdb/pg_ctl.
        local d="" part
        IFS=/ read -ra parts <<<"${PG#/}"
        for part in "${parts[@]}"; do  # from / down: the first directory it cannot enter
            d="$d/$part"
            if ! runuser -u postgres -- test -x "$d"; then
                log "PostgreSQL runs as the postgres user, which cannot enter $d ($(stat -c %A "$d"))."
                log "Clone peerwatch somewhere it can reach (e.g. /srv/peerwatch), or set PG_DIR to such a"
                log "directory (PG_DIR=/var/lib/peerwatch-pg $0), or allow it: chmod o+x $d"
                exit 2
            fi
        done
    fi
    if [ ! -f "$PG/data/PG_VERSION" ]; then
        as_pg "$BINDIR/initdb" -D "$PG/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
        log "created a PostgreSQL cluster in $PG/data (trust auth, 127.0.0.1 only: for trying, not production)"
    fi
    if [ -f "$PG/data/postmaster.pid" ] && as_pg "$BINDIR/pg_ctl" -D "$PG/data" status >/dev/null 2>&1; then
        log "PostgreSQL already running"
    else
        as_pg "$BINDIR/pg_ctl" -D "$PG/data" -l "$PG/server.log" -w -t 60 \
            -o "-h 127.0.0.1 -p $PG_PORT -k $PG -c max_connections=200" start >/dev/null
        log "PostgreSQL on 127.0.0.1:$PG_PORT"
    fi
    psql_pg() { as_pg "$BINDIR/psql" -qtA -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
    for name in peerwatch prefect; do
        [ "$(psql_pg -c "SELECT 1 FROM pg_roles WHERE rolname = '$name'")" = 1 ] || psql_pg -c "CREATE ROLE $name LOGIN"
        [ "$(psql_pg -c "SELECT 1 FROM pg_database WHERE datname = '$name'")" = 1 ] || psql_pg -c "CREATE DATABASE $name OWNER $name"
    done
}

start_bg() {  # start_bg NAME COMMAND...: in its own process group, logging to var/log/NAME.log
    local name=$1; shift
    if alive "$RUN/$name.pid"; then log "$name already running"; return 0; fi
    # append: a restart must not wipe the log of what went wrong before it
    printf '\n==== %s: run-at-scale starts %s ====\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$name" >>"$LOGS/$name.log"
    setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN/$name.pid"
}

start() {
    check make  # first: an unprotected server beyond loopback is refused before anything starts
    [ -x "$BIN/peerwatch" ] || make -s .venv/.installed-stamp
    mkdir -p "$RUN" "$LOGS" "$PREFECT_HOME"
    start_postgres

    "$BIN/peerwatch" init ${DEMO:+--demo}   # Alembic migrations to head; the audit key; you as administrator
    log "peerwatch database at head; audit key $PEERWATCH_AUDIT_KEY_FILE"

    start_bg prefect-server "$BIN/prefect" server start --host "$PREFECT_HOST" --port "$PREFECT_PORT"
    for _ in $(seq 1 120); do
        "$BIN/python" -c "import urllib.request,sys; urllib.request.urlopen('$PREFECT_API_URL/health', timeout=2)" 2>/dev/null && break
        alive "$RUN/prefect-server.pid" || { tail -n 30 "$LOGS/prefect-server.log"; exit 1; }
        sleep 1
    done
    log "Prefect server on PostgreSQL: http://127.0.0.1:$PREFECT_PORT"

    "$BIN/prefect" work-pool inspect peerwatch >/dev/null 2>&1 \
        || "$BIN/prefect" work-pool create peerwatch --type process >/dev/null
    log "work pool 'peerwatch' (process)"
    "$BIN/prefect" --no-prompt deploy --all >>"$LOGS/deploy.log" 2>&1 || { tail -n 30 "$LOGS/deploy.log"; exit 1; }
    log "deployed: $(grep -c '^  - name:' prefect.yaml) deployments from prefect.yaml"
    log "the deployments pull from $ROOT: a worker on another machine needs the clone at that same path"

    for i in $(seq 1 "$WORKERS"); do
        start_bg "worker-$i" "$BIN/prefect" worker start --pool peerwatch --name "peerwatch-worker-$i" --type process \
            --limit "$WORKER_LIMIT"
    done
    log "$WORKERS workers polling 'peerwatch', at most $WORKER_LIMIT flow runs each at once (logs in var/log/, appended)"
    echo
    status
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    status) api_auth; status ;;
    check) check ;;
    *) echo "usage: $0 [start|stop|status|check]" >&2; exit 2 ;;
esac
