#!/usr/bin/env bash
# Runs one benchmark scenario against meshgate and the reference servers
# (Centrifugo, a hand-rolled gqlgen server, a raw WebSocket broadcast), in
# the same session, the server pinned to core 0 and the load tool to core 1.
#
#   bench/run.sh A          10 000 subscribers, 200 events as fast as possible
#   bench/run.sh B          19 000 idle subscribers (memory)
#   bench/run.sh C          1 000 subscribers, 2 000 events/s for 10 s (overload here)
#   bench/run.sh C10        10 subscribers, 2 000 events/s for 10 s (latency); also called Cs
#   bench/run.sh POLL       scenario A's shape with 2 000 HTTP long-poll readers (meshgate only);
#                           POLLWS is the same over WebSocket
#   bench/run.sh R          reconnect storm: 10 000 devices connect at once (256 at a time), each
#                           makes a queue, subscribes and streams; meshgate with HTTP requests for
#                           the queue and subscription, then (meshgate-ws) with mutations on the
#                           WebSocket itself, one connection per device
#   bench/run.sh E          scenario A on a 3-node cluster (127.0.0.1-3, all pinned to core 0),
#                           subscribers spread over the nodes, then on 1 node, for the comparison
#   bench/run.sh E2         remote against local delivery, same two processes: a 2-node cluster
#                           with every subscriber on n1, then on n2; the node holding the
#                           resource's list delivers locally, the other receives forwarded batches
#   bench/run.sh A tls      meshgate and Centrifugo over TLS (the other references have no TLS)
#   bench/run.sh R tls resume meshgate-ws centrifugo
#                           R over TLS, every device resuming a TLS session with a ticket
#
# TARGETS (default: meshgate centrifugo gqlgen raw) may follow the scenario.
# BENCH_PORT (default 8443) is meshgate's port (a cluster's nodes listen
# on it at 127.0.0.1-3, and gossip and serve pprof as far from 7946 and
# 6061-6063); BENCH_DEBUG (e.g. 127.0.0.1:6060) serves a single
# meshgate's pprof during the run. BENCH_LOG_LEVEL (default error) is the
# cluster nodes' log level; BENCH_KEEP, a directory, keeps their logs and
# metrics after each run.
# Results go to stdout and, as JSON lines, to bench/results/<scenario>.jsonl.
#
# Centrifugo is installed once, at the pinned version below, into bench/bin
# (ignored by git), and runs with bench/centrifugo.json: memory engine,
# JSON protocol over WebSocket, HMAC connection tokens, HTTP API publishes.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:?scenario: A, B, C, C10, POLL or E}; shift
tls=no
if [ "${1:-}" = tls ]; then tls=yes; shift; fi
resume=no # with tls: devices resume a TLS session with a ticket (meshbench -resume)
if [ $tls = yes ] && [ "${1:-}" = resume ]; then resume=yes; shift; fi
targets=${*:-meshgate centrifugo gqlgen raw}
[ "$scenario" = Cs ] && scenario=C10
centrifugo_version=v6.9.1
bin=$(mktemp -d); data=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$bin" "$data"' EXIT
go build -o "$bin/meshgate" ./cmd/meshgate
go build -o "$bin/meshbench" ./cmd/meshbench
go build -o "$bin/gqlgenref" ./bench/gqlgenref
go build -o "$bin/rawws" ./bench/rawws
if [[ " $targets " == *" centrifugo "* ]] && ! go version -m bench/bin/centrifugo 2>/dev/null | grep -q "mod.*centrifugo/v6.*$centrifugo_version"; then
  GOBIN="$PWD/bench/bin" go install "github.com/centrifugal/centrifugo/v6@$centrifugo_version"
fi
ulimit -n "$(ulimit -Hn)"
mkdir -p bench/results

case $scenario in
  A)    args=(-subs 10000 -events 200) ;;
  B)    args=(-subs 19000 -idle -settle 10s) ;;
  C)    args=(-subs 1000 -events 20000 -rate 2000) ;;
  C10)  args=(-subs 10 -events 20000 -rate 2000) ;;
  POLL) args=(-subs 2000 -events 200 -mode poll); targets=meshgate ;;
  POLLWS) args=(-subs 2000 -events 200); targets=meshgate ;; # POLL's shape over WebSocket, to compare
  R)    args=(-subs 10000 -idle -settle 1s -parallel 256); targets=${*:-meshgate meshgate-ws centrifugo raw} ;;
  E)    args=(-subs 10000 -events 200); targets="cluster3 cluster1" ;;
  E2)   args=(-subs 10000 -events 200); targets=${targets_e2:-"cluster2on1 cluster2on2"} ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac

wait_up() { for _ in $(seq 100); do curl -sk -o /dev/null "$1" && return 0; sleep 0.1; done; echo "server at $1 did not start" >&2; return 1; }

for target in $targets; do
  extra=()
  case $target in
    meshgate|meshgate-ws)
      [ $target = meshgate-ws ] && extra=(-setup ws)
      scheme=http; flags=(--insecure-http)
      if [ $tls = yes ]; then scheme=https; flags=(); fi
      # One user drives the whole load: lift the per-user protection.
      cat > "$data/bench.yaml" <<'YAML'
limits:
  max_streams: 100000
  per_user: {request_rate: 1000000, request_burst: 1000000, subscribe_rate: 1000000, subscribe_burst: 1000000, max_streams: 100000}
queues: {max_queues_per_device: 16}
YAML
      # BENCH_PORT moves it off 8443 (two runs on one machine);
      # BENCH_DEBUG=127.0.0.1:6060 serves pprof there during the run.
      port=${BENCH_PORT:-8443}; [ -n "${BENCH_DEBUG:-}" ] && flags+=(--debug-listen "$BENCH_DEBUG")
      if curl -s -o /dev/null "127.0.0.1:$port"; then echo "127.0.0.1:$port is taken: set BENCH_PORT" >&2; exit 1; fi
      GOMAXPROCS=1 taskset -c 0 "$bin/meshgate" serve --config "$data/bench.yaml" --data-dir "$data" --listen "127.0.0.1:$port" "${flags[@]}" --log-level error >/dev/null 2>"$data/meshgate.log" &
      pid=$!; url=$scheme://127.0.0.1:$port; wait_up "$url/healthz" ;;
    cluster3|cluster1|cluster2on1|cluster2on2)
      # Nodes of one cluster on core 0, each with GOMAXPROCS=1: the same
      # CPU as scenario A's single node, so CPU per delivery compares.
      cat > "$data/bench.yaml" <<'YAML'
limits:
  max_streams: 100000
  per_user: {request_rate: 1000000, request_burst: 1000000, subscribe_rate: 1000000, subscribe_burst: 1000000, max_streams: 100000}
YAML
      k=${target#cluster}; on=
      case $k in *on*) on=${k#*on}; k=${k%on*} ;; esac
      # BENCH_PORT moves every port of the cluster: HTTP on it, gossip
      # and pprof the same distance from 7946 and 6060.
      port=${BENCH_PORT:-8443}; gossip=$((7946 + port - 8443)); debug=$((6060 + port - 8443))
      if curl -s -o /dev/null "127.0.0.1:$port"; then echo "127.0.0.1:$port is taken: set BENCH_PORT" >&2; exit 1; fi
      pids=(); urls=()
      for i in $(seq 1 "$k"); do
        join=(); [ "$i" -gt 1 ] && join=(--join "127.0.0.1:$gossip")
        GOMAXPROCS=1 taskset -c 0 "$bin/meshgate" serve --config "$data/bench.yaml" --data-dir "$data" --insecure-http \
          --node-name "n$i" --bind "127.0.0.$i:$gossip" --listen "127.0.0.$i:$port" "${join[@]}" --log-level "${BENCH_LOG_LEVEL:-error}" \
          --debug-listen "127.0.0.1:$((debug + i))" >/dev/null 2>"$data/n$i.log" &
        pids+=($!); urls+=("http://127.0.0.$i:$port")
        wait_up "http://127.0.0.$i:$port/healthz"
        for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.$i:$port/readyz" && break; sleep 0.1; done
      done
      sleep 2 # every ring agrees
      pid=$(IFS=,; echo "${pids[*]}"); url=$(IFS=,; echo "${urls[*]}")
      [ -n "$on" ] && url=${urls[$((on - 1))]} ;;
    gqlgen)
      GOMAXPROCS=1 taskset -c 0 "$bin/gqlgenref" --listen 127.0.0.1:9002 2>/dev/null &
      pid=$!; url=http://127.0.0.1:9002; wait_up "$url/query" ;;
    centrifugo)
      cfg=bench/centrifugo.json; scheme=http
      if [ $tls = yes ]; then
        # The same configuration with TLS on a throwaway self-signed certificate.
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
          -keyout "$data/cf.key" -out "$data/cf.crt" 2>/dev/null
        sed 's#"http_server": {#"http_server": {"tls": {"enabled": true, "cert_pem": "'"$data/cf.crt"'", "key_pem": "'"$data/cf.key"'"}, #' bench/centrifugo.json > "$data/centrifugo.json"
        cfg=$data/centrifugo.json; scheme=https
      fi
      GOMAXPROCS=1 taskset -c 0 bench/bin/centrifugo --config "$cfg" >/dev/null 2>"$data/centrifugo.log" &
      pid=$!; url=$scheme://127.0.0.1:9003; wait_up "$url/health" ;;
    raw)
      GOMAXPROCS=1 taskset -c 0 "$bin/rawws" --listen 127.0.0.1:9001 2>/dev/null &
      pid=$!; url=http://127.0.0.1:9001; wait_up "$url/ws" ;;
  esac
  label="$scenario/$target"; [ $tls = yes ] && label="$label+tls"
  if [ $resume = yes ]; then label="$label+resume"; extra+=(-resume); fi
  GOMAXPROCS=1 taskset -c 1 "$bin/meshbench" -target "$(case $target in cluster*|meshgate*) echo meshgate ;; *) echo "$target" ;; esac)" -url "$url" -pid "$pid" -key "$data/dev-hs256.key" \
    -label "$label" -out "bench/results/$scenario.jsonl" "${args[@]}" "${extra[@]}"
  if [ -n "${BENCH_KEEP:-}" ] && [[ $target == cluster* ]]; then
    # Each node's log and metrics after the run, for a run to explain.
    mkdir -p "$BENCH_KEEP"
    for i in $(seq 1 "$k"); do
      cp "$data/n$i.log" "$BENCH_KEEP/$target-n$i.log"
      curl -s "127.0.0.1:$((debug + i))/metrics" > "$BENCH_KEEP/$target-n$i.metrics"
    done
  fi
  if [ "${on:-}" != "" ]; then
    for i in $(seq 1 "$k"); do
      held=$(curl -s "127.0.0.1:$((debug + i))/metrics" | awk '$1 == "meshgate_resources" {print $2}')
      [ "${held:-0}" != 0 ] && echo "the resource's list was held by n$i: deliveries were $([ "$i" = "$on" ] && echo local || echo remote)"
    done
  fi
  kill ${pid//,/ }; wait 2>/dev/null || true
  echo
done
