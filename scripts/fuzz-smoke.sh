#!/usr/bin/env bash
# A bounded smoke run of every fuzz target (fuzz/README.md): builds them all once, runs each
# for FUZZ_SECONDS (default 20) from its committed seed corpus, and fails on the first input
# that crashes, hangs or runs out of memory, printing where that input was saved.
#
# Environment:
#   FUZZ_SECONDS    seconds per target (default 20)
#   FUZZ_TARGETS    space-separated targets to run (default: all)
#   FUZZ_SANITIZER  address (default) or none
#   FUZZ_OPT_LEVEL  the optimisation level of the build (default 3, cargo fuzz's); the test
#                   command's smoke run takes 1: a third of the build time, and a few seconds
#                   per target still runs every seed and tens of thousands of new inputs
#
# cargo fuzz passes nightly-only flags (-Zsanitizer, -Cpasses=sancov-module); on a stable
# toolchain RUSTC_BOOTSTRAP=1 lets rustc accept them. Stable's std ships the sanitizer runtimes
# (librustc-stable_rt.asan.a), so AddressSanitizer works without a nightly toolchain.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo/fuzz"
export RUSTC_BOOTSTRAP=1
export CARGO_PROFILE_RELEASE_OPT_LEVEL="${FUZZ_OPT_LEVEL:-3}"
seconds="${FUZZ_SECONDS:-20}"
sanitizer="${FUZZ_SANITIZER:-address}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

start=$(date +%s)
echo "fuzz-smoke: building every target (sanitizer: $sanitizer)"
cargo fuzz build --sanitizer "$sanitizer"
echo "fuzz-smoke: built in $(($(date +%s) - start)) s"

targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
logs="target/smoke-logs"
mkdir -p "$logs"
failed=()
for target in $targets; do
    # New inputs go to a scratch corpus, so the committed seeds stay as they are.
    scratch="target/smoke-corpus/$target"
    mkdir -p "$scratch" "artifacts/$target"
    corpora=("$scratch")
    [[ -d "corpus/$target" ]] && corpora+=("corpus/$target")
    log="$logs/$target.log"
    printf 'fuzz-smoke: %-16s %3d s ... ' "$target" "$seconds"
    if cargo fuzz run --sanitizer "$sanitizer" "$target" "${corpora[@]}" -- \
        -max_total_time="$seconds" -max_len=16384 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        runs=$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
        echo "ok (${runs:-?} runs)"
    else
        echo "FAILED"
        grep -E 'panicked at|ERROR: (libFuzzer|AddressSanitizer)|SUMMARY' "$log" | head -5 | sed 's/^/    /' || true
        input=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -1 | cut -d' ' -f5- || true)
        [[ -z "$input" || "$input" == /* ]] || input="$repo/fuzz/${input#./}"
        echo "    crashing input: ${input:-(none written; see the log)}"
        echo "    log: $repo/fuzz/$log"
        echo "    reproduce: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $target $input)"
        failed+=("$target")
    fi
done

echo "fuzz-smoke: $(($(date +%s) - start)) s in all"
if ((${#failed[@]})); then
    echo "fuzz-smoke: failed: ${failed[*]}"
    exit 1
fi
