#!/usr/bin/env bash
# Backup-of-backup benchmark (issue: backup-of-backup). Same machine, same run:
#   - copy throughput of a backup set file:// -> file:// vs `rclone copy --checksum`
#     and `cp -r`, and file:// -> S3 (moto) vs `rclone copy --checksum`
#   - cancel latency p50/p99 over N cancels of running copies (backstop-bench-cancel)
#   - continuous archive copy lag p50/p99 while the generator writes 50 MB/s of log
# Usage: benches/copy.sh [SIZE_BYTES] [CANCELS]   (default 2 GiB, 50)
# Needs release binaries: cargo build --release -p backstop -p backstop-workload -p backstop-chaos,
# Debian's rclone, and moto_server (scripts/setup.sh). Prints Markdown to stdout.
set -euo pipefail
SIZE=${1:-2147483648}
CANCELS=${2:-50}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release}
B=$BIN/backstop
W=$BIN/backstop-workload
BC=$BIN/backstop-bench-cancel
for t in "$B" "$W" "$BC"; do [ -x "$t" ] || { echo "missing $t: cargo build --release -p backstop -p backstop-workload -p backstop-chaos" >&2; exit 1; }; done
command -v rclone >/dev/null || { echo "apt-get install rclone" >&2; exit 1; }
command -v moto_server >/dev/null || { echo "pip install 'moto[server]'" >&2; exit 1; }

DIR=$(mktemp -d /tmp/backstop-copybench.XXXXXX)
PORT=$((20000 + RANDOM % 10000))
META=127.0.0.1:$PORT
S3PORT=$((PORT + 2))
cleanup() {
  kill "$SA" "${MOTO:-}" 2>/dev/null || true
  wait "$SA" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
# now, secs, C, J, field
. "$(dirname "$0")/lib.sh"
mbps() { python3 -c "print(f'{$1 / 1048576 / $2:.0f}')"; }

echo "generating a $SIZE-byte tenant..." >&2
"$W" init --dir "$DIR/t1" --size "$SIZE" --files 16 >/dev/null
sync
BACKSTOP_LOG=warn,backstop::copy_lag=info "$B" standalone --data-dir "$DIR/bs" --allow-path "$DIR" --listen "$META" --sql-listen "127.0.0.1:$((PORT + 1))" 2>"$DIR/standalone.log" &
SA=$!
for _ in $(seq 100); do C status >/dev/null 2>&1 && break; sleep 0.1; done
moto_server -H 127.0.0.1 -p "$S3PORT" >/dev/null 2>"$DIR/moto.log" &
MOTO=$!
for _ in $(seq 100); do curl -sf -X PUT "http://127.0.0.1:$S3PORT/bench" >/dev/null 2>&1 && break; sleep 0.2; done
S3="s3://bench/copy?host=http://127.0.0.1:$S3PORT&access_id=test&access_key=test&s3_region=us-east-1"
RS3=":s3:bench/rclone"

C tenant create t1 --source "dir://$DIR/t1" >/dev/null
C param set backup_dest "file://$DIR/dest" >/dev/null
C param set backup_dest_option 'log_archive_checkpoint_interval=1s' >/dev/null
C param set backup_backup_dest "file://$DIR/copy" >/dev/null
C archivelog --tenant t1 >/dev/null
for _ in $(seq 100); do [ "$(J archive --tenant t1 | field 'd[-1]["status"]')" = DOING ] && break; sleep 0.1; done

wait_row() { # python predicate on a set row -> waits until one matches
  for _ in $(seq 12000); do
    s=$(J sets --tenant t1 | python3 -c "import json,sys; print(next((json.dumps(x) for x in json.load(sys.stdin) if $1), ''))")
    case "$s" in *'"SUCCESS"'*) echo "$s"; return;; *'"FAILED"'*) echo "failed: $s" >&2; exit 1;; esac
    sleep 0.05
  done
  echo "timed out waiting for $1" >&2; exit 1
}

echo "full backup..." >&2
job=$(J backup --tenant t1 | field 'd["job_ids"][0]')
set=$(wait_row "x['job_id']==$job")
stored=$(echo "$set" | field 'd["output_bytes"]')

echo "copies..." >&2
t0=$(now); J copy set >/dev/null; wait_row "x['copy_id']==1" >/dev/null; t1=$(now)
bs_file=$(secs "$t0" "$t1")
t0=$(now); cp -r "$DIR/dest" "$DIR/cp"; t1=$(now); cp_file=$(secs "$t0" "$t1")
t0=$(now); rclone copy --checksum "$DIR/dest" "$DIR/rclone"; t1=$(now); rc_file=$(secs "$t0" "$t1")
rm -rf "$DIR/cp" "$DIR/rclone"
t0=$(now); J copy set --dest "$S3" >/dev/null; wait_row "x['copy_id']==10001" >/dev/null; t1=$(now)
bs_s3=$(secs "$t0" "$t1")
# rclone refuses a custom CA bundle with a plain-http endpoint.
t0=$(now); env -u AWS_CA_BUNDLE RCLONE_S3_PROVIDER=Other RCLONE_S3_ENDPOINT="http://127.0.0.1:$S3PORT" RCLONE_S3_ACCESS_KEY_ID=test RCLONE_S3_SECRET_ACCESS_KEY=test RCLONE_S3_REGION=us-east-1 rclone copy --checksum "$DIR/dest" "$RS3"; t1=$(now); rc_s3=$(secs "$t0" "$t1")
dest_bytes=$(du -sb "$DIR/dest" | cut -f1)

echo "cancel latency over $CANCELS cancels..." >&2
cancel=$("$BC" --meta "$META" --dest-prefix "file://$DIR/cancel" --count "$CANCELS")

echo "continuous archive copy lag at 50 MB/s..." >&2
C copy start >/dev/null
"$W" run --dir "$DIR/t1" --rate 50000000 --seconds 30 >"$DIR/run.log" &
GEN=$!
: >"$DIR/lag"
while kill -0 "$GEN" 2>/dev/null; do J copies --tenant t1 | field 'd["copies"][0]["lag_ms"]' >>"$DIR/lag"; sleep 0.2; done
wait "$GEN"
sleep 3
lag=$(python3 - "$DIR/lag" "$DIR/standalone.log" <<'PY'
import re, sys
v = sorted(int(x) for x in open(sys.argv[1]) if x.strip())
v = v[len(v)//6:] or v   # skip the ramp-up
q = lambda v, p: v[min(len(v)-1, int(p*len(v)))]
w = sorted(int(m.group(1)) for m in re.finditer(r"lag_ms=(\d+)", open(sys.argv[2]).read()))
print(f"{q(v,0.5)} {q(v,0.99)} {len(v)} {q(w,0.5)} {q(w,0.99)} {len(w)}")
PY
)
read -r lag50 lag99 nlag clag50 clag99 nclag <<<"$lag"
gen=$(cat "$DIR/run.log")

cat <<MD
Backup set of $SIZE source bytes ($stored bytes stored; the whole backup_dest holds $dest_bytes bytes), $(nproc) cores:

| copy | time (s) | MiB/s of stored bytes |
|---|---|---|
| backstop BACKUP BACKUPSET, file:// -> file:// (every object re-checksummed) | $bs_file | $(mbps "$stored" "$bs_file") |
| cp -r (whole backup_dest, no verification) | $cp_file | $(mbps "$dest_bytes" "$cp_file") |
| rclone copy --checksum (whole backup_dest) | $rc_file | $(mbps "$dest_bytes" "$rc_file") |
| backstop BACKUP BACKUPSET, file:// -> S3 (moto) | $bs_s3 | $(mbps "$stored" "$bs_s3") |
| rclone copy --checksum, file:// -> S3 (moto) | $rc_s3 | $(mbps "$dest_bytes" "$rc_s3") |

Cancel latency (statement returned -> job final): $cancel

Continuous archive copy lag at 50 MB/s of log ($nlag samples of the view every 200 ms; generator: $gen): p50 ${lag50} ms, p99 ${lag99} ms; per copy checkpoint ($nclag checkpoints): p50 ${clag50} ms, p99 ${clag99} ms.
MD
