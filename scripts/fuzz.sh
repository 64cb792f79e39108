#!/usr/bin/env bash
# Runs every fuzz target (cargo fuzz, libFuzzer, on the nightly toolchain) for SECONDS each
# (default 120), growing the committed corpus in fuzz/corpus/<target>, then minimises it.
# A crash stops the script and leaves its input in fuzz/artifacts/<target>/; the corpus is
# replayed on stable by the ordinary tests (src/fuzzing.rs), so what was found stays found.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET ...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-120}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(injector authorization csp config)

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q '^nightly' || {
  echo "cargo fuzz needs the nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
}
cd fuzz
for t in "${targets[@]}"; do
  echo "== $t: ${seconds}s"
  cargo +nightly fuzz run -O "$t" "corpus/$t" -- -max_total_time="$seconds" -max_len=8192 \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
    | grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|Done)' || true
  [ -z "$(ls -A "artifacts/$t" 2>/dev/null)" ] || { echo "$t: crash input in fuzz/artifacts/$t" >&2; exit 1; }
  cargo +nightly fuzz cmin -O "$t" "corpus/$t" 2>&1 | grep -E 'MERGE-OUTER: [0-9]+ new files' || true
  echo "$t: $(ls "corpus/$t" | wc -l) inputs kept"
done
