#!/usr/bin/env bash
# Builds the seed corpora under fuzz/corpus/<target>/ from the repository's own inputs: the
# recorded platform payloads (fixtures/formats), the rule files, config files and payload
# templates. Idempotent: every seed is named after its SHA-1, as libFuzzer names inputs, and
# an existing corpus is added to, never cleared (pass --clean to start over).
#
# Usage: fuzz/seed.sh [--clean]        FIXTURES=<dir> overrides where the payloads are.
#
# The corpora are committed; rerun this when fixtures are added. Kept small (frames over
# 10 KiB are left out; at most 24 Jetstream events and 6 frames of any other stream) so that the repository stays
# light and a smoke run starts from a corpus it can read in a second.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
corpus="$here/corpus"
max_frame=10240
max_lines=24

if [[ "${1:-}" == "--clean" ]]; then
    rm -rf "$corpus"
fi

# The recorded payloads: in the repository, or (until they are copied in) in a folder named
# shared/fixtures/formats above it, where the tests also look.
find_fixtures() {
    if [[ -n "${FIXTURES:-}" ]]; then
        echo "$FIXTURES"
        return
    fi
    for candidate in "$repo/fixtures/formats" "$repo/core/tests/fixtures/formats" \
        "$repo/tests/fixtures/formats"; do
        if [[ -d "$candidate" ]]; then
            echo "$candidate"
            return
        fi
    done
    local dir="$repo"
    while [[ "$dir" != "/" ]]; do
        if [[ -d "$dir/shared/fixtures/formats" ]]; then
            echo "$dir/shared/fixtures/formats"
            return
        fi
        dir="$(dirname "$dir")"
    done
    echo "seed.sh: no fixtures/formats folder found; set FIXTURES=<dir>" >&2
    exit 1
}
fixtures="$(find_fixtures)"

# add TARGET PREFIX: stores stdin, preceded by the bytes of PREFIX (printf format), as one seed.
add() {
    local target="$1" prefix="$2" tmp
    mkdir -p "$corpus/$target"
    tmp="$(mktemp)"
    { printf "$prefix"; cat; } >"$tmp"
    if [[ -s "$tmp" ]]; then
        mv "$tmp" "$corpus/$target/$(sha1sum "$tmp" | cut -d' ' -f1)"
    else
        rm -f "$tmp"
    fi
}

# frames FILE: the frames of a recorded payload, one per line, NUL-separated: every non-blank
# line of NDJSON (at most $max_lines), the whole document otherwise; none over $max_frame.
frames() {
    local file="$1"
    case "$file" in
    *.ndjson)
        awk -v max="$max_frame" 'NF && length($0) <= max { printf "%s%c", $0, 0 }' "$file" |
            head -z -n "$max_lines"
        ;;
    *)
        if (($(stat -c %s "$file") <= max_frame)); then
            cat "$file"
            printf '\0'
        fi
        ;;
    esac
}

# add_frames TARGET PREFIX FILE...: each frame of each file as a seed.
add_frames() {
    local target="$1" prefix="$2" file frame
    shift 2
    for file in "$@"; do
        [[ -f "$file" ]] || continue
        while IFS= read -r -d '' frame; do
            printf '%s' "$frame" | add "$target" "$prefix"
        done < <(frames "$file")
    done
}

shopt -s nullglob
f="$fixtures"

# Jetstream: every recorded event.
add_frames jetstream '' "$f"/jetstream-*.json "$f"/jetstream-*.ndjson
# The other decoders; the first byte picks the format (see fuzz_targets/decode.rs).
max_lines=6
add_frames decode '\x00' "$f"/x-v2-*.json "$f"/x-v2-*.ndjson
add_frames decode '\x01' "$f"/x-v1-*.json "$f"/x-v1-*.ndjson
add_frames decode '\x02' "$f"/x-gnip-*.ndjson
add_frames decode '\x03' "$f"/mastodon-*.json "$f"/mastodon-*.ndjson
add_frames decode '\x04' "$f"/reddit-*.json
printf '{"id":1,"text":"hello acme","user":{"id":7,"handle":"@a","followers":"12"},"lang":"en","links":["https://x.example/"]}' |
    add decode '\x05'

# Mastodon HTML: the `content` of every recorded status (JSON string unescaped by python3).
if command -v python3 >/dev/null; then
    for file in "$f"/mastodon-*.json "$f"/mastodon-*.ndjson "$f"/mastodon-*.sse; do
        python3 - "$file" <<'PY' | while IFS= read -r -d '' html; do printf '%s' "$html" | add html ''; done
import json, re, sys
text = open(sys.argv[1], encoding="utf-8").read()
for m in re.finditer(r'"content"\s*:\s*("(?:[^"\\]|\\.)*")', text):
    value = json.loads(m.group(1))
    # A status streamed inside a JSON string is escaped twice.
    if value.startswith("<") or "<" not in value:
        sys.stdout.write(value + "\0")
PY
    done
fi

# Line splitter: the first byte is the line limit - 1 (mod 64), the second the cut pattern.
for file in "$f"/*.ndjson; do
    head -c 2048 "$file" | add lines '\x3f\x01'
    head -c 512 "$file" | add lines '\x10\x07'
done
printf 'a\r\n\r\n  \nbb\rcc\n\n\r\ndd' | add lines '\x02\x03'

# SSE parser: the first byte is the event limit - 1, the second the cut pattern.
for file in "$f"/*.sse; do
    head -c 4096 "$file" | add sse '\xff\x01'
    head -c 1024 "$file" | add sse '\x40\x05'
done
printf '\xef\xbb\xbfid: 1\r\nretry: 250\revent: update\ndata: a\ndata\n: c\n\n' | add sse '\x08\x02'

# Rule files, config and routing files, customer tables, payload templates.
for file in "$repo"/rules/*.rules; do add rules '' <"$file"; done
for file in "$repo"/config/*.toml; do
    case "$file" in
    *routing*) add routing '' <"$file" ;;
    *) add config '' <"$file" ;;
    esac
done
for file in "$repo"/rules/routing*.toml; do add routing '' <"$file"; done
for file in "$repo"/config/*.csv; do add customers '\x00' <"$file"; done
printf '[{"platform":"bluesky","handle":"@acme.bsky.social","customer_id":"C-1","tier":"gold"}]' |
    add customers '\x01'
printf '{"platform":"x","author_id":"42","customer_id":"C-2"}\n{"platform":"mastodon","handle":"@a@b.example"}\n' |
    add customers '\x02'
i=0
for file in "$repo"/rules/payloads/*.toml; do
    # The selector byte picks the file's own format: the CRM formats in PayloadFormat::ALL
    # order (salesforce, zendesk, hubspot, dynamics, zoho, slack).
    case "$(basename "$file" .toml)" in
    salesforce) i=0 ;; zendesk) i=1 ;; hubspot) i=2 ;; dynamics) i=3 ;; zoho) i=4 ;; slack) i=5 ;;
    esac
    add template_load "\\x0$i" <"$file"
done

du -sh "$corpus"
for dir in "$corpus"/*/; do
    printf '%-16s %4d seeds\n' "$(basename "$dir")" "$(find "$dir" -type f | wc -l)"
done
