#!/usr/bin/env python3
"""Does the posterior mean what it says? Coverage of ecom_predict_interval's
90% credible intervals of the click probability, through the serving loop.

Clicks here are Bernoulli draws from a known truth, so that a probability
can be covered or not (a MovieLens rating is one outcome, not a
probability). Two truths (--truth):
- fitted (default): a head adapted (ecom_adapt, method 'meta') to *every*
  rating of that tenant: a real user's or store's taste, not a draw from
  the prior the learner starts from. A fit shrinks toward the prior along
  every direction the ratings do not inform, so this truth varies less
  than the prior says tastes do: it favours coverage above 90%.
- prior: one draw per tenant and seed from the global head's prior
  (gain, bias, taste directions, isotropic taste, each item's own effect),
  added to the global head's logit: simulation-based calibration (Cook,
  Gelman and Rubin 2006). Inference that is exact covers 90% on average at
  every T; what departs from it is the Laplace approximation and what the
  posterior carried from one ecom_learn to the next leaves out.
The learner is a fresh
tenant served by ecom_serve (Thompson, k of m candidates a round), whose
clicks are drawn from the truth's probabilities, ecom_feedback, and
ecom_learn (activate 'always') every --learn-every rounds.

At each checkpoint T (rounds served; T = 0 is the global head, before any
event of the tenant) the learner's 90% intervals are asked for --pairs
(context, item) pairs of the tenant's pool, and coverage is the share whose
true probability lies inside. The target is 85-95%. Also reported: the mean
width, which side the misses fall on, and the mean |probability - truth|.

Tenants are those of sim.py: --shape user (held-out MovieLens users) or
--shape store (held-out occupation stores, visitors with their own
contexts), text only; the global head is meta-trained as sim.py does.

usage: calibration.py --data DIR --port PORT [--shape user|store] [--truth fitted|prior] [--small]
"""
import argparse
import json
import math
import os
import random
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sim  # noqa: E402

LEVEL = 0.9
TRUTH = {"fitted": "fitted to all ratings", "prior": "drawn from the prior"}


def intervals(db, name, tenant, pairs, level):
    """(probability, lower, upper) of the head serving `name` for each pool
    index in `pairs`, each with its visitor's context."""
    ctx = [tenant["ctx"][i] for i in pairs]
    items = [tenant["texts"][i] for i in pairs]
    rows = db.rows(
        "SELECT iv.probability, iv.lower, iv.upper "
        "FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS x(c, i, n), "
        "LATERAL ecom_predict_interval(%s, x.c, x.i, 'click', %s) iv ORDER BY x.n",
        (ctx, items, name, level))
    return rows


def truth_of(db, tenant):
    """The truth's click probability of every pool movie: a head adapted
    to all of the tenant's ratings."""
    name = "truth|" + tenant["name"]
    table = "cal_support_" + str(abs(hash(name)) % 10**9)
    db.exec(f"DROP TABLE IF EXISTS {table}")
    db.exec(f"CREATE TABLE {table} (context text, item text, behaviour text, label boolean)")
    db.exec(f"INSERT INTO {table} SELECT c, i, 'click', y FROM unnest(%s::text[], %s::text[], %s::boolean[]) "
            "AS x(c, i, y)", (tenant["ctx"], tenant["texts"], tenant["labels"]))
    db.one("SELECT ecom_adapt(%s, %s::regclass)", (name, table))
    db.exec(f"DROP TABLE {table}")
    truth = sim.score_pool(db, name, tenant)
    db.forget(name)
    return truth


def normals(rng, n):
    return [rng.gauss(0.0, 1.0) for _ in range(n)]


def prior_truth_parts(db, tenant, problems):
    """What a draw from the global head's prior needs for each pool movie:
    the global logit, text score and gain (ecom_explain), the embedding and
    the taste directions' projections. The prior variance of each logit,
    computed here from the stored prior (gain, bias, directions, isotropic
    taste, and 1/item for each item's own effect while items are not
    frozen), must be what ecom_predict_interval reports at the global head
    (its 90% interval read back to a logit standard deviation), within 2%
    either way: else it is a problem."""
    prior, basis, k = db.one("SELECT hyper->'prior', taste_basis, n_features FROM ecom.heads "
                             "WHERE tenant IS NULL AND active")
    if k:
        problems.append("--truth prior draws text-only heads; this one has side features")
    b, dims = 1, None
    rows = db.rows(
        "SELECT e, ecom_embed(x.i), iv.lower, iv.upper "
        "FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS x(c, i, n), "
        "LATERAL ecom_explain(NULL, x.c, x.i, 'click') e, "
        "LATERAL ecom_predict_interval(NULL, x.c, x.i, 'click', 0.9) iv ORDER BY x.n",
        (tenant["ctx"], tenant["texts"]))
    z90 = 1.6448536269514722
    lg = lambda p: math.log(min(max(p, 1e-15), 1 - 1e-15) / (1 - min(max(p, 1e-15), 1 - 1e-15)))  # noqa: E731
    item_var = 1 / prior["item"] if prior.get("item", 1e6) < 1e6 else 0.0
    dims = len(rows[0][1])
    ranks = [int(r) for r in basis[:4]] if basis else [0, 0, 0, 0]
    at, var, u = 4, [], []
    for bb in range(4 if basis else 0):
        if bb == b:
            var = basis[at:at + ranks[bb]]
            u = [basis[at + ranks[bb] + j * dims:at + ranks[bb] + (j + 1) * dims] for j in range(ranks[bb])]
        at += ranks[bb] * (1 + dims)
    parts = []
    for e, v, lo, hi in rows:
        e = e if isinstance(e, dict) else json.loads(e)
        s, g = e["text"]["score"], e["text"]["gain"]
        proj = [sum(a * x for a, x in zip(row, v)) for row in u]
        par = (s * s / prior["gain"] + 1 / prior["bias"] + sum(w * q * q for w, q in zip(var, proj))
               + sum(x * x for x in v) / prior["taste"])
        tot = ((lg(hi) - lg(lo)) / (2 * z90)) ** 2
        if abs(par + item_var - tot) > 0.02 * tot + 1e-6:
            problems.append(f"prior variance of a logit: {par + item_var:.5f} from the stored prior, "
                            f"{tot:.5f} from ecom_predict_interval")
        parts.append({"logit": e["logit"], "s": s, "gain": g, "v": v, "proj": proj, "item_var": item_var})
    return {"prior": prior, "var": var, "parts": parts}


def prior_truth(tp, tenant, seed):
    """One draw of the tenant's truth from the global head's prior (the
    parameters, then each item's own effect, one per distinct text)."""
    rng = random.Random(f"truth|{seed}|{tenant['uid']}")
    pr = tp["prior"]
    dg = rng.gauss(0, 1) / math.sqrt(pr["gain"])
    db_ = rng.gauss(0, 1) / math.sqrt(pr["bias"])
    alpha = [rng.gauss(0, 1) * math.sqrt(w) for w in tp["var"]]
    dims = len(tp["parts"][0]["v"])
    beta = [x / math.sqrt(pr["taste"]) for x in normals(rng, dims)]
    item = {}
    out = []
    for text, p in zip(tenant["texts"], tp["parts"]):
        if text not in item:
            item[text] = rng.gauss(0, 1)
        z = (p["logit"] + (max(p["gain"] + dg, 0.0) - p["gain"]) * p["s"] + db_
             + sum(a * q for a, q in zip(alpha, p["proj"])) + sum(b * x for b, x in zip(beta, p["v"]))
             + item[text] * math.sqrt(p["item_var"]))
        out.append(1 / (1 + math.exp(-z)))
    return out


def run(db, tenant, seed, truth, a, problems):
    """One learner: coverage at each checkpoint, then forgotten."""
    name = f"cal|{tenant['name']}|{seed}"
    db.forget(name)
    rng = random.Random(f"click|{seed}|{tenant['uid']}")
    pairs = random.Random(f"pairs|{seed}|{tenant['uid']}").sample(
        range(len(tenant["texts"])), min(a.pairs, len(tenant["texts"])))
    draws = sim.candidate_draws(tenant, seed, a.rounds, a.m)
    out = {}

    def measure(T):
        rows = intervals(db, name, tenant, pairs, LEVEL)
        if len(rows) != len(pairs):
            problems.append(f"{name}: {len(rows)} intervals for {len(pairs)} pairs")
            return
        bad = [r for r in rows if not (0 <= r[1] <= r[0] <= r[2] <= 1)]
        if bad:
            problems.append(f"{name}: an interval does not hold its probability: {bad[0]}")
        tr = [truth[i] for i in pairs]
        out[T] = {
            "covered": sum(lo <= t <= hi for (_, lo, hi), t in zip(rows, tr)) / len(rows),
            "below": sum(t < lo for (_, lo, _), t in zip(rows, tr)) / len(rows),
            "above": sum(t > hi for (_, _, hi), t in zip(rows, tr)) / len(rows),
            "width": statistics.fmean(hi - lo for _, lo, hi in rows),
            "error": statistics.fmean(abs(p - t) for (p, _, _), t in zip(rows, tr)),
        }

    for r, cands in enumerate(draws):
        if r in a.checkpoints:
            measure(r)
        context, texts, _ = sim.request(tenant, cands)
        shown = db.serve(name, context, texts, a.k, "thompson", seed * 1_000_003 + r)
        db.feedback([iid for iid, idx, *_ in shown if rng.random() < truth[cands[idx - 1]]])
        if (r + 1) % a.learn_every == 0:
            db.learn(name, "always")
    measure(a.rounds)
    versions = db.heads(name)[2]
    if not versions:
        problems.append(f"{name}: ecom_learn stored no version")
    db.forget(name)
    return out


def summary(results, tenants, seeds, checkpoints):
    """Per checkpoint: coverage mean ± std over seeds (each seed's mean
    over tenants), the worst tenant (mean over seeds), width, misses."""
    lines = ["| T (rounds) | coverage of 90% intervals | worst tenant | mean width | truth below / above "
             "| mean abs(p − truth) |", "|---|---|---|---|---|---|"]
    for T in checkpoints:
        per_seed = [statistics.fmean(results[(t["uid"], s)][T]["covered"] for t in tenants) for s in seeds]
        per_tenant = {t["uid"]: statistics.fmean(results[(t["uid"], s)][T]["covered"] for s in seeds)
                      for t in tenants}
        worst = min(per_tenant, key=per_tenant.get)
        allv = [results[(t["uid"], s)][T] for t in tenants for s in seeds]
        lines.append(
            f"| {T} | {100 * statistics.fmean(per_seed):.1f}% ± "
            f"{100 * (statistics.stdev(per_seed) if len(per_seed) > 1 else 0):.1f} "
            f"| {100 * per_tenant[worst]:.1f}% ({worst}) "
            f"| {statistics.fmean(v['width'] for v in allv):.3f} "
            f"| {100 * statistics.fmean(v['below'] for v in allv):.1f}% / "
            f"{100 * statistics.fmean(v['above'] for v in allv):.1f}% "
            f"| {statistics.fmean(v['error'] for v in allv):.3f} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--shape", choices=["user", "store"], default="user")
    ap.add_argument("--small", action="store_true", help="the CI configuration: fails only if something breaks")
    ap.add_argument("--truth", choices=["fitted", "prior"], default="fitted",
                    help="fitted: a head adapted to all of the tenant's ratings; prior: a draw from the global "
                         "head's prior (simulation-based calibration), one per tenant and seed")
    ap.add_argument("--tenants", type=int, help="default 8 users, 6 stores")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--checkpoints", default="0,20,100")
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--m", type=int, default=20)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--learn-every", type=int, default=10)
    ap.add_argument("--meta-events", type=int, help="sampled per meta-train user (default 60) or store (600)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=".ecom/calibration")
    ap.add_argument("--md", help="rewrite this markdown file's generated calibration section")
    ap.add_argument("--command", default="benches/loop/calibration.py")
    a = ap.parse_args(argv)
    store = a.shape == "store"
    if a.tenants is None:
        a.tenants = 6 if store else 8
    # sim.py's world, with its defaults (text only)
    w = argparse.Namespace(
        tenants=a.tenants, m=a.m, history=5, min_ratings=300, min_rate=0.2, max_rate=0.8, meta_users=200,
        meta_events=a.meta_events or (600 if store else 60), meta_min_ratings=40, stores="occupation", side_features=False,
        visitors=40, min_pool=40, min_visitors=20, meta_min_events=200)
    if a.small:
        a.tenants = w.tenants = 2
        a.seeds, a.rounds, a.checkpoints, a.pairs = 1, 30, "0", 40
        w.meta_users, w.meta_events = 60, 150 if store else 40
    a.checkpoints = sorted({int(x) for x in a.checkpoints.split(",") if int(x) < a.rounds})
    os.makedirs(a.out, exist_ok=True)
    items, by_user, occupation = sim.load_movielens(a.data)
    world = sim.build_store_world(items, by_user, occupation, w) if store else sim.build_world(items, by_user, w)
    tenants, seeds = world["tenants"], list(range(1, a.seeds + 1))
    db = sim.DB(f"host=127.0.0.1 port={a.port} user=postgres dbname=postgres")
    t0 = time.perf_counter()
    meta = db.meta_train(world["events"])
    library = db.library()
    sim.log(f"calibration: {len(tenants)} {world['noun']}s, meta-trained in {time.perf_counter() - t0:.0f} s")
    problems = []
    jobs = [(t, s) for s in seeds for t in tenants]
    with ThreadPoolExecutor(a.workers) as ex:
        if a.truth == "fitted":
            fitted = dict(zip((t["uid"] for t in tenants), ex.map(lambda t: truth_of(db, t), tenants)))
            truths = {(t["uid"], s): fitted[t["uid"]] for t, s in jobs}
        else:
            tps = dict(zip((t["uid"] for t in tenants),
                           ex.map(lambda t: prior_truth_parts(db, t, problems), tenants)))
            truths = {(t["uid"], s): prior_truth(tps[t["uid"]], t, s) for t, s in jobs}
    for (uid, s), tr in truths.items():
        if any(p is None for p in tr):
            problems.append(f"the truth left movies of {uid} unscored")
    with ThreadPoolExecutor(a.workers) as ex:
        outs = list(ex.map(lambda j: run(db, j[0], j[1], truths[(j[0]["uid"], j[1])], a, problems), jobs))
    results = {(t["uid"], s): o for (t, s), o in zip(jobs, outs)}
    checkpoints = a.checkpoints + [a.rounds]
    for key, o in results.items():
        if set(o) != set(checkpoints):
            problems.append(f"{key}: measured at {sorted(o)}, not {checkpoints}")
    elapsed = time.perf_counter() - t0
    table = summary(results, tenants, seeds, checkpoints) if not problems else "(not summarised: problems)"
    md = "\n".join([
        f"### Calibration, {world['noun']}s, truth {TRUTH[a.truth]} (`{a.command}`)",
        "",
        f"{library}; {len(tenants)} {world['noun']}s × {len(seeds)} seeds, T rounds of ecom_serve (Thompson, "
        f"{a.k} shown; {world['draw']}) with clicks drawn from the truth's probabilities, ecom_learn every "
        f"{a.learn_every} rounds; coverage over {a.pairs} pairs of each tenant's pool; {elapsed:.0f} s.",
        f"Global head: {world['meta']}.",
        "",
        table,
        "",
    ])
    with open(os.path.join(a.out, "report.md"), "w") as f:
        f.write(md)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"args": vars(a), "meta": meta, "problems": problems,
                   "results": {f"{k[0]}|{k[1]}": v for k, v in results.items()}}, f, indent=1, default=str)
    print(md)
    if a.md and not problems:
        sim.update_md(a.md, md, f"calibration, {world['noun']}s, truth {a.truth}"
                      + (f", {a.meta_events} meta-train events each" if a.meta_events else ""))
    if problems:
        sim.log(f"FAILED: {len(problems)} problem(s):")
        for p in problems[:50]:
            sim.log("  " + p)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
