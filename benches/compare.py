#!/usr/bin/env python3
"""One command for the side-by-side table of issue 6: tinyio, its Rust peers and Python tinyio.

    CARGO_TARGET_DIR=/work/target-bench python3 benches/compare.py            # full run (a few minutes)
    CARGO_TARGET_DIR=/work/target-bench python3 benches/compare.py --quick    # smoke run

It runs `cargo bench --bench peers` and `benches/python_tinyio.py` (which needs
`pip install tinyio==0.4.0`), keeps their JSON lines, and prints one table with every system
side by side, the ratio of each peer to tinyio (above 1: tinyio is faster or smaller), and
each target of issue 6 as PASS or MISS.

Reuse saved outputs instead of running: `--rust FILE` and/or `--python FILE` (files holding
the output of the two benches; any non-JSON line is ignored). `--save DIR` writes both raw
outputs there. `--no-python` leaves Python out.
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RUST_PEERS = ["tokio", "smol", "futures"]
SYSTEMS = ["tinyio", "tokio", "smol", "futures", "genawaiter", "python-tinyio"]
WORKLOADS = ["W1", "W2", "W2x10", "W3", "W4", "W4x10", "W5", "W5pool", "W6", "W7", "W7event", "W8", "W9"]


def parse(text):
    lines = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            d = json.loads(line)
            lines[(d["workload"], d["system"])] = d
    return lines


def run(cmd, **kw):
    print("$ " + " ".join(cmd), file=sys.stderr)
    out = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, **kw)
    if out.returncode != 0:
        sys.exit(f"compare.py: `{' '.join(cmd)}` failed with exit code {out.returncode}")
    return out.stdout


def value(d):
    if d is None:
        return None
    return d.get("bytes_per_task", d.get("ns_per_op"))


def fmt(x):
    if x is None:
        return "-"
    return f"{x:.1f}" if x < 100_000 else f"{x:.3g}"


def main():
    args = sys.argv[1:]
    quick = "--quick" in args

    def opt(name):
        return args[args.index(name) + 1] if name in args else None

    rust_text = open(opt("--rust")).read() if opt("--rust") else None
    py_text = open(opt("--python")).read() if opt("--python") else None
    if rust_text is None:
        rust_text = run(["cargo", "bench", "--bench", "peers", "--", *(["--quick"] if quick else [])])
    if py_text is None and "--no-python" not in args:
        py_text = run([sys.executable, os.path.join(HERE, "python_tinyio.py"), *(["--quick"] if quick else [])])
    if opt("--save"):
        os.makedirs(opt("--save"), exist_ok=True)
        open(os.path.join(opt("--save"), "rust.txt"), "w").write(rust_text)
        if py_text:
            open(os.path.join(opt("--save"), "python.txt"), "w").write(py_text)
    results = parse(rust_text)
    results.update(parse(py_text or ""))
    get = lambda w, s: results.get((w, s))  # noqa: E731

    # The table: one row per workload (W4 rows also give p50 / p99 lateness).
    systems = [s for s in SYSTEMS if any(k[1] == s for k in results)]
    head = f"{'workload':<8} {'unit':<7}" + "".join(f" {s:>13}" for s in systems)
    print(head)
    print("-" * len(head))
    for w in WORKLOADS:
        if not any(k[0] == w for k in results):
            continue
        unit = "B/task" if w.startswith("W7") else "ns/op"
        print(f"{w:<8} {unit:<7}" + "".join(f" {fmt(value(get(w, s))):>13}" for s in systems))
        if w.startswith("W4"):
            for key, label in [("p50_late_us", "p50 us"), ("p99_late_us", "p99 us")]:
                row = [fmt(get(w, s)[key]) if get(w, s) else "-" for s in systems]
                print(f"{'':<8} {label:<7}" + "".join(f" {x:>13}" for x in row))
    print()

    # Ratios: peer / tinyio (> 1 means tinyio is faster, or smaller for W7 and W7event).
    peers = [s for s in systems if s != "tinyio"]
    print("ratio peer / tinyio (> 1: tinyio faster or smaller)")
    print(f"{'workload':<8} {'':<7}" + "".join(f" {s:>13}" for s in peers))
    for w in WORKLOADS:
        t = value(get(w, "tinyio"))
        if t is None:
            continue
        row = []
        for s in peers:
            p = value(get(w, s))
            row.append(f"{p / t:.2f}x" if p is not None and t > 0 else "-")
        print(f"{w:<8} {'':<7}" + "".join(f" {x:>13}" for x in row))
        if w.startswith("W4"):
            row = []
            for s in peers:
                p, q = get(w, s), get(w, "tinyio")
                row.append(f"{p['p99_late_us'] / q['p99_late_us']:.2f}x" if p and q["p99_late_us"] > 0 else "-")
            print(f"{'':<8} {'p99':<7}" + "".join(f" {x:>13}" for x in row))
    print()

    # The targets of issue 6.
    checks = []

    def best(w, key=value):
        xs = [key(get(w, s)) for s in RUST_PEERS if get(w, s)]
        return min(xs) if xs else None

    def check(label, ok, detail):
        checks.append((label, ok, detail))

    t = lambda w: value(get(w, "tinyio"))  # noqa: E731
    if t("W1") is not None:
        b, floor = best("W1"), value(get("W1", "genawaiter"))
        check("W1 <= half the fastest Rust peer", t("W1") <= b / 2, f"tinyio {fmt(t('W1'))} vs best peer {fmt(b)} ns")
        if floor:
            check("W1 within 2x of erased genawaiter", t("W1") <= 2 * floor, f"{t('W1') / floor:.2f}x the floor ({fmt(floor)} ns)")
    for w in ["W2", "W3", "W6"]:
        if t(w) is not None:
            check(f"{w} faster than every Rust peer", t(w) < best(w), f"tinyio {fmt(t(w))} vs best peer {fmt(best(w))} ns")
    if t("W4") is not None:
        check("W4 overhead below every peer", t("W4") < best("W4"), f"tinyio {fmt(t('W4'))} vs best {fmt(best('W4'))} ns/sleeper")
        p99 = best("W4", key=lambda d: d["p99_late_us"])
        check("W4 p99 lateness below every peer", get("W4", "tinyio")["p99_late_us"] < p99,
              f"tinyio {fmt(get('W4', 'tinyio')['p99_late_us'])} vs best {fmt(p99)} us")
    if t("W5") is not None:
        b = min(value(get("W5", s)) for s in ["tokio", "smol"] if get("W5", s))
        check("W5 run_in_thread faster than tokio and smol", t("W5") < b, f"tinyio {fmt(t('W5'))} vs best {fmt(b)} ns")
    if t("W5pool") is not None and get("W5pool", "futures"):
        f = value(get("W5pool", "futures"))
        check("W5pool ThreadPool(2) faster than futures'", t("W5pool") < f, f"tinyio {fmt(t('W5pool'))} vs futures {fmt(f)} ns")
    if t("W7") is not None:
        check("W7 heap <= best peer", t("W7") <= best("W7"), f"tinyio {fmt(t('W7'))} vs best {fmt(best('W7'))} B")
    for w in ["W7", "W7event"]:  # issue 14
        if t(w) is not None:
            check(f"{w} heap <= 200 B per suspended coroutine", t(w) <= 200, f"tinyio {fmt(t(w))} B")
    for w in ["W2", "W4"]:
        if t(w) is not None and t(w + "x10") is not None:
            r = t(w + "x10") / t(w)
            check(f"{w} linear: per-op cost at 10x the size < 2x", r < 2.0,
                  f"{r:.2f}x the per-op cost at 1x (quadratic growth would give 10x)")
    for w in WORKLOADS:
        py = get(w, "python-tinyio")
        if w.startswith("W7") or py is None or t(w) is None:
            continue
        r = value(py) / t(w) if t(w) > 0 else float("inf")
        check(f"{w} >= 100x faster than Python", r >= 100, f"{r:.0f}x")
    width = max(len(c[0]) for c in checks) if checks else 0
    for label, ok, detail in checks:
        print(f"{'PASS' if ok else 'MISS'}  {label:<{width}}  {detail}")
    missed = sum(1 for c in checks if not c[1])
    print(f"\n{len(checks) - missed} passed, {missed} missed")


if __name__ == "__main__":
    main()
