#!/usr/bin/env python3
"""Prints mixseg against the fastest peer per (device, phase, precision,
filters, batch) from one CSV of the design's schema: img/s of each and their
ratio. Rows of the same run only: give the CSV one sweep wrote."""
import csv
import sys
from collections import defaultdict


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: compare.py RESULTS.csv")
    groups = defaultdict(list)
    with open(sys.argv[1]) as f:
        for r in csv.DictReader(f):
            key = (r["device"], r["phase"], r["precision"], int(r["filters"]), int(r["batch"]))
            groups[key].append(r)
    print(f"{'device':<6} {'phase':<6} {'precision':<11} {'f':>3} {'batch':>5} {'mixseg img/s':>13} "
          f"{'GFLOP/s':>8} {'best peer':<32} {'img/s':>8} {'ratio':>6}")
    for key in sorted(groups):
        rows = groups[key]
        ours = [r for r in rows if r["framework"] == "mixseg"]
        peers = [r for r in rows if r["framework"] != "mixseg"]
        if not ours:
            continue
        m = max(ours, key=lambda r: float(r["img_per_s"]))
        mi = float(m["img_per_s"])
        if peers:
            p = max(peers, key=lambda r: float(r["img_per_s"]))
            pi = float(p["img_per_s"])
            peer = f"{p['framework']} {p['framework_version']}"[:32]
            print(f"{key[0]:<6} {key[1]:<6} {key[2]:<11} {key[3]:>3} {key[4]:>5} {mi:>13.2f} "
                  f"{float(m['tflops']) * 1e3:>8.1f} {peer:<32} {pi:>8.2f} {mi / pi:>5.2f}x")
        else:
            print(f"{key[0]:<6} {key[1]:<6} {key[2]:<11} {key[3]:>3} {key[4]:>5} {mi:>13.2f} "
                  f"{float(m['tflops']) * 1e3:>8.1f} {'(no peer row)':<32} {'':>8} {'':>6}")


if __name__ == "__main__":
    main()
