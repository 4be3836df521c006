#!/usr/bin/env python3
"""run_bench.py: runs the benchmark suite under every allocator.

    python3 run_bench.py [--gomalloc PATH] [--quick] [--only LIST] [--reps N]
                         [--allocs LIST] [--check] [--timeout S]

(normally through `make -C bench bench [QUICK=1] [ONLY=..] [REPS=..]`).

Each workload variant runs under each allocator by LD_PRELOAD (glibc: no
preload), in a rotating order inside every repetition, so drift of the
machine hits every allocator alike. A single-threaded variant runs pinned
to one CPU, repetition i on CPU i mod (CPUs available), the same CPU for
every allocator: on this virtual machine the same memory-bound run takes
half as long again on one core as on the other, and unpinned the scheduler
dealt the slow core to one allocator more often than to another. A run counts only if it exits 0 and
prints the same checksum line as glibc's run of the same variant. Wall time
is measured around fork+exec+wait4, peak RSS is wait4's ru_maxrss. The
report (Markdown, plus a CSV of every run and a PNG chart drawn by gnuplot)
goes to results/<date>-<quick|full>[-subset].{md,csv,png}; a complete full
run is also copied to RESULTS.md / RESULTS.png.

gomalloc is the reference column (ratio 1.00) when its library exists;
otherwise the peers run alone and glibc is the reference, which the report
says at the top. Standard library only.
"""
import argparse
import csv
import datetime
import fnmatch
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.join(HERE, "build")
RESULTS = os.path.join(HERE, "results")


def libdir():
    try:
        arch = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True).stdout.strip()
    except OSError:
        arch = ""
    return "/usr/lib/" + (arch or "x86_64-linux-gnu")


PEERS = [
    ("glibc", None),
    ("mimalloc", "libmimalloc.so.2"),
    ("jemalloc", "libjemalloc.so.2"),
    ("tcmalloc", "libtcmalloc_minimal.so.4"),
]

QUICK_DIV = 5   # quick runs do a fifth of the work of full runs


# ---- workloads ------------------------------------------------------------
# (group, name, argv, work) where argv may contain "{w}", replaced by work in
# a full run and by work // QUICK_DIV in a quick one. Relative programs are
# in build/; "python3" and "sqlite3" are the system's.

def workloads():
    W = []

    def add(group, name, argv, work, env=None):
        single = name.endswith("-t1") or name in ("fast-one-32", "frag", "python", "sqlite")
        W.append({"group": group, "name": name, "argv": argv, "work": work, "env": env or {}, "single": single})

    add("fastpath", "fast-one-32", ["fastpath", "1", "{w}", "1", "32"], 80_000_000)
    for t in (1, 2, 4, 8):
        add("fastpath", "fast-mix-t%d" % t,
            ["fastpath", str(t), "{w}", "64", "16", "32", "48", "64", "96", "128", "256", "512"], 80_000_000)
    for t in (1, 2, 4, 8):
        add("churn", "churn-t%d" % t, ["churn", str(t), "{w}", "40000"], 10_000_000)
    for t in (2, 4, 8):
        add("prodcons", "prodcons-t%d" % t, ["prodcons", str(t), "{w}"], 2_000_000)
    for t in (1, 2, 4, 8):
        add("larson", "larson-t%d" % t, ["larson", str(t), "{w}", "10", "20000", "8", "1000"], 10_000_000)
    for mode in ("active", "passive"):
        for t in (2, 4, 8):
            add("cthrash", "cthrash-%s-t%d" % (mode, t), ["cthrash", mode, str(t), "{w}", "100", "8"], 2_000_000)
    for t in (1, 4):
        add("large", "large-t%d" % t, ["large", str(t), "{w}", "32", "32768", "4194304"], 4_000)
    for t in (1, 4):
        add("realloc", "realloc-t%d" % t, ["realloc", str(t), "3", "2000", "{w}"], 1_000_000)
    add("frag", "frag", ["frag", "3", "{w}", "10"], 64)
    for t in (2, 4, 8):
        add("threadchurn", "threadchurn-t%d" % t, ["threadchurn", str(t), "{w}", "1000"], 1_000)
    add("python", "python", ["/usr/bin/python3", os.path.join(HERE, "py_workload.py"), "{w}"], 30_000,
        env={"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"})
    add("sqlite", "sqlite", ["sqlite3", "-bail", ":memory:", ".parameter set @n {w}",
                             ".read " + os.path.join(HERE, "sqlite_workload.sql")], 200_000)
    return W


def command(w, div):
    work = max(1, w["work"] // div)
    argv = [a.replace("{w}", str(work)) for a in w["argv"]]
    prog = argv[0]
    if "/" not in prog:
        local = os.path.join(BUILD, prog)
        argv[0] = local if os.path.exists(local) else (shutil.which(prog) or prog)
    return argv


# ---- running one process ----------------------------------------------------

class Run:
    __slots__ = ("ok", "secs", "rss_kib", "out", "err", "cpu")

    def __init__(self, ok, secs, rss_kib, out, err, cpu=0.0):
        self.ok, self.secs, self.rss_kib, self.out, self.err, self.cpu = ok, secs, rss_kib, out, err, cpu


def run_once(argv, env, timeout, cpu=None):
    """Runs argv through build/runone (fork, exec, wait4); returns Run
    (ok = exit status 0). See runone.c for why a launcher measures. cpu:
    pin the run (runone and what it starts) to that CPU."""
    pin = None if cpu is None else (lambda: os.sched_setaffinity(0, {cpu}))
    with tempfile.TemporaryDirectory() as td:
        fo, fe = os.path.join(td, "out"), os.path.join(td, "err")
        try:
            p = subprocess.run([os.path.join(BUILD, "runone"), str(timeout), fo, fe] + argv, env=env,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True, preexec_fn=pin)
        except OSError as e:
            return Run(False, 0.0, 0, "", "cannot start runone: %s" % e)
        o = e = ""
        if os.path.exists(fo):
            with open(fo, errors="replace") as f:
                o = f.read().strip()
        if os.path.exists(fe):
            with open(fe, errors="replace") as f:
                e = f.read().strip()
    fields = p.stdout.split()
    if p.returncode != 0 or len(fields) != 4:
        return Run(False, 0.0, 0, "", "runone failed: %s %s" % (p.stdout, p.stderr))
    status, secs, rss, cpu = fields[0], float(fields[1]), int(fields[2]), float(fields[3])
    ok = status == "0"
    if status == "timeout":
        e = "timed out after %ds; %s" % (timeout, e)
    elif status.startswith("-"):
        e = "killed by signal %s; %s" % (status[1:], e)
    elif not ok:
        e = "exit status %s; %s" % (status, e)
    return Run(ok, secs, rss, o.splitlines()[-1] if o else "", e[-400:], cpu)


# ---- environment -------------------------------------------------------------

def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = "%.0f GiB" % (kb / 2**20)
    except (OSError, ValueError, IndexError):
        pass
    libc = os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else "?"
    commit = sh(["git", "-C", HERE, "rev-parse", "--short", "HEAD"]) or "(no commit)"
    if sh(["git", "-C", HERE, "status", "--porcelain", "--", ".."]):
        commit += " + uncommitted changes"
    return [
        ("CPU", cpu),
        ("cores", str(os.cpu_count())),
        ("memory", mem),
        ("kernel", platform.release()),
        ("libc", libc),
        ("compiler", sh(["gcc", "--version"]).splitlines()[0] if sh(["gcc", "--version"]) else "?"),
        ("python3", sh(["/usr/bin/python3", "--version"]) or "?"),
        ("sqlite3", (sh(["sqlite3", "--version"]).split() or ["?"])[0]),
        ("gomalloc tree", commit),
    ]


def allocator_list(args):
    """[(name, preload path or None)] of the allocators that exist, and notes."""
    notes = []
    allocs = []
    gm = os.path.abspath(args.gomalloc) if args.gomalloc else ""
    if gm and os.path.exists(gm):
        allocs.append(("gomalloc", gm))
        if getattr(args, "secure", False):
            allocs.append(("gomalloc-secure", gm))
        if getattr(args, "hugepages", False):
            allocs.append(("gomalloc-huge", gm))
            allocs.append(("gomalloc-nohuge", gm))
    else:
        notes.append("gomalloc library not found at `%s`: peers only." % gm)
    ld = libdir()
    for name, so in PEERS:
        if so is None:
            allocs.append((name, None))
            continue
        path = os.path.join(ld, so)
        if os.path.exists(path):
            allocs.append((name, path))
        else:
            notes.append("%s not found at `%s`: skipped." % (name, path))
    if args.allocs:
        want = [a.strip() for a in args.allocs.split(",") if a.strip()]
        unknown = [a for a in want if a not in [n for n, _ in allocs]]
        if unknown:
            sys.exit("run_bench: unknown or missing allocators: %s" % ", ".join(unknown))
        allocs = [a for a in allocs if a[0] in want]
    return allocs, notes


def base_env():
    env = dict(os.environ)
    for k in list(env):
        if k == "LD_PRELOAD" or k.startswith("MALLOC_") or k.startswith("MIMALLOC_") \
                or k.startswith("TCMALLOC_") or k in ("JE_MALLOC_CONF", "MALLOC_CONF", "GLIBC_TUNABLES"):
            del env[k]
    return env


# Variants: the same library with options (GOMALLOC_SECURE=1: --secure;
# GOMALLOC_HUGEPAGES=1 and =0, against the default auto: --hugepages).
VARIANT_ENV = {"gomalloc-secure": {"GOMALLOC_SECURE": "1"}, "gomalloc-huge": {"GOMALLOC_HUGEPAGES": "1"},
               "gomalloc-nohuge": {"GOMALLOC_HUGEPAGES": "0"}}


def alloc_env(env, path, name=""):
    e = dict(env)
    if path:
        e["LD_PRELOAD"] = path
    e.update(VARIANT_ENV.get(name, {}))
    return e


def probe(allocs, env):
    """Checks that each preload really serves malloc; returns {name: version}."""
    info = os.path.join(BUILD, "allocinfo")
    versions = {}
    for name, path in allocs:
        r = run_once([info], alloc_env(env, path, name), 30)
        if not r.ok:
            sys.exit("run_bench: allocinfo failed under %s: %s" % (name, r.err))
        lib, _, ver = r.out.partition("\t")
        if path and os.path.realpath(lib) != os.path.realpath(path):
            sys.exit("run_bench: under LD_PRELOAD=%s malloc comes from %s" % (path, lib))
        if not path and "libc.so" not in lib:
            sys.exit("run_bench: without preload malloc comes from %s" % lib)
        versions[name] = ver.strip() or "?"
    return versions


# ---- statistics and report ----------------------------------------------------

def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def iqr(xs):
    """Interquartile range (0 for fewer than 2 values)."""
    if len(xs) < 2:
        return 0.0
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[2] - q[0]


def fmt_time(s):
    return "%.3f" % s if s < 10 else "%.2f" % s


def fmt_mib(kib):
    mib = kib / 1024
    return "%.1f" % mib if mib < 100 else "%.0f" % mib


def summarize(selected, allocs, runs, ref):
    """Per (workload, allocator): median time, median rss, spread, status."""
    S = {}
    for w in selected:
        glibc_outs = [r.out for r in runs.get((w["name"], "glibc"), []) if r.ok]
        expect = statistics.mode(glibc_outs) if glibc_outs else None
        for a, _ in allocs:
            rs = runs.get((w["name"], a), [])
            bad = [r for r in rs if not r.ok]
            wrong = [r for r in rs if r.ok and expect is not None and r.out != expect]
            if not rs:
                S[w["name"], a] = {"status": "not run"}
            elif bad:
                S[w["name"], a] = {"status": "FAIL", "why": bad[0].err}
            elif wrong:
                S[w["name"], a] = {"status": "WRONG", "why": "printed %r, glibc printed %r" % (wrong[0].out, expect)}
            else:
                ts = [r.secs for r in rs]
                ms = [r.rss_kib for r in rs]
                med = statistics.median(ts)
                S[w["name"], a] = {"status": "ok", "time": med, "tmin": min(ts), "rss": statistics.median(ms),
                                   "spread": iqr(ts) / med if med > 0 else 0.0,
                                   "out": rs[0].out}
    ratios = {}
    for w in selected:
        r0 = S.get((w["name"], ref), {})
        for a, _ in allocs:
            s = S[w["name"], a]
            if s["status"] == "ok" and r0.get("status") == "ok":
                ratios[w["name"], a] = (s["time"] / r0["time"], s["rss"] / r0["rss"])
    return S, ratios


def write_report(path_md, title, meta, notes, selected, allocs, versions, S, ratios, ref, args, elapsed):
    names = [a for a, _ in allocs]
    L = []
    L.append("# %s" % title)
    L.append("")
    for k, v in meta:
        L.append("- %s: %s" % (k, v))
    L.append("- allocators: " + "; ".join("%s = %s" % (a, versions.get(a, "?")) for a in names))
    L.append("- single-threaded workloads pinned: repetition i on CPU i mod %d, the same for every allocator"
             % len(os.sched_getaffinity(0)))
    L.append("- repetitions: %d per workload and allocator, allocators alternating in rotating order; "
             "run took %.0f s" % (args.reps, elapsed))
    L.append("- command: `make -C bench bench%s`" % (
        (" QUICK=1" if args.quick else "") + (" ONLY=%s" % args.only if args.only else "") +
        (" REPS=%d" % args.reps if args.reps_given else "") + (" ALLOCS=%s" % args.allocs if args.allocs else "")))
    L.append("")
    for n in notes:
        L.append("**Note:** " + n)
        L.append("")
    L.append("Each cell: median over the repetitions, then in parentheses the ratio to %s "
             "(%s = 1.00; above 1 means that allocator took longer or used more memory than %s). "
             "`FAIL` = crashed, timed out or failed its own check; `WRONG` = printed a checksum "
             "different from glibc's. Geometric means are over the workloads where both "
             "allocators succeeded." % (ref, ref, ref))
    L.append("")

    def table(key, unit, fmt, spread):
        hdr = "| workload | " + " | ".join("%s %s" % (a, unit) for a in names) + (" | spread |" if spread else " |")
        L.append(hdr)
        L.append("|" + "---|" * (len(names) + 1 + (1 if spread else 0)))
        for w in selected:
            cells = []
            worst = 0.0
            for a in names:
                s = S[w["name"], a]
                if s["status"] != "ok":
                    cells.append("**%s**" % s["status"] if s["status"] != "not run" else "-")
                    continue
                worst = max(worst, s["spread"])
                r = ratios.get((w["name"], a))
                cells.append("%s (%.2f)" % (fmt(s[key]), r[0 if key == "time" else 1]) if r else fmt(s[key]))
            row = "| %s | %s |" % (w["name"], " | ".join(cells))
            if spread:
                row += (" %.0f%% |" % (100 * worst)) if args.reps > 1 else " - |"
            L.append(row)
        gm = []
        for a in names:
            xs = [ratios[w["name"], a][0 if key == "time" else 1] for w in selected if (w["name"], a) in ratios]
            gm.append("**%.2f**" % geomean(xs) if xs else "-")
        L.append("| **geometric mean** | %s |%s" % (" | ".join(gm), " |" if spread else ""))
        L.append("")

    L.append("## Wall time (seconds)")
    L.append("")
    L.append("`spread` = the largest interquartile range / median of any allocator in that row: "
             "a difference between two allocators smaller than it is not a result (min and max "
             "of every run are in the CSV).")
    L.append("")
    table("time", "s", fmt_time, True)
    if args.reps > 1:
        # Best of the repetitions: what each allocator does when nothing else
        # got in its way (on a shared machine, interference only adds time).
        best = []
        for a in names:
            pairs = [(S[w["name"], a]["tmin"] / S[w["name"], ref]["tmin"], w["name"]) for w in selected
                     if S[w["name"], a]["status"] == "ok" and S[w["name"], ref].get("status") == "ok"]
            worst = min(pairs, default=None)
            best.append("%s %.2f" % (a, geomean([x for x, _ in pairs])) + (" (lowest: %s %.2f)" % (worst[1], worst[0])
                                                          if worst and a != ref else ""))
        L.append("Fastest run of each workload instead of the median (interference on a shared "
                 "machine only adds time), geometric mean as multiples of %s's, and the workload where %s is furthest "
                 "behind each: %s." % (ref, ref, "; ".join(best)))
        L.append("")
    L.append("## Peak RSS (MiB, ru_maxrss)")
    L.append("")
    table("rss", "MiB", fmt_mib, False)
    fails = [(w["name"], a, S[w["name"], a]) for w in selected for a in names
             if S[w["name"], a]["status"] in ("FAIL", "WRONG")]
    if fails:
        L.append("## Failures")
        L.append("")
        for wn, a, s in fails:
            L.append("- %s under %s: %s: %s" % (wn, a, s["status"], s.get("why", "").replace("\n", " ")))
        L.append("")
    L.append("## Workloads")
    L.append("")
    L.append("| workload | command (checksum line) |")
    L.append("|---|---|")
    for w in selected:
        argv = [a.replace(HERE + "/", "") for a in command(w, QUICK_DIV if args.quick else 1)]
        out = next((S[w["name"], a].get("out") for a in names if S[w["name"], a]["status"] == "ok"), "")
        L.append("| %s | `%s` (`%s`) |" % (w["name"], " ".join(
            ("'%s'" % a) if " " in a else a for a in argv), out))
    L.append("")
    L.append("See README.md for what each workload stands for and its limits.")
    with open(path_md, "w") as f:
        f.write("\n".join(L) + "\n")
    return "\n".join(L)


def write_csv(path_csv, allocs, runs):
    with open(path_csv, "w", newline="") as f:
        c = csv.writer(f)
        c.writerow(["workload", "allocator", "rep", "ok", "seconds", "cpu_seconds", "maxrss_kib", "output",
                    "error"])
        for (wn, a), rs in runs.items():
            for i, r in enumerate(rs):
                c.writerow([wn, a, i, int(r.ok), "%.6f" % r.secs, "%.6f" % r.cpu, r.rss_kib, r.out, r.err])


def write_chart(path_png, title, selected, allocs, ratios, ref):
    gnuplot = shutil.which("gnuplot")
    peers = [a for a, _ in allocs if a != ref]
    if not gnuplot or not peers:
        return "gnuplot missing or no peer: no chart"
    rows = []
    for w in selected:
        rows.append((w["name"], [ratios.get((w["name"], a)) for a in peers]))
    gmt = [geomean([ratios[w["name"], a][0] for w in selected if (w["name"], a) in ratios]) for a in peers]
    gmr = [geomean([ratios[w["name"], a][1] for w in selected if (w["name"], a) in ratios]) for a in peers]
    with tempfile.TemporaryDirectory() as td:
        dat = os.path.join(td, "ratios.dat")
        with open(dat, "w") as f:
            f.write("# workload " + " ".join("t_%s" % a for a in peers) + " " +
                    " ".join("m_%s" % a for a in peers) + "\n")
            for name, rs in rows:
                f.write('"%s" ' % name + " ".join("%.4f" % r[0] if r else "NaN" for r in rs) + " " +
                        " ".join("%.4f" % r[1] if r else "NaN" for r in rs) + "\n")
            f.write('"GEOMEAN" ' + " ".join("%.4f" % x for x in gmt) + " " +
                    " ".join("%.4f" % x for x in gmr) + "\n")
        allr = [x for _, rs in rows for r in rs if r for x in r] + gmt + gmr
        allr = [x for x in allr if x and x > 0 and not math.isnan(x)]
        lo = max(min(allr + [1.0]) / 1.3, 0.01)
        hi = min(max(allr + [1.0]) * 1.3, 1000)
        colors = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1"]
        n = len(peers)
        width = min(2400, max(1400, 16 * len(rows) * (n + 1) + 320))
        plot_lines = []
        for panel, (off, label) in enumerate(((0, "wall time"), (n, "peak RSS"))):
            parts = []
            for i, a in enumerate(peers):
                col = 2 + off + i
                xt = ":xtic(1)" if i == 0 else ""
                parts.append("'%s' using %d%s title '%s' lc rgb '%s'" % (dat, col, xt, a, colors[i % len(colors)]))
            plot_lines.append((label, ", ".join(parts)))
        script = """
set terminal pngcairo size {w},1300 font 'DejaVu Sans,14'
set output '{out}'
set multiplot layout 2,1 title '{title}' font 'DejaVu Sans,18'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.9 border -1
set boxwidth 0.9
set logscale y 2
set yrange [{lo}:{hi}]
set grid ytics lc rgb '#cccccc'
set xtics rotate by -45 left font 'DejaVu Sans,14' nomirror
set ytics nomirror
set key outside right top vertical font 'DejaVu Sans,15'
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead lc rgb '#000000' lw 2 front
set lmargin 13
set rmargin 18
set bmargin 9
set ylabel '{t1}' font 'DejaVu Sans,14'
plot {p1}
set ylabel '{t2}' font 'DejaVu Sans,14'
plot {p2}
unset multiplot
""".format(w=width, out=path_png, title=title.replace("'", ""), lo=lo, hi=hi,
           t1="wall time, peer / %s (log scale)" % ref,
           t2="peak RSS, peer / %s (log scale)" % ref,
           p1=plot_lines[0][1], p2=plot_lines[1][1])
        gp = os.path.join(td, "chart.gp")
        with open(gp, "w") as f:
            f.write(script)
        r = subprocess.run([gnuplot, gp], capture_output=True, text=True)
        if r.returncode != 0:
            return "gnuplot failed: " + r.stderr[-500:]
    return ""


# ---- main ----------------------------------------------------------------------

def memory_return(allocs, env, quick, timeout):
    """The memory-return workload (memret.c): RSS after freeing ~1.5 GiB
    (512 MiB quick), right away, after 1 s and 3 s idle, after malloc_trim(0).
    One run per allocator; returns a Markdown section."""
    mib = 512 if quick else 1536
    argv = [os.path.join(BUILD, "memret"), str(mib)]
    rows, sums = [], set()
    for a, path in allocs:
        e = alloc_env(env, path, a)
        r = run_once(argv, e, timeout)
        m = re.search(r"memret-rss peak=(\d+) free=(\d+) t1=(\d+) t3=(\d+) trim=(\d+)", r.err or "")
        if not r.ok or not m:
            rows.append("| %s | FAIL | | | | |" % a)
            continue
        sums.add((r.out or "").strip())
        v = [int(x) / 1024 for x in m.groups()]
        rows.append("| %s | %.0f | %.0f (%.0f%%) | %.0f (%.0f%%) | %.0f (%.0f%%) | %.0f (%.0f%%) |" % (
            a, v[0], v[1], 100 * v[1] / v[0], v[2], 100 * v[2] / v[0], v[3], 100 * v[3] / v[0],
            v[4], 100 * v[4] / v[0]))
        print("[memret] %-9s peak %.0f MiB, free %.0f, 1 s %.0f, 3 s %.0f, trim %.0f" % ((a,) + tuple(v)),
              flush=True)
    out = ["", "## Memory return", "",
           "`build/memret %d`: allocate %d MiB of mixed objects (95%% small, 5%% 40-240 KiB), touch them, free them "
           "all; resident set (MiB, and %% of the peak) right after the frees, after 1 s and 3 s idle, and right "
           "after `malloc_trim(0)`. One run per allocator.%s" % (
               mib, mib, "" if len(sums) <= 1 else " WARNING: checksums differ between allocators."),
           "", "| allocator | peak | after free | after 1 s | after 3 s | after malloc_trim(0) |",
           "|---|---|---|---|---|---|"] + rows
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gomalloc", default=os.path.join(HERE, "..", "build", "libgomalloc.so"),
                    help="path of libgomalloc.so (default ../build/libgomalloc.so)")
    ap.add_argument("--quick", action="store_true", help="workloads at 1/%d size, 3 repetitions" % QUICK_DIV)
    ap.add_argument("--only", default="", help="comma-separated workload names, groups or globs")
    ap.add_argument("--reps", type=int, default=0, help="repetitions (default 5, quick 3)")
    ap.add_argument("--allocs", default="", help="comma-separated allocators (default: all found)")
    ap.add_argument("--secure", action="store_true",
                    help="also gomalloc-secure: the same library with GOMALLOC_SECURE=1")
    ap.add_argument("--hugepages", action="store_true",
                    help="also gomalloc-huge and gomalloc-nohuge: the same library with GOMALLOC_HUGEPAGES=1 and =0")
    ap.add_argument("--check", action="store_true",
                    help="run each workload once per allocator at 1/20 size and only verify results")
    ap.add_argument("--timeout", type=int, default=0, help="seconds per run (default 300, quick 120)")
    ap.add_argument("--list", action="store_true", help="list the workloads and exit")
    args = ap.parse_args()
    args.reps_given = args.reps > 0
    if not args.reps:
        args.reps = 1 if args.check else (3 if args.quick else 5)
    if not args.timeout:
        args.timeout = 120 if (args.quick or args.check) else 300
    div = 20 if args.check else (QUICK_DIV if args.quick else 1)

    W = workloads()
    if args.list:
        for w in W:
            print("%-22s %s" % (w["name"], " ".join(command(w, 1))))
        return 0
    if args.only:
        toks = [t.strip() for t in args.only.split(",") if t.strip()]
        W = [w for w in W if any(t == w["group"] or fnmatch.fnmatch(w["name"], t) or
                                 fnmatch.fnmatch(w["name"], t + "-*") for t in toks)]
        if not W and "memret" not in toks:
            sys.exit("run_bench: --only %s matches no workload (see --list; memret is the memory-return run)"
                     % args.only)
    for w in W:
        p = command(w, 1)[0]
        if not os.path.exists(p):
            sys.exit("run_bench: %s not found (run make -C bench first)" % p)

    allocs, notes = allocator_list(args)
    names = [a for a, _ in allocs]
    ref = "gomalloc" if "gomalloc" in names else ("glibc" if "glibc" in names else names[0])
    if ref != "gomalloc":
        notes.append("The reference column (ratio 1.00) is %s." % ref)
    if "glibc" not in names:
        notes.append("glibc is not in this run: outputs are not cross-checked against it.")
    env = base_env()
    versions = probe(allocs, env)
    for n in notes:
        print("run_bench: " + n, flush=True)
    print("run_bench: %d workloads x %d allocators (%s) x %d reps%s" % (
        len(W), len(allocs), ", ".join(names), args.reps,
        " [check]" if args.check else (" [quick]" if args.quick else "")), flush=True)

    load_start = os.getloadavg()
    runs = {}
    dead = set()   # (workload, allocator) that failed: not run again
    t_start = time.time()
    cpus = sorted(os.sched_getaffinity(0))
    for rep in range(args.reps):
        for wi, w in enumerate(W):
            k = (rep + wi) % len(allocs)
            order = allocs[k:] + allocs[:k]
            argv = command(w, div)
            cpu = cpus[rep % len(cpus)] if w["single"] else None
            line = []
            for a, path in order:
                if (w["name"], a) in dead:
                    continue
                e = alloc_env(env, path, a)
                e.update(w["env"])
                r = run_once(argv, e, args.timeout, cpu)
                runs.setdefault((w["name"], a), []).append(r)
                if not r.ok:
                    dead.add((w["name"], a))
                    line.append("%s FAIL" % a)
                    print("run_bench: %s under %s failed: %s" % (w["name"], a, r.err), file=sys.stderr, flush=True)
                else:
                    line.append("%s %.2fs %.0fM" % (a, r.secs, r.rss_kib / 1024))
            print("[rep %d/%d] %-20s %s" % (rep + 1, args.reps, w["name"], "  ".join(line)), flush=True)
    elapsed = time.time() - t_start
    load_end = os.getloadavg()

    S, ratios = summarize(W, allocs, runs, ref)
    bad = [(w["name"], a) for w in W for a in names if S[w["name"], a]["status"] in ("FAIL", "WRONG")]
    if args.check:
        for w in W:
            print("%-22s %s" % (w["name"], "  ".join("%s:%s" % (a, S[w["name"], a]["status"]) for a in names)))
        print("check: %d failures" % len(bad))
        return 1 if bad else 0

    mode = "quick" if args.quick else "full"
    subset = bool(args.only or args.allocs)
    stamp = datetime.date.today().isoformat()
    os.makedirs(RESULTS, exist_ok=True)
    base = os.path.join(RESULTS, "%s-%s%s" % (stamp, mode, "-subset" if subset else ""))
    title = "gomalloc benchmarks, %s run, %s" % (mode, stamp)
    meta = machine_info() + [("load average (1/5/15 min) at start / end",
                              "%.2f %.2f %.2f / %.2f %.2f %.2f (other processes compete for the %d cores "
                              "when these are high)" % (load_start + load_end + (os.cpu_count(),)))]
    text = write_report(base + ".md", title, meta, notes, W, allocs, versions, S, ratios, ref, args,
                        elapsed)
    if not args.only or any(t.strip() == "memret" for t in args.only.split(",")):
        section = memory_return(allocs, env, args.quick, args.timeout)
        with open(base + ".md", "a") as f:
            f.write(section)
        text += section
    write_csv(base + ".csv", allocs, runs)
    msg = write_chart(base + ".png", "%s: ratios to %s, bars above 1 = %s faster / smaller" % (title, ref, ref),
                      W, allocs, ratios, ref)
    if msg:
        print("run_bench: " + msg, file=sys.stderr)
    if mode == "full" and not subset:
        shutil.copyfile(base + ".md", os.path.join(HERE, "RESULTS.md"))
        if os.path.exists(base + ".png"):
            shutil.copyfile(base + ".png", os.path.join(HERE, "RESULTS.png"))
    print()
    print(text)
    print("run_bench: wrote %s.{md,csv,png}%s" % (
        os.path.relpath(base, os.getcwd()), " and RESULTS.md/.png" if mode == "full" and not subset else ""))
    if bad:
        print("run_bench: %d workload/allocator pairs FAILED or were WRONG: %s" % (
            len(bad), ", ".join("%s/%s" % b for b in bad)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
