#!/usr/bin/env bash
# PostgreSQL benchmark (issue 13): Backstop against pgBackRest 2.45 (compress-type=zst,
# process-max=2) on the same cluster, in one run:
#   - full backup time (statement to a usable set / `pgbackrest backup --type=full`);
#   - incremental after 60 s of pgbench: time and bytes stored;
#   - restore plus recovery to an LSN until the server accepts writes;
#   - WAL archive lag p50/p99 under pgbench: Backstop's stream vs pgBackRest's
#     archive_command (both measured the same way: how long ago the WAL at the
#     archived end was written, sampled every 0.5 s).
# Usage: benches/pg.sh [SCALE] [NOISE_MB]   (default pgbench -s 100 plus 700 MB of
# incompressible rows). COMPRESSION=zstd:N sets Backstop's backup_compression (default:
# the parameter's default). Run as root (PostgreSQL and pgBackRest run as postgres).
# Needs: cargo build --release -p backstop; apt-get install -y postgresql pgbackrest.
# Prints a Markdown table to stdout.
set -euo pipefail
SCALE=${1:-100}
NOISE_MB=${2:-700}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release}
B=$BIN/backstop
[ -x "$B" ] || { echo "missing $B: cargo build --release -p backstop" >&2; exit 1; }
command -v pgbackrest >/dev/null || { echo "apt-get install -y pgbackrest" >&2; exit 1; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort | tail -1)
AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups)

DIR=$(mktemp -d /tmp/backstop-pgbench.XXXXXX)
chmod 755 "$DIR"; chown postgres "$DIR"
PORT=$((20000 + RANDOM % 20000))
META=127.0.0.1:$((PORT + 1))
SOCK=$DIR/sock; mkdir -p "$SOCK"; chown postgres "$SOCK"
PGDATA=$DIR/pgdata
CONF=$DIR/pgbackrest.conf
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  sleep 2
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT
# now, secs, C, J, field
. "$(dirname "$0")/lib.sh"
psql_() { psql -X -qAt -h "$SOCK" -p "$1" -U postgres -d postgres -c "$2"; }
start_pg() { # DATA PORT LOG
  "${AS_PG[@]}" "$PGBIN/postgres" -D "$1" -p "$2" -k "$SOCK" -c listen_addresses='' >"$3" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 600); do psql_ "$2" "SELECT 1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "postgres on $1 did not start" >&2; tail "$3" >&2; exit 1
}
wait_writable() { # PORT
  for _ in $(seq 3000); do [ "$(psql_ "$1" 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && return 0; sleep 0.1; done
  echo "no promotion on port $1" >&2; exit 1
}

echo "cluster: pgbench -s $SCALE plus $NOISE_MB MB of random rows..." >&2
"${AS_PG[@]}" "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust >/dev/null
cat >"$CONF" <<EOF
[global]
repo1-path=$DIR/pgbr
compress-type=zst
process-max=2
start-fast=y
repo1-retention-full=10
log-level-console=warn
[bench]
pg1-path=$PGDATA
pg1-socket-path=$SOCK
pg1-port=$PORT
EOF
chown postgres "$CONF"
cat >>"$PGDATA/postgresql.conf" <<EOF
wal_level = replica
max_wal_size = 4GB
archive_mode = on
archive_command = 'pgbackrest --config=$CONF --stanza=bench archive-push %p'
EOF
start_pg "$PGDATA" "$PORT" "$DIR/pg.log"
pgbench -q -i -s "$SCALE" -h "$SOCK" -p "$PORT" -U postgres postgres >/dev/null 2>&1
psql_ "$PORT" "CREATE EXTENSION pgcrypto; CREATE TABLE noise AS SELECT gen_random_bytes(1000) AS b FROM generate_series(1, $NOISE_MB * 1000)" >/dev/null
psql_ "$PORT" "CHECKPOINT" >/dev/null
SIZE=$(psql_ "$PORT" "SELECT pg_database_size('postgres')")
"${AS_PG[@]}" pgbackrest --config="$CONF" --stanza=bench stanza-create >/dev/null

BACKSTOP_LOG=warn "$B" standalone --data-dir "$DIR/bs" --allow-path "$DIR" --listen "$META" --sql-listen "127.0.0.1:$((PORT + 2))" 2>"$DIR/standalone.log" &
PIDS+=($!)
for _ in $(seq 100); do C status >/dev/null 2>&1 && break; sleep 0.1; done
C tenant create pg1 --source "postgresql://postgres@/postgres?host=$SOCK&port=$PORT&pgdata=$PGDATA" >/dev/null
C param set backup_dest "file://$DIR/dest" >/dev/null
C param set backup_dest_option 'log_archive_checkpoint_interval=1s' >/dev/null
[ -z "${COMPRESSION:-}" ] || C param set backup_compression "$COMPRESSION" >/dev/null
C archivelog --tenant pg1 >/dev/null
for _ in $(seq 300); do [ "$(J archive --tenant pg1 | field 'd[-1]["status"]')" = DOING ] && break; sleep 0.2; done

backup_backstop() { # [--incremental] -> seconds
  local t0 job
  t0=$(now)
  job=$(J backup --tenant pg1 "$@" | field 'd["job_ids"][0]')
  for _ in $(seq 6000); do
    st=$(J sets --tenant pg1 | field "[s['status'] for s in d if s['job_id']==$job and s['copy_id']==0][0] if [s for s in d if s['job_id']==$job and s['copy_id']==0] else ''")
    [ "$st" = SUCCESS ] && break
    [ "$st" = FAILED ] && { echo "backstop backup failed" >&2; exit 1; }
    sleep 0.1
  done
  secs "$t0" "$(now)"
}
backup_pgbr() { # TYPE -> seconds
  local t0; t0=$(now)
  "${AS_PG[@]}" pgbackrest --config="$CONF" --stanza=bench backup --type="$1" >/dev/null
  secs "$t0" "$(now)"
}

echo "full backups..." >&2
BR_FULL=$(backup_pgbr full)
BS_FULL=$(backup_backstop)

echo "60 s of pgbench, sampling archive lag..." >&2
SAMPLES=$DIR/samples
: >"$SAMPLES"
pgbench -n -c 2 -T 60 -h "$SOCK" -p "$PORT" -U postgres postgres >/dev/null 2>&1 &
BENCH=$!
while kill -0 "$BENCH" 2>/dev/null; do
  ins=$(psql_ "$PORT" "SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn")
  arch=$(psql_ "$PORT" "SELECT coalesce(('x' || substr(last_archived_wal, 9, 8))::bit(32)::bigint * 4294967296 + (('x' || substr(last_archived_wal, 17, 8))::bit(32)::bigint + 1) * 16777216, 0) FROM pg_stat_archiver")
  bs=$(J archive --tenant pg1 | field 'd[-1]["checkpoint_scn"]')
  echo "$(now) $ins $arch $bs" >>"$SAMPLES"
  sleep 0.5
done
wait "$BENCH" || true
LAGS=$(python3 - "$SAMPLES" <<'EOF'
import sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
def lags(col):
    out = []
    for t, _, *v in rows:
        end = v[col - 2]
        # when the insert position first passed the archived end
        first = next((t0 for t0, ins, *_ in rows if ins > end), None)
        out.append(0.0 if first is None or first > t else t - first)
    out.sort()
    q = lambda p: out[min(len(out) - 1, int(p * len(out)))]
    return f"{q(0.5):.2f} s / {q(0.99):.2f} s"
print(lags(3) + "|" + lags(2))
EOF
)
BS_LAG=${LAGS%%|*}; BR_LAG=${LAGS##*|}

echo "incremental backups..." >&2
BR_INC=$(backup_pgbr incr)
BS_INC=$(backup_backstop --incremental)
BR_INC_BYTES=$("${AS_PG[@]}" pgbackrest --config="$CONF" --stanza=bench info --output=json | field 'd[0]["backup"][-1]["info"]["repository"]["delta"]')
BS_INC_BYTES=$(J sets --tenant pg1 | field '[s["output_bytes"] for s in d if s["copy_id"]==0][-1]')
BS_FULL_BYTES=$(J sets --tenant pg1 | field '[s["output_bytes"] for s in d if s["copy_id"]==0][0]')
BR_FULL_BYTES=$("${AS_PG[@]}" pgbackrest --config="$CONF" --stanza=bench info --output=json | field 'd[0]["backup"][0]["info"]["repository"]["delta"]')
# On disk, everything each backup wrote: data, manifests, markers (du, bytes).
disk() { [ $# -gt 0 ] || { echo "no backup directory found" >&2; exit 1; }; du -sb "$@" | awk '{n += $1} END {print n + 0}'; }
BS_FULL_DISK=$(disk $(find "$DIR/dest" -type d -name 'backup_set_*_full'))
BS_INC_DISK=$(disk $(find "$DIR/dest" -type d -name 'backup_set_*_inc'))
BR_FULL_DISK=$(disk $(find "$DIR/pgbr/backup/bench" -maxdepth 1 -type d -name '*F'))
BR_INC_DISK=$(disk $(find "$DIR/pgbr/backup/bench" -maxdepth 1 -type d -name '*I'))

# A target both archives cover: after the incrementals, one more commit.
psql_ "$PORT" "CREATE TABLE bench_marker AS SELECT 1 AS x" >/dev/null
TARGET=$(psql_ "$PORT" "SELECT pg_current_wal_insert_lsn()")
psql_ "$PORT" "SELECT pg_switch_wal()" >/dev/null
T=$(python3 -c "print(int('${TARGET%/*}', 16) * 2**32 + int('${TARGET#*/}', 16))")
for _ in $(seq 600); do [ "$(J archive --tenant pg1 | field 'd[-1]["checkpoint_scn"]')" -ge "$T" ] && break; sleep 0.2; done
for _ in $(seq 600); do
  done_wal=$(psql_ "$PORT" "SELECT last_archived_wal >= pg_walfile_name('$TARGET') FROM pg_stat_archiver")
  [ "$done_wal" = t ] && break; sleep 0.2
done

echo "restores to $TARGET..." >&2
t0=$(now)
"$B" restore --dest "file://$DIR/dest" --tenant pg1 --to "$DIR/r_bs" --until-scn "$TARGET" --owner postgres >/dev/null
start_pg "$DIR/r_bs" $((PORT + 3)) "$DIR/r_bs.log"
wait_writable $((PORT + 3))
BS_RESTORE=$(secs "$t0" "$(now)")
[ "$(psql_ $((PORT + 3)) 'SELECT count(*) FROM bench_marker')" = 1 ] || { echo "backstop restore misses the marker committed before the target" >&2; exit 1; }
mkdir -p "$DIR/r_br"; chown postgres "$DIR/r_br"; chmod 700 "$DIR/r_br"
t0=$(now)
"${AS_PG[@]}" pgbackrest --config="$CONF" --stanza=bench restore --pg1-path="$DIR/r_br" --type=lsn --target="$TARGET" --target-exclusive --target-action=promote >/dev/null
start_pg "$DIR/r_br" $((PORT + 4)) "$DIR/r_br.log"
wait_writable $((PORT + 4))
BR_RESTORE=$(secs "$t0" "$(now)")

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
echo "| what | Backstop | pgBackRest 2.45 (zst, process-max=2) | ratio |"
echo "|---|---|---|---|"
mib() { echo $(($1 / 1048576)); }
echo "| full backup, $(mib "$SIZE") MiB database | ${BS_FULL} s, $(mib "$BS_FULL_DISK") MiB on disk ($(mib "$BS_FULL_BYTES") MiB data) | ${BR_FULL} s, $(mib "$BR_FULL_DISK") MiB on disk ($(mib "$BR_FULL_BYTES") MiB data) | rate $(ratio "$BR_FULL" "$BS_FULL")x |"
echo "| incremental after 60 s of pgbench | ${BS_INC} s, $(mib "$BS_INC_DISK") MiB on disk ($(mib "$BS_INC_BYTES") MiB data) | ${BR_INC} s, $(mib "$BR_INC_DISK") MiB on disk ($(mib "$BR_INC_BYTES") MiB data) | bytes on disk $(ratio "$BS_INC_DISK" "$BR_INC_DISK")x |"
echo "| restore + recovery to an LSN until writable | ${BS_RESTORE} s | ${BR_RESTORE} s | $(ratio "$BR_RESTORE" "$BS_RESTORE")x |"
echo "| WAL archive lag p50 / p99 under pgbench | ${BS_LAG} (stream) | ${BR_LAG} (archive_command) | |"
