#!/usr/bin/env bash
# The Kafka broker of the integration tests: Apache Kafka (pinned in scripts/kafka/pom.xml),
# run as a single KRaft node (combined broker + controller) on 127.0.0.1:9092 with Java 17.
# This script owns:
#   - the install: the broker's jars from Maven Central, copied by Maven into a cache folder
#     outside the clone ($SLAFLOW_CACHE, default ~/.cache/slaflow), so every clone on the
#     machine shares one download;
#   - the broker it starts: config, log4j settings, KRaft log directory, pid and log, all
#     under target/kafka/ of this clone;
#   - topic creation on that broker.
# Idempotent: every subcommand can be run again; all messages go to stderr.
#
#   scripts/kafka.sh install                  fetch the broker unless it is cached
#   scripts/kafka.sh start                    start the broker unless 127.0.0.1:9092 answers
#   scripts/kafka.sh stop                     stop the broker that `start` started
#   scripts/kafka.sh restart                  stop, then start on the same log directory
#   scripts/kafka.sh topic NAME PARTITIONS    create a topic unless it exists
#   scripts/kafka.sh status                   exit 0 if the broker answers a metadata request
#
# The log directory survives stop/start (topics, offsets and transactions are kept), so a
# test can stop the broker mid-run and start it again; `start --fresh` formats it anew.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOST=127.0.0.1
PORT=9092
CONTROLLER_PORT=9093
POM="$ROOT/scripts/kafka/pom.xml"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")"
CACHE="${SLAFLOW_CACHE:-$HOME/.cache/slaflow}/kafka-$KAFKA_VERSION"
LIBS="$CACHE/libs"
RUN="$ROOT/target/kafka"
DATA="$RUN/data"
LOG="$RUN/broker.log"
PIDFILE="$RUN/broker.pid"
START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}   # seconds to wait for the broker to answer
HEAP=${KAFKA_HEAP:-"-Xms512m -Xmx1g"}

say() { echo "kafka.sh: $*" >&2; }
die() { say "$*"; exit 1; }

listening() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

java_run() {
  # $1: main class; the rest: its arguments. Log4j settings of our own (quiet tools).
  local main="$1"; shift
  java -Xms64m -Xmx256m -Dlog4j2.configurationFile="$RUN/tools-log4j2.properties" \
    -cp "$LIBS/*" "$main" "$@"
}

install() {
  if [[ -f "$LIBS/.complete" ]]; then
    return 0
  fi
  command -v java >/dev/null 2>&1 || die "java not found: the broker needs Java 17 (apt-get install openjdk-17-jre-headless)"
  command -v mvn >/dev/null 2>&1 || die "mvn not found: fetching the broker needs Maven (apt-get install maven)"
  say "fetching Apache Kafka $KAFKA_VERSION (org.apache.kafka:kafka_2.13 and its runtime dependencies) into $LIBS"
  rm -rf "$LIBS"
  mkdir -p "$LIBS"
  mvn -q -B -f "$POM" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIBS" >&2 \
    || die "mvn could not fetch Apache Kafka $KAFKA_VERSION (see the Maven output above)"
  [[ -f "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "kafka_2.13-$KAFKA_VERSION.jar missing from $LIBS after mvn"
  touch "$LIBS/.complete"
}

write_config() {
  mkdir -p "$RUN"
  cat >"$RUN/server.properties" <<EOF
# Single-node KRaft: this process is broker and controller (written by scripts/kafka.sh).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA
num.partitions=1
auto.create.topics.enable=false
# One node: every internal topic has one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests start groups often: no wait for more members before the first assignment.
group.initial.rebalance.delay.ms=0
# Small segments and short retention: a test broker, not a store.
log.segment.bytes=67108864
log.retention.hours=24
EOF
  cat >"$RUN/log4j2.properties" <<EOF
# Broker logging (written by scripts/kafka.sh): INFO to the console, which start sends to
# $LOG; the chatty request and state-change loggers at WARN.
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.state.name = state.change.logger
logger.state.level = warn
logger.controller.name = org.apache.kafka.controller
logger.controller.level = warn
EOF
  cat >"$RUN/tools-log4j2.properties" <<EOF
# Command-line tools (topics, storage format): warnings only, to stderr.
status = warn
appender.console.type = Console
appender.console.name = STDERR
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %p %m%n
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = STDERR
EOF
}

format_data() {
  if [[ -f "$DATA/meta.properties" ]]; then
    return 0
  fi
  local cluster
  cluster="$(java_run kafka.tools.StorageTool random-uuid)"
  say "formatting KRaft log directory $DATA (cluster $cluster)"
  java_run kafka.tools.StorageTool format --ignore-formatted -t "$cluster" -c "$RUN/server.properties" >&2 \
    || die "kafka-storage format failed for $DATA"
}

broker_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE")"
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# True once the broker answers: the port is open and a metadata request lists topics.
answers() {
  listening && java_run org.apache.kafka.tools.TopicCommand --bootstrap-server "$HOST:$PORT" --list >/dev/null 2>&1
}

start() {
  local fresh=0
  [[ "${1:-}" == "--fresh" ]] && fresh=1
  if listening; then
    say "something already listens on $HOST:$PORT; using it"
    return 0
  fi
  install
  write_config
  if ((fresh)); then rm -rf "$DATA"; fi
  format_data
  say "starting Apache Kafka $KAFKA_VERSION (KRaft, heap $HEAP) on $HOST:$PORT, log $LOG"
  # setsid + nohup: the broker outlives this script and the shell that ran it.
  # shellcheck disable=SC2086
  setsid nohup java $HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$RUN/log4j2.properties" \
    -cp "$LIBS/*" kafka.Kafka "$RUN/server.properties" >"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local waited=0
  until answers; do
    if ! broker_pid >/dev/null; then
      say "the broker exited before answering on $HOST:$PORT; last lines of $LOG:"
      tail -n 30 "$LOG" >&2 || true
      rm -f "$PIDFILE"
      exit 1
    fi
    if ((waited >= START_TIMEOUT)); then
      say "the broker did not answer on $HOST:$PORT within ${START_TIMEOUT}s; stopping it; last lines of $LOG:"
      tail -n 30 "$LOG" >&2 || true
      stop
      exit 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  say "Apache Kafka $KAFKA_VERSION is up (pid $(cat "$PIDFILE"), ${waited}s)"
}

stop() {
  local pid
  if ! pid="$(broker_pid)"; then
    say "no broker started by this script is running"
    rm -f "$PIDFILE"
    return 0
  fi
  kill "$pid"
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  # The port is free only once the process is gone.
  for _ in $(seq 100); do
    listening || break
    sleep 0.1
  done
  say "stopped the broker (pid $pid)"
  rm -f "$PIDFILE"
}

topic() {
  local name="${1:?usage: kafka.sh topic NAME PARTITIONS}" partitions="${2:?usage: kafka.sh topic NAME PARTITIONS}"
  install
  write_config
  listening || die "no broker on $HOST:$PORT: run scripts/kafka.sh start"
  java_run org.apache.kafka.tools.TopicCommand --bootstrap-server "$HOST:$PORT" --create --if-not-exists \
    --topic "$name" --partitions "$partitions" --replication-factor 1 >&2 \
    || die "could not create topic $name"
}

case "${1:-}" in
  install) install ;;
  start) shift; start "$@" ;;
  stop) stop ;;
  restart) stop; start ;;
  topic) shift; topic "$@" ;;
  status) write_config; install; answers ;;
  *) die "usage: scripts/kafka.sh install|start [--fresh]|stop|restart|status|topic NAME PARTITIONS" ;;
esac
