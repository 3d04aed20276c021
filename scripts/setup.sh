#!/usr/bin/env bash
# Installs and starts, when missing, what slaflow's tests need beyond cargo; idempotent, so
# the test command and CI both source it. Exports PYTHON for the tests that call Python.
#  - PostgreSQL on 127.0.0.1:5432 (the sink tests create their own databases in it).
#  - a Kafka-protocol broker (tansu) on 127.0.0.1:9092, installed with cargo when missing
#    (about 15 minutes the first time), see scripts/kafka.sh.
#  - PyPI `hdrhistogram` (module `hdrh`): the independent HdrHistogram implementation the
#    interop test reads slaflow's V2 histograms with (src/engine/sla/histogram.rs).
#  - PyPI `helm-python-sdk` and `kubernetes-validate`, and promtool (Debian's prometheus
#    package): the Helm chart test (tests/helm_chart.rs) renders and validates helm/slaflow.

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

# Python packages the tests use, pinned: hdrhistogram (module hdrh, the HdrHistogram interop
# test), helm-python-sdk (Helm's engine, renders the chart in tests/helm_chart.rs) and
# kubernetes-validate (the Kubernetes schemas the rendered manifests are checked against).
HDRH_VERSION=0.10.8
HELM_SDK_VERSION=0.2.2
KUBE_VALIDATE_VERSION=1.37.0
_py_packages="hdrhistogram==$HDRH_VERSION helm-python-sdk==$HELM_SDK_VERSION kubernetes-validate==$KUBE_VALIDATE_VERSION"
# True when the Python given has every pinned package at its pinned version.
_py_ready() {
  "$1" - "$_py_packages" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
for pin in sys.argv[1].split():
    name, wanted = pin.split("==")
    if version(name) != wanted:
        sys.exit(1)
import hdrh.histogram, helm_python, kubernetes_validate
PY
}
PYTHON=${PYTHON:-python3}
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "setup: $PYTHON not found; the HdrHistogram interop and Helm chart tests need Python 3 (apt-get install python3 python3-venv)" >&2
  return 1 2>/dev/null || exit 1
fi
_venv="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/venv"
if ! _py_ready "$PYTHON"; then
  if [ -x "$_venv/bin/python" ] && _py_ready "$_venv/bin/python"; then
    PYTHON="$_venv/bin/python"
  else
    echo "setup: installing PyPI $_py_packages" >&2
    # shellcheck disable=SC2086
    if ! "$PYTHON" -m pip install --quiet $_py_packages; then
      # A system Python that refuses pip installs (PEP 668): use a project venv instead.
      # shellcheck disable=SC2086
      "$PYTHON" -m venv "$_venv" && "$_venv/bin/pip" install --quiet $_py_packages || {
        echo "setup: could not install $_py_packages with pip" >&2
        return 1 2>/dev/null || exit 1
      }
      PYTHON="$_venv/bin/python"
    fi
  fi
fi
# promtool checks and unit-tests alert rules (the Helm chart's PrometheusRule and others).
if ! command -v promtool >/dev/null 2>&1; then
  echo "setup: installing promtool (Debian package prometheus)" >&2
  _sudo=""
  if [ "$(id -u)" -ne 0 ]; then _sudo="sudo"; fi
  $_sudo apt-get install -y prometheus >/dev/null || { $_sudo apt-get update >/dev/null && $_sudo apt-get install -y prometheus >/dev/null; } || {
    echo "setup: could not install promtool (apt-get install prometheus)" >&2
    return 1 2>/dev/null || exit 1
  }
fi
export PYTHON
