# Start and stop a throwaway PostgreSQL cluster on loopback (sourced by .ci/run; usable by hand:
# `source .ci/postgres.sh && start_postgres`). Runs the server as the `postgres` system user.
PGPORT="${PGPORT:-$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")}"

start_postgres() {
    local bindir
    bindir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
    PGDATA_DIR="$(mktemp -d /tmp/chainpay-pg.XXXXXX)"
    chown postgres:postgres "$PGDATA_DIR"
    runuser -u postgres -- "$bindir/initdb" -D "$PGDATA_DIR" -A trust -U postgres -E UTF8 >/dev/null
    runuser -u postgres -- "$bindir/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -w \
        -o "-h 127.0.0.1 -p $PGPORT -k $PGDATA_DIR -c fsync=off -c max_connections=300" start >/dev/null
    PG_BINDIR="$bindir"
    export PGDATA_DIR PG_BINDIR PGPORT
}

stop_postgres() {
    if [ -n "${PGDATA_DIR:-}" ] && [ -d "$PGDATA_DIR" ]; then
        runuser -u postgres -- "$PG_BINDIR/pg_ctl" -D "$PGDATA_DIR" -m fast stop >/dev/null 2>&1 || true
        rm -rf "$PGDATA_DIR"
    fi
}
