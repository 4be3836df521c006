#!/usr/bin/env python3
"""insn_count.py: instructions per malloc+free pair on the fast path.

    python3 insn_count.py [--gomalloc PATH] [--budget insn-budget.txt]
                          [--write-budget [--slack PERCENT]] [--allocs LIST]

(normally `make -C bench bench-insn` and `make -C bench insn-budget`).

For each size (16, 64, 256, 4096 B and 100 KiB) and allocator, runs
build/insn SIZE N under `valgrind --tool=callgrind` for N = N1 and N = N2 and
reports (Ir(N2) - Ir(N1)) / (N2 - N1): the instructions of one pair plus the
loop around it (10: the loop, the calls, their PLT jumps), with start-up, warm-up and exit cancelled out.
Callgrind counts user-space instructions only: a system call (mmap, munmap,
brk, madvise) counts as the one instruction that enters the kernel.

With a budget file: prints any gomalloc count above its budget and exits 1.
With --write-budget: rewrites the budget file from this run's gomalloc
counts, each raised by --slack percent (default 5) and rounded up.
"""
import argparse
import concurrent.futures
import datetime
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.join(HERE, "build")
SIZES = [16, 64, 256, 4096, 102400]
N1, N2 = 20000, 120000
sys.path.insert(0, HERE)
import run_bench  # noqa: E402  (allocator discovery and environment)

BUDGET_HEADER = """\
# bench/insn-budget.txt: gomalloc's fast-path instruction budget.
#
# One line per object size: SIZE_BYTES  MAX_INSTRUCTIONS_PER_PAIR
# An instruction count is one malloc(SIZE) + free() pair plus its loop
# (10 instructions: the loop, the calls, their PLT jumps), measured by `make -C bench bench-insn` under
# valgrind --tool=callgrind as (Ir(N2) - Ir(N1)) / (N2 - N1), N1 = {n1},
# N2 = {n2}, so start-up cancels out. bench-insn prints every size whose
# count is above its budget and exits 1 (it is not part of `make test`).
# "-" means no budget yet.
#
# Rewritten by `make -C bench insn-budget` (measured count + INSN_SLACK
# percent, default 5, rounded up). Commit the file when a change to the fast
# path is meant to change these numbers.
"""


def measure(insn, path, size, n, env):
    e = run_bench.alloc_env(env, path)
    with tempfile.TemporaryDirectory() as td:
        out = os.path.join(td, "cg.out")
        r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                            "--cache-sim=no", "--branch-sim=no", insn, str(size), str(n)],
                           env=e, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError("callgrind failed (size %d, n %d): %s" % (size, n, r.stderr[-600:]))
        with open(out) as f:
            for line in f:
                m = re.match(r"(?:summary|totals):\s+(\d+)", line)
                if m:
                    return int(m.group(1))
    raise RuntimeError("no totals in callgrind output")


def read_budget(path):
    b = {}
    if not os.path.exists(path):
        return b
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if len(line) >= 2 and line[0].isdigit():
                b[int(line[0])] = None if line[1] == "-" else float(line[1])
    return b


def write_budget(path, counts, slack):
    with open(path, "w") as f:
        f.write(BUDGET_HEADER.format(n1=N1, n2=N2))
        f.write("# Last written %s from measured counts: %s\n\n" % (
            datetime.date.today().isoformat(),
            ", ".join("%d B %.1f" % (s, counts[s]) for s in SIZES if counts.get(s) is not None)))
        for s in SIZES:
            c = counts.get(s)
            f.write("%-7d %s\n" % (s, "-" if c is None else "%d" % math.ceil(round(c * (1 + slack / 100.0), 2))))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gomalloc", default=os.path.join(HERE, "..", "build", "libgomalloc.so"))
    ap.add_argument("--budget", default=os.path.join(HERE, "insn-budget.txt"))
    ap.add_argument("--write-budget", action="store_true")
    ap.add_argument("--slack", type=float, default=5.0)
    ap.add_argument("--allocs", default="")
    args = ap.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("insn_count: valgrind not found (apt-get install valgrind)")
    insn = os.path.join(BUILD, "insn")
    if not os.path.exists(insn):
        sys.exit("insn_count: %s not found (make -C bench)" % insn)
    allocs, notes = run_bench.allocator_list(args)
    for n in notes:
        print("insn_count: " + n)
    names = [a for a, _ in allocs]
    if args.write_budget and "gomalloc" not in names:
        sys.exit("insn_count: --write-budget needs the gomalloc library")
    env = run_bench.base_env()
    versions = run_bench.probe(allocs, env)

    jobs = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as ex:
        for a, path in allocs:
            for s in SIZES:
                for n in (N1, N2):
                    jobs[a, s, n] = ex.submit(measure, insn, path, s, n, env)
        ir = {}
        for k, fut in jobs.items():
            try:
                ir[k] = fut.result()
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print("insn_count: %s: %s" % (k[0], e), file=sys.stderr)
                ir[k] = None
    per = {}
    for a in names:
        for s in SIZES:
            x, y = ir[a, s, N1], ir[a, s, N2]
            per[a, s] = None if x is None or y is None else (y - x) / (N2 - N1)

    budget = read_budget(args.budget)
    lines = []
    lines.append("# Instructions per malloc+free pair (callgrind), %s" % datetime.date.today().isoformat())
    lines.append("")
    lines.append("(Ir(%d pairs) - Ir(%d pairs)) / %d, loop included (10 instructions); "
                 "allocators: %s." % (N2, N1, N2 - N1, "; ".join("%s = %s" % (a, versions[a]) for a in names)))
    lines.append("")
    hdr = "| size | " + " | ".join(names) + (" | gomalloc budget |" if "gomalloc" in names else " |")
    lines.append(hdr)
    lines.append("|" + "---|" * (len(names) + 1 + ("gomalloc" in names)))
    over = []
    for s in SIZES:
        label = "%d B" % s if s < 1024 else "%d KiB" % (s // 1024)
        cells = ["-" if per[a, s] is None else "%.1f" % per[a, s] for a in names]
        row = "| %s | %s |" % (label, " | ".join(cells))
        if "gomalloc" in names:
            b = budget.get(s)
            row += " %s |" % ("-" if b is None else "%g" % b)
            g = per["gomalloc", s]
            if g is None:
                over.append("size %d: gomalloc could not be measured" % s)
            elif b is not None and g > b:
                over.append("size %s: gomalloc %.1f instructions > budget %g" % (label, g, b))
        lines.append(row)
    text = "\n".join(lines)
    print(text)
    os.makedirs(run_bench.RESULTS, exist_ok=True)
    out = os.path.join(run_bench.RESULTS, "%s-insn.md" % datetime.date.today().isoformat())
    with open(out, "w") as f:
        f.write(text + "\n")
    print("\ninsn_count: wrote %s" % os.path.relpath(out, os.getcwd()))

    if args.write_budget:
        write_budget(args.budget, {s: per["gomalloc", s] for s in SIZES}, args.slack)
        print("insn_count: rewrote %s (slack %g%%)" % (args.budget, args.slack))
        return 0
    if "gomalloc" in names:
        if not any(v is not None for v in budget.values()):
            print("insn_count: %s has no budget numbers yet (make -C bench insn-budget)" % args.budget)
            return 0
        if over:
            print("\n*** OVER BUDGET ***")
            for o in over:
                print("*** " + o)
            return 1
        print("insn_count: gomalloc within budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
