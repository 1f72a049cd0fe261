"""Cross-checks mixseg's post-training quantization against TensorFlow's own.

Run by tests/runtimes/export_test.sh (skipped without TensorFlow). The float
network with BatchNorm folded is rebuilt in Keras from mixseg's fp32 ONNX
export; TensorFlow's TFLite converter quantizes it to full int8 from the same
calibration PNGs mixseg quantized with; then:
  - weight scales agree with mixseg's per output channel (both max|w| / 127
    of the same folded weights; relative 1e-6), and so do the int8 weights
    (at most 1 step where a value sits on a rounding tie in float);
  - the sigmoid output parameters agree (1/256, -128), and mixseg's input is
    1/255, -128 (TensorFlow takes its input range from the data: printed);
  - every convolution's output scale agrees within 2% where mixseg did not
    have to widen it for a shared (pool/upsample/concat) set, and is never
    smaller than TensorFlow's there (mixseg's shared ranges are unions);
  - the two int8 models' masks (p > 1/2) agree on at least 99% of the
    pixels of the calibration frames.
"""
import contextlib
import glob
import io
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402
from checks import check, finish  # noqa: E402
from onnx import numpy_helper  # noqa: E402

WORK, CALIB = sys.argv[1], sys.argv[2]


def keras_from_onnx(path):
    """The deployed U-Net (Conv+bias[+ReLU], MaxPool, nearest 2x Resize or 2x2 ConvTranspose, Concat, Sigmoid)
    in Keras, NHWC."""
    m = onnx.load(path)
    init = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    inp = m.graph.input[0]
    c, h, w = [d.dim_value for d in inp.type.tensor_type.shape.dim[1:]]
    x = tf.keras.Input((h, w, c), batch_size=1, name="input")
    values = {inp.name: x}
    relu_of = {n.input[0]: n for n in m.graph.node if n.op_type == "Relu"}
    for n in m.graph.node:
        if n.op_type == "Conv":
            wt, b = init[n.input[1]], init[n.input[2]]
            relu = n.output[0] in relu_of
            layer = tf.keras.layers.Conv2D(wt.shape[0], wt.shape[2], padding="same", activation="relu" if relu else None,
                                           name=n.name)
            out = layer(values[n.input[0]])
            layer.set_weights([wt.transpose(2, 3, 1, 0), b])
            values[relu_of[n.output[0]].output[0] if relu else n.output[0]] = out
        elif n.op_type == "ConvTranspose":  # 2x2, stride 2, no bias: TRANSPOSE_CONV after conversion
            wt = init[n.input[1]]  # [in, out, 2, 2]
            layer = tf.keras.layers.Conv2DTranspose(wt.shape[1], 2, strides=2, padding="valid", use_bias=False,
                                                    name=n.name)
            values[n.output[0]] = layer(values[n.input[0]])
            layer.set_weights([wt.transpose(2, 3, 1, 0)])  # Keras: [kh, kw, out, in]
        elif n.op_type == "MaxPool":
            values[n.output[0]] = tf.keras.layers.MaxPooling2D(2, name=n.name)(values[n.input[0]])
        elif n.op_type == "Resize":
            # RESIZE_NEAREST_NEIGHBOR without half-pixel centres, as mixseg writes it (UpSampling2D becomes TILE ops).
            src = values[n.input[0]]
            size = (2 * src.shape[1], 2 * src.shape[2])
            values[n.output[0]] = tf.keras.layers.Lambda(
                lambda t, size=size: tf.compat.v1.image.resize_nearest_neighbor(t, size, half_pixel_centers=False),
                name=n.name)(src)
        elif n.op_type == "Concat":
            values[n.output[0]] = tf.keras.layers.Concatenate(axis=-1, name=n.name)([values[i] for i in n.input])
        elif n.op_type == "Sigmoid":
            values[n.output[0]] = tf.keras.layers.Activation("sigmoid", name=n.name)(values[n.input[0]])
        elif n.op_type != "Relu":
            raise SystemExit(f"unexpected ONNX op {n.op_type}")
    return tf.keras.Model(x, values[m.graph.output[0].name])


frames = []
for f in sorted(glob.glob(f"{CALIB}/*.png")):
    if not f.endswith("_seg.png"):
        frames.append(tf.io.decode_png(tf.io.read_file(f), channels=1).numpy().astype(np.float32) / 255.0)
frames = np.stack(frames)
model = keras_from_onnx(f"{WORK}/m_fp32.onnx")


def representative():
    for f in frames:
        yield [f[None]]


conv = tf.lite.TFLiteConverter.from_keras_model(model)
conv.optimizations = [tf.lite.Optimize.DEFAULT]
conv.representative_dataset = representative
conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
conv.inference_input_type = tf.int8
conv.inference_output_type = tf.int8
with contextlib.redirect_stdout(io.StringIO()):  # the converter prints its SavedModel signature
    converted = conv.convert()
with open(f"{WORK}/tf_int8.tflite", "wb") as fh:
    fh.write(converted)


def conv_ops(path):
    """Per CONV_2D and TRANSPOSE_CONV (weights: input 1 of both): int8 weights, weight scales, output scale,
    in execution order; plus the interpreter."""
    it = Interpreter(model_path=path, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    det = {d["index"]: d for d in it.get_tensor_details()}
    ops = []
    for op in it._get_ops_details():
        if op["op_name"] not in ("CONV_2D", "TRANSPOSE_CONV"):
            continue
        wd, od = det[op["inputs"][1]], det[op["outputs"][0]]
        ops.append({"kind": op["op_name"], "w": it.get_tensor(wd["index"]), "ws": wd["quantization_parameters"]["scales"],
                    "out": od["quantization_parameters"]["scales"][0], "name": od["name"]})
    return ops, it


ours, ours_it = conv_ops(f"{WORK}/m_int8.tflite")
theirs, theirs_it = conv_ops(f"{WORK}/tf_int8.tflite")
check(len(ours) == len(theirs), f"both models have {len(ours)} convolutions (TensorFlow: {len(theirs)})")
# Pair convolutions by their weights' shape and values (execution orders may differ).
worst_scale, worst_w, pairs = 0.0, 0, []
for o in ours:
    cands = [t for t in theirs if t["w"].shape == o["w"].shape]
    t = min(cands, key=lambda t: np.abs(t["w"].astype(int) - o["w"].astype(int)).max())
    pairs.append((o, t))
    worst_scale = max(worst_scale, float(np.max(np.abs(t["ws"] / o["ws"] - 1))))
    worst_w = max(worst_w, int(np.abs(t["w"].astype(int) - o["w"].astype(int)).max()))
check(worst_scale <= 1e-6, f"weight scales per channel agree with TensorFlow's (max relative difference {worst_scale:.1e})")
check(worst_w <= 1, f"int8 weights agree with TensorFlow's within {worst_w} step")

shared = set()
m = onnx.load(f"{WORK}/m_int8.onnx")  # which of our conv outputs feed pooling, upsampling or concatenation
feeds = {}
for n in m.graph.node:
    for i in n.input:
        feeds.setdefault(i, []).append(n.op_type)
for o, t in pairs:
    ratio = o["out"] / t["out"]
    is_shared = any(op in ("MaxPool", "Resize", "Concat") for op in feeds.get(o["name"] + "_dq", []))
    if o["kind"] != t["kind"]:
        check(False, f"{o['name']}: a {o['kind']} paired with TensorFlow's {t['kind']}")
    if is_shared:
        check(ratio >= 0.98, f"{o['name']}: shared output scale {o['out']:.5g} holds TensorFlow's {t['out']:.5g} (x{ratio:.3f})")
    else:
        check(abs(ratio - 1) <= 0.02, f"{o['name']}: output scale {o['out']:.5g} vs TensorFlow's {t['out']:.5g} (x{ratio:.3f})")

# The output is TFLite's LOGISTIC rule for both; the input is 1/255, -128 by
# design in mixseg (an 8-bit pixel minus 128), from the data's range in TensorFlow.
for it, who in ((ours_it, "mixseg"), (theirs_it, "TensorFlow")):
    qo = it.get_output_details()[0]["quantization_parameters"]
    check(qo["scales"][0] == 1 / 256 and qo["zero_points"][0] == -128, f"{who}: output 1/256, -128")
qi = ours_it.get_input_details()[0]["quantization_parameters"]
check(np.isclose(qi["scales"][0], 1 / 255, rtol=1e-6) and qi["zero_points"][0] == -128, "mixseg: input 1/255, -128")
qt = theirs_it.get_input_details()[0]["quantization_parameters"]
print(f"info TensorFlow's input: scale {qt['scales'][0]:.6g}, zero point {qt['zero_points'][0]} (from the frames' range)")


def masks(it):
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    s, z = i["quantization_parameters"]["scales"][0], i["quantization_parameters"]["zero_points"][0]
    out = []
    for f in frames:
        it.set_tensor(i["index"], np.clip(np.round(f / s) + z, -128, 127).astype(np.int8)[None])
        it.invoke()
        out.append(it.get_tensor(o["index"]) > 0)
    return np.concatenate(out)


agree = float(np.mean(masks(ours_it) == masks(theirs_it)))
check(agree >= 0.99, f"masks of mixseg's and TensorFlow's int8 models agree on {100 * agree:.3f}% of the pixels")
finish("quantization agrees with TensorFlow's")
