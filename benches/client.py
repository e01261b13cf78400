"""The alternatives pg_ecom is measured against, in the same run as the SQL
figures (benches/run.sh calls this):

  embed   standalone onnxruntime in Python on the same ONNX file, same
          tokenizer, thread count, truncation, batch size and length
          grouping as the extension: texts in memory, no database.
  score   a client pipeline for one user context over a products table:
          psycopg2 fetch -> (onnxruntime encode) -> the head's maths in
          numpy -> COPY the scores back into a table.

Prints one JSON object per measurement on stdout.
"""
import argparse
import io
import json
import time

import numpy as np
import onnxruntime as ort
import psycopg2
from tokenizers import Tokenizer

BEHAVIOURS = ["browse", "click", "cart", "purchase"]


class Encoder:
    def __init__(self, model_dir, variant, threads, max_len=256):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        name = "model.onnx" if variant == "fp32" else "model_int8.onnx"
        self.sess = ort.InferenceSession(f"{model_dir}/{name}", opts, providers=["CPUExecutionProvider"])
        self.tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
        self.tok.no_padding()
        self.tok.enable_truncation(max_len)

    def embed(self, texts, batch=32):
        ids = [e.ids for e in self.tok.encode_batch(texts)]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for s in range(0, len(order), batch):
            chunk = order[s:s + batch]
            width = max(len(ids[i]) for i in chunk)
            a = np.zeros((len(chunk), width), dtype=np.int64)
            m = np.zeros((len(chunk), width), dtype=np.int64)
            for r, i in enumerate(chunk):
                a[r, :len(ids[i])] = ids[i]
                m[r, :len(ids[i])] = 1
            out[chunk] = self.sess.run(["embedding"], {"input_ids": a, "attention_mask": m})[0]
        return out


def head_scores(weights, t, k, b, u, V, F):
    """p_b = sigmoid(g_b (W_b . [v, u*v, cos]) + A_b . f + c_b), as src/head.rs."""
    nb = len(BEHAVIOURS)
    w = np.asarray(weights, dtype=np.float32)
    W = w[:nb * t].reshape(nb, t)[b]
    g = w[nb * t + b]
    A = w[nb * t + nb:nb * t + nb + nb * k].reshape(nb, k)[b] if k else np.zeros(0, np.float32)
    c = w[nb * t + nb + nb * k + b]
    d = (t - 1) // 2
    cos = (V @ u) / (np.linalg.norm(V, axis=1) * np.linalg.norm(u) + 1e-30)
    s = V @ W[:d] + (V * u) @ W[d:2 * d] + W[2 * d] * cos
    z = g * s + (F @ A if k else 0.0) + c
    return 1.0 / (1.0 + np.exp(-z))


def parse_real_array(s):
    return np.array(s.strip("{}").split(","), dtype=np.float32)


def copy_back(cur, table, ids, scores):
    cur.execute(f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id int, score float8)")
    buf = io.StringIO("".join(f"{i}\t{s!r}\n" for i, s in zip(ids, scores.tolist())))
    cur.copy_expert(f"COPY {table} FROM STDIN", buf)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["embed", "score"])
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--dsn")
    ap.add_argument("--texts", help="file with one text per line (embed)")
    ap.add_argument("--variant", default="fp32")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tenant", default="bench")
    ap.add_argument("--context", default="")
    ap.add_argument("--from-text", action="store_true", help="encode item texts instead of reading stored embeddings")
    a = ap.parse_args()

    if a.what == "embed":
        texts = open(a.texts, encoding="utf-8").read().splitlines()
        enc = Encoder(a.model_dir, a.variant, a.threads)
        enc.embed(texts[:32])  # warm-up, as the SQL side
        t0 = time.perf_counter()
        e = enc.embed(texts)
        dt = time.perf_counter() - t0
        print(json.dumps({"what": "embed", "variant": a.variant, "threads": a.threads, "n": len(texts),
                          "seconds": dt, "per_s": len(texts) / dt, "first": e[0][:3].tolist()}))
        return

    t0 = time.perf_counter()
    conn = psycopg2.connect(a.dsn)
    cur = conn.cursor()
    cur.execute("""SELECT weights, (hyper->>'t')::int, (hyper->>'k')::int FROM ecom.heads
                    WHERE (tenant = %s OR tenant IS NULL) AND active ORDER BY tenant NULLS LAST LIMIT 1""",
                (a.tenant,))
    weights, t, k = cur.fetchone()
    enc = Encoder(a.model_dir, a.variant, a.threads) if a.from_text else None
    if a.from_text:
        cur.execute("SELECT id, item_text FROM bench_products ORDER BY id")
        rows = cur.fetchall()
        ids = [r[0] for r in rows]
        both = enc.embed([a.context] + [r[1] for r in rows])
        u, V = both[0], both[1:]
    else:
        cur.execute("SELECT embedding::text FROM bench_users WHERE id = 1")
        u = parse_real_array(cur.fetchone()[0])
        cur.execute("SELECT id, embedding::text FROM bench_products ORDER BY id")
        rows = cur.fetchall()
        ids = [r[0] for r in rows]
        V = np.stack([parse_real_array(r[1]) for r in rows])
    F = np.full((len(ids), k), 0.5, dtype=np.float32)
    scores = head_scores(weights, t, k, BEHAVIOURS.index("purchase"), u, V, F)
    table = "client_scores_text" if a.from_text else "client_scores_emb"
    copy_back(cur, table, ids, scores)
    conn.commit()
    dt = time.perf_counter() - t0
    print(json.dumps({"what": "score", "from_text": a.from_text, "n": len(ids), "seconds": dt, "table": table}))


if __name__ == "__main__":
    main()
