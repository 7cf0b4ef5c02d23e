#!/usr/bin/env python3
"""Python DIY peer: what a team would write in an afternoon with orjson and pyahocorasick.

Input: a terms file (one term per line, blank lines skipped) and a Jetstream NDJSON corpus.
Output: one JSON line on stdout,
  {"program":"python-diy","events":N,"posts":P,"matched":M,"seconds":S,
   "events_per_s":...,"mb_per_s":...,"build_seconds":B,"errors":E}

What it counts (the definition every peer in benches/peers/ shares, so their `matched` counts
must be equal):
  - events:  input lines, blank ones included (earshot's `frames`);
  - posts:   Jetstream post creates: kind == "commit", commit.operation == "create",
             commit.collection == "app.bsky.feed.post";
  - matched: posts whose record.text contains at least one term as a plain, case-insensitive
             substring (no word boundaries): the text and the terms are lowercased with
             Python's str.lower() and searched with one Aho-Corasick automaton;
  - errors:  lines that are not valid JSON (skipped; the reference corpus has none).

`seconds` times the scan only (read, decode, lowercase, match), not the automaton build, which
is reported apart as `build_seconds`: earshot's own `elapsed` also starts after its rules are
compiled. MB/s is input bytes / seconds / 1e6, as earshot prints it.
"""

import argparse
import json
import sys
import time

try:
    import ahocorasick
    import orjson
except ImportError as e:  # pragma: no cover - the runner installs them
    sys.exit(f"python_diy.py: {e}; install with: python3 -m pip install orjson pyahocorasick")


def load_terms(path):
    """Lowercased, de-duplicated non-blank lines of a terms file."""
    terms = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            term = line.strip()
            if term:
                terms.add(term.lower())
    if not terms:
        sys.exit(f"python_diy.py: no terms in {path}")
    return terms


def build(terms):
    automaton = ahocorasick.Automaton()
    for term in terms:
        automaton.add_word(term, term)
    automaton.make_automaton()
    return automaton


def scan(corpus, automaton):
    loads = orjson.loads
    find = automaton.iter
    events = posts = matched = errors = nbytes = 0
    with open(corpus, "rb", buffering=1 << 20) as f:
        for line in f:
            events += 1
            nbytes += len(line)
            try:
                ev = loads(line)
            except orjson.JSONDecodeError:
                if line.strip():  # a blank line is an event (a frame), not an error
                    errors += 1
                continue
            if type(ev) is not dict or ev.get("kind") != "commit":
                continue
            commit = ev.get("commit")
            if (
                type(commit) is not dict
                or commit.get("operation") != "create"
                or commit.get("collection") != "app.bsky.feed.post"
            ):
                continue
            posts += 1
            record = commit.get("record")
            text = record.get("text") if type(record) is dict else None
            if type(text) is not str or not text:
                continue
            for _ in find(text.lower()):
                matched += 1
                break
    return events, posts, matched, errors, nbytes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--terms", required=True, help="terms file, one term per line")
    ap.add_argument("corpus", help="Jetstream NDJSON file")
    args = ap.parse_args()

    t0 = time.perf_counter()
    automaton = build(load_terms(args.terms))
    t1 = time.perf_counter()
    try:
        events, posts, matched, errors, nbytes = scan(args.corpus, automaton)
    except OSError as e:
        sys.exit(f"python_diy.py: reading {args.corpus}: {e}")
    secs = max(time.perf_counter() - t1, 1e-9)
    print(
        json.dumps(
            {
                "program": "python-diy",
                "events": events,
                "posts": posts,
                "matched": matched,
                "seconds": round(secs, 3),
                "events_per_s": round(events / secs),
                "mb_per_s": round(nbytes / secs / 1e6, 1),
                "build_seconds": round(t1 - t0, 3),
                "errors": errors,
            },
            separators=(",", ":"),
        )
    )


if __name__ == "__main__":
    main()
