#!/usr/bin/env bash
# Installs what benches/ needs when it is missing: nginx, wrk and valgrind (Debian), oha (crates.io),
# node and npm for the vendor backend that benches/login_bench.rs compares against.
set -euo pipefail
need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  # Debian starts a default nginx on install; the benchmark runs its own instances.
  pkill -x nginx 2>/dev/null || true
fi
command -v oha >/dev/null 2>&1 || cargo install oha --locked
(cd "$(dirname "$0")/../benches/vendor-backend" && [ -d node_modules ] || npm install --no-audit --no-fund --silent)
