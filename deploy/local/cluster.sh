#!/usr/bin/env bash
# Starts a 3-node meshgate cluster on 127.0.0.1, 127.0.0.2 and 127.0.0.3
# (one shared data directory: development key, certificate and cluster CA),
# points a client at it (`meshgate probe` through each node in turn), and
# prints how to try it. Ctrl-C stops every node; a node killed by hand
# shows the repair in the other nodes' logs and at /status.
#
#   deploy/local/cluster.sh            # build, start, probe, wait
#   DATA=/tmp/mg deploy/local/cluster.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-./meshgate-cluster-data}
BIN=${BIN:-./meshgate-bin/meshgate}
mkdir -p "$(dirname "$BIN")" "$DATA/logs"
go build -o "$BIN" ./cmd/meshgate

pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT INT TERM

start() { # name ip [seed]
  local join=()
  [ -n "${3:-}" ] && join=(--join "$3")
  "$BIN" serve --data-dir "$DATA" --node-name "$1" --bind "$2" "${join[@]}" \
    >"$DATA/logs/$1.out" 2>"$DATA/logs/$1.log" &
  pids+=($!)
  for _ in $(seq 1 300); do
    curl -sf --cacert "$DATA/tls-cert.pem" "https://$2:8443/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "node $1 did not become ready; see $DATA/logs/$1.log" >&2
  exit 1
}

start n1 127.0.0.1
start n2 127.0.0.2 127.0.0.1
start n3 127.0.0.3 127.0.0.1

TOKEN=$("$BIN" token --data-dir "$DATA" --user alice --device laptop --scope publish --scope admin)
for ip in 127.0.0.1 127.0.0.2 127.0.0.3; do
  echo "--- probe through $ip"
  "$BIN" probe --url "https://$ip:8443/graphql" --token "$TOKEN" --cacert "$DATA/tls-cert.pem"
done

cat <<MSG

meshgate cluster up: n1 https://127.0.0.1:8443  n2 https://127.0.0.2:8443  n3 https://127.0.0.3:8443
  token (alice/laptop, publish+admin): export TOKEN=$TOKEN
  the cluster as n1 sees it:
    curl -s --cacert $DATA/tls-cert.pem -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
      -d '{"query":"{ cluster { name up ringShare queues subscribers misplaced } }"}' https://127.0.0.1:8443/graphql
  status pages: https://127.0.0.1:8443/status#token=\$TOKEN (and .2, .3)
  kill a node:  kill -9 ${pids[2]}   (n3) and watch n1's log: $DATA/logs/n1.log
logs in $DATA/logs. Ctrl-C stops the cluster.
MSG
wait
