#!/usr/bin/env python3
"""Is a fine-tuned encoder as fast as the stock one? (issue 23: "speed is
unchanged for the same architecture")

1. The graphs: the same operators in the same order, the same shapes of
   every weight; only the weights' values differ.
2. The time: both through ONNX Runtime, one thread, the same texts,
   interleaved rounds (so a busy moment of the machine hits both), median
   per round.

usage: finetune_speed.py STOCK_DIR FINETUNED_DIR [--texts N] [--rounds R]
"""
import argparse
import json
import os
import statistics as st
import time

import numpy as np
import onnx
import onnxruntime as ort
import tokenizers

ap = argparse.ArgumentParser()
ap.add_argument("stock")
ap.add_argument("tuned")
ap.add_argument("--texts", type=int, default=400)
ap.add_argument("--rounds", type=int, default=7)
a = ap.parse_args()


def graph_shape(path):
    m = onnx.load(path, load_external_data=False)
    ops = [n.op_type for n in m.graph.node]
    inits = sorted((i.name, tuple(i.dims), i.data_type) for i in m.graph.initializer)
    return ops, inits


def session(d, variant, daz):
    m = json.load(open(os.path.join(d, "manifest.json")))
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    o.inter_op_num_threads = 1
    if daz:
        # subnormal activations as zero: what they cost depends on the
        # weights, so it is measured both ways
        o.add_session_config_entry("session.set_denormal_as_zero", "1")
    return ort.InferenceSession(os.path.join(d, m["variants"][variant]), o, providers=["CPUExecutionProvider"])


tok = tokenizers.Tokenizer.from_file(os.path.join(a.stock, "tokenizer.json"))
tok.no_padding()
tok.no_truncation()
titles = [f"product {i}: wireless headphones, black, model {i % 37}, noise cancelling" for i in range(a.texts)]
batches = []
for i in range(0, len(titles), 32):
    enc = tok.encode_batch(titles[i:i + 32])
    t = max(len(e.ids) for e in enc)
    ids = np.array([e.ids + [0] * (t - len(e.ids)) for e in enc], dtype=np.int64)
    mask = np.array([[1] * len(e.ids) + [0] * (t - len(e.ids)) for e in enc], dtype=np.int64)
    batches.append((ids, mask))

print("| variant | subnormals as zero | same operators, same weight shapes | stock emb/s (median of rounds) | fine-tuned emb/s | ratio |")
print("|---|---|---|---|---|---|")
for variant, fname, daz in (("fp32", "model.onnx", False), ("int8", "model_int8.onnx", False),
                            ("fp32", "model.onnx", True), ("int8", "model_int8.onnx", True)):
    same = graph_shape(os.path.join(a.stock, fname)) == graph_shape(os.path.join(a.tuned, fname))
    sessions = {"stock": session(a.stock, variant, daz), "tuned": session(a.tuned, variant, daz)}
    rates = {"stock": [], "tuned": []}
    for r in range(a.rounds):
        for name in (("stock", "tuned") if r % 2 == 0 else ("tuned", "stock")):
            s = sessions[name]
            t0 = time.perf_counter()
            for ids, mask in batches:
                s.run(None, {"input_ids": ids, "attention_mask": mask})
            rates[name].append(len(titles) / (time.perf_counter() - t0))
    ms, mt = st.median(rates["stock"]), st.median(rates["tuned"])
    print(f"| {variant} | {'yes' if daz else 'no'} | {'yes' if same else 'NO'} | {ms:.0f} | {mt:.0f} | {mt / ms:.3f} |")
