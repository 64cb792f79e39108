#!/usr/bin/env bash
# The test command. Installs what the tests need when it is missing, then runs formatting,
# lint and every test. Safe to run again: each install step checks first.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
command -v bc >/dev/null 2>&1 || need_apt+=(bc)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
# Headless Chromium for the browser tests (tests/integration/browser.rs).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi

# The official SDKs, for the emulator interop tests (tests/integration/interop.rs).
python3 -c 'import tencentcloud.ccc.v20200210' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check 'tencentcloud-sdk-python==3.1.195' \
  || python3 -m pip install --quiet --break-system-packages 'tencentcloud-sdk-python==3.1.195'
# The Kubernetes schemas and YAML parser for scripts/check-deploy.py.
python3 -c 'import kubernetes_validate, yaml' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check 'kubernetes-validate==1.37.0' pyyaml \
  || python3 -m pip install --quiet --break-system-packages 'kubernetes-validate==1.37.0' pyyaml
# kubectl (in this machine image) renders the kustomizations; Debian's kubernetes-client is
# too old for them, so without kubectl those checks report themselves skipped, not passed.
[ -d tests/interop/node/node_modules/tencentcloud-sdk-nodejs ] && [ -d tests/interop/node/node_modules/acorn ] \
  || npm install --prefix tests/interop/node --silent --no-audit --no-fund

# Trac and Django behind Apache/mod_wsgi, tracd and runserver (tests/integration/real_apps).
bash scripts/real-apps.sh

start=$(date +%s)
cargo fmt --all -- --check
# The layer map of ARCHITECTURE.md: no module imports a layer above its own.
python3 scripts/check-layers.py
cargo clippy --locked --all-targets -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The hardened build (no emulator, no demo) first: the test build after it relinks the
# default binary, and only the crate itself compiles twice.
cargo clippy --locked --no-default-features --all-targets -- -D warnings
cargo build --locked --no-default-features --bin tccc-sidecar
cp target/debug/tccc-sidecar target/hardened-tccc-sidecar
bash scripts/check-hardened.sh target/hardened-tccc-sidecar 2>&1 | tee -a "$log" || true
cargo test --locked --all-targets 2>&1 | tee -a "$log"
cargo build --locked --bin tccc-sidecar
python3 scripts/check-deploy.py --bin target/debug/tccc-sidecar 2>&1 | tee -a "$log" || true
# cargo's per-binary lines plus the script summaries and the short soak (benches/soak.rs).
passed=$( { grep -E '^test result:' "$log" | sed -E 's/.* ([0-9]+) passed.*/\1/'; grep -E '^(hardened|deploy|soak): [0-9]+ passed' "$log" | sed -E 's/^[a-z]+: ([0-9]+) passed.*/\1/'; } | paste -sd+ - | bc)
failed=$( { grep -E '^test result:' "$log" | sed -E 's/.* ([0-9]+) failed.*/\1/'; grep -E '^(hardened|deploy|soak): [0-9]+ passed' "$log" | sed -E 's/.* ([0-9]+) failed.*/\1/'; } | paste -sd+ - | bc)
echo "test command finished in $(( $(date +%s) - start ))s"
echo "tests: ${passed:-0} passed, ${failed:-0} failed"
[ "${failed:-0}" -eq 0 ] && [ "${passed:-0}" -gt 0 ]
