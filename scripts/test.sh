#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every unit, golden and integration test.
# Installs what the tests need when it is missing (today: the Rust toolchain components), so
# it works on a fresh machine. Run from anywhere; CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required (https://rustup.rs)" >&2
  exit 1
fi
# rustfmt and clippy ship with rustup's default profile; add them if this toolchain lacks them.
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done
# The shared fixtures and bench corpus live beside the checkout.
if [ ! -d ../shared/fixtures/formats ]; then
  echo "../shared/fixtures/formats is missing: the golden tests need the shared fixtures" >&2
  exit 1
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line over every test binary (unit, integration, doc tests).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i == "passed;") p += $(i-1); if ($i == "failed;") f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
