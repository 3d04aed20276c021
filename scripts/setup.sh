#!/usr/bin/env bash
# Installs, when missing, what slaflow's tests need beyond cargo; idempotent, so the test
# command and CI both source it. Exports PYTHON for the tests that call Python.
#  - PyPI `hdrhistogram` (module `hdrh`): the independent HdrHistogram implementation the
#    interop test reads slaflow's V2 histograms with (src/engine/sla/histogram.rs).

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
