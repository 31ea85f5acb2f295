#!/usr/bin/env bash
# Streams against Redis 7 Streams with AOF `appendfsync always` (every acknowledged XADD fsynced), in one sitting on
# this machine: 100 B, 1 KiB and 10 KiB events, one at a time, 800 in flight and at the most in flight; the open-loop
# latency at 50% of Redis's best rate; Streams' own latency curve at 25/50/75% of its best rate; the device's
# synchronous write bandwidth and the bytes the standalone writes per payload byte. Prints one table with ratios.
#
#   tools/peer-baseline.sh [--sizes "100 1024 10240"] [--duration 8] [--out DIR]
#
# Needs the .NET 10 SDK; installs Debian's redis-server (and redis-tools) when missing. Redis and the standalone run
# as their own processes on 127.0.0.1, one after the other, each with a fresh data directory under --out.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sizes="100 1024 10240"
duration=8
out="$(mktemp -d /tmp/streams-peer.XXXXXX)"
while [ "$#" -gt 0 ]; do
  case "$1" in
    --sizes) sizes="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "usage: $0 [--sizes \"100 1024 10240\"] [--duration S] [--out DIR]" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  echo "== Installing redis-server" >&2
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
  || echo $((20000 + RANDOM % 20000)); }
log() { echo "$*" >&2; }
json_field() { awk -F': ' -v k="\"$1\"" '$1 ~ k"$" { gsub(/[ ,]/, "", $2); print $2; exit }'; }   # first occurrence

redis_pid=""
standalone_pid=""
cleanup() {
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
  [ -n "$standalone_pid" ] && kill "$standalone_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

# --- The device: 1 MiB synchronous writes, as the journal's group commits are at full load.
log "== Device: dd bs=1M count=512 oflag=dsync in $out"
disk_mbps=$(dd if=/dev/zero of="$out/dd.bin" bs=1M count=512 oflag=dsync 2>&1 | awk '/copied/ { for (i=1;i<=NF;i++) if ($i ~ /^[MG]B\/s$/) { v=$(i-1); gsub(",", ".", v); print ($i=="GB/s") ? v*1000 : v } }')
rm -f "$out/dd.bin"
log "   $disk_mbps MB/s"

# --- Redis: one server per case (a fresh AOF each time), XADD with the payload as one field.
redis_run() { # size clients pipeline requests -> "rps p50"
  local size=$1 clients=$2 pipeline=$3 requests=$4 port dir payload csv
  port=$(free_port); dir="$out/redis-$size-$clients-$pipeline"; rm -rf "$dir"; mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly yes --appendfsync always \
    --auto-aof-rewrite-percentage 0 --daemonize no --logfile "$dir/redis.log" &
  redis_pid=$!
  for _ in $(seq 1 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$port" ping >/dev/null || { log "redis-server did not start (see $dir/redis.log)"; exit 1; }
  payload=$(head -c "$size" /dev/zero | tr '\0' 'x')
  csv=$(redis-benchmark -p "$port" -c "$clients" -P "$pipeline" -n "$requests" --csv XADD bench '*' f "$payload" | tail -1)
  kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true; redis_pid=""
  rm -rf "$dir"
  # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...
  echo "$csv" | awk -F'","' '{ printf "%.0f %s\n", $2, $5 }'
}

# --- Streams: one standalone process for every case, its own data directory and ports.
sa_dir="$out/standalone"; rm -rf "$sa_dir"
port=$(free_port); data_port=$(free_port); metrics_port=$(free_port)
"$root/streams" --help >/dev/null 2>&1 || true   # builds once, before anything is timed
"$root/streams" standalone --data-dir "$sa_dir" --port "$port" --data-port "$data_port" --metrics-port "$metrics_port" \
  >"$out/standalone.log" 2>&1 &
standalone_pid=$!
for _ in $(seq 1 300); do grep -q "is ready" "$out/standalone.log" && break; sleep 0.1; done
grep -q "is ready" "$out/standalone.log" || { log "the standalone did not start (see $out/standalone.log)"; exit 1; }
controller="http://127.0.0.1:$port"
streams_run() { # json-file args... -> the bench's --json document in the file
  local file=$1; shift
  "$root/streams" bench --controller "$controller" --duration "$duration" --warmup 2 --json "$@" >"$file" 2>>"$out/bench.log"
}
written_bytes() { awk '/^write_bytes/ { print $2 }' "/proc/$standalone_pid/io"; }

declare -A R S
for size in $sizes; do
  case "$size" in 100) n=2000000 ;; 1024) n=600000 ;; *) n=$((1000000000 / size)) ;; esac   # about 5 s each
  [ "$n" -gt 100000 ] || n=100000
  log "== $size B: Redis one at a time, 800 in flight (-c 50 -P 16), max (-c 64 -P 256)"
  read -r R[$size,1] R[$size,1,p50] < <(redis_run "$size" 1 1 20000)
  read -r R[$size,800] R[$size,800,p50] < <(redis_run "$size" 50 16 "$n")
  read -r R[$size,max] R[$size,max,p50] < <(redis_run "$size" 64 256 "$n")
  redis_best=${R[$size,800]}; [ "${R[$size,max]}" -gt "$redis_best" ] && redis_best=${R[$size,max]}
  R[$size,best]=$redis_best

  log "== $size B: Streams one at a time, 800 in flight (4 x 200), max (4 x 4096)"
  streams_run "$out/s-$size-1.json" --size "$size" --writers 1 --keys 1 --segments 1 --inflight 1
  streams_run "$out/s-$size-800.json" --size "$size" --writers 4 --inflight 200
  before=$(written_bytes)
  streams_run "$out/s-$size-max.json" --size "$size" --writers 4 --inflight 4096
  after=$(written_bytes)
  for c in 1 800 max; do
    S[$size,$c]=$(json_field eventsPerSecond <"$out/s-$size-$c.json")
    S[$size,$c,p50]=$(json_field p50 <"$out/s-$size-$c.json")
  done
  # Bytes the process wrote during the max run (journal, and Tier 2 as far as it kept up) per payload byte acked;
  # the bench counts only the measured seconds, so the warm-up's bytes are added at the measured rate.
  S[$size,wpb]=$(awk -v d=$((after - before)) -v eps="${S[$size,max]}" -v s="$size" -v t="$duration" \
    'BEGIN { printf "%.2f", d / (eps * s * (t + 2)) }')

  half=$(( ${R[$size,best]} / 2 ))
  log "== $size B: Streams open loop at $half events/s (50% of Redis's best)"
  streams_run "$out/s-$size-open.json" --size "$size" --writers 4 --inflight 4096 --rate "$half"
  S[$size,open]=$(awk '/"ackLatencyMs"/ { f=1 } f && /"p50"|"p99"|"p999"/ { gsub(/[ ,]/, "", $2); printf "%s%s", sep, $2; sep=" / " } f && /}/ { exit }' FS=': ' "$out/s-$size-open.json")
  for pct in 25 50 75; do
    rate=$(awk -v m="${S[$size,max]}" -v p=$pct 'BEGIN { printf "%.0f", m * p / 100 }')
    log "== $size B: Streams open loop at $rate events/s ($pct% of its best)"
    streams_run "$out/s-$size-curve$pct.json" --size "$size" --writers 4 --inflight 4096 --rate "$rate"
    S[$size,curve$pct]="$rate: $(awk '/"ackLatencyMs"/ { f=1 } f && /"p50"|"p99"|"p999"/ { gsub(/[ ,]/, "", $2); printf "%s%s", sep, $2; sep=" / " } f && /}/ { exit }' FS=': ' "$out/s-$size-curve$pct.json")"
  done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2/1048576 }' /proc/meminfo); device: $disk_mbps MB/s (dd bs=1M oflag=dsync)"
echo "Redis $(redis-server --version | awk '{ print $3 }' | tr -d 'v='), appendfsync always; Streams standalone, its own process; ${duration} s per Streams run"
echo
echo "| event | case | Redis events/s | Redis p50 ms | Streams events/s | Streams p50 ms | throughput ratio |"
echo "|---|---|---:|---:|---:|---:|---:|"
for size in $sizes; do
  for c in 1 800 max; do
    label=$c; [ "$c" = 1 ] && label="one at a time"; [ "$c" = 800 ] && label="800 in flight"; [ "$c" = max ] && label="max (Redis 64x256, Streams 4x4096)"
    echo "| $size B | $label | ${R[$size,$c]} | ${R[$size,$c,p50]} | ${S[$size,$c]} | ${S[$size,$c,p50]} | $(ratio "${S[$size,$c]}" "${R[$size,$c]}") |"
  done
done
echo
echo "| event | one at a time: Redis p50 / Streams p50 | open loop at 50% of Redis's best: rate, Streams p50 / p99 / p99.9 ms | Streams at 25% / 50% / 75% of its best: rate: p50 / p99 / p99.9 ms | Streams MB/s at max | bytes written per payload byte |"
echo "|---|---|---|---|---:|---:|"
for size in $sizes; do
  mbps=$(awk -v e="${S[$size,max]}" -v s="$size" 'BEGIN { printf "%.0f", e * s / 1e6 }')
  echo "| $size B | ${R[$size,1,p50]} / ${S[$size,1,p50]} ms | $(( ${R[$size,best]} / 2 )): ${S[$size,open]} | ${S[$size,curve25]}; ${S[$size,curve50]}; ${S[$size,curve75]} | $mbps | ${S[$size,wpb]} |"
done
echo
echo "Bench JSON documents and logs: $out"
