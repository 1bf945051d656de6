#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, on a Unix socket in a
# temporary folder (no TCP port, nothing outside the folder).
#
#   scripts/postgres.sh start FOLDER   creates and starts the cluster; prints
#                                      the database URL on standard output
#   scripts/postgres.sh stop FOLDER    stops it (the folder is left to delete)
#
# Uses the machine's PostgreSQL server (initdb, pg_ctl); when it is missing
# and the script runs as root, installs Debian's postgresql package first.
# PostgreSQL refuses to run as root: as root the cluster belongs to the
# `postgres` user the package creates, which must be able to reach FOLDER.
set -euo pipefail

command=${1:-}
folder=${2:-}
if [[ -z "$command" || -z "$folder" ]]; then
  echo "usage: $0 start|stop FOLDER" >&2
  exit 2
fi
# The server resolves a relative socket folder against its data folder, and
# a client reads only an absolute one as a socket.
folder=$(realpath -m "$folder")

find_bin() {
  local found
  found=$(command -v pg_ctl 2>/dev/null || true)
  if [[ -n "$found" ]]; then
    dirname "$(readlink -f "$found")"
    return
  fi
  # Debian installs the server outside PATH.
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [[ -n "$found" && -x "$found/pg_ctl" ]]; then
    echo "$found"
  fi
}

as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$command" in
  start)
    bin=$(find_bin)
    if [[ -z "$bin" ]]; then
      if [[ $(id -u) -ne 0 ]]; then
        echo "PostgreSQL is not installed and this script is not root: install the" >&2
        echo "postgresql package, or set SCIMLINK_TEST_DATABASE_URL to a database" >&2
        exit 1
      fi
      echo "==> installing Debian's postgresql package" >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2 \
        || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2; }
      # The package creates and may start a system cluster of its own: the
      # tests do not use it, so it is stopped rather than left running.
      if command -v pg_lsclusters >/dev/null; then
        pg_lsclusters --no-header 2>/dev/null | while read -r version name _; do
          pg_ctlcluster "$version" "$name" stop >/dev/null 2>&1 || true
        done
      fi
      bin=$(find_bin)
    fi
    mkdir -p "$folder"
    if [[ $(id -u) -eq 0 ]]; then
      chown postgres "$folder"
    fi
    chmod 0700 "$folder"
    as_owner "$bin/initdb" --pgdata="$folder/data" --username=scimlink --auth=trust \
      --encoding=UTF8 --locale=C.UTF-8 >"$folder/initdb.log" 2>&1 \
      || { cat "$folder/initdb.log" >&2; exit 1; }
    # Sockets only, in the folder; enough connections for the suites that
    # run side by side; durability off (a test cluster is thrown away).
    as_owner "$bin/pg_ctl" --pgdata="$folder/data" --log="$folder/server.log" --wait \
      --options="-c listen_addresses='' -c unix_socket_directories='$folder' \
        -c max_connections=200 -c fsync=off -c synchronous_commit=off \
        -c full_page_writes=off" start >&2 \
      || { cat "$folder/server.log" >&2; exit 1; }
    # The socket folder is the only host: no TCP attempt comes first.
    echo "postgresql:///postgres?user=scimlink&host=$folder"
    ;;
  stop)
    bin=$(find_bin)
    as_owner "$bin/pg_ctl" --pgdata="$folder/data" --mode=fast --wait stop >&2 || true
    ;;
  *)
    echo "usage: $0 start|stop FOLDER" >&2
    exit 2
    ;;
esac
