#!/usr/bin/env python3
"""Capture real anonymous memory pages from live processes for zswap's tests
and benches.

Starts a few ordinary workloads with a clean environment (`env -i`, so no
secrets of the capturing shell end up in their memory), waits until each has
built its working set, then reads the anonymous, non-stack mappings of each
(heap and anonymous private mappings; never the stack, vdso or file-backed
memory) through /proc/PID/mem, and writes a seeded random sample of pages:

    data/pages.bin   concatenated 4096-byte pages
    data/pages.json  where they came from, and how many are zero or same-filled

Needs root (or ptrace rights over the children). Usage:

    python3 data/capture.py [--max-mib 8] [--out data] [--seed 1]
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys
import time

PAGE = 4096

WORKLOADS = {
    # CPython: dicts, lists, strings and ints, as an application heap.
    "python-objects": ["python3", "-c", r"""
import random, sys
r = random.Random(7)
words = [''.join(r.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(r.randint(3, 12))) for _ in range(20000)]
table = {w: {'id': i, 'score': r.random(), 'tags': r.sample(words, 3)} for i, w in enumerate(words)}
rows = [(i, r.choice(words), r.randint(0, 10**6), r.random()) for i in range(150000)]
text = ' '.join(r.choice(words) for _ in range(300000))
print('ready', flush=True); sys.stdin.read()
"""],
    # SQLite in memory: B-tree pages, a page cache.
    "sqlite-memory": ["python3", "-c", r"""
import random, sqlite3, sys
r = random.Random(11)
db = sqlite3.connect(':memory:')
db.execute('create table t (id integer primary key, name text, qty integer, price real, note text)')
db.executemany('insert into t values (?,?,?,?,?)', ((i, 'item-%06d' % r.randint(0, 99999), r.randint(0, 500), r.random() * 100, 'note ' * r.randint(0, 8)) for i in range(200000)))
db.execute('create index t_name on t(name)')
db.commit()
print('ready', flush=True); sys.stdin.read()
"""],
    # Perl: hashes of arrays, string buffers.
    "perl-hashes": ["perl", "-e", r"""
srand(3); my %h; for my $i (1..120000) { $h{"key$i"} = [ $i, rand(), "v" x (1 + $i % 40) ]; }
my @a = map { join(",", $_, $_ * 2, "x$_") } 1..100000;
$| = 1; print "ready\n"; <STDIN>;
"""],
    # Node.js: JS objects and typed arrays on the V8 heap.
    "node-objects": ["node", "-e", r"""
let seed = 5; const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
const objs = []; for (let i = 0; i < 150000; i++) objs.push({ id: i, name: 'user' + Math.floor(rnd() * 1e6), active: rnd() > 0.5, balance: rnd() * 1000 });
const nums = new Float64Array(400000).map(() => rnd());
const json = JSON.stringify(objs.slice(0, 20000));
process.stdout.write('ready\n'); process.stdin.resume();
"""],
}

SKIP = re.compile(r"\[(stack|vvar|vdso|vsyscall|vvar_vclock)")


def anon_ranges(pid):
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            addr, perms = parts[0], parts[1]
            path = parts[5].strip() if len(parts) > 5 else ""
            if "r" not in perms or "p" not in perms:
                continue
            if path and path != "[heap]":
                continue  # file-backed or special
            if SKIP.match(path):
                continue
            lo, hi = (int(x, 16) for x in addr.split("-"))
            yield lo, hi


def read_pages(pid):
    pages = []
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for lo, hi in anon_ranges(pid):
            for a in range(lo, hi, PAGE):
                try:
                    mem.seek(a)
                    p = mem.read(PAGE)
                except OSError:
                    continue
                if len(p) == PAGE:
                    pages.append(p)
    return pages


def same_filled(p):
    w = p[:8]
    return p == w * (PAGE // 8)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-mib", type=float, default=8)
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    budget = int(args.max_mib * 1024 * 1024) // PAGE
    rng = random.Random(args.seed)
    per = budget // len(WORKLOADS)
    sample, manifest = [], []
    for name, cmd in WORKLOADS.items():
        path = "/usr/bin:/bin:/usr/local/bin"
        exe = next((os.path.join(d, cmd[0]) for d in path.split(":") if os.path.exists(os.path.join(d, cmd[0]))), None)
        if exe is None:
            print(f"skip {name}: {cmd[0]} not found", file=sys.stderr)
            continue
        proc = subprocess.Popen(["env", "-i", f"PATH={path}", exe] + cmd[1:],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            line = proc.stdout.readline()
            if b"ready" not in line:
                print(f"skip {name}: did not get ready", file=sys.stderr)
                continue
            time.sleep(0.2)
            pages = read_pages(proc.pid)
        finally:
            proc.kill()
            proc.wait()
        chosen = rng.sample(pages, min(per, len(pages)))
        zero = sum(1 for p in chosen if p.count(0) == PAGE)
        same = sum(1 for p in chosen if same_filled(p))
        manifest.append({"workload": name, "command": cmd[0], "anon_pages_seen": len(pages),
                         "pages_sampled": len(chosen), "zero_pages": zero, "same_filled_pages": same})
        sample.extend(chosen)
        print(f"{name}: {len(pages)} anonymous pages, sampled {len(chosen)} ({zero} zero, {same} same-filled)")
    rng.shuffle(sample)
    with open(os.path.join(args.out, "pages.bin"), "wb") as f:
        for p in sample:
            f.write(p)
    with open(os.path.join(args.out, "pages.json"), "w") as f:
        json.dump({"page_size": PAGE, "pages": len(sample), "seed": args.seed,
                   "captured_by": "data/capture.py", "sources": manifest}, f, indent=2)
        f.write("\n")
    print(f"wrote {len(sample)} pages ({len(sample) * PAGE / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
