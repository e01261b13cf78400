"""A model directory whose ONNX graph loads but fails at run time for
batches of more than one text (its output is reshaped to [1, 384]): what an
ONNX Runtime error inside the inference worker looks like (test/t/006_worker.sh).
usage: batch_fault_model.py GOOD_MODEL_DIR OUT_DIR"""
import json
import shutil
import sys

import onnx
from onnx import TensorProto, helper

good, out = sys.argv[1], sys.argv[2]
ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])
mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])
emb = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 384])
const = lambda name, vals: helper.make_node(
    "Constant", [], [name], value=helper.make_tensor(name, TensorProto.INT64, [len(vals)], vals))
nodes = [
    const("starts", [0]), const("ends", [1]), const("axes", [1]),
    helper.make_node("Slice", ["input_ids", "starts", "ends", "axes"], ["first"]),
    helper.make_node("Cast", ["first"], ["firstf"], to=TensorProto.FLOAT),
    const("reps", [1, 384]),
    helper.make_node("Tile", ["firstf", "reps"], ["tiled"]),
    const("shape", [1, 384]),
    helper.make_node("Reshape", ["tiled", "shape"], ["embedding"]),
    helper.make_node("Identity", ["attention_mask"], ["unused"]),
]
graph = helper.make_graph(nodes, "batch_fault", [ids, mask], [emb])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
onnx.checker.check_model(model)
import os
os.makedirs(out, exist_ok=True)
onnx.save(model, f"{out}/model.onnx")
m = json.load(open(f"{good}/manifest.json"))
m["external_data"] = {}
m["variants"] = {"fp32": "model.onnx"}
m["sha256"] = {}
json.dump(m, open(f"{out}/manifest.json", "w"))
shutil.copy(f"{good}/tokenizer.json", f"{out}/tokenizer.json")
