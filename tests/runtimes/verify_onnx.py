"""Checks mixseg's .onnx exports with onnxruntime and the onnx checker.

Run by tests/runtimes/export_test.sh after the exports into WORK. Asserts:
  - every file passes onnx.checker (full check, with shape inference);
  - fp32: probabilities within 1e-4 relative of mixseg's fp32 inference;
  - fp16 (every tensor float16): within 1e-2 of mixseg's fp32 (onnxruntime
    runs it on the CPU in float16 storage; weights and activations rounded);
  - int8 QDQ: onnxruntime fuses QDQ into integer kernels whose
    requantization is in float (scale multiply, round half to even) where
    TFLite's is fixed point with two roundings; so each op, fed mixseg's own
    int8 input tensors (the op cut out of the model with onnx.utils), gives
    an output within 1 LSB of mixseg's; the whole network's end-to-end
    difference is printed for the record.
"""
import sys

import numpy as np
import onnx
import onnx.utils
import onnxruntime as ort

import checks
from checks import check, finish, synthetic_frames

MIXSEG, WORK = sys.argv[1], sys.argv[2]

def session(path):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def mixseg_infer(model, x, *extra):
    return checks.mixseg_infer(MIXSEG, WORK, model, x, *extra)


def frames(n, h, w, seed):
    return (synthetic_frames(n, h, w, seed) / 255.0).astype(np.float32)


nchw = lambda a: np.ascontiguousarray(a.transpose(0, 3, 1, 2))
nhwc = lambda a: np.ascontiguousarray(a.transpose(0, 2, 3, 1))

for name in ("fp32", "fp16", "int8"):
    path = f"{WORK}/m_{name}.onnx"
    try:
        onnx.checker.check_model(onnx.load(path), full_check=True)
        check(True, f"{name}: onnx.checker (full check)")
    except Exception as e:  # noqa: BLE001 - the checker's own exception types vary by version
        check(False, f"{name}: onnx.checker: {e}")

# ---- float ----
ckpt = f"{WORK}/run/best.safetensors"
s32 = session(f"{WORK}/m_fp32.onnx")
_, c, h, w = [d if isinstance(d, int) else 1 for d in s32.get_inputs()[0].shape]
x = np.concatenate([frames(2, h, w, 5), np.random.default_rng(6).uniform(0, 1, (1, h, w, c)).astype(np.float32)])
ours = mixseg_infer(ckpt, x, "--precision", "fp32")
for name, tol, dt in (("fp32", 1e-4, np.float32), ("fp16", 1e-2, np.float16)):
    s = session(f"{WORK}/m_{name}.onnx")
    theirs = nhwc(s.run(None, {s.get_inputs()[0].name: nchw(x).astype(dt)})[0].astype(np.float32))
    relative = name == "fp32"  # fp32: relative per element; fp16: absolute on the probabilities
    d = np.max(np.abs(theirs - ours) / (np.abs(ours) if relative else 1.0))
    check(d <= tol, f"{name}: onnxruntime vs mixseg fp32 probabilities (batch {x.shape[0]}): max "
          f"{'relative' if relative else 'absolute'} difference {d:.2e} (tolerance {tol})")

# ---- int8 QDQ, op by op on mixseg's own tensors ----
int8_model, path = f"{WORK}/m.int8.safetensors", f"{WORK}/m_int8.onnx"
xq = frames(2, h, w, 7)
ours = mixseg_infer(int8_model, xq, "--all-tensors", f"{WORK}/tensors")
model = onnx.load(path)
quantized = [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.output[0] != "input"]
producers = {o: n for n in model.graph.node for o in n.output}
worst = 0
for qn in quantized:
    out = qn.output[0]
    # Walk back from the QuantizeLinear to the DequantizeLinear(s) of the op's int8 inputs.
    inputs, stack = [], [qn.input[0]]
    while stack:
        t = stack.pop()
        p = producers.get(t)
        if p is None:
            continue
        if p.op_type == "DequantizeLinear" and not p.input[0].endswith("_q"):
            inputs.append(p.input[0])
        else:
            stack.extend(i for i in p.input if i)
    cut = f"{WORK}/op_{out}.onnx"
    onnx.utils.extract_model(path, cut, sorted(set(inputs)), [out])
    feed = {i: nchw(np.load(f"{WORK}/tensors/{i}.npy")) for i in sorted(set(inputs))}
    theirs = nhwc(session(cut).run(None, feed)[0])
    d = np.abs(theirs.astype(int) - np.load(f"{WORK}/tensors/{out}.npy").astype(int))
    worst = max(worst, d.max())
    if d.max() > 1:
        check(False, f"int8: {out} differs from mixseg by {d.max()} LSB on mixseg's inputs ({(d > 0).sum()} of {d.size})")
check(worst <= 1, f"int8 QDQ: every op ({len(quantized)}) within {worst} LSB of mixseg's on the same int8 inputs")
s8 = session(path)
p = nhwc(s8.run(None, {"input_float": nchw(xq)})[0])
theirs = np.clip(np.round(p * 256) - 128, -128, 127).astype(int)
d = np.abs(theirs - ours.astype(int))
print(f"info int8 QDQ end to end: onnxruntime vs mixseg: max {d.max()} LSB, {(d > 0).sum()} of {d.size} differ, mean {d.mean():.4f}")

finish("all ONNX checks passed")
