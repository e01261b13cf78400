"""Worker mode against backend mode, side by side (benches/worker/run.sh).

Two throwaway clusters on the same machine, the same model and settings,
one without and one with pg_ecom in shared_preload_libraries. Measures:
  1. the first ecom_embed of a new connection (the worker already warm);
  2. total memory: PSS of 16 connections that have all scored, plus the
     worker's, against one backend-mode connection that has scored;
  3. pgbench of per-row ecom_predict on texts never seen, 1/4/8/16 clients:
     transactions/s and p95 latency after a warm-up window;
  4. ecom_embed_batch of 1,000 titles never seen.
Prints a markdown section (and writes it to --out)."""
import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time
import uuid

import psycopg2

p = argparse.ArgumentParser()
p.add_argument("--backend-port", type=int, required=True)
p.add_argument("--worker-port", type=int, required=True)
p.add_argument("--secs", type=int, default=20)
p.add_argument("--warmup", type=int, default=4)
p.add_argument("--clients", default="1,4,8,16")
p.add_argument("--connections", type=int, default=16)
p.add_argument("--pgbench", required=True)
p.add_argument("--out", required=True)
p.add_argument("--command", default="benches/worker/run.sh")
a = p.parse_args()
MODES = {"backend": a.backend_port, "worker": a.worker_port}


def conn(port):
    c = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
    c.autocommit = True
    return c


def one(cur, sql, args=None):
    cur.execute(sql, args)
    return cur.fetchone()[0]


def mem(pid):
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            m = re.match(r"(Rss|Pss):\s+(\d+) kB", line)
            if m:
                out[m.group(1)] = int(m.group(2)) * 1024
    return out


def salt():
    return uuid.uuid4().hex[:10]


def first_call(port, n=10):
    ms = []
    for _ in range(n):
        c = conn(port)
        cur = c.cursor()
        t = time.perf_counter()
        one(cur, "SELECT array_length(ecom_embed(%s), 1)", (f"first call {salt()} wool socks",))
        ms.append((time.perf_counter() - t) * 1e3)
        c.close()
    return statistics.median(ms), min(ms), max(ms)


def plain_memory(port):
    # what the same number of connections take that never call pg_ecom
    conns = [conn(port) for _ in range(a.connections)]
    pids = [one(c.cursor(), "SELECT pg_backend_pid()") for c in conns]
    total = sum(mem(pid)["Pss"] for pid in pids)
    for c in conns:
        c.close()
    return total


def memory(port, worker_pid):
    # one connection that has scored, alone
    c1 = conn(port)
    cur = c1.cursor()
    one(cur, "SELECT ecom_predict('store1', 'viewed: item 1', %s)", (f"memory {salt()}",))
    single = mem(one(cur, "SELECT pg_backend_pid()"))
    conns = [c1] + [conn(port) for _ in range(a.connections - 1)]
    pids = []
    for c in conns:
        cur = c.cursor()
        one(cur, "SELECT ecom_predict('store1', 'viewed: item 1', %s)", (f"memory {salt()}",))
        pids.append(one(cur, "SELECT pg_backend_pid()"))
    backends = sum(mem(pid)["Pss"] for pid in pids)
    worker = mem(worker_pid)["Pss"] if worker_pid else 0
    for c in conns:
        c.close()
    return single, backends, worker


SCRIPT = """\\set r random(1, 2000000000)
SELECT ecom_predict('store1', 'viewed: item 1', 'unseen ' || :r || ' waterproof trail running shoe for women size ' || (:r % 13));
"""
EMBED_SCRIPT = """\\set r random(1, 2000000000)
SELECT array_length(ecom_embed('unseen ' || :r || ' waterproof trail running shoe for women size ' || (:r % 13)), 1);
"""


def pgbench(port, clients, script_text=SCRIPT):
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o777)
        script = os.path.join(d, "predict.sql")
        with open(script, "w") as fh:
            fh.write(script_text)
        subprocess.run(
            [a.pgbench, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-n", "-f", script,
             "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(a.secs), "-l",
             "--log-prefix", os.path.join(d, "log"), "postgres"],
            check=True, capture_output=True, text=True)
        rows = []
        for f in os.listdir(d):
            if f.startswith("log"):
                with open(os.path.join(d, f)) as fh:
                    for line in fh:
                        x = line.split()
                        # client, tx, latency µs, script, epoch s, µs
                        rows.append((int(x[4]) + int(x[5]) / 1e6, int(x[2]) / 1e3))
    t0 = min(t - lat / 1e3 for t, lat in rows)
    kept = [(t, lat) for t, lat in rows if t - t0 >= a.warmup]
    span = max(t for t, _ in kept) - (t0 + a.warmup)
    lats = sorted(lat for _, lat in kept)
    p95 = lats[int(0.95 * (len(lats) - 1))]
    return len(kept) / span, p95, statistics.median(lats)


def embed_batch(port, n=3):
    c = conn(port)
    cur = c.cursor()
    one(cur, "SELECT ecom_embed('warm')")
    best = None
    for _ in range(n):
        s = salt()
        t = time.perf_counter()
        one(cur, "SELECT count(*) FROM ecom_embed_batch(ARRAY(SELECT 'title ' || g || ' ' || %s || ' "
                 "waterproof hiking boot with padded collar' FROM generate_series(1, 1000) g))", (s,))
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    c.close()
    return 1000 / best


res = {}
for mode, port in MODES.items():
    c = conn(port)
    cur = c.cursor()
    stats = one(cur, "SELECT ecom_worker_stats()")
    wpid = (stats.get("worker") or {}).get("pid") if mode == "worker" else None
    if mode == "worker":
        assert stats["inference"] == "worker" and wpid, stats
        one(cur, "SELECT ecom_embed('warm the worker')")
    c.close()
    r = {"first": first_call(port), "plain": plain_memory(port), "memory": memory(port, wpid), "batch": embed_batch(port)}
    r["embed_8"] = pgbench(port, 8, EMBED_SCRIPT)
    r["pgbench"] = {}
    for n in map(int, a.clients.split(",")):
        if mode == "worker" and n == 8:
            c = conn(port)
            before = one(c.cursor(), "SELECT ecom_worker_stats()")
        r["pgbench"][n] = pgbench(port, n)
        if mode == "worker" and n == 8:
            r["stages_8"] = (before, one(c.cursor(), "SELECT ecom_worker_stats()"))
            c.close()
    if mode == "worker":
        c = conn(port)
        r["stats"] = one(c.cursor(), "SELECT ecom_worker_stats()")
        c.close()
    res[mode] = r
    print(mode, r, flush=True)

B, W = res["backend"], res["worker"]
mb = lambda x: f"{x / 2**20:.0f} MB"
single = B["memory"][0]["Pss"]
lines = [
    "| what | backend mode | worker mode | worker / backend | target | met |",
    "|---|---|---|---|---|---|",
    f"| first `ecom_embed` in a new connection (median of 10; min–max) | {B['first'][0]:.1f} ms ({B['first'][1]:.0f}–{B['first'][2]:.0f}) "
    f"| {W['first'][0]:.1f} ms ({W['first'][1]:.1f}–{W['first'][2]:.1f}) | {W['first'][0] / B['first'][0]:.2f}× | ≤ 20 ms (worker warm) "
    f"| {'yes' if W['first'][0] <= 20 else '**no**'} |",
    f"| memory, one connection that has scored (PSS) | {mb(single)} | — | — | — | — |",
    f"| memory, {a.connections} connections that have all scored: PSS of the backends + the worker "
    f"| {mb(B['memory'][1])} | {mb(W['memory'][1])} + {mb(W['memory'][2])} = {mb(W['memory'][1] + W['memory'][2])} "
    f"| {(W['memory'][1] + W['memory'][2]) / B['memory'][1]:.2f}× | ≤ 1.5× one backend-mode connection ({mb(1.5 * single)}) "
    f"| {'yes' if W['memory'][1] + W['memory'][2] <= 1.5 * single else '**no**'} |",
    f"| memory, {a.connections} plain connections (`SELECT pg_backend_pid()` only), PSS | {mb(B['plain'])} | {mb(W['plain'])} | — | — | — |",
    f"| pg_ecom's own share per connection: ({a.connections} that have scored − {a.connections} plain) / {a.connections} "
    f"| {(B['memory'][1] - B['plain']) / a.connections / 2**20:.1f} MB | {(W['memory'][1] - W['plain']) / a.connections / 2**20:.1f} MB "
    f"| — | ≤ 1 MB in worker mode (issue 22) | {'yes' if W['memory'][1] - W['plain'] <= a.connections * 2**20 else '**no**'} |",
]
for n in B["pgbench"]:
    (bt, bp, bm), (wt, wp, wm) = B["pgbench"][n], W["pgbench"][n]
    target, met = "—", "—"
    if n == 8:
        target = "≥ 1.3×, p95 no worse"
        met = "yes" if wt >= 1.3 * bt and wp <= bp else "**no**"
    if n == 1:
        target = "≤ 1 ms added (median)"
        met = "yes" if wm - bm <= 1.0 else "**no**"
    lines.append(
        f"| pgbench, per-row `ecom_predict` on unseen texts, {n} client{'s' if n > 1 else ''}: tx/s (median / p95 ms) "
        f"| {bt:.0f} ({bm:.1f} / {bp:.1f}) | {wt:.0f} ({wm:.1f} / {wp:.1f}) | {wt / bt:.2f}× | {target} | {met} |")
(bt, bp, bm), (wt, wp, wm) = B["embed_8"], W["embed_8"]
lines.append(
    f"| pgbench, per-row `ecom_embed` on unseen texts, 8 clients: tx/s (median / p95 ms) "
    f"| {bt:.0f} ({bm:.1f} / {bp:.1f}) | {wt:.0f} ({wm:.1f} / {wp:.1f}) | {wt / bt:.2f}× | ≥ 1.5× (issue 22) "
    f"| {'yes' if wt >= 1.5 * bt else '**no**'} |")
lines.append(
    f"| `ecom_embed_batch` of 1,000 titles never seen (best of 3) | {B['batch']:.0f} emb/s | {W['batch']:.0f} emb/s "
    f"| {W['batch'] / B['batch']:.2f}× | ≥ 0.95× | {'yes' if W['batch'] >= 0.95 * B['batch'] else '**no**'} |")
st = W["stats"]
lines += [
    "",
    f"Worker after the run: {st['requests']} requests, {st['texts']} texts in {st['batches']} encoder runs "
    f"(mean batch {st['mean_batch']:.1f}; histogram {st['batch_size_histogram']}), wait p50/p95/p99 "
    f"{st['wait_us']['p50']}/{st['wait_us']['p95']}/{st['wait_us']['p99']} µs, run p50/p95/p99 "
    f"{st['run_us']['p50']}/{st['run_us']['p95']}/{st['run_us']['p99']} µs, provider {st['worker']['provider']}, "
    f"{st['worker']['threads']} threads, shared cache hit rate {st['cache']['hit_rate']}.",
]
if "stages_8" in W and "stages_us" in W["stages_8"][1]:
    b, e = (x["stages_us"] for x in W["stages_8"])
    batches = W["stages_8"][1]["batches"] - W["stages_8"][0]["batches"]
    reqs = W["stages_8"][1]["requests"] - W["stages_8"][0]["requests"]
    lines += [
        "",
        f"Where the time went at 8 clients (`ecom_worker_stats()->'stages_us'`, the difference over that pgbench point: "
        f"{reqs} requests in {batches} encoder runs):",
        "",
        "| stage | counted per | count | mean µs | per request µs |",
        "|---|---|---|---|---|",
    ]
    for name in e:
        n = e[name]["count"] - b[name]["count"]
        tot = e[name]["total"] - b[name]["total"]
        lines.append(f"| {name} | {e[name]['per']} | {n} | {tot / n if n else 0:.0f} | {tot / reqs if reqs else 0:.0f} |")
lines += [
    "",
    f"Command: `{a.command}` ({a.secs} s per pgbench point, the first {a.warmup} s left out; "
    f"{os.cpu_count()} cores).",
]
text = "\n".join(lines) + "\n"
with open(a.out, "w") as fh:
    fh.write(text)
print(text)
