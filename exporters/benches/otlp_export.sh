#!/usr/bin/env bash
# Export throughput per CPU-second of Sonde's OTLP exporter vs rotel forwarding the same load,
# against one counting sink on loopback. Usage: bash exporters/benches/otlp_export.sh [TOTAL]
# Needs the venv of tests/run.sh (rotel). Prints one line per case.
set -euo pipefail
cd "$(dirname "$0")/../.."
TOTAL=${1:-400000}
cargo build --release --example otlp_bench -p sonde-exporters >/dev/null 2>&1
BIN=target/release/examples/otlp_bench
ROTEL=$(ls .venv/lib/python3*/site-packages/rotel/rotel-agent)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
cpu_of() { awk '{print ($14+$15)/100}' /proc/$1/stat; }
SINK_PORT=$(port); $BIN sink "$SINK_PORT" 2>/tmp/otlp_bench_sink.log & SINK=$!
trap 'kill $SINK ${RPID:-} 2>/dev/null || true' EXIT
wait_port "$SINK_PORT"
echo "date=$(date -u +%F) cpus=$(nproc) total_spans=$TOTAL"
for size in 100 1000; do
  for c in none gzip zstd; do
    echo "sonde grpc batch=$size compression=$c $($BIN send grpc http://127.0.0.1:$SINK_PORT $size $c $TOTAL 2>/dev/null)"
  done
done
# rotel: receives from the same sender (compression none) and forwards to the sink over gRPC
# (its exporter always gzips). Its CPU is read from /proc while it forwards TOTAL spans.
for size in 100 1000; do
  RG=$(port); RH=$(port)
  $ROTEL start --otlp-grpc-endpoint 127.0.0.1:$RG --otlp-http-endpoint 127.0.0.1:$RH \
    --exporter otlp --otlp-exporter-endpoint http://127.0.0.1:$SINK_PORT --otlp-exporter-protocol grpc \
    >/tmp/otlp_bench_rotel.log 2>&1 & RPID=$!
  wait_port "$RG"
  before=$(cpu_of $RPID); t0=$(date +%s.%N)
  out=$($BIN send grpc http://127.0.0.1:$RG $size none $TOTAL 2>/dev/null)
  # Wait (bounded) until rotel has flushed: its CPU stops growing.
  prev=-1; for _ in $(seq 40); do now=$(cpu_of $RPID); [ "$now" = "$prev" ] && break; prev=$now; sleep 0.25; done
  after=$(cpu_of $RPID)
  rcpu=$(echo "$after - $before" | bc -l)
  echo "rotel forward batch=$size in=none out=gzip rotel_cpu_s=$rcpu rotel_spans_per_cpu_s=$(echo "$TOTAL / $rcpu" | bc) (sender: $out)"
  kill $RPID; wait $RPID 2>/dev/null || true; RPID=
done
tail -1 /tmp/otlp_bench_sink.log
