#!/usr/bin/env bash
# The other real components the system tests start besides the control plane: Prometheus,
# the OCI registry and git with `git daemon` (the release bot's remote) (Debian's packages;
# only their binaries are used, no service is started).
set -euo pipefail
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
# `git daemon -h` prints its usage and exits 129 when the daemon is there.
if ! command -v git >/dev/null 2>&1 || ! { git daemon -h 2>&1 || true; } | grep -q "usage: git daemon"; then
  missing+=(git)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "[tools] installing Debian packages: ${missing[*]}" >&2
  sudo_if_needed apt-get update -qq >&2
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
