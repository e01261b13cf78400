#!/usr/bin/env python3
"""Compares two evaluations of the same protocol and seeds that differ only
in the encoder (benches/eval/finetune.sh): the stock one and the one
fine-tuned per seed on that seed's meta-train tenants.

usage: compare.py STOCK_DIR FINETUNED_DIR  (each holds auc.csv and protocol.txt)

For each method: mean ± std over seeds of the per-seed mean AUC over
held-out tenants, the paired difference per seed, and the held-out tenant
that lost most (the per-tenant difference, mean over the seeds it was
held out in).
"""
import csv
import statistics as st
import sys
from collections import defaultdict


def load(d):
    out = defaultdict(dict)  # (method, k) -> {(seed, tenant): auc}
    for r in csv.DictReader(open(f"{d}/auc.csv")):
        if r["auc"] != "":
            out[(r["method"], int(r["k"]))][(int(r["seed"]), r["tenant"])] = float(r["auc"])
    return out


def per_seed(cells):
    by = defaultdict(list)
    for (seed, _), v in cells.items():
        by[seed].append(v)
    return {s: st.mean(v) for s, v in by.items()}


def ms(vals):
    vals = list(vals)
    sd = st.stdev(vals) if len(vals) > 1 else 0.0
    return f"{st.mean(vals):.4f} ± {sd:.4f}"


stock, tuned = load(sys.argv[1]), load(sys.argv[2])
protocol = open(f"{sys.argv[2]}/protocol.txt").read().strip()
ks = sorted({k for (_, k) in stock if k > 0})
rows = [("a_popularity", 0, "(a) item popularity"),
        ("b_global", 0, "(b) pooled global head"),
        ("e0_meta_noadapt", 0, "(e0) meta-learned global head")]
rows += [("e_meta_adapt", k, f"(e) adapted, K = {k}") for k in ks]
print(f"Protocol: {protocol}.\n")
print("| method | stock encoder | fine-tuned encoder | difference (paired by seed) | worst held-out tenant's difference |")
print("|---|---|---|---|---|")
for m, k, label in rows:
    a, b = stock.get((m, k), {}), tuned.get((m, k), {})
    common = sorted(set(a) & set(b))
    if not common:
        continue
    sa, sb = per_seed({c: a[c] for c in common}), per_seed({c: b[c] for c in common})
    diffs = [sb[s] - sa[s] for s in sorted(sa)]
    by_tenant = defaultdict(list)
    for seed, t in common:
        by_tenant[t].append(b[(seed, t)] - a[(seed, t)])
    worst_t = min(by_tenant, key=lambda t: st.mean(by_tenant[t]))
    print(f"| {label} | {ms(sa.values())} | {ms(sb.values())} | **{st.mean(diffs):+.4f}** ± {st.stdev(diffs) if len(diffs) > 1 else 0:.4f} "
          f"| {st.mean(by_tenant[worst_t]):+.4f} ({worst_t}) |")
