#!/usr/bin/env bash
# The project's one test command (README "Tests"): runs every test slaflow has.
# It installs nothing by itself: `.ci/run` (and `scripts/setup.sh`, once services are
# needed) prepare the machine first.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --all-targets "$@"
