#!/bin/bash
# Side by side, in one run: two `foresight serve` from the same build, one
# with no model (FORESIGHT_INFERENCE_BACKEND=none), one calling the Modal
# double (cmd/modaldouble) through the real modal-go SDK, each loaded by its
# own `foresight bench` at the same time. Prints, per server: acks, ack
# latency, server CPU per frame, peak RSS (VmHWM) over the idle baseline.
#
# usage: scripts/bench-model-on-off.sh [STREAMS] [FPS] [FRAME_BYTES] [DURATION]
# env:   BIN (dir with foresight and modaldouble; default bin, see `make bench-tools`),
#        DELAY (per model call, 300ms), CHUNK (VISION_CHUNK_SECONDS, 1),
#        MODE (lockstep), SERVER_ENV (extra env for both servers, e.g.
#        "FORESIGHT_MAX_TOTAL_BUFFER_BYTES=268435456"), ON_ONLY=1 / OFF_ONLY=1 (one server only),
#        FLOOR=1 (also run, at the same time, `modaldouble --floor`: one caller per stream making
#        two plain gRPC calls per chunk interval, the floor under a modal-go chunk call, and
#        print what it implies for the model server's CPU per frame)
set -euo pipefail
N=${1:-500}; FPS=${2:-10}; BYTES=${3:-20000}; DUR=${4:-8s}
BIN=${BIN:-bin}; DELAY=${DELAY:-300ms}; CHUNK=${CHUNK:-1}; MODE=${MODE:-lockstep}
ulimit -n 65000 2>/dev/null || ulimit -n 20000
tmp=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

"$BIN/modaldouble" --delay "$DELAY" >"$tmp/double" & pids+=($!)
for _ in $(seq 100); do grep -q MODAL_SERVER_URL "$tmp/double" && break; sleep 0.1; done
url=$(sed -n 's/^MODAL_SERVER_URL=//p' "$tmp/double")

serve() { # name port env...
  local name=$1 port=$2; shift 2
  env FORESIGHT_DATABASE_URL=none ${SERVER_ENV:-} "$@" VISION_CHUNK_SECONDS="$CHUNK" MODAL_CONFIG_PATH="$tmp/none.toml" \
    "$BIN/foresight" serve --addr 127.0.0.1:"$port" --log-level error >"$tmp/$name.log" 2>&1 &
  pids+=($!); echo $! >"$tmp/$name.pid"
}
names=(off on)
[ "${ON_ONLY:-}" = 1 ] && names=(on)
[ "${OFF_ONLY:-}" = 1 ] && names=(off)
for n in "${names[@]}"; do
  case $n in
  off) serve off 18181 FORESIGHT_INFERENCE_BACKEND=none ;;
  on) serve on 18182 MODAL_SERVER_URL="$url" MODAL_TOKEN_ID=ak-bench MODAL_TOKEN_SECRET=as-bench ;;
  esac
done
sleep 1
rss() { awk '/VmRSS/{print $2}' /proc/"$1"/status; }
hwm() { awk '/VmHWM/{print $2}' /proc/"$1"/status; }
cpu() { awk '{print $14+$15}' /proc/"$1"/stat; }
declare -A base c0 bp
for n in "${names[@]}"; do base[$n]=$(rss "$(cat "$tmp/$n.pid")"); done
ramp=$(( N/500 + 1 ))
port() { [ "$1" = off ] && echo 18181 || echo 18182; }
for n in "${names[@]}"; do
  "$BIN/foresight" bench --url ws://127.0.0.1:"$(port "$n")"/vision/stream --conns "$N" --fps "$FPS" \
    --frame-bytes "$BYTES" --duration "$DUR" --mode "$MODE" --ramp "${ramp}s" --idle 2s --json \
    >"$tmp/$n.json" 2>/dev/null & bp[$n]=$!; pids+=(${bp[$n]})
done
if [ "${FLOOR:-}" = 1 ]; then
  ( sleep $(( ramp + 1 )); exec "$BIN/modaldouble" --floor "$url" --streams "$N" --interval "${CHUNK}s" --duration "$DUR" >"$tmp/floor" ) &
  floorpid=$!; pids+=($floorpid)
fi
sleep $(( ramp + 1 ))
for n in "${names[@]}"; do c0[$n]=$(cpu "$(cat "$tmp/$n.pid")"); done
for n in "${names[@]}"; do wait "${bp[$n]}"; done
if [ -n "${floorpid:-}" ] && ! wait "$floorpid"; then echo "rpc floor: modaldouble --floor failed" >&2; floorpid=; fi
for n in "${names[@]}"; do
  pid=$(cat "$tmp/$n.pid")
  python3 - "$n" "$tmp/$n.json" "${base[$n]}" "$(hwm "$pid")" "${c0[$n]}" "$(cpu "$pid")" <<'PY'
import json, sys
name, path, base, hwm, c0, c1 = sys.argv[1:]
d = json.load(open(path)); l = d['ack_latency']; acks = max(d['acks'], 1)
print(f"model {name:3}: acked {d['acks']}/{d['frames_sent']} errors {d['transport_errors'] + d['failed']} captions {d['captions']} inference_errors {d['inference_errors']} "
      f"ack p50 {l['p50_ms']} ms p99 {l['p99_ms']} ms max {l['max_ms']} ms | "
      f"cpu {(int(c1) - int(c0)) * 10000 / acks:.1f} us/frame | "
      f"rss baseline {int(base) / 1024:.0f} MiB, peak {int(hwm) / 1024:.0f} MiB (+{(int(hwm) - int(base)) / 1024:.0f})")
PY
done
if [ -n "${floorpid:-}" ]; then
  cat "$tmp/floor"
  grep -q '(0 failed)' "$tmp/floor" || echo "rpc floor: some calls failed; the figure below is not a floor" >&2
  pair=$(sed -n 's/.*, \([0-9.]*\) us per pair$/\1/p' "$tmp/floor")
  python3 -c "p, f = $pair, $FPS * $CHUNK; print(f'rpc floor per frame: {p} us per pair / {f:g} frames per chunk = {p / f:.1f} us; the model server costs at least the no-model server\'s CPU per frame plus this')"
fi
