#!/usr/bin/env python3
"""Checks that an exported encoder embeds as the trainer's model does: the
same texts through ONNX Runtime (the extension's tokenisation: no padding,
[CLS] ... [SEP], cut to the manifest's max_length keeping [SEP] last, as
src/encoder/tokenize.rs cuts) and through pg_ecom_finetune --embed (which
cuts the same way).

Usage: check_finetuned.py --model DIR --texts FILE --expected FILE.jsonl
                          [--variant fp32|int8] [--min 0.9999]
"""
import argparse
import json
import os
import sys

import numpy as np
import onnxruntime as ort
import tokenizers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--texts", required=True)
    ap.add_argument("--expected", required=True)
    ap.add_argument("--variant", default="fp32", help="the manifest's variant to run")
    ap.add_argument("--min", type=float, default=0.9999, help="least cosine allowed")
    a = ap.parse_args()
    m = json.load(open(os.path.join(a.model, "manifest.json")))
    tok = tokenizers.Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    sess = ort.InferenceSession(os.path.join(a.model, m["variants"][a.variant]), providers=["CPUExecutionProvider"])
    texts = open(a.texts, encoding="utf-8").read().splitlines()
    expected = [json.loads(line) for line in open(a.expected)]
    if len(texts) != len(expected) or not texts:
        sys.exit(f"check_finetuned: {len(texts)} texts but {len(expected)} expected embeddings")
    worst = 1.0
    for t, want in zip(texts, expected):
        ids = tok.encode(t).ids
        if len(ids) > m["max_length"]:
            ids = ids[: m["max_length"] - 1] + ids[-1:]
        ids = np.array([ids], dtype=np.int64)
        got = sess.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0]
        worst = min(worst, float(np.dot(got, np.asarray(want, dtype=np.float32))))
    print(f"check_finetuned: {len(texts)} texts, least cosine between the ONNX export ({a.variant}) and the trainer {worst:.6f}")
    if worst < a.min:
        sys.exit(f"check_finetuned: the exported model ({a.variant}) does not embed as the trained one (cosine {worst:.6f} < {a.min})")


if __name__ == "__main__":
    main()
