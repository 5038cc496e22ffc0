#!/usr/bin/env bash
# Bring peerwatch up "at scale" on one machine, for trying (docs/scale.md):
#   a PostgreSQL cluster in ./var/pg with two databases (peerwatch, prefect),
#   a Prefect server on PostgreSQL at http://127.0.0.1:4200,
#   the process work pool "peerwatch", two workers, and every deployment in prefect.yaml.
#
#   docs/run-at-scale.sh          start (idempotent: what is already running is left alone)
#   docs/run-at-scale.sh stop     stop the workers, the Prefect server and PostgreSQL
#   docs/run-at-scale.sh status   what is running, and the URLs to export
#
# Environment: PG_PORT (55432), PREFECT_PORT (4200), WORKERS (2), WORKER_LIMIT (4: flow runs one
# worker runs at once, so one worker does not take every due run while the others idle),
# PG_DIR (./var/pg: where the cluster lives; as root it must be reachable by the postgres user),
# DEMO=1 to load the demo data.
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

export PEERWATCH_DATABASE_URL="postgresql+psycopg://peerwatch@127.0.0.1:$PG_PORT/peerwatch"
export PREFECT_API_DATABASE_CONNECTION_URL="postgresql+asyncpg://prefect@127.0.0.1:$PG_PORT/prefect"
export PREFECT_HOME=$VAR/prefect-scale
export PREFECT_API_URL="http://127.0.0.1:$PREFECT_PORT/api"
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false

log() { printf 'run-at-scale: %s\n' "$*"; }
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
    echo "# server log (kept across restarts): $LOGS/prefect-server.log; deployments pull from $ROOT"
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
    [ -x "$BIN/peerwatch" ] || make -s .venv/.installed-stamp
    mkdir -p "$RUN" "$LOGS" "$PREFECT_HOME"
    start_postgres

    "$BIN/peerwatch" init ${DEMO:+--demo}   # Alembic migrations to head
    log "peerwatch database at head"

    start_bg prefect-server "$BIN/prefect" server start --host 127.0.0.1 --port "$PREFECT_PORT"
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
    status) status ;;
    *) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac
