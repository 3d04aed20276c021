#!/usr/bin/env bash
# Installs and starts, when missing, what slaflow's tests need beyond cargo; idempotent, so
# the test command and CI both source it. Exports PYTHON for the tests that call Python.
#  - PostgreSQL on 127.0.0.1:5432, user postgres, no password (loopback `trust`); installed
#    from Debian and started when missing (the sink tests create their own databases in it).
#  - Apache Kafka (a single KRaft node) on 127.0.0.1:9092, fetched from Maven Central the
#    first time (cached in ~/.cache/slaflow), see scripts/kafka.sh.
#  - PyPI `hdrhistogram` (module `hdrh`): the independent HdrHistogram implementation the
#    interop test reads slaflow's V2 histograms with (src/engine/sla/histogram.rs).
#  - PyPI `helm-python-sdk` and `kubernetes-validate`, and promtool (Debian's prometheus
#    package): the Helm chart test (tests/helm_chart.rs) renders and validates helm/slaflow.
#  - Debian's chromium and npm's playwright-core (tests/browser/): the HTML report's browser
#    test (tests/demo.rs).

_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_sudo=""
if [ "$(id -u)" -ne 0 ]; then _sudo="sudo"; fi
# apt-get install, with one `apt-get update` first when the package lists are missing or stale.
_apt_install() {
  $_sudo apt-get install -y "$@" >/dev/null 2>&1 || { $_sudo apt-get update >/dev/null && $_sudo apt-get install -y "$@" >/dev/null; }
}

# PostgreSQL: the tests connect to 127.0.0.1:5432 as user `postgres` without a password
# (SLAFLOW_TEST_POSTGRES overrides). Where a server already answers so, nothing is changed.
# Otherwise Debian's `postgresql` is installed if missing, a cluster is created if there is
# none, loopback connections are set to `trust` in its pg_hba.conf (marked "slaflow tests"),
# and the cluster is started.
_pg_reachable() { psql "${SLAFLOW_TEST_POSTGRES:-host=127.0.0.1 port=5432 user=postgres dbname=postgres}" -Atqc 'SELECT 1' >/dev/null 2>&1; }
_pg_setup() {
  _pg_reachable && return 0
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    echo "setup: installing PostgreSQL (Debian package postgresql)" >&2
    _apt_install postgresql || { echo "setup: apt-get install postgresql failed" >&2; return 1; }
  fi
  local version
  version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
  if [ ! -f "/etc/postgresql/$version/main/postgresql.conf" ]; then
    echo "setup: creating PostgreSQL $version cluster main" >&2
    $_sudo pg_createcluster "$version" main >/dev/null || return 1
  fi
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q 'slaflow tests' "$hba"; then
    echo "setup: trusting loopback connections in $hba (slaflow tests)" >&2
    { printf '# slaflow tests: loopback connections need no password (scripts/setup.sh)\n'
      printf 'host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n'
      cat "$hba"; } >"$hba.slaflow" && $_sudo mv "$hba.slaflow" "$hba" && $_sudo chown postgres:postgres "$hba"
  fi
  echo "setup: starting PostgreSQL $version on 127.0.0.1:5432" >&2
  if pg_lsclusters -h 2>/dev/null | awk -v v="$version" '$1 == v && $2 == "main" {print $4}' | grep -q online; then
    $_sudo pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  else
    $_sudo pg_ctlcluster --skip-systemctl-redirect "$version" main start
  fi
  for _ in $(seq 1 30); do _pg_reachable && return 0; sleep 1; done
  return 1
}
if ! _pg_setup; then
  echo "setup: PostgreSQL is not reachable as user postgres on 127.0.0.1:5432; the sink tests need it. Run scripts/setup.sh as root, or point SLAFLOW_TEST_POSTGRES at a server" >&2
  return 1 2>/dev/null || exit 1
fi

# Apache Kafka on 127.0.0.1:9092 (scripts/kafka.sh): needs Java 17 and Maven to fetch it.
command -v java >/dev/null 2>&1 || _apt_install openjdk-17-jre-headless
command -v mvn >/dev/null 2>&1 || _apt_install maven
"$_here/kafka.sh" start || { echo "setup: could not start Apache Kafka (scripts/kafka.sh start)" >&2; return 1 2>/dev/null || exit 1; }

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
  _apt_install prometheus || {
    echo "setup: could not install promtool (apt-get install prometheus)" >&2
    return 1 2>/dev/null || exit 1
  }
fi
# A real browser for the HTML report (tests/demo.rs): Debian's chromium, driven by
# Playwright (playwright-core from npm, pinned in tests/browser/package-lock.json; it
# downloads no browser of its own).
if ! command -v chromium >/dev/null 2>&1; then
  echo "setup: installing chromium (Debian package chromium)" >&2
  _apt_install chromium || {
    echo "setup: could not install chromium (apt-get install chromium)" >&2
    return 1 2>/dev/null || exit 1
  }
fi
if [ ! -f "$_here/../tests/browser/node_modules/playwright-core/package.json" ]; then
  echo "setup: installing playwright-core (npm ci in tests/browser)" >&2
  (cd "$_here/../tests/browser" && npm ci --no-audit --no-fund >/dev/null) || {
    echo "setup: npm ci in tests/browser failed" >&2
    return 1 2>/dev/null || exit 1
  }
fi
export PYTHON
