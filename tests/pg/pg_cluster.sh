#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL cluster (Debian's postgresql 15) for the PostgreSQL
# catalog's tests: initdb as the postgres user in DIR/data, listening on 127.0.0.1 on a free
# port with its socket in DIR/run, every connection password-authenticated (scram-sha-256,
# no trust), one role and one database the tests own; the role may create databases (each
# catalog test on PostgreSQL gets one of its own, src/catalog/catalog_test_db.h).
#
#   pg_cluster.sh start DIR   # DIR/url: postgresql://snapvol:…@127.0.0.1:PORT/snapvol
#                             # DIR/admin-url: the superuser's, for tests that create databases
#   pg_cluster.sh stop DIR    # stops the server started in DIR, then removes DIR
#
# start first stops and removes what a crashed earlier run left in DIR; a failed start stops
# what it started. The data directory is not fsynced (initdb -N, fsync=off): it lives as long
# as one ctest run.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [[ -z $cmd || -z $dir ]]; then
  echo "usage: $0 start|stop DIR" >&2
  exit 2
fi
bin=/usr/lib/postgresql/15/bin
as_pg() { runuser -u postgres -- "$@"; }

# The server's processes, whichever is left: every postgres whose working directory is
# DIR/data (the postmaster and its children all run there).
cluster_pids() {
  local p data
  data=$(realpath -m "$dir/data")
  for p in /proc/[0-9]*; do
    [[ $(readlink "$p/exe" 2>/dev/null || true) == "$bin/postgres" ]] || continue
    [[ $(readlink "$p/cwd" 2>/dev/null || true) == "$data" ]] || continue
    echo "${p#/proc/}"
  done
}

stop_server() {
  [[ -d $dir/data ]] || return 0
  if [[ -s $dir/data/postmaster.pid ]]; then
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
      as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  fi
  # What pg_ctl could not stop (a postmaster killed earlier leaves its children behind).
  local pids
  pids=$(cluster_pids)
  if [[ -n $pids ]]; then
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    for _ in $(seq 1 50); do [[ -z $(cluster_pids) ]] && break; sleep 0.1; done
  fi
}

stop_all() {
  stop_server
  rm -rf "$dir"
}

case $cmd in
  stop)
    stop_all
    ;;
  start)
    started=$(date +%s.%N)
    stop_all
    mkdir -p "$dir/run" "$dir/log"
    chown postgres: "$dir" "$dir/run" "$dir/log"
    chmod 700 "$dir"
    trap 'echo "pg_cluster: start failed; log:" >&2; cat "$dir/log/server.log" >&2 2>/dev/null || true; stop_all' ERR

    port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    super_pw=$(/usr/bin/python3 -c 'import secrets; print(secrets.token_hex(16))')
    user_pw=$(/usr/bin/python3 -c 'import secrets; print(secrets.token_hex(16))')
    umask 077
    printf '%s\n' "$super_pw" >"$dir/superuser.pw"
    chown postgres: "$dir/superuser.pw"

    as_pg "$bin/initdb" -D "$dir/data" -U postgres --pwfile="$dir/superuser.pw" \
      --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C -N \
      >"$dir/log/initdb.log" 2>&1
    rm -f "$dir/superuser.pw"
    # Only password-authenticated listeners: the socket and 127.0.0.1, nothing else.
    cat >"$dir/data/pg_hba.conf" <<HBA
local all all scram-sha-256
host  all all 127.0.0.1/32 scram-sha-256
HBA
    # No autovacuum: a test's database lives seconds, and a worker vacuuming one as its test
    # drops it made DROP DATABASE ... WITH (FORCE) fail for the snapvol role (it may not end a
    # superuser's process: SQLSTATE 42501, seen in CI).
    cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/run'
password_encryption = scram-sha-256
max_connections = 100
shared_buffers = 16MB
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
autovacuum = off
CONF
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log/server.log" -w -t 60 start >/dev/null

    PGPASSWORD=$super_pw "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/run" -p "$port" -U postgres \
      -d postgres >/dev/null <<SQL
CREATE ROLE snapvol LOGIN CREATEDB PASSWORD '$user_pw';
CREATE DATABASE snapvol OWNER snapvol;
SQL
    url="postgresql://snapvol:$user_pw@127.0.0.1:$port/snapvol"
    # The role's own login works over TCP, and a wrong password does not (no trust anywhere).
    PGPASSWORD=$user_pw "$bin/psql" -X -q -v ON_ERROR_STOP=1 "postgresql://snapvol@127.0.0.1:$port/snapvol" \
      -c 'SELECT 1' >/dev/null
    if PGPASSWORD=wrong "$bin/psql" -X -q "postgresql://snapvol@127.0.0.1:$port/snapvol" -c 'SELECT 1' \
      >/dev/null 2>&1; then
      echo "pg_cluster: a wrong password was accepted" >&2
      false
    fi
    printf '%s\n' "$url" >"$dir/url"
    printf '%s\n' "postgresql://postgres:$super_pw@127.0.0.1:$port/postgres" >"$dir/admin-url"
    trap - ERR
    /usr/bin/python3 -c "import sys; print(f'pg_cluster: started on 127.0.0.1:$port in {float(sys.argv[2]) - float(sys.argv[1]):.1f} s')" \
      "$started" "$(date +%s.%N)"
    ;;
  *)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
