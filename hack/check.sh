#!/usr/bin/env bash
# The fast check beside `make test`: formatting, lints, and every test that starts no real
# component (no API server, etcd, Prometheus or promtool, registry, S3 server, nor the
# project's binaries as processes): unit, property, golden, router and CLI tests. A test file
# joins by itself unless it names one of those below. Minutes warm, where `make test` takes
# a quarter of an hour.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}

# What marks a test file as one that starts real components.
REAL='TestEnv|kaas_e2e|Registry::start|S3::start|start_prometheus|CARGO_BIN_EXE_kaas-webhooks|"promtool"'

targets=()
for file in $(git ls-files '*/tests/*.rs' '*/*/tests/*.rs' | sort -u); do
  # A test target is a file right under tests/ (support modules sit in folders below).
  [[ ${file#*/tests/} == */* ]] && continue
  grep -qE "$REAL" "$file" && continue
  crate_dir=${file%/tests/*}
  package=$(sed -n 's/^name = "\(.*\)"/\1/p' "$crate_dir/Cargo.toml" | head -1)
  targets+=("-p" "$package" "--test" "$(basename "$file" .rs)")
done

$CARGO fmt --all -- --check
$CARGO clippy --workspace --all-targets -- -D warnings
$CARGO test --workspace --lib --bins
# One cargo call per file keeps the packages apart (a --test name is per package).
for ((i = 0; i < ${#targets[@]}; i += 4)); do
  $CARGO test "${targets[@]:i:4}"
done
