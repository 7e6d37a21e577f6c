#!/usr/bin/env bash
# The crash test's long version (issue 10): 1M generated events (80 input
# partitions), killed 10 times (exactly_once, then at_least_once), then
# stopped 10 times with SIGTERM, each against an uninterrupted run. Runs the test binary itself, without ctest's 300 s
# limit; it takes several minutes per case.
#   tests/crash_long.sh [BUILD_DIR] [gtest flags...]
#   CXPULSE_CRASH_EVENTS, CXPULSE_CRASH_KILLS, CXPULSE_CRASH_SEED override the scale.
set -euo pipefail
build=${1:-build}
shift || true
export CXPULSE_CRASH_EVENTS=${CXPULSE_CRASH_EVENTS:-1000000}
export CXPULSE_CRASH_KILLS=${CXPULSE_CRASH_KILLS:-10}
export CXPULSE_CRASH_ALL=1
exec "$build/tests/crash_test" "$@"
