"""The U-Net in TensorFlow/Keras (the paper's second framework), benchmarked
the way mixseg bench measures itself: same network, sweep and CSV schema.

Network: per level two (conv 3x3 -> BatchNorm -> ReLU) blocks and a 2x2 max
pool; a bottleneck block; per level up a block, nearest 2x upsampling,
concatenation with the skip, a block; a final block; a 1x1 head with float32
logits. NHWC. Precisions through Keras' mixed-precision policies: fp32
(TF32 off: TensorFlow enables it by default on GPUs), tf32 (on),
mixed_fp16 ("mixed_float16": float16 compute, float32 variables, Keras'
dynamic loss scaling), mixed_bf16 ("mixed_bfloat16"). Training step:
train_on_batch with BCE on logits + soft Dice and Adam; inference:
predict_on_batch (BatchNorm with moving statistics). --xla compiles with
XLA (jit_compile). Steady state as in common.time_steps.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

POLICIES = {"fp32": "float32", "tf32": "float32", "mixed_fp16": "mixed_float16", "mixed_bf16": "mixed_bfloat16"}


def build(keras, filters, depth, h, w):
    L = keras.layers

    def block(x, c):
        x = L.Conv2D(c, 3, padding="same", use_bias=False)(x)
        x = L.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
        return L.ReLU()(x)

    inp = keras.Input((h, w, 1))
    x, skips = inp, []
    for lvl in range(depth):
        x = block(block(x, filters << lvl), filters << lvl)
        skips.append(x)
        x = L.MaxPooling2D(2)(x)
    x = block(x, filters << depth)
    for lvl in reversed(range(depth)):
        x = block(x, filters << lvl)
        x = L.UpSampling2D(2, interpolation="nearest")(x)
        x = L.Concatenate()([x, skips[lvl]])
        x = block(x, filters << lvl)
    x = block(x, filters)
    x = L.Conv2D(1, 1)(x)
    return keras.Model(inp, L.Activation("linear", dtype="float32")(x))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_sweep_args(ap)
    ap.add_argument("--xla", action="store_true", help="compile with XLA (jit_compile=True)")
    a = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf
    import keras

    h, w = common.parse_size(a.size)
    device_name = common.cpu_model_name()
    version = f"{tf.__version__} (Keras {keras.__version__}{', XLA' if a.xla else ''})"
    print(f"tensorflow {version} on {device_name}, {h}x{w}")
    print(f"{'phase':<6} {'precision':<11} {'filters':>7} {'batch':>5} {'img/s':>9} {'ms/step':>10} {'p90 ms':>9}")

    def loss_fn(y, logits):
        bce = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits))
        p = tf.sigmoid(logits)
        return bce + 1 - (2 * tf.reduce_sum(p * y) + 1) / (tf.reduce_sum(p) + tf.reduce_sum(y) + 1)

    rows = []
    for phase in a.phase.split(","):
        for f in common.int_list(a.filters):
            for prec in a.precision.split(","):
                if prec not in POLICIES:
                    raise SystemExit(f"--precision: {prec} is not fp32, tf32, mixed_fp16 or mixed_bf16")
                tf.config.experimental.enable_tensor_float_32_execution(prec == "tf32")
                keras.mixed_precision.set_global_policy(POLICIES[prec])
                keras.utils.set_random_seed(a.seed)
                model = build(keras, f, a.depth, h, w)
                model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss_fn, jit_compile=a.xla)
                for b in common.int_list(a.batch):
                    rng = np.random.default_rng(a.seed)
                    x = rng.uniform(0, 1, (b, h, w, 1)).astype(np.float32)
                    y = (rng.uniform(0, 1, (b, h, w, 1)) > 0.8).astype(np.float32)
                    if phase == "infer":
                        step = lambda: model.predict_on_batch(x)  # noqa: E731
                    else:
                        step = lambda: model.train_on_batch(x, y)  # noqa: E731
                    times = common.time_steps(step, a.warmup, a.min_steps, a.min_time)
                    row = common.make_row("tensorflow", version, "cpu", device_name, prec, phase, f, a.depth, b, h,
                                          w, times, a.warmup, common.peak_rss_mib(), phase == "train")
                    rows.append(row)
                    print(f"{phase:<6} {prec:<11} {f:>7} {b:>5} {row['img_per_s']:>9} {row['ms_per_step_median']:>10} "
                          f"{row['ms_p90']:>9}", flush=True)
                    if a.out:
                        common.append_rows(a.out, [row])
    if a.out:
        print(f"appended {len(rows)} rows to {a.out}")


if __name__ == "__main__":
    main()
