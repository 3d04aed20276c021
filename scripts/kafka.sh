#!/usr/bin/env bash
# Kafka-protocol broker for the integration tests: tansu (a Rust broker speaking the Kafka
# wire protocol) with in-memory storage on 127.0.0.1:9092. This script owns:
#   - the tansu install (`cargo install tansu --locked --features dynostore` into ~/.cargo/bin),
#   - the broker process it starts (pid in target/tansu.pid, log in target/tansu.log),
#   - topic creation on that broker.
# Idempotent: every subcommand can be run again; all messages go to stderr.
#
#   scripts/kafka.sh install                  install tansu if `tansu` is not on PATH
#   scripts/kafka.sh start                    start the broker unless 127.0.0.1:9092 already listens
#   scripts/kafka.sh stop                     stop the broker that `start` started
#   scripts/kafka.sh topic NAME PARTITIONS    create a topic unless it exists
#   scripts/kafka.sh status                   exit 0 if 127.0.0.1:9092 accepts connections
#
# Storage is memory: stopping the broker drops every topic, message and committed offset.
# Client settings that work with it: scripts/KAFKA_NOTES.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOST=127.0.0.1
PORT=9092
TARGET="$ROOT/target"
LOG="$TARGET/tansu.log"
PIDFILE="$TARGET/tansu.pid"
START_TIMEOUT=${KAFKA_START_TIMEOUT:-30}   # seconds to wait for the port
export PATH="$HOME/.cargo/bin:$PATH"

say() { echo "kafka.sh: $*" >&2; }
die() { say "$*"; exit 1; }

listening() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

install() {
  if command -v tansu >/dev/null 2>&1; then
    return 0
  fi
  command -v cargo >/dev/null 2>&1 || die "cargo not found: installing tansu needs a Rust toolchain (rustup)"
  say "installing tansu (cargo install tansu --locked --features dynostore; ~15 min on 2 cores)"
  cargo install tansu --locked --features dynostore >&2
  command -v tansu >/dev/null 2>&1 || die "tansu still not on PATH after cargo install"
}

start() {
  if listening; then
    say "something already listens on $HOST:$PORT; using it"
    return 0
  fi
  command -v tansu >/dev/null 2>&1 || die "tansu is not installed: run scripts/kafka.sh install"
  mkdir -p "$TARGET"
  say "starting tansu on $HOST:$PORT (log $LOG)"
  # setsid + nohup: the broker outlives this script and the shell that ran it.
  setsid nohup tansu broker \
    --listener-url "tcp://$HOST:$PORT" \
    --advertised-listener-url "tcp://$HOST:$PORT" \
    --storage-engine "memory://tansu/" \
    >"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local waited=0
  until listening; do
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      say "tansu exited before listening on $HOST:$PORT; last lines of $LOG:"
      tail -n 30 "$LOG" >&2 || true
      rm -f "$PIDFILE"
      exit 1
    fi
    if ((waited >= START_TIMEOUT * 10)); then
      say "tansu did not listen on $HOST:$PORT within ${START_TIMEOUT}s; stopping it; last lines of $LOG:"
      tail -n 30 "$LOG" >&2 || true
      kill "$(cat "$PIDFILE")" 2>/dev/null || true
      rm -f "$PIDFILE"
      exit 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  say "tansu is up (pid $(cat "$PIDFILE"))"
}

stop() {
  if [[ ! -f "$PIDFILE" ]]; then
    say "no $PIDFILE: no broker started by this script"
    return 0
  fi
  local pid
  pid="$(cat "$PIDFILE")"
  if kill -0 "$pid" 2>/dev/null && [[ "$(ps -o comm= -p "$pid" 2>/dev/null)" == tansu* ]]; then
    kill "$pid"
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    say "stopped tansu (pid $pid)"
  else
    say "tansu pid $pid from $PIDFILE is not running"
  fi
  rm -f "$PIDFILE"
}

topic_exists() {
  # `tansu topic list` prints the metadata of every topic as one JSON array.
  tansu topic list --broker "tcp://$HOST:$PORT" 2>/dev/null | grep -q "\"name\":\"$1\""
}

topic() {
  local name="${1:?usage: kafka.sh topic NAME PARTITIONS}" partitions="${2:?usage: kafka.sh topic NAME PARTITIONS}"
  command -v tansu >/dev/null 2>&1 || die "tansu is not installed: run scripts/kafka.sh install"
  listening || die "no broker on $HOST:$PORT: run scripts/kafka.sh start"
  if topic_exists "$name"; then
    say "topic $name already exists"
    return 0
  fi
  local out
  # tansu exits 1 on any Kafka error code, including "Topic with this name already exists."
  if out="$(NO_COLOR=1 tansu topic create --broker "tcp://$HOST:$PORT" --partitions "$partitions" "$name" 2>&1)"; then
    say "created topic $name ($partitions partitions)"
  elif grep -qi 'already exists' <<<"$out" || topic_exists "$name"; then
    say "topic $name already exists"
  else
    printf '%s\n' "$out" >&2
    die "could not create topic $name"
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  topic) shift; topic "$@" ;;
  status) listening ;;
  *) die "usage: scripts/kafka.sh install|start|stop|status|topic NAME PARTITIONS" ;;
esac
