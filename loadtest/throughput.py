#!/usr/bin/env python3
"""Throughput of one earshot node alone against the same node as a one-node cluster.

Both read the same N Jetstream lines from a file (the `file` source, `follow = true` so the
process stays up once the file is read), match the benchmark's 10k-term brand list
(`../bench-data/rules-10k.txt`, about 2% of the corpus's posts match; the repo's example rules
match none of its real posts), and write every mention to a `file` queue; spike detection is off in both (cluster mode has none yet). The cluster side
runs on a `nats-server -js` started fresh per round, its store in the output folder.

Each run is timed from the first frame a worker processed to the last, from earshot's own
`earshot_worker_frames_processed_total` (polled every 20 ms), and until the file queue has
written every mention (`earshot_file_mentions_written_total` stops growing). CPU seconds of
earshot and of nats-server over the run come from /proc. Rounds alternate the two modes
(single first in odd rounds, cluster first in even ones) and the script prints per-round
ratios, so both sides of each ratio see the same minutes of a shared machine.

    python3 loadtest/throughput.py --lines 300000 --rounds 3 --out /tmp/earshot-throughput
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "throughput-token"
USER_HZ = 100.0

CONFIG = """[pipeline]
workers = 0
[rules]
paths = ["{rules}"]
watch = "0"
[admin]
listen = "127.0.0.1:{admin}"
[outbox]
path = "{state}/outbox.redb"
[[source]]
id = "corpus"
type = "file"
format = "jetstream"
path = "{input}"
follow = true
poll_interval = "50ms"
[[queue]]
id = "all"
sink = "file"
path = "{state}/mentions.ndjson"
[queue.noise]
reposts = false
storm = false
[[route]]
queue = "all"
[spikes]
enabled = false
"""

CLUSTER = """[cluster]
node = "throughput"
url = "nats://127.0.0.1:{nats}"
replicas = 1
roles = ["ingest", "work", "deliver"]
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / USER_HZ
    except (OSError, IndexError, ValueError):
        return None


def metrics(admin):
    req = urllib.request.Request(
        f"http://127.0.0.1:{admin}/metrics",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(req, timeout=2) as r:
        text = r.read().decode()
    out = {"frames": 0, "written": 0}
    for line in text.splitlines():
        if line.startswith("earshot_worker_frames_processed_total"):
            out["frames"] += int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("earshot_file_mentions_written_total"):
            out["written"] += int(float(line.rsplit(" ", 1)[1]))
    return out


def wait_http(url, within):
    deadline = time.time() + within
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.05)


def stop(proc):
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_once(mode, args, input_path, out):
    work = os.path.join(out, mode)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "state"))
    admin = free_port()
    text = CONFIG.format(
        rules=args.rules_dir, admin=admin, state=os.path.join(work, "state"), input=input_path
    )
    nats = None
    if mode == "cluster":
        port, monitor = free_port(), free_port()
        binary = os.environ.get("EARSHOT_NATS_SERVER") or shutil.which("nats-server")
        nats = subprocess.Popen(
            [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor),
             "-sd", os.path.join(work, "nats")],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "nats.log"), "w"),
        )
        wait_http(f"http://127.0.0.1:{monitor}/healthz", 15)
        text += CLUSTER.format(nats=port)
    config = os.path.join(work, "earshot.toml")
    with open(config, "w") as f:
        f.write(text)
    env = dict(os.environ, EARSHOT_ADMIN_TOKEN=TOKEN)
    earshot = subprocess.Popen(
        [args.earshot, "run", "--config", config], env=env,
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "earshot.log"), "w"),
    )
    try:
        first = last = None  # (time, frames, earshot cpu, nats cpu)
        written_at = None
        frames = written = 0
        changed = time.time()
        deadline = time.time() + args.timeout
        while time.time() < deadline:
            if earshot.poll() is not None:
                raise RuntimeError(f"{mode}: earshot exited ({earshot.returncode}); see {work}/earshot.log")
            try:
                m = metrics(admin)
            except Exception:
                time.sleep(0.02)
                continue
            now = time.time()
            point = (now, m["frames"], cpu_seconds(earshot.pid), cpu_seconds(nats.pid) if nats else None)
            if m["frames"] > 0 and first is None:
                first = point
            if m["frames"] > frames:
                frames, last, changed = m["frames"], point, now
            if m["written"] > written:
                written, written_at, changed = m["written"], point, now
            if frames >= args.lines and now - changed > 2.0:
                break
            if frames > 0 and now - changed > 10.0:
                break
            time.sleep(0.02)
        else:
            raise RuntimeError(f"{mode}: not done within {args.timeout} s")
        span = last[0] - first[0]
        return {
            "mode": mode,
            "frames": frames,
            "mentions": written,
            "seconds": span,
            "events_per_s": (last[1] - first[1]) / span if span > 0 else None,
            "to_last_mention_s": written_at[0] - first[0] if written_at else None,
            "earshot_cpu_us_per_event": (last[2] - first[2]) * 1e6 / max(1, last[1] - first[1]),
            "nats_cpu_us_per_event": (
                (last[3] - first[3]) * 1e6 / max(1, last[1] - first[1]) if nats else None
            ),
        }
    finally:
        stop(earshot)
        stop(nats)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=300000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--corpus", default=os.path.join(ROOT, "..", "bench-data", "corpus-1m.ndjson"))
    p.add_argument("--terms", default=os.path.join(ROOT, "..", "bench-data", "rules-10k.txt"))
    p.add_argument("--earshot", default=os.path.join(ROOT, "target", "release", "earshot"))
    p.add_argument("--out", default="/tmp/earshot-throughput")
    p.add_argument("--timeout", type=float, default=300)
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    # One brand whose terms are the list, as earshot-bench builds it.
    args.rules_dir = os.path.join(args.out, "rules")
    os.makedirs(args.rules_dir, exist_ok=True)
    shutil.copy(args.terms, os.path.join(args.rules_dir, "terms.txt"))
    with open(os.path.join(args.rules_dir, "bench.rules"), "w") as f:
        f.write('brand bench "Reference corpus brands"\n  terms terms.txt\n')
    input_path = os.path.join(args.out, f"input-{args.lines}.ndjson")
    if not os.path.exists(input_path):
        with open(args.corpus, "rb") as src, open(input_path + ".tmp", "wb") as dst:
            for i, line in enumerate(src):
                if i >= args.lines:
                    break
                dst.write(line)
        os.rename(input_path + ".tmp", input_path)
    results = []
    for r in range(args.rounds):
        order = ["single", "cluster"] if r % 2 == 0 else ["cluster", "single"]
        row = {}
        for mode in order:
            res = run_once(mode, args, input_path, args.out)
            res["round"] = r + 1
            results.append(res)
            row[mode] = res
            print(json.dumps(res), flush=True)
        ratio = row["cluster"]["events_per_s"] / row["single"]["events_per_s"]
        print(f"round {r + 1}: cluster/single events/s = {ratio:.3f}", flush=True)
    ratios = [
        c["events_per_s"] / s["events_per_s"]
        for s, c in zip(
            [x for x in results if x["mode"] == "single"],
            [x for x in results if x["mode"] == "cluster"],
        )
    ]
    print(f"median ratio cluster/single: {statistics.median(ratios):.3f} (rounds: "
          + ", ".join(f"{x:.3f}" for x in ratios) + ")")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
