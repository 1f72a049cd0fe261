#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the whole test suite with
# ctest: unit tests (GoogleTest), the CLI end to end, the installed package,
# and training to Dice >= 0.90 in every precision policy. GPU tests skip
# without a GPU. About 2.5 minutes on 2 cores after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure --timeout 900
