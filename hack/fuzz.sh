#!/usr/bin/env bash
# Fuzz with libFuzzer for a bounded time each (FUZZ_SECONDS, default 60): the webhook handlers,
# then what stack publishers and tenants send the operators (release archives, kubeconfig text).
# Built on the stable toolchain with LLVM's coverage instrumentation; the instrumentation flags
# apply to the target only (hence --target), never to build scripts and proc macros.
# A crash leaves its input in target/fuzz/artifacts/ and fails this script.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
host=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
echo "[fuzz] building the fuzz targets (instrumented; the first build takes a few minutes)" >&2
cargo build --release --manifest-path webhooks/fuzz/Cargo.toml \
  --target "$host" --target-dir target/fuzz
# run TARGET SEEDS WHAT: fuzz TARGET from SEEDS for $seconds; a crash fails the script.
run() {
  local target=$1 seeds=$2 what=$3
  local corpus=target/fuzz/corpus-$target artifacts=target/fuzz/artifacts/$target/
  mkdir -p "$corpus" "$artifacts"
  cp "$seeds"/* "$corpus"/
  echo "[fuzz] fuzzing $what for ${seconds}s" >&2
  local log=target/fuzz/last-run-$target.log status=0
  "target/fuzz/$host/release/$target" -max_total_time="$seconds" -max_len=65536 \
    -rss_limit_mb=2048 -artifact_prefix="$artifacts" -print_final_stats=1 "$corpus" \
    >"$log" 2>&1 || status=$?
  grep -E '^(#[0-9]+[[:space:]]+(DONE|INITED)|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|thread|panicked|assertion|  left|  right)' "$log" >&2 || true
  if [ "$status" -ne 0 ]; then
    echo "[fuzz] FAILED: a crashing input is in $artifacts" >&2
    exit "$status"
  fi
  echo "[fuzz] $target: no crash in ${seconds}s" >&2
}
run webhook_bodies webhooks/fuzz/seeds "/mutate, /validate and /convert bodies"
run untrusted_inputs webhooks/fuzz/seeds-untrusted "release archives and kubeconfig text"
