#!/usr/bin/env bash
# compare.sh — earshot against its peers on the reference corpus, in one command.
#
#   benches/compare.sh [--quick] [--terms 1k|10k|100k|all]
#
# One run: checks (or generates) the reference corpus, installs missing peer dependencies,
# builds earshot (release) and the C++ peer, runs every program in interleaved rounds
# (median of 3; 1 round with --quick), measures each one's peak RSS, checks that the peers
# found exactly the same posts (and, on the reference corpus, the counts in
# shared/bench/BASELINES.md), then prints a table with earshot ÷ peer ratios and, for full
# runs only, appends one row per program to benches/results.csv.
#
# Programs (see benches/README.md):
#   earshot-inmem-1core     taskset -c 0 earshot-bench --workers 1: the whole worker pipeline
#                           (decode → normalize → match with word boundaries → score → route)
#                           on frames already in memory; the e1÷peer ratio
#   earshot-inmem-allcores  earshot-bench --workers <nproc>, no pinning; the eN÷peer ratio
#   earshot-plain-1core     earshot-bench --plain --workers 1, pinned: plain case-insensitive
#                           substring matching, the peers' definition; must match their count
#   earshot-1core           taskset -c 0 earshot replay -q --workers 1 (file reading included)
#   earshot-allcores        earshot replay -q --workers 0, no pinning
#   python-diy              benches/peers/python_diy.py, pinned to core 0
#   cpp-simdjson-hyperscan  benches/peers/cpp_simdjson_hyperscan.cpp, pinned to core 0
#
# Environment: EARSHOT_BENCH_DATA (default: <repo>/../bench-data), PYTHON (default: python3).
set -euo pipefail

die() { echo "compare.sh: error: $*" >&2; exit 1; }
note() { echo "compare.sh: $*" >&2; }

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

BENCHES=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCHES/.." && pwd)
SHARED=$(cd "$REPO/.." && pwd)/shared
DATA=${EARSHOT_BENCH_DATA:-$(cd "$REPO/.." && pwd)/bench-data}
PY=${PYTHON:-python3}
CSV=$BENCHES/results.csv

# The reference corpus (shared/bench/README.md) and the matched-post counts every peer must
# find on it with plain case-insensitive substring matching (shared/bench/BASELINES.md).
REF_BYTES=736592701
declare -A REF_MATCHED=([1k]=12926 [10k]=17966 [100k]=20225)
QUICK_EVENTS=100000

quick=0
terms_arg=10k
while (($#)); do
    case $1 in
        --quick) quick=1 ;;
        --terms) (($# >= 2)) || die "--terms needs a value: 1k, 10k, 100k or all"; terms_arg=$2; shift ;;
        --terms=*) terms_arg=${1#--terms=} ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (try --help)" ;;
    esac
    shift
done
case $terms_arg in
    1k | 10k | 100k) TERM_SETS=("$terms_arg") ;;
    all) TERM_SETS=(1k 10k 100k) ;;
    *) die "--terms must be 1k, 10k, 100k or all, not '$terms_arg'" ;;
esac
if ((quick)); then ROUNDS=1; else ROUNDS=3; fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/earshot-compare.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root to run '$*' and sudo is not installed"
    fi
}

# ---------------------------------------------------------------- dependencies
install_apt_deps() {
    local missing=() pkg
    for pkg in time g++ libsimdjson-dev libhyperscan-dev; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$pkg")
    done
    command -v taskset >/dev/null || missing+=(util-linux)
    ((${#missing[@]} == 0)) && return
    command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
    note "installing ${missing[*]} with apt-get"
    as_root apt-get install -y "${missing[@]}" >"$WORK/apt.log" 2>&1 || {
        as_root apt-get update >>"$WORK/apt.log" 2>&1 &&
            as_root apt-get install -y "${missing[@]}" >>"$WORK/apt.log" 2>&1
    } || { tail -n 20 "$WORK/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
}

install_py_deps() {
    command -v "$PY" >/dev/null || die "$PY not found (set PYTHON=...)"
    "$PY" -c 'import orjson, ahocorasick' 2>/dev/null && return
    note "installing orjson and pyahocorasick with pip"
    if ! "$PY" -m pip install --quiet orjson pyahocorasick >"$WORK/pip.log" 2>&1; then
        # A system Python that refuses pip (PEP 668): use a virtual environment beside the data.
        local venv=$DATA/peers-venv
        note "pip refused the system Python; using the virtual environment $venv"
        [[ -x $venv/bin/python ]] || "$PY" -m venv "$venv" >>"$WORK/pip.log" 2>&1 ||
            { tail -n 20 "$WORK/pip.log" >&2; die "could not create $venv (apt-get install python3-venv?)"; }
        "$venv/bin/python" -m pip install --quiet orjson pyahocorasick >>"$WORK/pip.log" 2>&1 ||
            { tail -n 20 "$WORK/pip.log" >&2; die "pip install orjson pyahocorasick failed"; }
        PY=$venv/bin/python
    fi
    "$PY" -c 'import orjson, ahocorasick' || die "orjson / pyahocorasick still not importable by $PY"
}

# ---------------------------------------------------------------- corpus
# Commands as in shared/bench/README.md; each output is written under a temporary name and
# moved into place, so an interrupted run never leaves a truncated corpus behind.
ensure_corpus() {
    mkdir -p "$DATA"
    local gen=$SHARED/bench/corpus.py n
    for n in 1k:1000 10k:10000 100k:100000; do
        local f=$DATA/rules-${n%%:*}.txt
        [[ -s $f ]] && continue
        [[ -f $gen ]] || die "$f is missing and $gen is not there to generate it"
        note "generating $f"
        "$PY" "$gen" --make-rules "${n#*:}" --seed 1 >"$f.part" || die "corpus.py --make-rules failed"
        mv "$f.part" "$f"
    done
    local corpus=$DATA/corpus-1m.ndjson
    if [[ ! -s $corpus ]]; then
        [[ -f $gen ]] || die "$corpus is missing and $gen is not there to generate it"
        note "generating $corpus (about 2 minutes)"
        "$PY" "$gen" --posts 1000000 --seed 1 --brands "$DATA/rules-10k.txt" -o "$corpus.part" ||
            die "corpus.py failed"
        mv "$corpus.part" "$corpus"
    fi
    # earshot takes a rule file: one brand whose terms file is the term list (relative path).
    local t
    for t in "${TERM_SETS[@]}"; do
        local r=$DATA/bench-$t.rules
        [[ -s $r ]] || printf 'brand bench "Reference corpus brands"\n  terms rules-%s.txt\n' "$t" >"$r"
    done
    if ((quick)); then
        local slice=$DATA/corpus-100k.ndjson
        if [[ ! -s $slice || $slice -ot $corpus ]]; then
            note "cutting the first $QUICK_EVENTS events into $slice"
            head -n "$QUICK_EVENTS" "$corpus" >"$slice.part"
            mv "$slice.part" "$slice"
        fi
        CORPUS=$slice
    else
        CORPUS=$corpus
    fi
    CORPUS_BYTES=$(stat -c %s "$CORPUS")
    IS_REFERENCE=0
    if ((!quick)); then
        if ((CORPUS_BYTES == REF_BYTES)); then
            IS_REFERENCE=1
        else
            note "warning: $CORPUS is $CORPUS_BYTES bytes, not the reference $REF_BYTES;" \
                "the BASELINES.md counts are not checked"
        fi
    fi
}

# ---------------------------------------------------------------- builds
EARSHOT=$REPO/target/release/earshot
EARSHOT_BENCH=$REPO/target/release/earshot-bench
CPP_PEER=$REPO/target/peers/cpp_simdjson_hyperscan

build_all() {
    note "building earshot and earshot-bench (cargo build --release)"
    (cd "$REPO" && cargo build --release -p earshot-cli -p earshot-benches) >"$WORK/cargo.log" 2>&1 ||
        { tail -n 30 "$WORK/cargo.log" >&2; die "cargo build --release failed"; }
    [[ -x $EARSHOT && -x $EARSHOT_BENCH ]] || die "$EARSHOT or $EARSHOT_BENCH was not built"
    note "building the C++ peer (g++ -O3 -march=native)"
    mkdir -p "$(dirname "$CPP_PEER")"
    g++ -O3 -march=native -std=c++17 -Wall -Wextra \
        "$BENCHES/peers/cpp_simdjson_hyperscan.cpp" -o "$CPP_PEER" -lsimdjson -lhs \
        >"$WORK/gxx.log" 2>&1 || { cat "$WORK/gxx.log" >&2; die "building the C++ peer failed"; }
}

# ---------------------------------------------------------------- runs
# Each run appends one tab-separated record to $RUNS:
#   terms program round events posts matched seconds events_per_s mb_per_s rss_kib
RUNS=$WORK/runs.tsv
: >"$RUNS"

json_field() { # json_field KEY JSON: a number or string field of a flat one-line JSON object
    sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$2"
}

timed() { # timed OUT ERR CMD...: run CMD under /usr/bin/time, peak RSS (KiB) to $WORK/rss
    local out=$1 err=$2
    shift 2
    /usr/bin/time -f %M -o "$WORK/rss" "$@" >"$out" 2>"$err" || {
        tail -n 20 "$err" >&2
        die "'$*' failed"
    }
}

run_earshot() { # run_earshot TERMS ROUND PROGRAM
    local t=$1 round=$2 program=$3 cmd
    case $program in
        earshot-1core) cmd=(taskset -c 0 "$EARSHOT" replay -q --workers 1) ;;
        earshot-allcores) cmd=("$EARSHOT" replay -q --workers 0) ;;
    esac
    timed "$WORK/out" "$WORK/err" "${cmd[@]}" --format jetstream --rules "$DATA/bench-$t.rules" "$CORPUS"
    local line
    line=$(grep -m1 '^frames=' "$WORK/err") || { cat "$WORK/err" >&2; die "$program printed no summary line"; }
    local -A f=()
    local kv
    for kv in $line; do f[${kv%%=*}]=${kv#*=}; done
    [[ -n ${f[frames]:-} && -n ${f[posts]:-} && -n ${f[matched]:-} && -n ${f[elapsed]:-} ]] ||
        die "cannot parse earshot's summary: $line"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$program" "$round" "${f[frames]}" \
        "${f[posts]}" "${f[matched]}" "${f[elapsed]%s}" "${f[events/s]}" "${f[MB/s]}" \
        "$(<"$WORK/rss")" >>"$RUNS"
}

run_peer() { # run_peer TERMS ROUND PROGRAM
    local t=$1 round=$2 program=$3 cmd expect=$3
    case $program in
        python-diy) cmd=(taskset -c 0 "$PY" "$BENCHES/peers/python_diy.py" --terms "$DATA/rules-$t.txt" "$CORPUS") ;;
        cpp-simdjson-hyperscan) cmd=(taskset -c 0 "$CPP_PEER" --terms "$DATA/rules-$t.txt" "$CORPUS") ;;
        earshot-inmem-1core | earshot-inmem-allcores | earshot-plain-1core)
            expect=earshot-inmem
            cmd=("$EARSHOT_BENCH" --rounds 1 --rules "$DATA/bench-$t.rules" --corpus "$CORPUS")
            case $program in
                earshot-inmem-1core) cmd=(taskset -c 0 "${cmd[@]}" --workers 1) ;;
                earshot-plain-1core) cmd=(taskset -c 0 "${cmd[@]}" --workers 1 --plain)
                    expect=earshot-inmem-plain ;;
                *) cmd+=(--workers "$(nproc)") ;;
            esac
            ;;
    esac
    timed "$WORK/out" "$WORK/err" "${cmd[@]}"
    local j
    j=$(tail -n 1 "$WORK/out")
    [[ $(json_field program "$j") == "$expect" ]] || die "$program printed an unexpected line: $j"
    local errors
    errors=$(json_field errors "$j")
    [[ ${errors:-0} == 0 ]] || note "warning: $program skipped $errors lines it could not parse"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$program" "$round" \
        "$(json_field events "$j")" "$(json_field posts "$j")" "$(json_field matched "$j")" \
        "$(json_field seconds "$j")" "$(json_field events_per_s "$j")" \
        "$(json_field mb_per_s "$j")" "$(<"$WORK/rss")" >>"$RUNS"
}

PROGRAMS=(earshot-inmem-1core earshot-inmem-allcores earshot-plain-1core earshot-1core earshot-allcores python-diy cpp-simdjson-hyperscan)

field_of() { # field_of TERMS PROGRAM COLUMN: that column of every run, one per line
    awk -F'\t' -v t="$1" -v p="$2" -v c="$3" '$1 == t && $2 == p { print $c }' "$RUNS"
}

distinct() { sort -u | wc -l; }

# Faster-but-wrong must not pass (STYLE.md 13): every program read the same events and found
# the same posts in every round; the two peers, which share one matching definition, found
# exactly the same matched posts, equal to BASELINES.md on the reference corpus; earshot found
# the same matched posts pinned and on all cores.
verify() { # verify TERMS
    local t=$1 p col
    for col in 4 5; do
        (($(awk -F'\t' -v t="$t" -v c="$col" '$1 == t { print $c }' "$RUNS" | distinct) == 1)) || {
            awk -F'\t' -v t="$t" '$1 == t' "$RUNS" >&2
            die "$t terms: the programs disagree on the number of $([[ $col == 4 ]] && echo events || echo posts)"
        }
    done
    for p in "${PROGRAMS[@]}"; do
        (($(field_of "$t" "$p" 6 | distinct) == 1)) ||
            die "$t terms: $p found different matched counts in different rounds: $(field_of "$t" "$p" 6 | tr '\n' ' ')"
    done
    local py cpp e1 en
    py=$(field_of "$t" python-diy 6 | head -n 1)
    cpp=$(field_of "$t" cpp-simdjson-hyperscan 6 | head -n 1)
    ((py == cpp)) || die "$t terms: THE PEERS DISAGREE: python-diy matched $py posts, cpp-simdjson-hyperscan matched $cpp"
    if ((IS_REFERENCE)); then
        ((py == REF_MATCHED[$t])) ||
            die "$t terms: the peers matched $py posts, BASELINES.md says ${REF_MATCHED[$t]} on the reference corpus"
    fi
    local plain
    plain=$(field_of "$t" earshot-plain-1core 6 | head -n 1)
    ((plain == py)) || die "$t terms: earshot's plain substring mode matched $plain posts, the peers $py"
    e1=$(field_of "$t" earshot-1core 6 | head -n 1)
    for p in earshot-allcores earshot-inmem-1core earshot-inmem-allcores; do
        en=$(field_of "$t" "$p" 6 | head -n 1)
        ((e1 == en)) || die "$t terms: earshot matched $e1 posts in earshot-1core but $en in $p"
    done
    ((e1 > 0)) || die "$t terms: earshot matched no posts"
}

# The median round by events/s (its events/s and MB/s), and the largest peak RSS of all rounds.
summarize() { # summarize TERMS PROGRAM -> "events matched events_per_s mb_per_s rss_kib"
    local median rss
    median=$(awk -F'\t' -v t="$1" -v p="$2" '$1 == t && $2 == p' "$RUNS" | sort -t$'\t' -k8,8n |
        awk -v n="$ROUNDS" 'NR == int((n + 1) / 2)')
    rss=$(field_of "$1" "$2" 10 | sort -n | tail -n 1)
    awk -F'\t' -v r="$rss" '{ print $4, $6, $8, $9, r }' <<<"$median"
}

# ---------------------------------------------------------------- main
install_apt_deps
install_py_deps
ensure_corpus
build_all

note "warming the page cache with $CORPUS"
cat "$CORPUS" >/dev/null

for t in "${TERM_SETS[@]}"; do
    for ((round = 1; round <= ROUNDS; round++)); do
        note "$t terms, round $round/$ROUNDS"
        run_peer "$t" "$round" earshot-inmem-1core
        run_peer "$t" "$round" earshot-inmem-allcores
        run_peer "$t" "$round" earshot-plain-1core
        run_earshot "$t" "$round" earshot-1core
        run_earshot "$t" "$round" earshot-allcores
        run_peer "$t" "$round" python-diy
        run_peer "$t" "$round" cpp-simdjson-hyperscan
    done
    verify "$t"
done

# Every check passed: print the table, then record it.
ncpu=$(nproc)
cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
cpu=${cpu:-unknown}
commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
# Mark the commit when the earshot sources differ from it (benches/ itself does not count).
if [[ $commit != unknown ]] &&
    [[ -n $(git -C "$REPO" status --porcelain -- pipeline Cargo.toml Cargo.lock 2>/dev/null) ]]; then
    commit=$commit-dirty
fi
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)

echo
echo "earshot vs peers — $(basename "$CORPUS") ($CORPUS_BYTES bytes), $cpu, $ncpu cpus, commit $commit"
if ((quick)); then echo "(--quick: 1 round on the first $QUICK_EVENTS events; not recorded)"; else
    echo "(median of $ROUNDS interleaved rounds; peak RSS is the largest of the rounds)"; fi
printf '%-24s %5s %12s %8s %8s %8s %10s %10s\n' program terms events/s MB/s matched "RSS MB" \
    "e1÷peer" "eN÷peer"
rows=$WORK/rows.csv
: >"$rows"
for t in "${TERM_SETS[@]}"; do
    read -r _ _ e1_eps _ _ <<<"$(summarize "$t" earshot-inmem-1core)"
    read -r _ _ en_eps _ _ <<<"$(summarize "$t" earshot-inmem-allcores)"
    for p in "${PROGRAMS[@]}"; do
        read -r events matched eps mbps rss_kib <<<"$(summarize "$t" "$p")"
        rss_mb=$(awk -v k="$rss_kib" 'BEGIN { printf "%.1f", k * 1024 / 1e6 }')
        r1=- rn=-
        if [[ $p != earshot-* ]]; then
            r1=$(awk -v a="$e1_eps" -v b="$eps" 'BEGIN { printf "%.2f×", a / b }')
            rn=$(awk -v a="$en_eps" -v b="$eps" 'BEGIN { printf "%.2f×", a / b }')
        fi
        eps_h=$(LC_ALL=C awk -v x="$eps" 'BEGIN { s = sprintf("%d", x + 0.5); o = ""
            while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
            print s o }')
        printf '%-24s %5s %12s %8s %8s %8s %10s %10s\n' "$p" "$t" "$eps_h" "$mbps" "$matched" \
            "$rss_mb" "$r1" "$rn"
        printf '%s,%s,"%s",%s,%s,%s,%s,%s,%s,%s\n' "$date" "$commit" "${cpu//\"/\"\"}" "$p" "$t" \
            "$events" "$eps" "$mbps" "$matched" "$rss_mb" >>"$rows"
    done
done
agree="agree exactly with each other"
((IS_REFERENCE)) && agree="$agree and with BASELINES.md"
cat <<EOF

e1 = earshot-inmem-1core (the whole worker pipeline on frames in memory, one worker pinned to
core 0), eN = earshot-inmem-allcores ($ncpu workers); earshot-1core / earshot-allcores add
reading the file (replay). Peers are pinned to core 0. Ratios above 1 mean earshot is faster. The peers count plain
case-insensitive substrings and $agree, and so
does earshot-plain-1core (earshot with word boundaries switched off). earshot's own programs
count whole-word matches (README "How terms match"), so their count is lower by definition
and is checked for being the same in every round and program.
EOF

if ((quick)); then
    note "--quick: nothing appended to $CSV"
else
    [[ -s $CSV ]] || echo 'date,commit,cpu,program,terms,events,events_per_s,mb_per_s,matched,rss_mb' >"$CSV"
    cat "$rows" >>"$CSV"
    note "appended $(wc -l <"$rows") rows to $CSV"
fi
