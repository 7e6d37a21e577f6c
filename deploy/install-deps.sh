#!/usr/bin/env bash
# Installs the Debian 12 packages cxpulse needs to build, test and run its demo.
# Idempotent: installs only what is missing, so `make demo` / `make test` stay fast
# on a machine that already has everything. Needs root (or sudo) for apt-get.
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config
  # libraries
  librdkafka-dev libprotobuf-dev protobuf-compiler prometheus-cpp-dev
  libboost-dev libboost-system-dev libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev
  libabsl-dev libsimdjson-dev zlib1g-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # real peers used by end-to-end tests
  kcat prometheus prometheus-alertmanager curl
  # checks of deploy/: YAML lint, the structural checks (python3 + PyYAML),
  # `systemd-analyze verify` of the unit
  yamllint python3-yaml systemd
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends: prometheus recommends a web UI stack we do not need.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
