#!/usr/bin/env bash
# A first, quick throughput comparison: waygate (access log on) against a minimal undici
# forwarder, each pinned to CPU 0, with the upstream and wrk on CPU 1. Runs interleaved
# (A B A B …) because absolute numbers drift on shared machines; compare the ratio.
# Bounded: about 50 s. Usage: bench/quick.sh [runs] [seconds-per-run]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
SECS=${2:-4}
NODE=./node_modules/.bin/node
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
npm run build >/dev/null   # waygate runs from dist/, as installed
dir=$(mktemp -d)
cat > "$dir/r.yaml" <<'YAML'
pools:
  app: { targets: ["http://127.0.0.1:19001"] }
routes:
  - { name: app, match: { path: /* }, pool: app }
YAML
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
taskset -c 1 $NODE bench/upstream.mjs 19001 & pids+=($!)
taskset -c 0 $NODE bench/mini-undici.mjs 19002 http://127.0.0.1:19001 & pids+=($!)
taskset -c 0 env WAYGATE_DIST=1 $NODE bin/waygate.js --routes "$dir" --http 127.0.0.1:19000 --https off --admin off >/dev/null & pids+=($!)
for port in 19000 19001 19002; do
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
rps() { taskset -c 1 wrk -t1 -c64 -d"${SECS}s" "http://127.0.0.1:$1/" | awk '/Requests\/sec/{print $2}'; }
rps 19002 >/dev/null; rps 19000 >/dev/null   # warm-up
m=(); w=()
for i in $(seq "$RUNS"); do
  m+=("$(rps 19002)"); w+=("$(rps 19000)")
  echo "run $i: mini-undici ${m[-1]} req/s  waygate ${w[-1]} req/s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mm=$(median "${m[@]}"); wm=$(median "${w[@]}")
# The ratio is the median of the per-run ratios: each pair ran back to back, while the medians of
# the two columns can come from different moments of a drifting machine.
r=(); for i in "${!m[@]}"; do r+=("$(awk -v a="${w[$i]}" -v b="${m[$i]}" 'BEGIN{printf "%.3f", a/b}')"); done
echo "median: mini-undici $mm req/s, waygate $wm req/s, ratio (median of per-run ratios) $(median "${r[@]}")"
