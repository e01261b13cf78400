"""SQL-level benchmark driver: every figure of the performance issue, each
next to its alternative, measured in one run on one machine. Called by
benches/run.sh (which sets up, starts the cluster and installs what the
alternatives need); writes benches/RESULTS.md's generated section.

Timings are wall-clock seconds from this client, so SQL figures include the
round trip, as an application would see them.
"""
import argparse
import glob
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
CTX = "recently watched: Fargo; Pulp Fiction; Heat; crime dramas"
N_FEATURES = 2


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class Bench:
    def __init__(self, a):
        self.a = a
        self.dsn = f"host=127.0.0.1 port={a.port} user=postgres dbname=postgres"
        self.rows = []  # (section, what, ours, alternative, ratio text, target, met)
        self.facts = {}

    def conn(self, **gucs):
        c = psycopg2.connect(self.dsn)
        c.autocommit = True
        cur = c.cursor()
        for k, v in gucs.items():
            cur.execute(f"SET pg_ecom.{k} = %s", (str(v),))
        return c

    @staticmethod
    def timed(cur, sql, args=None):
        t0 = time.perf_counter()
        cur.execute(sql, args)
        if cur.description:
            cur.fetchall()
        return time.perf_counter() - t0

    def best(self, sql, n=3, warm="SELECT ecom_embed('warm')", **gucs):
        """Best of n, each in a new connection after a warm-up call."""
        ts = []
        for _ in range(n):
            c = self.conn(**gucs)
            cur = c.cursor()
            if warm:
                cur.execute(warm)
            ts.append(self.timed(cur, sql))
            c.close()
        return min(ts)

    def py(self, *args):
        out = subprocess.run([sys.executable, os.path.join(HERE, "client.py"), *args,
                              "--model-dir", self.a.model_dir, "--dsn", self.dsn],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    def add(self, section, what, ours, alt, ratio, target, met):
        self.rows.append((section, what, ours, alt, ratio, target, met))
        log(f"  {what}: {ours} | {alt} | {ratio} | {'met' if met else 'NOT met'}")

    # ---------------------------------------------------------------- data
    def prepare(self):
        log("== data: 10,000 products from MovieLens titles, a meta-trained head")
        c = self.conn()
        cur = c.cursor()
        cur.execute("DROP EXTENSION IF EXISTS pg_ecom CASCADE; CREATE EXTENSION pg_ecom")
        cur.execute("""DROP TABLE IF EXISTS bench_products, bench_events, db_scores_emb, db_scores_text,
                         client_scores_emb, client_scores_text""")
        cur.execute("CREATE TABLE bench_products (id int PRIMARY KEY, item_text text NOT NULL, embedding real[])")
        items = []
        path = os.path.join(self.a.data, "ml-100k.item")
        for line in list(open(path, encoding="utf-8"))[1:]:
            f = line.rstrip("\n").split("\t")
            items.append((f[1], f[2], f[3]))
        forms = ["{t} ({y}) {g}", "{t} - DVD, {g}", "{t} Blu-ray collector's edition",
                 "{t} original soundtrack CD", "{t} movie poster, 24x36 inches", "{t} ({y}) streaming rental, {g}"]
        texts = []
        for form in forms:
            for t, y, g in items:
                texts.append(form.format(t=t, y=y or "n.d.", g=g))
        texts = texts[:self.a.n]
        self.texts_file = os.path.join(self.a.work, "texts.txt")
        with open(self.texts_file, "w", encoding="utf-8") as fh:
            fh.write("\n".join(texts) + "\n")
        cur.executemany("INSERT INTO bench_products (id, item_text) VALUES (%s, %s)",
                        list(enumerate(texts, 1)))
        # training events: tenant = first genre; a user "likes <genre>" buys
        # items of that genre; two side features
        cur.execute("""CREATE TABLE bench_events AS
            SELECT split_part(g, ' ', 1) AS tenant, 'likes ' || split_part(g, ' ', 1) || ' movies' AS context,
                   p.item_text AS item, 'purchase'::text AS behaviour,
                   p.item_text LIKE '%' || split_part(g, ' ', 1) || '%' AS label,
                   ARRAY[(p.id % 10) / 10.0, 0.5]::real[] AS features
              FROM bench_products p,
                   (VALUES ('Drama'), ('Comedy'), ('Action'), ('Thriller'), ('Romance'), ('Horror'),
                           ('Adventure'), ('Crime')) v(g)
             WHERE p.id % 5 = 0 AND p.id <= 1682 * 6""")
        cur.execute("SELECT (r->>'version')::int FROM ecom_meta_train('bench_events', meta_steps => 40) r")
        c.close()

    # ------------------------------------------------------------ figures
    def embedding_throughput(self):
        log("== 1. embedding throughput")
        n = self.a.n
        batch = "SELECT count(*) FROM ecom_embed_batch(ARRAY(SELECT item_text FROM bench_products ORDER BY id))"
        for variant, threads in [("fp32", 1), ("int8", 1), ("fp32", 2)]:
            ours = self.best(batch, n=self.a.repeat, model_variant=variant, intra_op_threads=threads)
            alt = min(self.py("embed", "--texts", self.texts_file, "--variant", variant,
                              "--threads", str(threads))["seconds"] for _ in range(self.a.repeat))
            r = alt / ours
            self.add("1", f"`ecom_embed_batch`, {n:,} texts, {variant}, {threads} thread(s)",
                     f"{n / ours:,.0f} emb/s", f"{n / alt:,.0f} emb/s (standalone onnxruntime)",
                     f"{r:.2f}×", "≥ 0.9×", r >= 0.9)
        ours = self.best("SELECT count(ecom_embed(item_text)) FROM bench_products", n=1, model_variant="fp32",
                         intra_op_threads=1)
        self.per_row_embed = ours
        alt = self.py("embed", "--texts", self.texts_file, "--variant", "fp32", "--threads", "1")["seconds"]
        r = alt / ours
        self.add("1", f"per-row `ecom_embed`, {n:,} rows, fp32, 1 thread", f"{n / ours:,.0f} emb/s",
                 f"{n / alt:,.0f} emb/s (standalone, batches of 32)", f"{r:.2f}×",
                 "(one run per row, no batching possible)", None)

    def text_length(self):
        log("== limits: throughput by text length (ecom_embed_batch, 256 texts, 1 thread)")
        self.lengths = []
        words = "waterproof breathable lightweight hiking boots with grippy soles and padded collar ".split()
        for tokens in (8, 32, 128, 256):
            texts = [" ".join(["item", str(i)] + [words[(i + j) % len(words)] for j in range(tokens - 4)])
                     for i in range(256)]
            row = [tokens]
            for variant in ("fp32", "int8"):
                c = self.conn(model_variant=variant, intra_op_threads=1)
                cur = c.cursor()
                cur.execute("SELECT ecom_embed('warm')")
                cur.execute("SELECT max(array_length(ecom_tokens(t), 1)) FROM unnest(%s) t", (texts,))
                row.append(cur.fetchone()[0])
                t = self.timed(cur, "SELECT count(*) FROM ecom_embed_batch(%s)", (texts,))
                row.append(256 / t)
                c.close()
            self.lengths.append(row)
            log(f"  ~{tokens} tokens: fp32 {row[2]:.0f} emb/s, int8 {row[4]:.0f} emb/s")

    def scoring(self):
        log("== 2/3. scoring a products table for one user context")
        n = self.a.n
        feats = "'{0.5,0.5}'"
        c = self.conn()
        cur = c.cursor()
        cur.execute("SELECT count(*) FROM ecom_embed_batch(ARRAY(SELECT item_text FROM bench_products))")
        cur.execute("UPDATE bench_products SET embedding = ecom_embed(item_text)")
        # the user context is stored too, as an application keeps it: both
        # pipelines then start from stored embeddings only
        cur.execute("DROP TABLE IF EXISTS bench_users; CREATE TABLE bench_users AS SELECT 1 AS id, ecom_embed(%s) AS embedding",
                    (CTX,))
        c.close()
        emb_sql = f"""DROP TABLE IF EXISTS db_scores_emb;
            CREATE TABLE db_scores_emb AS SELECT id, ecom_predict_emb('bench', (SELECT embedding FROM bench_users WHERE id = 1), embedding,
                'purchase', {feats}) AS score FROM bench_products"""
        # a new connection each time, timed from connect, as the client's
        ours = min(self.connect_and_time(emb_sql) for _ in range(self.a.repeat))
        alt = min(self.py("score", "--context", CTX)["seconds"] for _ in range(self.a.repeat))
        diff = self.max_diff("db_scores_emb", "client_scores_emb")
        r = alt / ours
        self.add("2", f"score {n:,} stored embeddings → table (`ecom_predict_emb`)", f"{ours * 1e3:,.0f} ms",
                 f"{alt * 1e3:,.0f} ms (psycopg2 fetch → numpy head → COPY)", f"{r:.1f}× faster",
                 "≥ 2×", r >= 2)
        self.facts["score_diff_emb"] = diff
        # from text: nothing cached; the model is loaded by the warm-up call
        rank_sql = f"""DROP TABLE IF EXISTS db_scores_text;
            CREATE TABLE db_scores_text AS SELECT item_index AS id, score FROM ecom_rank('bench', %s,
                ARRAY(SELECT item_text FROM bench_products ORDER BY id), {n}, 'purchase',
                array_fill(0.5::real, ARRAY[{n * N_FEATURES}]))"""
        ours = self.best_args(rank_sql, (CTX,))
        alt = min(self.py("score", "--context", CTX, "--from-text")["seconds"] for _ in range(self.a.repeat))
        self.facts["score_diff_text"] = self.max_diff("db_scores_text", "client_scores_text")
        r = alt / ours
        self.add("2", f"score {n:,} item texts → table (`ecom_rank`, batched encoding)", f"{ours:,.1f} s",
                 f"{alt:,.1f} s (psycopg2 fetch → onnxruntime → numpy head → COPY)", f"{r:.2f}×",
                 "≥ 2×", r >= 2)
        # per-row ecom_predict over texts not yet embedded
        pred_sql = f"SELECT count(ecom_predict('bench', %s, item_text, 'purchase', {feats})) FROM bench_products"
        ours = self.best_args(pred_sql, (CTX,), n=1)
        r = alt / ours
        self.add("2", f"score {n:,} item texts, per-row `ecom_predict` (nothing cached)", f"{ours:,.1f} s",
                 f"{alt:,.1f} s (same client pipeline)", f"{r:.2f}×", "≥ 2×", r >= 2)
        # 3. warm rows per second, one backend
        log("== 3. warm scoring rate")
        # room for every product text (about 1.7 kB each with its embedding)
        c = self.conn(embedding_cache_mb=max(16, n * 2 // 1000 + 1))
        cur = c.cursor()
        cur.execute("SELECT count(*) FROM ecom_embed_batch(ARRAY(SELECT item_text FROM bench_products))")
        q = f"""SELECT sum(ecom_predict_emb('bench', (SELECT ecom_embed(%s)), embedding, 'purchase', {feats}))
                  FROM bench_products"""
        t = min(self.timed(cur, q, (CTX,)) for _ in range(5))
        self.add("3", f"warm `ecom_predict_emb`, {n:,} rows, one backend", f"{n / t:,.0f} rows/s", "—", "—",
                 "≥ 50,000 rows/s", n / t >= 50000)
        q = f"SELECT sum(ecom_predict('bench', %s, item_text, 'purchase', {feats})) FROM bench_products"
        t = min(self.timed(cur, q, (CTX,)) for _ in range(5))
        self.add("3", f"warm `ecom_predict` (texts cached), {n:,} rows", f"{n / t:,.0f} rows/s", "—", "—",
                 "(same target)", n / t >= 50000)
        c.close()

    def connect_and_time(self, sql):
        t0 = time.perf_counter()
        c = psycopg2.connect(self.dsn)
        c.autocommit = True
        c.cursor().execute(sql)
        c.close()
        return time.perf_counter() - t0

    def best_args(self, sql, args, n=None):
        ts = []
        for _ in range(n or self.a.repeat):
            c = self.conn()
            cur = c.cursor()
            cur.execute("SELECT ecom_embed('warm')")
            ts.append(self.timed(cur, sql, args))
            c.close()
        return min(ts)

    def max_diff(self, a, b):
        cur = self.conn().cursor()
        cur.execute(f"SELECT max(abs(x.score - y.score)), count(*) FROM {a} x JOIN {b} y USING (id)")
        d, n = cur.fetchone()
        if n != self.a.n:
            raise SystemExit(f"{a} and {b} share {n} ids, expected {self.a.n}")
        return d

    def adapt_latency(self):
        log("== 4. ecom_adapt latency (texts already embedded)")
        c = self.conn()
        prior = c.cursor()
        prior.execute("SELECT hyper->'prior' FROM ecom.heads WHERE tenant IS NULL AND active")
        learned = prior.fetchone()[0]
        c.close()
        # the learned prior may keep the taste frozen on these events; the
        # costly case (384 more parameters, conjugate gradients) is a free
        # taste, so it is measured with the prior's taste set by hand too
        free = dict(learned, taste=1.0)
        for label, p in [("", learned), (", taste free", free)]:
            self.set_global_prior(p)
            self.adapt_latency_with(label)
        self.set_global_prior(learned)

    def set_global_prior(self, prior):
        c = self.conn()
        c.cursor().execute("UPDATE ecom.heads SET hyper = jsonb_set(hyper, '{prior}', %s::jsonb) WHERE tenant IS NULL AND active",
                           (json.dumps(prior),))
        c.close()

    def adapt_latency_with(self, label):
        for k in (16, 64):
            for steps in (5, 20):
                c = self.conn()
                cur = c.cursor()
                cur.execute(f"""CREATE TEMP TABLE sup AS SELECT context, item, behaviour, label, features
                                  FROM bench_events WHERE tenant = 'Crime' ORDER BY item LIMIT {k}""")
                cur.execute("SELECT count(*) FROM ecom_embed_batch(ARRAY(SELECT context FROM sup UNION ALL SELECT item FROM sup))")
                ts = [self.timed(cur, "SELECT ecom_adapt('bench_adapt', 'sup', steps => %s)", (steps,))
                      for _ in range(7)]
                c.close()
                best, med = min(ts) * 1e3, statistics.median(ts) * 1e3
                self.add("4", f"`ecom_adapt` K = {k}, steps {steps}{label}", f"{best:.1f} ms (median {med:.1f})",
                         "— (no alternative adapts in SQL)", "—", "≤ 20 ms", med <= 20)
        self.conn().cursor().execute("SELECT ecom_forget('bench_adapt')")

    def cold_start(self):
        log("== 5. cold start")
        for variant in ("fp32", "int8"):
            ts = []
            for _ in range(5):
                c = self.conn(model_variant=variant)
                ts.append(self.timed(c.cursor(), "SELECT ecom_embed('hello world')"))
                c.close()
            med, worst = statistics.median(ts) * 1e3, max(ts) * 1e3
            self.add("5", f"first `ecom_embed` in a new connection, {variant}",
                     f"{med:.0f} ms (max {worst:.0f})", "16 s reported for PostgresML", "—", "≤ 500 ms",
                     worst <= 500)

    @staticmethod
    def mem(pid):
        out = {}
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                m = re.match(r"(Rss|Pss|Private_Clean|Private_Dirty):\s+(\d+) kB", line)
                if m:
                    out[m.group(1)] = int(m.group(2)) / 1024
        out["Private"] = out.pop("Private_Clean") + out.pop("Private_Dirty")
        return out

    def memory(self):
        log("== 6. memory per backend")
        for variant in ("fp32", "int8"):
            conns, growth = [], []
            for _ in range(8):
                c = self.conn(model_variant=variant)
                cur = c.cursor()
                cur.execute("SELECT pg_backend_pid()")
                pid = cur.fetchone()[0]
                before = self.mem(pid)
                cur.execute("SELECT ecom_embed('hello world')")
                cur.execute("SELECT count(*) FROM ecom_embed_batch(ARRAY(SELECT item_text FROM bench_products LIMIT 256))")
                conns.append((c, pid, before))
            for c, pid, before in conns:
                after = self.mem(pid)
                growth.append({k: after[k] - before[k] for k in after})
            rss = statistics.median(g["Rss"] for g in growth)
            priv = statistics.median(g["Private"] for g in growth)
            pss_total = sum(g["Pss"] for g in growth)
            limit = 120 if variant == "fp32" else 50
            self.add("6", f"backend memory growth after the model loads, {variant}",
                     f"RSS +{rss:.0f} MB (private +{priv:.0f} MB); 8 connections: PSS +{pss_total:.0f} MB total",
                     "—", "—", f"≤ {limit} MB per backend", rss <= limit)
            for c, _, _ in conns:
                c.close()

    def concurrency(self):
        log("== 7. pgbench: ecom_predict on distinct texts")
        script = os.path.join(self.a.work, "predict.sql")
        with open(script, "w") as fh:
            fh.write("\\set r random(1, 2000000000)\n"
                     "SELECT ecom_predict('bench', 'shopper ' || :r || ' likes trail gear', "
                     "'item ' || :r || ' waterproof hiking boots', 'purchase', '{0.5,0.5}');\n")
        self.pgbench = []
        for threads in (1, 2):
            for clients in (1, 2, 4, 8):
                prefix = os.path.join(self.a.work, f"pgb_{threads}_{clients}")
                for f in glob.glob(prefix + "*"):
                    os.remove(f)
                env = dict(os.environ, PGOPTIONS=f"-c pg_ecom.intra_op_threads={threads}")
                out = subprocess.run([self.a.pgbench, "-n", "-h", "127.0.0.1", "-p", str(self.a.port), "-U", "postgres",
                                      "-f", script, "-c", str(clients), "-j", str(clients), "-T", str(self.a.seconds),
                                      "-l", f"--log-prefix={prefix}", "postgres"],
                                     check=True, capture_output=True, text=True, env=env, cwd=self.a.work).stdout
                tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
                lat = []
                for f in glob.glob(prefix + "*"):
                    lat += [int(l.split()[2]) / 1000 for l in open(f)]
                lat.sort()
                p95 = lat[int(0.95 * (len(lat) - 1))]
                self.pgbench.append((threads, clients, tps, p95, len(lat)))
                log(f"  intra_op_threads={threads} clients={clients}: {tps:.1f} tps, p95 {p95:.1f} ms")

    # -------------------------------------------------------------- report
    def write(self):
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=HERE).stdout.strip() or "?"
        cur = self.conn().cursor()
        cur.execute("SELECT version()")
        pgv = cur.fetchone()[0].split(" on ")[0]
        L = ["<!-- generated by benches/run.sh: do not edit by hand -->",
             f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `benches/run.sh`, commit {commit}.",
             f"Machine: {os.cpu_count()} cores ({cpu}), {mem_gb:.0f} GiB, {platform.platform()}, {pgv}, "
             f"ONNX Runtime {self.ort_version()} (CPU). {self.a.n:,} products; best of {self.a.repeat} unless noted; "
             f"intra_op_threads 1 unless noted.",
             "",
             "| # | measurement | pg_ecom | alternative | ratio | target | met |",
             "|---|---|---|---|---|---|---|"]
        for s, what, ours, alt, ratio, target, met in self.rows:
            mark = "n/a" if met is None else ("yes" if met else "**no**")
            L.append(f"| {s} | {what} | {ours} | {alt} | {ratio} | {target} | {mark} |")
        if "score_diff_emb" in self.facts:
            L += ["",
                  f"Scores agree with the client pipeline's numpy head: max |Δ| = {self.facts['score_diff_emb']:.1e} "
                  f"(stored embeddings), {self.facts['score_diff_text']:.1e} (from text, two encoders)."]
        if self.pgbench:
            L += ["",
                  f"7. `pgbench -c N -j N -T {self.a.seconds}`, one `ecom_predict` per transaction on two texts never "
                  "seen before (each transaction encodes two texts):",
                  "",
                  "| intra_op_threads | clients | tps | p95 latency | transactions |",
                  "|---|---|---|---|---|"]
            for threads, clients, tps, p95, n in self.pgbench:
                L.append(f"| {threads} | {clients} | {tps:.1f} | {p95:.1f} ms | {n} |")
        if self.lengths:
            L += ["", "Limits: `ecom_embed_batch` of 256 texts by length (tokens incl. [CLS]/[SEP]), 1 thread:", "",
                  "| tokens | fp32 emb/s | int8 emb/s |", "|---|---|---|"]
            for _, tok, f, _, q in self.lengths:
                L.append(f"| {tok} | {f:,.0f} | {q:,.0f} |")
        L.append("<!-- end of generated section -->")
        text = "\n".join(L)
        path = self.a.results
        old = open(path, encoding="utf-8").read() if os.path.exists(path) else "# benches/run.sh\n"
        start, end = "<!-- generated by benches/run.sh", "<!-- end of generated section -->"
        if start in old:
            i, j = old.index(start), old.index(end) + len(end)
            new = old[:i] + text + old[j:]
        else:
            new = old.rstrip("\n") + "\n\n## Driver results (`benches/run.sh`)\n\n" + text + "\n"
        open(path, "w", encoding="utf-8").write(new)
        print(text)

    def ort_version(self):
        cur = self.conn().cursor()
        cur.execute("SELECT ecom_model_info()->>'onnxruntime_version'")
        return cur.fetchone()[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--data", required=True, help="directory with ml-100k.item")
    ap.add_argument("--work", required=True)
    ap.add_argument("--pgbench", required=True)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--only", default="1,2,4,5,6,L,7")
    ap.add_argument("--results", default=os.path.join(HERE, "RESULTS.md"),
                    help="file whose generated section is replaced")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    b = Bench(a)
    b.prepare()
    only = set(a.only.split(","))
    if "1" in only:
        b.embedding_throughput()
    if "2" in only:
        b.scoring()
    if "4" in only:
        b.adapt_latency()
    if "5" in only:
        b.cold_start()
    if "6" in only:
        b.memory()
    b.lengths = []
    if "L" in only:
        b.text_length()
    b.pgbench = []
    if "7" in only:
        b.concurrency()
    b.write()


if __name__ == "__main__":
    main()
