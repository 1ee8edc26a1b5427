#!/usr/bin/env python3
"""Instructions per operation for every workload and system of benches/peers.rs, counted by
callgrind: unlike wall time, the count is the same on any machine of the same architecture and
whatever else the machine is doing.

    python3 benches/instructions.py                       # every workload and system (minutes)
    python3 benches/instructions.py --only W2,W6 --systems tinyio,tokio   # exact names
    python3 benches/instructions.py --binary old=/tmp/peers-a,new=/tmp/peers-b --systems tinyio
                                                    # A/B: one column per given bench binary

For each (workload, system) it runs the bench binary (quick sizes) under
`valgrind --tool=callgrind` twice, with one and with two repetitions: the difference is exactly
one repetition of n operations, without start-up, set-up or warm-up. It prints a table and one
JSON line per pair: {"workload":"W2","system":"tinyio","instructions_per_op":1933.0}.
Workloads with threads (W5, W5pool) count every thread's instructions, including threads that
spin or park a varying amount: their figures vary from run to run and can even come out
negative; read them as rough.
Needs valgrind; builds the bench binary with `cargo bench --no-run` first.
"""

import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SYSTEMS = ["tinyio", "tokio", "smol", "futures", "genawaiter"]


def bench_binary():
    out = subprocess.run(
        ["cargo", "bench", "--bench", "peers", "--no-run", "--message-format=json"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True,
    ).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "peers" and msg.get("executable"):
            return msg["executable"]
    sys.exit("instructions.py: no bench binary named `peers` was built")


def workloads(binary, only):
    """(name, n at quick size, systems that run it) of the selected workloads that are timed,
    read from the table of a quick run (a system that does not run a workload shows `-` there;
    W7 and W7event, whose unit is B/task, measure bytes, not time, and are left out)."""
    out = subprocess.run([binary, "--quick", "--reps", "1", *(["--only", ",".join(only)] if only else [])],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=True).stdout
    header = next((line.split() for line in out.splitlines() if line.startswith("workload")), None)
    if header is None:
        sys.exit("instructions.py: no table in the bench's output")
    columns = [c for c in header if c in SYSTEMS]
    found = []
    for line in out.splitlines():
        m = re.match(r"^(W\w+)\s+.*?\((\S+)\)\s+(\d+)\s+(.*)$", line)
        if m and m.group(2) != "B/task":
            cells = m.group(4).split()[: len(columns)]
            ran = [s for s, cell in zip(columns, cells) if cell != "-"]
            found.append((m.group(1), int(m.group(3)), ran))
    if not found:
        sys.exit("instructions.py: no timed workload in the bench's table")
    return found


def instructions(binary, workload, system, reps):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary,
             "--quick", "--reps", str(reps), "--only", workload, "--systems", system],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        if run.returncode != 0:
            sys.exit(f"instructions.py: {workload} on {system} failed:\n{run.stderr[-2000:]}")
        total = re.search(r"^summary:\s+(\d+)", open(out).read(), re.M)
        return int(total.group(1))


def main():
    args = sys.argv[1:]

    def opt(name):
        return args[args.index(name) + 1].split(",") if name in args else None

    given = opt("--binary")
    binaries = [b.split("=", 1) for b in given] if given else [(None, bench_binary())]
    only, systems = opt("--only"), opt("--systems") or SYSTEMS
    rows = []
    for label, binary in binaries:
        for name, n, ran in workloads(binary, only):
            for system in [s for s in systems if s in ran]:
                one = instructions(binary, name, system, 1)
                two = instructions(binary, name, system, 2)
                column = f"{system}@{label}" if label else system
                rows.append({"workload": name, "system": column, "instructions_per_op": round((two - one) / n, 1)})
                print(f"  {name} {column}: {rows[-1]['instructions_per_op']}", file=sys.stderr)
    systems = list(dict.fromkeys(r["system"] for r in rows))
    names = list(dict.fromkeys(r["workload"] for r in rows))
    shown = [s for s in systems if any(r["system"] == s for r in rows)]
    print(f"{'workload':<9}" + "".join(f" {s:>12}" for s in shown))
    for name in names:
        cells = {r["system"]: r["instructions_per_op"] for r in rows if r["workload"] == name}
        print(f"{name:<9}" + "".join(f" {cells.get(s, '-'):>12}" for s in shown))
    for r in rows:
        print(json.dumps(r, separators=(",", ":")))


if __name__ == "__main__":
    main()
