#!/usr/bin/env python3
"""The workloads of benches/peers.rs on the Python original, tinyio 0.4.0 (issue 6).

Install it first (any Python >= 3.11):

    pip install tinyio==0.4.0

Run:

    python3 benches/python_tinyio.py            # full sizes below, median of 3
    python3 benches/python_tinyio.py --quick    # sizes / 10, one repetition (seconds)

Prints a table, then one JSON line per workload in the shape of benches/peers.rs, with
"system":"python-tinyio":

    {"workload":"W1","system":"python-tinyio","ns_per_op":3012.5}
    {"workload":"W4","system":"python-tinyio","ns_per_op":...,"p50_late_us":...,"p99_late_us":...}
    {"workload":"W7","system":"python-tinyio","bytes_per_task":...}

Sizes are scaled down from the Rust bench (shown in the table and on stderr), and every number is
per operation, so they compare directly. WARNING: Python tinyio's spawn-and-gather is quadratic
(each yielded generator is looked up with `x in self._results.keys()`, and `keys()` of its
WeakKeyDictionary is a generator that walks every finished coroutine), so W2 and W4 cost per
operation grows with their size: W2x10 and W4x10 (10x the size) show it. At the Rust sizes
(10^5 coroutines) W2 would take minutes; the ratios reported against the Rust bench are
therefore *flattering* to Python.

W7 counts bytes with tracemalloc: memory traced while 10^4 trivial generators are suspended in
the loop (each at its first `yield`), divided by their number.
"""

import json
import statistics
import sys
import time
import tracemalloc

try:
    import tinyio
except ImportError:
    sys.exit("python_tinyio.py: tinyio is not installed; run `pip install tinyio==0.4.0`")

NAP = 0.010  # seconds, as in W4 of the Rust bench


def pauses(n):
    for _ in range(n):
        yield
    return n


def trivial(i):
    return i
    yield  # makes this a generator


def gather(n):
    outs = yield [trivial(i) for i in range(n)]
    return sum(outs)


def chain(n):
    if n == 0:
        return 0
    return (yield chain(n - 1)) + 1


def sleeper():
    start = time.monotonic()
    yield tinyio.sleep(NAP)
    return max(0.0, time.monotonic() - start - NAP)


def sleepers(n):
    return (yield [sleeper() for _ in range(n)])


def calls(n):
    return (yield [tinyio.run_in_thread(lambda i=i: i) for i in range(n)])


def pool_calls(n):
    pool = tinyio.ThreadPool(2)
    return (yield [pool.run_in_thread(lambda i=i: i) for i in range(n)])


def ping(a, b, n):
    for _ in range(n):
        a.set()
        yield b.wait()
        b.clear()


def pong(a, b, n):
    for _ in range(n):
        yield a.wait()
        a.clear()
        b.set()


def ping_pong(n):
    a, b = tinyio.Event(), tinyio.Event()
    yield [ping(a, b, n), pong(a, b, n)]


def suspended():
    yield


def heap_probe(base, n):
    # Scheduled after the children: they have each run to their first `yield` and are suspended.
    return (tracemalloc.get_traced_memory()[0] - base) / n
    yield


def timed(coro_fn, n):
    coro = coro_fn(n)
    t = time.perf_counter()
    out = tinyio.Loop().run(coro)
    return out, time.perf_counter() - t


def w_simple(coro_fn):
    def run(n):
        _, wall = timed(coro_fn, n)
        return {"ns_per_op": wall * 1e9 / n}

    return run


def w4(n):
    lateness, wall = timed(sleepers, n)
    lateness = sorted(lateness)
    at = lambda q: lateness[round((len(lateness) - 1) * q)] * 1e6  # noqa: E731
    return {"ns_per_op": max(0.0, wall - NAP) * 1e9 / n, "p50_late_us": at(0.5), "p99_late_us": at(0.99)}


def w7(n):
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        children = [suspended() for _ in range(n)]

        def root():
            outs = yield children + [heap_probe(base, n)]
            return outs[-1]

        per_task = tinyio.Loop().run(root())
    finally:
        tracemalloc.stop()
    return {"bytes_per_task": per_task}


# name, what, Python size (full), Rust size, runner
WORKLOADS = [
    ("W1", "one coroutine pausing", 100_000, 1_000_000, w_simple(pauses)),
    ("W2", "spawn+gather trivial", 1_000, 100_000, w_simple(gather)),
    ("W2x10", "spawn+gather trivial", 10_000, 1_000_000, w_simple(gather)),
    ("W3", "chain, each awaits next", 10_000, 10_000, w_simple(chain)),
    ("W4", "concurrent 10 ms sleeps", 1_000, 10_000, w4),
    ("W4x10", "concurrent 10 ms sleeps", 10_000, 100_000, w4),
    ("W5", "blocking calls, gathered", 1_000, 1_000, w_simple(calls)),
    ("W5pool", "blocking calls, 2-thread pool", 1_000, 1_000, w_simple(pool_calls)),
    ("W6", "event ping-pong round trips", 10_000, 100_000, w_simple(ping_pong)),
    ("W7", "heap per suspended task", 10_000, 100_000, w7),
]


def main():
    args = sys.argv[1:]
    quick = "--quick" in args
    reps = int(args[args.index("--reps") + 1]) if "--reps" in args else (1 if quick else 3)
    only = args[args.index("--only") + 1].split(",") if "--only" in args else None
    scale = 10 if quick else 1
    print(
        f"python-tinyio {getattr(tinyio, '__version__', '0.4.0')}: {'quick' if quick else 'full'} mode, "
        f"{reps} repetition(s), median reported; Python {sys.version.split()[0]}",
        file=sys.stderr,
    )
    started = time.perf_counter()
    results = []
    for name, what, n, rust_n, run in WORKLOADS:
        if only is not None and name not in only:
            continue
        n = max(1, n // scale)
        if name == "W7":
            samples = [run(n)]
        else:
            run(max(1, n // 10))  # warm-up
            samples = [run(n) for _ in range(reps)]
        median = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
        results.append((name, what, n, rust_n // scale, median))
        print(f"  {name} done ({time.perf_counter() - started:.1f} s)", file=sys.stderr)

    print()
    print(f"{'workload':<8} {'what':<36} {'n (python)':>10} {'n (rust)':>10} {'python-tinyio':>14}")
    for name, what, n, rust_n, m in results:
        unit = "B/task" if "bytes_per_task" in m else "ns/op"
        value = m.get("bytes_per_task", m.get("ns_per_op"))
        print(f"{name:<8} {what + ' (' + unit + ')':<36} {n:>10} {rust_n:>10} {value:>14.1f}")
        if "p50_late_us" in m:
            late = f"{m['p50_late_us']:.0f}/{m['p99_late_us']:.0f}"
            print(f"{'':<8} {'  p50 / p99 lateness (us)':<36} {'':>10} {'':>10} {late:>14}")
    print()
    for name, _, _, _, m in results:
        line = {"workload": name, "system": "python-tinyio"}
        line.update({k: round(v, 1) for k, v in m.items()})
        print(json.dumps(line, separators=(",", ":")))
    print(f"python-tinyio: finished in {time.perf_counter() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
