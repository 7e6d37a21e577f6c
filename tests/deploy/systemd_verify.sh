#!/usr/bin/env bash
# deploy/systemd/cxpulse.service passes `systemd-analyze verify` (unit syntax,
# directives, and that ExecStart's binary exists: a copy of the unit points it
# at the built binary) and `systemd-analyze security --offline` with an
# exposure of at most 2.0 ("OK"; --threshold counts tenths), so hardening
# cannot quietly be dropped.
#   systemd_verify.sh CXPULSE UNIT
set -euo pipefail
cxpulse=$1 unit=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
grep -q '^ExecStart=/usr/local/bin/cxpulse run ' "$unit" || { echo "ExecStart is not /usr/local/bin/cxpulse run ..."; exit 1; }
sed "s|^ExecStart=/usr/local/bin/cxpulse |ExecStart=$cxpulse |" "$unit" > "$dir/cxpulse.service"
# verify prints problems but exits 0 for some of them: any output fails too.
out=$(systemd-analyze verify --man=no "$dir/cxpulse.service" 2>&1) || { echo "$out"; exit 1; }
[ -z "$out" ] || { echo "systemd-analyze verify: $out"; exit 1; }
echo "systemd-analyze verify: clean"
systemd-analyze security --offline=true --threshold=20 --no-pager "$dir/cxpulse.service" | tail -1
