#!/usr/bin/env bash
# A long open-loop run against a standalone in its own process: the standalone's RSS sampled every few seconds, and
# at the end its GC pause percentiles (streams_process_gc_pause_seconds on /metrics) and the bench's latency.
#
#   tools/soak.sh [--rate 250000] [--size 100] [--duration 600] [--sample 5] [--cache-mb 256] [--out DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rate=250000; size=100; duration=600; sample=5; cache=256
out="$(mktemp -d /tmp/streams-soak.XXXXXX)"
while [ "$#" -gt 0 ]; do
  case "$1" in
    --rate) rate="$2"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --sample) sample="$2"; shift 2 ;;
    --cache-mb) cache="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "usage: $0 [--rate N] [--size B] [--duration S] [--sample S] [--cache-mb M] [--out DIR]" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
  || echo $((20000 + RANDOM % 20000)); }
port=$(free_port); data_port=$(free_port); metrics_port=$(free_port)
"$root/streams" --help >/dev/null 2>&1 || true   # builds once, before anything is timed
"$root/streams" standalone --data-dir "$out/data" --cache-mb "$cache" --port "$port" --data-port "$data_port" \
  --metrics-port "$metrics_port" >"$out/standalone.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do grep -q "is ready" "$out/standalone.log" && break; sleep 0.1; done
grep -q "is ready" "$out/standalone.log" || { echo "the standalone did not start (see $out/standalone.log)" >&2; exit 1; }

"$root/streams" bench --controller "http://127.0.0.1:$port" --size "$size" --rate "$rate" --duration "$duration" --warmup 5 \
  --json >"$out/bench.json" 2>"$out/bench.log" &
bench=$!
echo "seconds rss_mib" >"$out/rss.txt"
start=$(date +%s)
while kill -0 "$bench" 2>/dev/null; do
  echo "$(( $(date +%s) - start )) $(awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status")" >>"$out/rss.txt"
  sleep "$sample"
done
wait "$bench"
curl -s "http://127.0.0.1:$metrics_port/metrics" >"$out/metrics.txt"

# RSS: first sample after the warm-up, the largest, the last; GC pauses: percentiles from the histogram's buckets.
awk 'NR > 1 && $1 >= 10 { if (!first) first = $2; if ($2 > max) max = $2; last = $2 } END {
  printf "RSS MiB: %d at 10 s, max %d, last %d\n", first, max, last }' "$out/rss.txt"
awk -F'[{}" ]+' '/^streams_process_gc_pause_seconds_bucket/ { for (i = 1; i <= NF; i++) if ($i == "le=") le = $(i + 1);
    le = ""; match($0, /le="[^"]+"/); le = substr($0, RSTART + 4, RLENGTH - 5); n++; bound[n] = le; count[n] = $NF }
  END { total = count[n]; split("50 90 99 99.9", ps, " ");
    for (j = 1; j <= 4; j++) { for (k = 1; k <= n; k++) if (count[k] >= total * ps[j] / 100) { printf "GC pause p%s <= %s s; ", ps[j], bound[k]; break } }
    printf "%d pauses\n", total }' "$out/metrics.txt"
grep -E '^dotnet_gc_collections_total|^streams_process_gc_pause_seconds_(sum|count)' "$out/metrics.txt" | sed 's/{[^}]*gc_heap_generation="\([a-z0-9]*\)"}/ \1/; s/{[^}]*}//'
awk '/"ackLatencyMs"/ { f = 1 } f && /"p50"|"p99"|"p999"|"max"/ { gsub(/[ ,]/, "", $0); printf "%s ", $0 } f && /}/ { exit }' "$out/bench.json"; echo
grep -E '"eventsPerSecond"|"errors"' "$out/bench.json" | tr -d ' ,\n'; echo
echo "Samples and documents: $out"
