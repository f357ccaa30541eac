#!/usr/bin/env bash
# make demo: the whole loop on one machine, no account, no download beyond
# the Go modules: a local model server (Ollama, built from source by
# build.sh), Foresight against it, a test pattern streamed in as glasses
# would, captions out, stored and searchable. Ctrl-C stops both servers.
#
# The model is a tiny Gemma 3 with RANDOM weights: its captions are noise,
# the loop around them is real. For real captions, run a real model
# instead: `ollama pull gemma3:4b` on your own Ollama, then
#   FORESIGHT_INFERENCE_BACKEND=openai FORESIGHT_OPENAI_BASE_URL=http://127.0.0.1:11434/v1 \
#   FORESIGHT_OPENAI_MODEL=gemma3:4b make run
#
# Settings: DEMO_OLLAMA_PORT (11435, beside a real Ollama's 11434) and
# DEMO_ADDR (127.0.0.1:8080). Logs stay in bin/demo/.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
GO=${GO:-go}
ollama_port=${DEMO_OLLAMA_PORT:-11435}
addr=${DEMO_ADDR:-127.0.0.1:8080}
name=gemma3-tiny-vision
ollama_url=http://127.0.0.1:$ollama_port
foresight_url=http://$addr

say() { echo "demo: $*" >&2; }
die() { echo "demo: $*" >&2; exit 1; }

command -v curl >/dev/null 2>&1 || die "needs curl"
paths=$(bash internal/realmodel/build.sh) || die "the model server could not be built (above)"
eval "$paths" # FORESIGHT_OLLAMA_BIN='...' FORESIGHT_OLLAMA_MODEL='...'
ollama=$FORESIGHT_OLLAMA_BIN
gguf=$FORESIGHT_OLLAMA_MODEL
say "building foresight"
"$GO" build -o bin/foresight ./cmd/foresight

curl -s -o /dev/null "$ollama_url" && die "something already answers on $ollama_url (set DEMO_OLLAMA_PORT)"
curl -s -o /dev/null "$foresight_url" && die "something already answers on $foresight_url (set DEMO_ADDR)"

logs=$root/bin/demo
mkdir -p "$logs"
state=$(mktemp -d "${TMPDIR:-/tmp}/foresight-demo.XXXXXX")
mkdir -p "$state/home" "$state/models"
pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  rm -rf "$state"
  say "stopped (logs in bin/demo/)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for URL PID WHAT: until URL answers, while PID lives.
wait_for() {
  for _ in $(seq 600); do
    curl -fs -o /dev/null "$1" && return 0
    kill -0 "$2" 2>/dev/null || { tail -n 20 "$logs/$3.log" >&2; die "$3 exited (log: bin/demo/$3.log)"; }
    sleep 0.1
  done
  die "$3 is not answering on $1 after 60 s (log: bin/demo/$3.log)"
}

# Each server in a process group of its own (setsid), stopped as a group.
say "starting ollama serve on $ollama_url (its state in $state)"
setsid env -i PATH="$PATH" HOME="$state/home" TMPDIR="$state" \
  OLLAMA_HOST="127.0.0.1:$ollama_port" OLLAMA_MODELS="$state/models" \
  OLLAMA_NO_CLOUD=1 OLLAMA_NOPRUNE=1 OLLAMA_CONTEXT_LENGTH=4096 OLLAMA_KEEP_ALIVE=-1 GIN_MODE=release \
  "$ollama" serve >"$logs/ollama.log" 2>&1 &
pids+=($!)
wait_for "$ollama_url/api/version" "${pids[0]}" ollama

# One thread, as in the tests: plenty for this tiny model, and ggml's
# spinning threads get very slow on a busy machine (docs/providers.md, measured).
printf 'FROM %s\nPARAMETER num_thread 1\n' "$gguf" >"$state/Modelfile"
HOME="$state/home" OLLAMA_HOST="127.0.0.1:$ollama_port" "$ollama" create "$name" -f "$state/Modelfile" >"$logs/create.log" 2>&1 \
  || { cat "$logs/create.log" >&2; die "ollama create failed"; }
say "model $name registered (random weights: its captions are noise)"

say "starting foresight serve on $foresight_url"
setsid env FORESIGHT_ADDR="$addr" FORESIGHT_INFERENCE_BACKEND=openai \
  FORESIGHT_OPENAI_BASE_URL="$ollama_url/v1" FORESIGHT_OPENAI_MODEL="$name" \
  bin/foresight serve >"$logs/foresight.log" 2>&1 &
pids+=($!)
wait_for "$foresight_url/health" "${pids[1]}" foresight

# Load the model now, so the first chunk does not wait for it.
curl -fs -o /dev/null "$ollama_url/api/generate" -d "{\"model\":\"$name\"}" || die "ollama could not load $name (log: bin/demo/ollama.log)"

if command -v ffmpeg >/dev/null 2>&1; then
  say "streaming 20 s of a test pattern, as glasses would: frames in (acks), captions out (inference lines)"
  ffmpeg -v error -f lavfi -i "testsrc2=size=320x240:rate=3" -t 20 -pix_fmt yuv420p "$state/testcard.mp4"
  bin/foresight replay --url "ws://$addr/vision/stream" --video "$state/testcard.mp4" --fps 3 --log-every 6 || true
else
  say "no ffmpeg: skipping the test-pattern replay"
fi

cat >&2 <<EOF

demo: running. Foresight on $foresight_url, against the model server on $ollama_url/v1.
  your camera in, captions out:  open http://localhost:${addr##*:}/
  stored captions, searchable:   curl -s '$foresight_url/captions?limit=5'
  what it runs:                  curl -s $foresight_url/status
  stream again:                  bin/foresight replay --url ws://$addr/vision/stream --video FILE
Captions are noise: the model has random weights. Ctrl-C stops both servers.
EOF
# Until Ctrl-C, or until either server exits.
wait -n "${pids[@]}" || true
say "a server exited; see bin/demo/"
