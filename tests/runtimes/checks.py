"""Shared by the runtime checks in this folder: recording checks, running
`mixseg infer` on a batch, and the synthetic 8-bit frames fed to both sides."""
import subprocess
import sys

import numpy as np

failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def finish(success_message):
    """Exits non-zero if any check failed."""
    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)
    print(success_message)


def mixseg_infer(mixseg, work, model, x, *extra):
    """mixseg's output for the NHWC batch x (through .npy files in work)."""
    np.save(f"{work}/in.npy", x)
    subprocess.run([mixseg, "infer", model, "--input", f"{work}/in.npy", "--out", f"{work}/out.npy", *extra], check=True)
    return np.load(f"{work}/out.npy")


def synthetic_frames(n, h, w, seed):
    """Dark frames with a bright ellipse, as 8-bit images [n, h, w, 1] (the int8 input is pixel - 128)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for _ in range(n):
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        ry, rx = rng.uniform(0.1, 0.3) * h, rng.uniform(0.05, 0.2) * w
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        img = np.where(inside, rng.uniform(150, 230), rng.uniform(20, 80)) + rng.normal(0, 8, (h, w))
        frames.append(np.clip(np.round(img), 0, 255))
    return np.stack(frames)[..., None].astype(np.uint8)
