"""The U-Net in JAX/Flax, benchmarked the way mixseg bench measures itself
(same network, sweep and CSV schema), so the report can set mixseg beside
PyTorch and JAX/XLA as the paper set PyTorch beside TensorFlow.

Network: per level two (conv 3x3 -> BatchNorm -> ReLU) blocks and a 2x2 max
pool; a bottleneck block; per level up a block, nearest 2x upsampling,
concatenation with the skip, a block; a final block; a 1x1 head. NHWC.
Training step: BCE on logits + soft Dice, Adam (optax), BatchNorm with batch
statistics, jitted. Precisions: fp32 (float32 convolutions: XLA's default
precision would let them use TF32 on a GPU); tf32 (TF32 allowed);
mixed_bf16 (compute in bfloat16,
parameters and optimizer in float32); mixed_fp16 (compute in float16 with a
static loss scale of 2^12: JAX has no built-in dynamic scaler, a documented
difference from mixseg's and PyTorch's). Inference: BatchNorm with running
statistics. Timing: compiled first (the warm-up steps include compilation),
then steady-state steps each ended by block_until_ready().
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def build(filters, depth, dtype):
    import flax.linen as nn
    import jax.numpy as jnp

    class Block(nn.Module):
        features: int

        @nn.compact
        def __call__(self, x, train):
            x = nn.Conv(self.features, (3, 3), padding="SAME", use_bias=False, dtype=dtype, param_dtype=jnp.float32)(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
                             param_dtype=jnp.float32)(x)
            return nn.relu(x)

    class UNet(nn.Module):
        @nn.compact
        def __call__(self, x, train):
            x = x.astype(dtype)
            skips = []
            for lvl in range(depth):
                x = Block(filters << lvl)(x, train)
                x = Block(filters << lvl)(x, train)
                skips.append(x)
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
            x = Block(filters << depth)(x, train)
            for lvl in reversed(range(depth)):
                x = Block(filters << lvl)(x, train)
                x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)  # nearest 2x
                x = jnp.concatenate([x, skips[lvl]], axis=-1)
                x = Block(filters << lvl)(x, train)
            x = Block(filters)(x, train)
            return nn.Conv(1, (1, 1), dtype=dtype, param_dtype=jnp.float32)(x).astype(jnp.float32)

    return UNet()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    common.add_sweep_args(ap)
    a = ap.parse_args()
    if a.device == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    platform = jax.devices()[0].platform
    if a.device == "cuda" and platform != "gpu":
        raise SystemExit(f"--device cuda: JAX sees no GPU (platform {platform})")
    device_name = common.cpu_model_name() if a.device == "cpu" else jax.devices()[0].device_kind
    h, w = common.parse_size(a.size)
    dtypes = {"fp32": jnp.float32, "tf32": jnp.float32, "mixed_bf16": jnp.bfloat16, "mixed_fp16": jnp.float16}
    counter, idle_w = common.open_gpu_energy(a) if a.device == "cuda" else (None, 0.0)
    print(f"jax {jax.__version__} on {device_name} ({platform}), {h}x{w}")
    print(f"{'phase':<6} {'precision':<11} {'filters':>7} {'batch':>5} {'img/s':>9} {'ms/step':>10} {'p90 ms':>9}")
    rows = []
    for phase in a.phase.split(","):
        for f in common.int_list(a.filters):
            for prec in a.precision.split(","):
                if prec not in dtypes:
                    raise SystemExit(f"--precision: {prec} is not fp32, tf32, mixed_fp16 or mixed_bf16")
                # float32 convolutions and matmuls at full precision but in the tf32 policy (traced under it).
                jax.config.update("jax_default_matmul_precision", "tensorfloat32" if prec == "tf32" else "float32")
                model = build(f, a.depth, dtypes[prec])
                for b in common.int_list(a.batch):
                    rng = np.random.default_rng(a.seed)
                    x = jnp.asarray(rng.uniform(0, 1, (b, h, w, 1)).astype(np.float32))
                    y = jnp.asarray((rng.uniform(0, 1, (b, h, w, 1)) > 0.8).astype(np.float32))
                    variables = model.init(jax.random.PRNGKey(a.seed), x, train=False)
                    params, stats = variables["params"], variables["batch_stats"]
                    if phase == "infer":
                        fn = jax.jit(lambda p, s, x: jax.nn.sigmoid(model.apply({"params": p, "batch_stats": s}, x,
                                                                                  train=False)))
                        step = lambda: fn(params, stats, x).block_until_ready()  # noqa: E731
                    else:
                        opt = optax.adam(1e-3)
                        state = {"p": params, "s": stats, "o": opt.init(params)}
                        scale = 4096.0 if prec == "mixed_fp16" else 1.0

                        def loss_fn(p, s, x, y):
                            logits, upd = model.apply({"params": p, "batch_stats": s}, x, train=True,
                                                      mutable=["batch_stats"])
                            bce = optax.sigmoid_binary_cross_entropy(logits, y).mean()
                            prob = jax.nn.sigmoid(logits)
                            dice = 1 - (2 * (prob * y).sum() + 1) / (prob.sum() + y.sum() + 1)
                            return (bce + dice) * scale, upd["batch_stats"]

                        @jax.jit
                        def train_step(st, x, y):
                            (loss, s), g = jax.value_and_grad(loss_fn, has_aux=True)(st["p"], st["s"], x, y)
                            g = jax.tree_util.tree_map(lambda t: t / scale, g)
                            upd, o = opt.update(g, st["o"], st["p"])
                            return {"p": optax.apply_updates(st["p"], upd), "s": s, "o": o}, loss

                        def step():
                            nonlocal state
                            state, loss = train_step(state, x, y)
                            loss.block_until_ready()
                    times, energy = common.measure_steps(step, a, counter=counter, idle_w=idle_w)
                    row = common.make_row("jax", f"{jax.__version__} (XLA, jit)", a.device, device_name, prec, phase,
                                          f, a.depth, b, h, w, times, a.warmup, common.peak_rss_mib(),
                                          phase == "train", energy)
                    rows.append(row)
                    print(f"{phase:<6} {prec:<11} {f:>7} {b:>5} {row['img_per_s']:>9} {row['ms_per_step_median']:>10} "
                          f"{row['ms_p90']:>9}", flush=True)
                    if a.out:
                        common.append_rows(a.out, [row])
    if a.out:
        print(f"appended {len(rows)} rows to {a.out}")


if __name__ == "__main__":
    main()
