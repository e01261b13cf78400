#!/usr/bin/env python3
"""Turns auc.csv into the evaluation table (markdown) and checks the claims."""
import csv
import statistics as st
import sys
from collections import defaultdict

out_dir, cmd = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(f"{out_dir}/auc.csv")))
per_seed = defaultdict(list)  # (method, k, seed) -> tenant AUCs
per_tenant = defaultdict(list)
for r in rows:
    if r["auc"] == "":
        continue
    per_seed[(r["method"], int(r["k"]), int(r["seed"]))].append(float(r["auc"]))
    per_tenant[(r["method"], int(r["k"]), r["tenant"])].append(float(r["auc"]))
ks = sorted({k for (_, k, _) in per_seed if k > 0})
methods = [("a_popularity", "(a) item popularity"), ("b_global", "(b) global head, no meta-learning, no adaptation"),
           ("c_scratch", "(c) per-tenant head from scratch"), ("d_finetune", "(d) global head fine-tuned on the support set"),
           ("e0_meta_noadapt", "(e0) meta-learned head, before adaptation"), ("e_meta_adapt", "(e) meta-learned head + adaptation (ours)")]

def cell(m, k):
    kk = k if m.startswith(("c_", "d_", "e_")) else 0
    seeds = sorted(s for (mm, k2, s) in per_seed if mm == m and k2 == kk)
    means = [st.mean(per_seed[(m, kk, s)]) for s in seeds]
    if not means:
        return None, "–"
    sd = st.stdev(means) if len(means) > 1 else 0.0
    return st.mean(means), f"{st.mean(means):.4f} ± {sd:.4f}"

lines = ["| method | " + " | ".join(f"K = {k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
best = {}
for m, label in methods:
    vals = [cell(m, k) for k in ks]
    lines.append(f"| {label} | " + " | ".join(v[1] for v in vals) + " |")
    for k, v in zip(ks, vals):
        best[(m, k)] = v[0]
def worst_tenant(m, k):
    kk = k if m.startswith(("c_", "d_", "e_")) else 0
    per_t = {t: st.mean(v) for (mm, k2, t), v in per_tenant.items() if mm == m and k2 == kk}
    if not per_t:
        return "–"
    t = min(per_t, key=per_t.get)
    return f"{per_t[t]:.4f} ({t})"

for m, label in [("a_popularity", "(a)"), ("e0_meta_noadapt", "(e0)"), ("e_meta_adapt", "(e)")]:
    lines.append(f"| worst tenant, {label}, mean over seeds | " + " | ".join(worst_tenant(m, k) for k in ks) + " |")
n_seeds = len({s for (_, _, s) in per_seed})
try:
    print(f"Protocol: {open(f'{out_dir}/protocol.txt').read().strip()}.\n")
except FileNotFoundError:
    pass
print(f"AUC on meta-test tenants' query sets, mean ± std over {n_seeds} seed(s) of the per-seed mean over tenants.\n")
print(f"Command: `{cmd}`\n")
print("\n".join(lines))
print()
for k in ks:
    e = best[("e_meta_adapt", k)]
    others = {m: best[(m, k)] for m, _ in methods if m not in ("e_meta_adapt", "e0_meta_noadapt")}
    beaten = [m for m, v in others.items() if v is not None and e is not None and e > v]
    print(f"- K = {k}: (e) beats {len(beaten)} of {len(others)} baselines ({', '.join(m.split('_')[0] for m in beaten)}).")
def paired(m1, m2, k):
    """mean over seeds of the per-seed mean difference, and its std"""
    k1 = k if m1.startswith(("c_", "d_", "e_")) else 0
    k2 = k if m2.startswith(("c_", "d_", "e_")) else 0
    diffs = []
    for s in sorted({s for (_, _, s) in per_seed}):
        a, b = per_seed.get((m1, k1, s)), per_seed.get((m2, k2, s))
        if a and b:
            diffs.append(st.mean(a) - st.mean(b))
    if not diffs:
        return "–"
    return f"{st.mean(diffs):+.4f} ± {st.stdev(diffs) if len(diffs) > 1 else 0.0:.4f}"

for k in ks:
    print(f"- K = {k}: (e) − (e0) = {paired('e_meta_adapt', 'e0_meta_noadapt', k)}; (e) − (a) = {paired('e_meta_adapt', 'a_popularity', k)}; "
          f"(e0) − (a) = {paired('e0_meta_noadapt', 'a_popularity', k)}; (b) − (a) = {paired('b_global', 'a_popularity', k)}.")
drops = []
for (m, k, t), v in per_tenant.items():
    if m == "e_meta_adapt":
        base = per_tenant.get(("e0_meta_noadapt", 0, t))
        if base:
            drops.append((st.mean(v) - st.mean(base), k, t))
worst = min(drops) if drops else None
if worst:
    print(f"- Adaptation vs the same head before adaptation, per tenant and K, averaged over seeds: worst change {worst[0]:+.4f} ({worst[2]}, K = {worst[1]}); "
          f"{sum(d < -0.01 for d, _, _ in drops)} of {len(drops)} (tenant, K) pairs lose more than 0.01.")
per_t = defaultdict(list)
for d, k, t in drops:
    per_t[t].append(d)
if per_t:
    t_worst = min(per_t.items(), key=lambda kv: st.mean(kv[1]))
    print(f"- The same, per tenant averaged over seeds and K: worst {st.mean(t_worst[1]):+.4f} ({t_worst[0]}); "
          f"{sum(st.mean(v) < -0.01 for v in per_t.values())} of {len(per_t)} tenants lose more than 0.01.")
try:
    ms = [float(r["ms"]) for r in csv.DictReader(open(f"{out_dir}/adapt_ms.csv")) if r["method"] == "e_meta_adapt"]
    if ms:
        print(f"- `ecom_adapt` wall time in these runs (texts already cached): median {st.median(ms):.1f} ms, max {max(ms):.1f} ms over {len(ms)} calls.")
except FileNotFoundError:
    pass
