#!/usr/bin/env bash
# Backup/restore benchmark (issue: workers). Same machine, same run, same data:
#   - full backup of a generated tenant to file:// vs `restic backup` and `tar -c | zstd -1`
#   - restore vs `restic restore`
#   - incremental after 1 % of pages changed vs full
#   - archive lag p50/p99 while the generator writes its log at 50 MB/s
# Usage: benches/backup.sh [SIZE_BYTES]   (default 2 GiB)
# Needs release binaries: cargo build --release -p backstop -p backstop-workload -p backstop-chaos
# and Debian's restic and zstd. Prints a Markdown table to stdout.
set -euo pipefail
SIZE=${1:-2147483648}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release}
B=$BIN/backstop
W=$BIN/backstop-workload
for t in "$B" "$W"; do [ -x "$t" ] || { echo "missing $t: cargo build --release -p backstop -p backstop-workload -p backstop-chaos" >&2; exit 1; }; done
command -v restic >/dev/null || { echo "apt-get install restic" >&2; exit 1; }
command -v zstd >/dev/null || { echo "apt-get install zstd" >&2; exit 1; }

DIR=$(mktemp -d /tmp/backstop-bench.XXXXXX)
PORT=$((20000 + RANDOM % 20000))
META=127.0.0.1:$PORT
cleanup() { kill "$SA" 2>/dev/null || true; wait "$SA" 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
# now, secs, C, J, field
. "$(dirname "$0")/lib.sh"
mbps() { python3 -c "print(f'{$1 / 1048576 / ($3 - $2):.0f}')"; }

echo "generating a $SIZE-byte tenant..." >&2
"$W" init --dir "$DIR/t1" --size "$SIZE" --files 16 >/dev/null
sync
BACKSTOP_LOG=warn "$B" standalone --data-dir "$DIR/bs" --allow-path "$DIR" --listen "$META" --sql-listen "127.0.0.1:$((PORT + 1))" 2>"$DIR/standalone.log" &
SA=$!
for _ in $(seq 100); do C status >/dev/null 2>&1 && break; sleep 0.1; done
C tenant create t1 --source "dir://$DIR/t1" >/dev/null
C param set backup_dest "file://$DIR/dest" >/dev/null
C param set backup_dest_option 'log_archive_checkpoint_interval=1s' >/dev/null
C archivelog --tenant t1 >/dev/null
for _ in $(seq 100); do [ "$(J archive --tenant t1 | field 'd[-1]["status"]')" = DOING ] && break; sleep 0.1; done

wait_set() { # job id -> prints the set json once SUCCESS
  for _ in $(seq 6000); do
    s=$(J sets --tenant t1 | python3 -c "import json,sys; print(next((json.dumps(x) for x in json.load(sys.stdin) if x['job_id']==$1), ''))")
    case "$s" in *'"SUCCESS"'*) echo "$s"; return;; *'"FAILED"'*) echo "backup failed: $s" >&2; exit 1;; esac
    sleep 0.05
  done
  echo "backup timed out" >&2; exit 1
}

t0=$(now); job=$(J backup --tenant t1 | field 'd["job_ids"][0]'); full=$(wait_set "$job"); t1=$(now)
full_s=$(secs "$t0" "$t1"); full_out=$(echo "$full" | field 'd["output_bytes"]')

t0=$(now); "$B" restore --dest "file://$DIR/dest" --tenant t1 --to "$DIR/r1" >/dev/null; t1=$(now)
restore_s=$(secs "$t0" "$t1")
diff -rq "$DIR/r1/data" "$DIR/t1/data" >/dev/null || { echo "restored data differs from the source (no writes ran)" >&2; exit 1; }
rm -rf "$DIR/r1"

export RESTIC_PASSWORD=bench
restic init --repo "$DIR/restic" >/dev/null 2>&1
t0=$(now); restic backup --repo "$DIR/restic" -q "$DIR/t1/data" >/dev/null; t1=$(now)
restic_s=$(secs "$t0" "$t1"); restic_out=$(du -sb "$DIR/restic" | cut -f1)
t0=$(now); restic restore latest --repo "$DIR/restic" --target "$DIR/rr" -q; t1=$(now)
restic_restore_s=$(secs "$t0" "$t1"); rm -rf "$DIR/rr"

t0=$(now); tar -C "$DIR/t1" -cf - data | zstd -1 -q -T1 -o "$DIR/t.tar.zst"; t1=$(now)
tar_s=$(secs "$t0" "$t1"); tar_out=$(stat -c %s "$DIR/t.tar.zst"); rm -f "$DIR/t.tar.zst"

# 1 % of pages changed.
pages=$((SIZE / 8192)); writes=$((pages / 100))
"$W" run --dir "$DIR/t1" --rate 0 --writes "$writes" --seconds 600 >/dev/null
t0=$(now); job=$(J backup --tenant t1 --incremental | field 'd["job_ids"][0]'); inc=$(wait_set "$job"); t1=$(now)
inc_s=$(secs "$t0" "$t1"); inc_out=$(echo "$inc" | field 'd["output_bytes"]')

# Archive lag at 50 MB/s for 30 s, sampled every 200 ms.
"$W" run --dir "$DIR/t1" --rate 50000000 --seconds 30 >"$DIR/run.log" &
GEN=$!
: >"$DIR/lag"
while kill -0 "$GEN" 2>/dev/null; do J archive --tenant t1 | field 'd[-1]["lag_ms"]' >>"$DIR/lag"; sleep 0.2; done
wait "$GEN"
lag=$(python3 - "$DIR/lag" <<'PY'
import sys
v = sorted(int(x) for x in open(sys.argv[1]) if x.strip())
v = v[len(v)//6:] or v   # skip the ramp-up
q = lambda p: v[min(len(v)-1, int(p*len(v)))]
print(f"{q(0.5)} {q(0.99)} {len(v)}")
PY
)
read -r lag50 lag99 nlag <<<"$lag"
gen=$(cat "$DIR/run.log")

cat <<MD
| measurement ($SIZE bytes, $(nproc) cores) | time (s) | MiB/s | stored bytes |
|---|---|---|---|
| backstop full backup (zstd 1, file://) | $full_s | $(mbps "$SIZE" "0" "$full_s") | $full_out |
| restic backup | $restic_s | $(mbps "$SIZE" "0" "$restic_s") | $restic_out |
| tar -c \| zstd -1 | $tar_s | $(mbps "$SIZE" "0" "$tar_s") | $tar_out |
| backstop restore (verified checksums) | $restore_s | $(mbps "$SIZE" "0" "$restore_s") | |
| restic restore | $restic_restore_s | $(mbps "$SIZE" "0" "$restic_restore_s") | |
| backstop incremental, 1 % of pages changed ($writes writes) | $inc_s | | $inc_out |

Archive lag at 50 MB/s of log (checkpoint interval 1 s; $nlag samples; generator: $gen): p50 ${lag50} ms, p99 ${lag99} ms.
MD
