#!/usr/bin/env bash
# Issue 12 defect 10, full size: slowhttptest -X (500 connections pipelining 3 requests each for a
# 1 MiB response, read through a 512-1024-byte window) against waygate, with nginx serving the
# files, while probes (GET /small, --max-time 2) run 10 times a second. Prints the probes' failures
# and latencies, waygate's event-loop delay and RSS per second.
#   bench/slow-read.sh [seconds]            # this checkout
#   BASE=<git rev> bench/slow-read.sh 10     # also that revision, for a before/after (a temp worktree)
# Bounded: ~2 × (seconds + 10) s per revision. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
ROOT=$PWD
NODE=$ROOT/node_modules/.bin/node
need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need slowhttptest slowhttptest; need nginx nginx-light; need curl curl
dir=$(mktemp -d); chmod 755 "$dir"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; [ -n "${WT:-}" ] && git worktree remove --force "$WT" >/dev/null 2>&1; rm -rf "$dir"; }
trap cleanup EXIT
mkdir -p "$dir/www" "$dir/routes"
head -c 1048576 /dev/urandom > "$dir/www/big"; echo ok > "$dir/www/small"
cat > "$dir/nginx.conf" <<NGINX
worker_processes 1; daemon off; pid $dir/nginx.pid; error_log $dir/nginx-error.log;
events { worker_connections 8192; }
http { access_log off; server { listen 127.0.0.1:19201; root $dir/www; keepalive_requests 100000; } }
NGINX
nginx -c "$dir/nginx.conf" & pids+=($!)
cat > "$dir/routes/r.yaml" <<'YAML'
pools:
  web: { targets: ["http://127.0.0.1:19201"] }
routes:
  - { name: ping, match: { path: /ping }, respond: { body: pong } }
  - { name: web, pool: web }
YAML
run() { # $1: label, $2: checkout to run
  "$NODE" --import "$ROOT/bench/eld.mjs" "$2/src/main.ts" --routes "$dir/routes" --http 127.0.0.1:19200 --https off --admin off --log-level warn >/dev/null 2>"$dir/eld.txt" &
  local wg=$!
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/19200) 2>/dev/null && break; sleep 0.1; done
  slowhttptest -X -c 500 -r 200 -w 512 -y 1024 -n 5 -z 32 -k 3 -l $((SECS + 5)) -u http://127.0.0.1:19200/big -p 2 >/dev/null 2>&1 &
  local sl=$!
  : > "$dir/probes.txt"
  local probes=()
  for _ in $(seq 1 $((SECS * 10))); do
    curl -s -o /dev/null -w "%{http_code} %{time_total}\n" --max-time 2 http://127.0.0.1:19200/small >> "$dir/probes.txt" & probes+=($!)
    sleep 0.1
  done
  wait "${probes[@]}" 2>/dev/null || true
  local rss; rss=$(awk '/VmRSS/{printf "%d", $2/1024}' /proc/$wg/status)
  kill $sl $wg 2>/dev/null || true; wait $sl $wg 2>/dev/null || true
  sort -k2 -n "$dir/probes.txt" | awk -v l="$1" -v rss="$rss" '{a[NR]=$2; if ($1!="200") f++} END {printf "%-10s probes %d, failed %d, p50 %.3f s, p90 %.3f s, max %.3f s; RSS at the end %s MB\n", l, NR, f+0, a[int(NR/2)], a[int(NR*0.9)], a[NR], rss}'
  awk '{gsub("max=",""); gsub("ms",""); m=$2+0; if (m>x) x=m} END {printf "           event-loop delay, worst second: %d ms\n", x}' "$dir/eld.txt"
}
if [ -n "${BASE:-}" ]; then
  WT=$(mktemp -d); git worktree add -f "$WT" "$BASE" -q; ln -s "$ROOT/node_modules" "$WT/node_modules"
  run "$BASE" "$WT"
fi
run "checkout" "$ROOT"
