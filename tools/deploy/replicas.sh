#!/usr/bin/env bash
# Starts a multi-replica LongVQ service on loopback for trying it: one redis-server (sessions),
# N `longvq serve` replicas that keep their sessions in it, and nginx in front (least
# connections, streaming-friendly: tools/deploy/nginx.conf.in). Runs until Ctrl-C / SIGTERM, then
# stops everything it started.
#
#   bash tools/deploy/replicas.sh [N=2] [-m MODEL] [--port PORT] [-- extra longvq serve flags]
#
# Prints where each part listens, then one JSON line (for scripts and tests) with the ports,
# pids and the working directory. Needs build/longvq (bash tools/longvq.sh builds it) and
# Debian's redis-server and nginx (bash tools/setup.sh test installs them).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
n=2
model="$repo/models/austen-lm"
port=0
extra=()
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then n=$1; shift; fi
while [[ $# -gt 0 ]]; do
  case "$1" in
    -m|--model) model=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "replicas.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for tool in redis-server nginx; do
  command -v "$tool" >/dev/null || { echo "replicas.sh: $tool is not installed: bash tools/setup.sh test" >&2; exit 1; }
done
[[ -x $repo/build/longvq ]] || { echo "replicas.sh: build/longvq is missing: bash tools/longvq.sh --help builds it" >&2; exit 1; }

free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/longvq-replicas.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly yes --dir "$dir" \
  --logfile "$dir/redis.log" --daemonize no &
pids+=($!)
redis_pid=$!
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.05; done

replica_ports=() replica_pids=() upstreams=""
for i in $(seq "$n"); do
  p=$(free_port)
  "$repo/build/longvq" serve -m "$model" --port "$p" --session-store "redis://127.0.0.1:$redis_port" "${extra[@]}" \
    2> "$dir/replica$i.log" &
  pids+=($!)
  replica_pids+=($!)
  replica_ports+=("$p")
  upstreams+="    server 127.0.0.1:$p max_fails=1 fail_timeout=2s;"$'\n'
done
for p in "${replica_ports[@]}"; do
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$p/health" >/dev/null 2>&1 && break; sleep 0.05; done
done

[[ $port == 0 ]] && port=$(free_port)
mkdir -p "$dir/nginx-tmp"
sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" "$repo/tools/deploy/nginx.conf.in" |
  awk -v up="$upstreams" '{ if ($0 == "@UPSTREAMS@") printf "%s", up; else print }' > "$dir/nginx.conf"
nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' &
pids+=($!)
nginx_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.05; done

echo "redis:    127.0.0.1:$redis_port (pid $redis_pid)" >&2
for i in $(seq "$n"); do echo "replica $i: http://127.0.0.1:${replica_ports[$((i-1))]} (pid ${replica_pids[$((i-1))]})" >&2; done
echo "nginx:    http://127.0.0.1:$port  <- send requests here (logs in $dir)" >&2
printf '{"nginx_port": %s, "nginx_pid": %s, "redis_port": %s, "redis_pid": %s, "replica_ports": [%s], "replica_pids": [%s], "dir": "%s"}\n' \
  "$port" "$nginx_pid" "$redis_port" "$redis_pid" "$(IFS=,; echo "${replica_ports[*]}")" "$(IFS=,; echo "${replica_pids[*]}")" "$dir"
wait "$nginx_pid"
