#!/usr/bin/env bash
# `cxpulse demo` as a user runs it: must exit 0, and its live line must show
# events consumed and findings made.
set -u
out=$("$1" demo --duration 12s --metrics 127.0.0.1:0 2>&1)
code=$?
echo "$out"
[ "$code" -eq 0 ] || { echo "demo exited $code"; exit 1; }
echo "$out" | grep -Eq 'consumed [1-9][0-9]* .*findings .*repeat_contact=[1-9]' || { echo "no findings in the live line"; exit 1; }
echo "$out" | grep -q 'stopped cleanly' || { echo "no clean stop"; exit 1; }
