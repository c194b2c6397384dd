#!/usr/bin/env bash
# A read replica by PostgreSQL streaming replication, shown on one machine (docs/SCALE.md):
# a throw-away primary cluster (port 5434) and a hot standby made from it with
# pg_basebackup (port 5435), both under $WORK (default /tmp/zhuisu-replica), owned by the
# postgres user.  zhuisu writes the tiny demo to the primary and catches its read models
# up there; the replica answers the same reads (events, read models, and the projections'
# positions, so a reader knows how far behind it is) and refuses writes.
#
#   docker/replica-demo.sh            # set up, show, leave both running
#   docker/replica-demo.sh stop       # stop both clusters and remove $WORK
#
# In production the standby is another machine: the same pg_basebackup -R against the
# primary's address, a `host replication <user> <standby address> scram-sha-256` line in
# the primary's pg_hba.conf, and the console / exports pointed at the standby's URL.
set -euo pipefail

WORK=${WORK:-/tmp/zhuisu-replica}
BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
PRIMARY_PORT=${PRIMARY_PORT:-5434}
REPLICA_PORT=${REPLICA_PORT:-5435}
HERE=$(cd "$(dirname "$0")/.." && pwd)
ZHUISU=${ZHUISU:-$HERE/.venv/bin/zhuisu}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if [ "${1:-}" = stop ]; then
  as_pg "$BIN/pg_ctl" -D "$WORK/replica" -m fast stop 2>/dev/null || true
  as_pg "$BIN/pg_ctl" -D "$WORK/primary" -m fast stop 2>/dev/null || true
  rm -rf "$WORK"
  exit 0
fi

mkdir -p "$WORK" && chown postgres "$WORK" 2>/dev/null || true
as_pg "$BIN/initdb" -D "$WORK/primary" -U postgres --auth=trust >/dev/null
cat >>"$WORK/primary/postgresql.conf" <<EOF
port = $PRIMARY_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
wal_level = replica
max_wal_senders = 4
EOF
echo "host replication postgres 127.0.0.1/32 trust" >>"$WORK/primary/pg_hba.conf"
as_pg "$BIN/pg_ctl" -D "$WORK/primary" -l "$WORK/primary.log" -w start >/dev/null
echo "primary up on $PRIMARY_PORT"

as_pg "$BIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$WORK/replica" \
  -R -X stream -c fast
sed -i "s/^port = .*/port = $REPLICA_PORT/" "$WORK/replica/postgresql.conf"
as_pg "$BIN/pg_ctl" -D "$WORK/replica" -l "$WORK/replica.log" -w start >/dev/null
echo "replica up on $REPLICA_PORT (hot standby, streaming from $PRIMARY_PORT)"

PRIMARY="postgresql://postgres@127.0.0.1:$PRIMARY_PORT/postgres"
REPLICA="postgresql://postgres@127.0.0.1:$REPLICA_PORT/postgres"
export ZHUISU_ID_PEPPER_FILE="$WORK/pepper" ZHUISU_LOG_KEY_FILE="$WORK/log-key"
ZHUISU_DATABASE_URL=$PRIMARY "$ZHUISU" demo --size tiny
ZHUISU_DATABASE_URL=$PRIMARY "$ZHUISU" project catch-up >/dev/null

q() { "$BIN/psql" "$1" -Atc "$2"; }
sleep 1
echo "replication: $(q "$PRIMARY" "SELECT application_name || ' ' || state || ', replay lag ' || coalesce(replay_lag::text, '0') FROM pg_stat_replication")"
echo "events       primary $(q "$PRIMARY" 'SELECT max(notification_id) FROM zhuisu_events')  replica $(q "$REPLICA" 'SELECT max(notification_id) FROM zhuisu_events')"
echo "flags        primary $(q "$PRIMARY" 'SELECT count(*) FROM flags')  replica $(q "$REPLICA" 'SELECT count(*) FROM flags')"
echo "positions on the replica (what a reader of it checks):"
q "$REPLICA" "SELECT name || ' ' || position FROM projection_tracking ORDER BY name"
echo "a write on the replica:"
q "$REPLICA" "DELETE FROM flags" 2>&1 | sed 's/^/  /' || true
