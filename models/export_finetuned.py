#!/usr/bin/env python3
"""Builds an encoder directory from fine-tuned weights (pg_ecom_finetune's
best.safetensors) through the same ONNX export as the stock model.

The stock weights are the base: every tensor the fine-tune wrote replaces
the stock tensor of the same name and shape, the rest stays the stock one.
The manifest names the encoder, and its `model` tells heads apart: it
carries the trained weights' sha256, so a head meta-trained on one
fine-tune never scores with another.

Usage: export_finetuned.py --base DIR --trained FILE --name NAME --out DIR
                           [--summary summary.json] [--data-sha256 HEX]
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export  # noqa: E402  (models/export.py: read_safetensors, export_bert)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="stock weights: config.json, model.safetensors, tokenizer.json")
    ap.add_argument("--base-model", default="sentence-transformers/all-MiniLM-L6-v2")
    ap.add_argument("--trained", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--summary", help="the trainer's summary.json, kept in the manifest")
    ap.add_argument("--data-sha256", default="", help="of the events it was trained on")
    a = ap.parse_args()

    cfg = json.load(open(os.path.join(a.base, "config.json")))
    st_cfg = json.load(open(os.path.join(a.base, "sentence_bert_config.json")))
    weights = export.read_safetensors(os.path.join(a.base, "model.safetensors"))
    trained = export.read_safetensors(a.trained)
    changed = 0
    for name, arr in trained.items():
        if name not in weights:
            sys.exit(f"export_finetuned: {a.trained} holds {name}, which the base model has not")
        if weights[name].shape != arr.shape:
            sys.exit(f"export_finetuned: {name} is {arr.shape} in {a.trained}, {weights[name].shape} in the base")
        if not np.all(np.isfinite(arr)):
            sys.exit(f"export_finetuned: {name} in {a.trained} holds values that are not finite")
        if not np.array_equal(weights[name], arr):
            changed += 1
        weights[name] = arr

    digest = hashlib.sha256()
    for name in sorted(trained):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(trained[name]).tobytes())
    wsum = digest.hexdigest()

    summary = json.load(open(a.summary)) if a.summary else {}
    summary.pop("weights", None)  # a path on the training machine
    export.export_bert(weights, cfg, st_cfg, os.path.join(a.base, "tokenizer.json"), a.out, {
        "name": a.name,
        "model": f"{a.base_model}+finetune:{a.name}@{wsum[:16]}",
        "base_model": a.base_model,
        "finetune": dict(summary, weights_sha256=wsum, tensors_changed=changed,
                         data_sha256=a.data_sha256),
    }, {"weights": f"{a.base_model} fine-tuned by pg_ecom_finetune", "license": "Apache-2.0"}, name=a.name)


if __name__ == "__main__":
    sys.exit(main())
