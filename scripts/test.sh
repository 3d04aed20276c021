#!/usr/bin/env bash
# The project's one test command (README "Tests"): installs what the tests need when it is
# missing (scripts/setup.sh), then runs every test slaflow has.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh
cargo test --locked --all-targets "$@"
