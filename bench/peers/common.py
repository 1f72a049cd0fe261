"""Shared by the peer benchmarks: the design's CSV schema (DESIGN.md,
"Measuring", the same columns mixseg bench writes), steady-state timing and
percentiles (numpy's linear method, like mixseg's stats), and NVML energy
on a GPU (net of an idle baseline, like mixseg bench's)."""
import csv
import datetime
import os
import subprocess
import time

COLUMNS = ("framework,framework_version,device,device_name,precision,phase,filters,depth,batch,height,width,"
           "img_per_s,ms_per_step_median,ms_p90,ms_p99,tflops,joules_per_img,energy_source,peak_mem_mib,steps,"
           "warmup_steps,git_commit,timestamp").split(",")


def percentile(values, p):
    v = sorted(values)
    rank = p / 100.0 * (len(v) - 1)
    lo = int(rank)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (rank - lo)


# Energy windows are at least this long: NVML's counter updates coarsely (as mixseg bench).
MIN_ENERGY_SECONDS = 2.0


def warm_up(step, warmup, sync):
    for _ in range(warmup):
        step()
    sync()


def timed_steps(step, min_steps, min_seconds, sync):
    times = []
    while len(times) < min_steps or sum(times) < min_seconds:
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def time_steps(step, warmup, min_steps, min_seconds, sync=lambda: None):
    """Runs warm-up steps, then timed steps until both minimums are met; returns seconds per step."""
    warm_up(step, warmup, sync)
    return timed_steps(step, min_steps, min_seconds, sync)


def time_steps_with_energy(step, warmup, min_steps, min_seconds, sync, counter):
    """time_steps with an energy counter read around the measured steps (the window at least
    MIN_ENERGY_SECONDS); returns (seconds per step, gross joules, window seconds)."""
    warm_up(step, warmup, sync)
    j0, t0 = counter.joules(), time.perf_counter()
    times = timed_steps(step, min_steps, max(min_seconds, MIN_ENERGY_SECONDS), sync)
    return times, counter.joules() - j0, time.perf_counter() - t0


class NvmlEnergy:
    """NVML's total-energy counter of one GPU (millijoules since the driver loaded), read through
    ctypes from libnvidia-ml.so.1 as mixseg bench reads it. open() gives None where it cannot be read."""
    source = "nvml"

    def __init__(self, lib, handle):
        self.lib, self.handle = lib, handle

    @staticmethod
    def open(index=0):
        import ctypes
        try:
            lib = ctypes.CDLL("libnvidia-ml.so.1")
            handle = ctypes.c_void_p()
            if lib.nvmlInit_v2() != 0 or lib.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)) != 0:
                return None
            counter = NvmlEnergy(lib, handle)
            counter.joules()
            return counter
        except (OSError, AttributeError, RuntimeError):
            return None

    def joules(self):
        import ctypes
        mj = ctypes.c_ulonglong()
        if self.lib.nvmlDeviceGetTotalEnergyConsumption(self.handle, ctypes.byref(mj)) != 0:
            raise RuntimeError("NVML: the total-energy counter cannot be read")
        return mj.value / 1000.0


def idle_watts(counter, seconds):
    """Average power of counter over `seconds` of doing nothing (sleeping)."""
    j0, t0 = counter.joules(), time.perf_counter()
    time.sleep(seconds)
    return (counter.joules() - j0) / (time.perf_counter() - t0)


def open_gpu_energy(args):
    """A GPU peer's energy set-up, as mixseg bench's: NVML's counter of GPU 0 and the idle baseline
    (args.idle_seconds); (None, 0) where NVML cannot be read. Says which on stdout."""
    counter = NvmlEnergy.open(0)
    idle_w = idle_watts(counter, args.idle_seconds) if counter and args.idle_seconds > 0 else 0.0
    print(f"energy: {'NVML, idle baseline %.1f W' % idle_w if counter else 'unavailable (NVML not readable)'}")
    return counter, idle_w


def measure_steps(step, args, sync=lambda: None, counter=None, idle_w=0.0):
    """The sweep's timing of one configuration: (seconds per step, energy for make_row or None)."""
    if not counter:
        return time_steps(step, args.warmup, args.min_steps, args.min_time, sync), None
    times, gross, seconds = time_steps_with_energy(step, args.warmup, args.min_steps, args.min_time, sync, counter)
    return times, (gross - idle_w * seconds, counter.source)


def conv_flops_per_image(filters, depth, height, width, in_channels=1, classes=1):
    """Forward FLOPs (2 x multiply-adds) of the U-Net's convolutions, as mixseg info counts them."""
    macs = 0
    def conv(level, cin, cout, k=3):
        nonlocal macs
        macs += (height >> level) * (width >> level) * k * k * cin * cout
    c = in_channels
    for lvl in range(depth):
        conv(lvl, c, filters << lvl)
        conv(lvl, filters << lvl, filters << lvl)
        c = filters << lvl
    conv(depth, c, filters << depth)
    c = filters << depth
    for lvl in reversed(range(depth)):
        conv(lvl + 1, c, filters << lvl)
        conv(lvl, 2 * (filters << lvl), filters << lvl)
        c = filters << lvl
    conv(0, c, filters)
    conv(0, filters, classes, 1)
    return 2.0 * macs


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__)), check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown cpu"


def make_row(framework, version, device, device_name, precision, phase, filters, depth, batch, height, width,
             times, warmup, peak_mem_mib, train, energy=None):
    """One CSV row; energy: (net joules over the measured steps, source), or None (unavailable)."""
    med = percentile(times, 50)
    ips = batch / med
    flops = conv_flops_per_image(filters, depth, height, width) * (3.0 if train else 1.0)
    return {
        "framework": framework, "framework_version": version, "device": device, "device_name": device_name,
        "precision": precision, "phase": phase, "filters": filters, "depth": depth, "batch": batch,
        "height": height, "width": width, "img_per_s": f"{ips:.6g}", "ms_per_step_median": f"{med * 1e3:.6g}",
        "ms_p90": f"{percentile(times, 90) * 1e3:.6g}", "ms_p99": f"{percentile(times, 99) * 1e3:.6g}",
        "tflops": f"{flops * ips / 1e12:.6g}",
        "joules_per_img": f"{energy[0] / (len(times) * batch):.6g}" if energy else "",
        "energy_source": energy[1] if energy else "unavailable",
        "peak_mem_mib": f"{peak_mem_mib:.6g}", "steps": len(times), "warmup_steps": warmup,
        "git_commit": git_commit(),
        "timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def emit_inference_row(label, row, out):
    """Prints one inference row's throughput after label, and appends the row to out (if given)."""
    print(f"{label}: {float(row['img_per_s']):.2f} img/s, {float(row['ms_per_step_median']):.2f} ms/step", flush=True)
    if out:
        append_rows(out, [row])


def append_rows(path, rows):
    fresh = not os.path.exists(path) or os.path.getsize(path) == 0
    if not fresh:
        with open(path) as f:
            header = f.readline().strip()
        if header != ",".join(COLUMNS):
            raise SystemExit(f"{path}: exists with another header; not appending (first line: {header!r})")
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        if fresh:
            w.writeheader()
        w.writerows(rows)


def peak_rss_mib():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def add_timing_args(ap):
    """Steady-state timing, as mixseg bench names it: warm-up steps dropped, then at least so many steps and seconds."""
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--min-steps", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=2.0)


def add_sweep_args(ap):
    """The sweep options every training+inference peer takes, as mixseg bench names them."""
    ap.add_argument("--precision", default="fp32", help="comma-separated: fp32, mixed_fp16, mixed_bf16")
    ap.add_argument("--phase", default="infer,train")
    ap.add_argument("--filters", default="8")
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--batch", default="1")
    ap.add_argument("--size", default="512x256", help="HxW")
    add_timing_args(ap)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--idle-seconds", type=float, default=3.0,
                    help="GPU peers: idle baseline for the net energy (0: none, net = gross)")
    ap.add_argument("--out", help="append rows to this CSV")


def int_list(s):
    return [int(x) for x in s.split(",") if x]


def parse_size(s):
    h, w = s.lower().split("x")
    return int(h), int(w)
