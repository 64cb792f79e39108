#!/usr/bin/env bash
# Checks a binary built with `cargo build --no-default-features` (the hardened build): the
# emulator, its stand-in SDK and the demo are not in it, and what remains works.
# Usage: scripts/check-hardened.sh PATH-TO-BINARY
set -uo pipefail
bin=$1
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok    $1"; }
bad() { failed=$((failed + 1)); echo "FAIL  $1"; }

"$bin" --version | grep -q '^tccc-sidecar ' && ok "--version answers" || bad "--version answers"
help=$("$bin" --help)
if grep -qE '^\s+(demo|emulator)\b' <<<"$help"; then bad "--help lists no demo or emulator command"; else ok "--help lists no demo or emulator command"; fi
grep -qE '^\s+run\b' <<<"$help" && grep -qE '^\s+dev\b' <<<"$help" && ok "--help lists run and dev" || bad "--help lists run and dev"
out=$("$bin" demo 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "unrecognized subcommand 'demo'" <<<"$out" && ok "demo is refused (exit $rc)" || bad "demo is refused: rc=$rc $out"
out=$("$bin" emulator --listen 127.0.0.1:0 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "unrecognized subcommand 'emulator'" <<<"$out" && ok "emulator is refused (exit $rc)" || bad "emulator is refused: rc=$rc $out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$("$bin" dev --upstream http://127.0.0.1:9 --seat dev@example.com --listen 127.0.0.1:0 --emulator --data-dir "$tmp" 2>&1); rc=$?
[ $rc -eq 1 ] && grep -q "this build has no emulator" <<<"$out" && [ "$(wc -l <<<"$out")" -eq 1 ] \
  && ok "dev --emulator is one clear line (exit 1)" || bad "dev --emulator: rc=$rc $out"
# The stand-in SDK's source and the demo CRM's pages are not linked in.
if grep -qaE 'tccc-standin-button|Demo CRM' "$bin"; then bad "no emulator or demo code in the binary"; else ok "no emulator or demo code in the binary"; fi
echo "hardened: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
