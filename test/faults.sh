#!/usr/bin/env bash
# Builds broken model directories for the fault tests (test/sql/model_config.sql).
# usage: test/faults.sh GOOD_MODEL_DIR OUT_DIR
set -euo pipefail
good=$1 out=$2
rm -rf "$out"; mkdir -p "$out"
mk() { mkdir -p "$out/$1"; cp "$good/manifest.json" "$good/tokenizer.json" "$out/$1/"; }
mk missing_model
mk corrupt_model;     echo "this is not an ONNX model" > "$out/corrupt_model/model.onnx"
ln -s "$good/model.onnx.data" "$out/corrupt_model/model.onnx.data"
# the weights live in model.onnx.data (memory-mapped): cut that one short
mk truncated_model;   cp "$good/model.onnx" "$out/truncated_model/"
head -c 1000000 "$good/model.onnx.data" > "$out/truncated_model/model.onnx.data"
mk missing_data;      cp "$good/model.onnx" "$out/missing_data/"
mk corrupt_tokenizer; echo '{"version": "1.0", "model": ' > "$out/corrupt_tokenizer/tokenizer.json"
mk corrupt_manifest;  echo '{"model": "x", "dims": "many"}' > "$out/corrupt_manifest/manifest.json"
mk wrong_dims
sed 's/"dims": 384/"dims": 512/' "$good/manifest.json" > "$out/wrong_dims/manifest.json"
ln -s "$good/model.onnx" "$out/wrong_dims/model.onnx"
ln -s "$good/model.onnx.data" "$out/wrong_dims/model.onnx.data"
cp "$good/libonnxruntime.so" "$out/libonnxruntime_copy.so"
chmod -R a+rX "$out"
