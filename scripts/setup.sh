#!/usr/bin/env bash
# Installs and starts, when missing, what slaflow's tests need beyond cargo; idempotent, so
# the test command and CI both source it. Exports PYTHON for the tests that call Python.
#  - PostgreSQL on 127.0.0.1:5432 (the sink tests create their own databases in it).
#  - a Kafka-protocol broker (tansu) on 127.0.0.1:9092, installed with cargo when missing
#    (about 15 minutes the first time), see scripts/kafka.sh.
#  - PyPI `hdrhistogram` (module `hdrh`): the independent HdrHistogram implementation the
#    interop test reads slaflow's V2 histograms with (src/engine/sla/histogram.rs).

if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "setup: starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! command -v pg_isready >/dev/null 2>&1 || ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "setup: PostgreSQL is not reachable on 127.0.0.1:5432; the sink tests need it (apt-get install postgresql, then pg_ctlcluster <version> main start)" >&2
  return 1 2>/dev/null || exit 1
fi

_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$_here/kafka.sh" install || { echo "setup: could not install tansu" >&2; return 1 2>/dev/null || exit 1; }
"$_here/kafka.sh" start || { echo "setup: could not start tansu" >&2; return 1 2>/dev/null || exit 1; }

HDRH_VERSION=0.10.8
PYTHON=${PYTHON:-python3}
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "setup: $PYTHON not found; the HdrHistogram interop test needs Python 3 (apt-get install python3 python3-venv)" >&2
  return 1 2>/dev/null || exit 1
fi
if ! "$PYTHON" -c "import hdrh.histogram" 2>/dev/null; then
  echo "setup: installing PyPI hdrhistogram==$HDRH_VERSION" >&2
  if ! "$PYTHON" -m pip install --quiet "hdrhistogram==$HDRH_VERSION"; then
    # A system Python that refuses pip installs (PEP 668): use a project venv instead.
    venv="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/venv"
    "$PYTHON" -m venv "$venv" && "$venv/bin/pip" install --quiet "hdrhistogram==$HDRH_VERSION" || {
      echo "setup: could not install hdrhistogram==$HDRH_VERSION with pip" >&2
      return 1 2>/dev/null || exit 1
    }
    PYTHON="$venv/bin/python"
  fi
fi
export PYTHON
