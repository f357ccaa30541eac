#!/bin/sh
# Ack latency of a 500-stream `foresight bench` alone, then with 2,000
# devices uploading one biometric window every 10 s (200 uploads/s) against
# the same server and SQLite store, in one run (docs/benchmarks.md).
set -eu
BIN=${BIN:-bin/foresight}
ADDR=${ADDR:-127.0.0.1:18090}
CONNS=${CONNS:-500}
FPS=${FPS:-5}
SECS=${SECS:-20}
dir=$(mktemp -d)
go build -o "$dir/bioload" ./cmd/bioload
FORESIGHT_DATABASE_URL="sqlite:$dir/f.db" "$BIN" serve --addr "$ADDR" --log-level warn &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
until curl -fs "http://$ADDR/health" >/dev/null; do sleep 0.2; done
bench() {
	"$BIN" bench --url "ws://$ADDR/vision/stream" --conns "$CONNS" --fps "$FPS" --frame-bytes 2000 \
		--duration "${SECS}s" --mode pipelined --ramp 1s --json 2>/dev/null
}
echo "alone:           $(bench)"
"$dir/bioload" --url "http://$ADDR" --devices 2000 --every 10s --duration "$((SECS + 3))s" >"$dir/bio.json" &
load=$!
sleep 1
echo "with uploads:    $(bench)"
wait $load
echo "uploads:         $(cat "$dir/bio.json")"
echo "stored windows:  $(curl -fs "http://$ADDR/biometrics?limit=1" | head -c 120)…"
