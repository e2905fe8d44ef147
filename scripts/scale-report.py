#!/usr/bin/env python3
"""Turns scripts/scale-bench.sh's raw results into the per-guest table, JSON and a plot.

Usage: scale-report.py RESULTS [--out FILE.json] [--markdown BENCHMARKS.md] [--svg FILE.svg]
                       [--note TEXT]
       scale-report.py FILE.json [--markdown ...] [--svg ...] [--note TEXT]   (a saved run)

RESULTS is scale-bench.sh's raw text, or the JSON a previous --out wrote (it holds the raw
lines too, so every figure is recomputed the same way). Prints the table; --out writes the
numbers as JSON; --markdown rewrites the block between `<!-- scale -->` and `<!-- /scale -->`
in that file (appended if missing), --svg draws the plot (a hand-written SVG: stdlib only).
A run with a failure (a source that could not start a daemon, a failed walk or trace, anything
left behind, uncommitted daemon code) is printed but not written into documents, and exits 1.
A target missed is reported (PASS/MISS), never a failure.

RESULTS lines (written by scripts/scale-bench.sh):
  meta KEY=VALUE ...
  SRC host when=WHEN memavailable_kb=N slab_kb=N ... slab_NAME_objs=N slab_NAME_bytes=N ...
  SRC start i=I ms=MS pid=P child=C
  SRC mem when=after-start|after-walk i=I rss_kb=N pss_kb=N private_kb=N ... pte_kb=N threads=N
  SRC ring when=WHEN i=I bytes=N       (the host source's ring_buffer_bytes, stats file)
  SRC walk i=I entries=N ms=MS rc=RC
  SRC trace i=I bytes=N rc=RC | SRC trace_error i=I step=STEP
  SRC cpu i=I window_us=US ticks=T ns=NS
  SRC stats i=I private_bytes=N pss_bytes=N
  SRC limit started=K reason=TEXT | SRC daemons requested=N started=K
  SRC stop ms=MS leftover_procs=N leftover_mounts=N leftover_instances=N
  SRC unavailable reason=TEXT
"""
import argparse
import math
import json
import os
import re
import statistics
import sys

SOURCES = ["catalog", "host"]
NAMED_SLABS = ["tracefs_inode_cache", "dentry", "inode_cache"]
ALL_SLABS = NAMED_SLABS + ["fuse_inode"]
KERNEL_STACK_KIB = 16  # THREAD_SIZE on x86_64 and arm64: one kernel stack per thread
# Issue 15's targets, per additional guest.
TARGETS = {
    "host_kernel_kib": (256, "≤ 256 KiB"),
    "private_mib": (1.0, "≤ 1 MiB"),
    "idle_cpu_pct": (0.05, "≤ 0.05% of a core"),
    "startup_ms": (50, "< 50 ms"),
}
CHECKPOINTS = [
    ("all-started", "all started, idle"),
    ("after-walk", "after every client's walk"),
    ("after-trace", "after the trace"),
    ("after-stop", "after the stop"),
]
COLORS = {"catalog": "#2b8cbe", "host": "#e6550d"}


def kv(tokens):
    out = {}
    for t in tokens:
        if "=" in t:
            k, v = t.split("=", 1)
            out[k] = v
    return out


def num(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        try:
            return float(v)
        except (TypeError, ValueError):
            return None


def parse(lines):
    meta, src = {}, {}
    for line in lines:
        parts = line.split()
        if len(parts) < 2:
            continue
        if parts[0] == "meta":
            meta.update(kv(parts[1:]))
            continue
        name, kind, rest = parts[0], parts[1], kv(parts[2:])
        s = src.setdefault(name, {"host": {}, "daemons": {}, "trace_errors": 0})
        if kind.startswith("load_before="):
            s["load_before"] = kind.split("=", 1)[1]
            continue
        i = num(rest.get("i"))
        d = s["daemons"].setdefault(i, {}) if i is not None else None
        if kind == "host":
            s["host"][rest.pop("when")] = {k: num(v) for k, v in rest.items()}
        elif kind == "start":
            d.update(startup_ms=num(rest["ms"]), pid=num(rest["pid"]), child=num(rest.get("child")))
        elif kind == "mem":
            d.setdefault("mem", {})[rest.pop("when")] = {k: num(v) for k, v in rest.items() if k != "i"}
        elif kind == "ring":
            d.setdefault("ring_bytes", {})[rest["when"]] = num(rest.get("bytes"))
            kb = num(rest.get("instance_kb"))
            d.setdefault("instance_ring_bytes", {})[rest["when"]] = None if kb is None else kb * 1024
        elif kind == "walk":
            d["walk"] = {k: num(rest.get(k)) for k in ("entries", "ms", "rc")}
        elif kind == "trace":
            d["trace"] = {k: num(rest.get(k)) for k in ("bytes", "rc")}
        elif kind == "trace_error":
            s["trace_errors"] += 1
        elif kind == "cpu":
            d["cpu"] = {k: num(rest.get(k)) for k in ("window_us", "ticks", "ns")}
        elif kind == "stats":
            d["stats"] = {k: num(rest.get(k)) for k in ("private_bytes", "pss_bytes")}
        elif kind == "slabtop":
            s.setdefault("slabtop", {}).setdefault(rest["when"], []).append((rest["name"], num(rest["bytes"])))
        elif kind == "limit":
            s["limit"] = rest.get("reason", "?").replace("_", " ")
        elif kind == "daemons":
            s["requested"], s["started"] = num(rest["requested"]), num(rest["started"])
        elif kind == "stop":
            s["stop"] = {k: num(v) for k, v in rest.items()}
        elif kind == "unavailable":
            s["unavailable"] = rest.get("reason", "?").replace("_", " ")
    for s in src.values():
        s["daemons"] = [dict(i=i, **d) for i, d in sorted(s["daemons"].items()) if "startup_ms" in d]
    return meta, src


def mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else None


def percentile(xs, p):
    """Nearest-rank percentile."""
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    k = max(0, min(len(xs) - 1, -(-p * len(xs) // 100) - 1))
    return xs[int(k)]


def per_guest(meta, s):
    """What one more guest costs, from one source's run."""
    n = s.get("started") or 0
    if n == 0:
        return None
    daemons = s["daemons"]
    host = s["host"]
    before = host.get("before", {})

    def delta_kib(when, key):
        a, b = before.get(key), host.get(when, {}).get(key)
        return None if a is None or b is None else (b - a) / 1024 / n

    def memavail_drop_kib(when):
        a, b = before.get("memavailable_kb"), host.get(when, {}).get("memavailable_kb")
        return None if a is None or b is None else (a - b) / n

    def meminfo_kib(when, key):
        a, b = before.get(key), host.get(when, {}).get(key)
        return None if a is None or b is None else (b - a) / n

    def mem(when, key):
        return mean(d.get("mem", {}).get(when, {}).get(key) for d in daemons)

    checkpoints = {}
    for when, _ in CHECKPOINTS:
        if when not in host:
            continue
        c = {f"{slab}_kib": delta_kib(when, f"slab_{slab}_bytes") for slab in ALL_SLABS}
        c["named_slabs_kib"] = sum(c[f"{x}_kib"] or 0 for x in NAMED_SLABS)
        c["all_slabs_kib"] = meminfo_kib(when, "slab_kb")
        c["memavailable_drop_kib"] = memavail_drop_kib(when)
        checkpoints[when] = c

    idle = checkpoints.get("all-started", {})
    # the kernel's own figure (the instance's buffer_total_size_kb), else the stats file's
    ring = mean((d.get("instance_ring_bytes", {}).get("after-start")
                 if d.get("instance_ring_bytes", {}).get("after-start") is not None
                 else d.get("ring_bytes", {}).get("after-start") or 0) / 1024 for d in daemons)
    ring_stats = mean(none_div(d.get("ring_bytes", {}).get("after-start"), 1024) for d in daemons)
    pte = mem("after-start", "pte_kb")
    threads = mem("after-start", "threads")
    stacks = threads * KERNEL_STACK_KIB if threads is not None else None
    kernel = None
    if idle.get("all_slabs_kib") is not None:
        kernel = idle["all_slabs_kib"] + (ring or 0) + (pte or 0) + (stacks or 0)

    cpu_ns = [100 * d["cpu"]["ns"] / (d["cpu"]["window_us"] * 1000) for d in daemons if d.get("cpu")]
    tck = num(meta.get("clk_tck")) or 100
    cpu_ticks = [100 * d["cpu"]["ticks"] / tck / (d["cpu"]["window_us"] / 1e6) for d in daemons if d.get("cpu")]
    startup = [d["startup_ms"] for d in daemons]
    walks = [d["walk"] for d in daemons if d.get("walk")]
    traces = [d["trace"] for d in daemons if d.get("trace")]
    return {
        "daemons": n,
        "private_mib": none_div(mem("after-walk", "private_kb"), 1024),
        "private_mib_after_start": none_div(mem("after-start", "private_kb"), 1024),
        "parent_private_mib": none_div(mem("after-walk", "parent_private_kb"), 1024),
        "child_private_mib": none_div(mem("after-walk", "child_private_kb"), 1024),
        "pss_mib": none_div(mem("after-walk", "pss_kb"), 1024),
        "pss_mib_after_start": none_div(mem("after-start", "pss_kb"), 1024),
        "rss_mib": none_div(mem("after-walk", "rss_kb"), 1024),
        "stats_private_mib": none_div(mean((d.get("stats") or {}).get("private_bytes") for d in daemons), 1 << 20),
        "host_kernel_kib": kernel,
        "ring_buffer_kib": ring,
        "ring_buffer_kib_stats": ring_stats,
        "tracefs_kib": (idle.get("tracefs_inode_cache_kib") or 0) + (ring or 0),
        "page_tables_kib": pte,
        "threads": threads,
        "kernel_stacks_kib": stacks,
        "checkpoints": checkpoints,
        "slab_growth_kib": [(name, b / 1024 / n) for name, b in s.get("slabtop", {}).get("all-started", [])],
        "idle_cpu_pct": mean(cpu_ns),
        "idle_cpu_pct_max": max(cpu_ns) if cpu_ns else None,
        "idle_cpu_pct_ticks": mean(cpu_ticks),
        "idle_cpu_pct_ticks_max": max(cpu_ticks) if cpu_ticks else None,
        "startup_ms": statistics.median(startup),
        "startup_ms_p95": percentile(startup, 95),
        "startup_ms_max": max(startup),
        "walk_entries": statistics.median(w["entries"] for w in walks) if walks else None,
        "walk_ms": statistics.median(w["ms"] for w in walks) if walks else None,
        "walk_failures": sum(1 for w in walks if w["rc"] != 0) + (n - len(walks)),
        "trace_bytes_min": min((t["bytes"] or 0 for t in traces), default=None),
        "trace_failures": sum(1 for t in traces if t["rc"] != 0 or not t["bytes"]) + (n - len(traces))
        + s.get("trace_errors", 0),
        "memavailable_drop_per_start_kib": slope(s),
    }


def none_div(a, b):
    return None if a is None else a / b


def slope(s):
    """Least-squares slope of MemAvailable over the daemons started (KiB per daemon)."""
    pts = [(0, s["host"].get("before", {}).get("memavailable_kb"))]
    for d in s["daemons"]:
        pts.append((d["i"], s["host"].get(f"started-{d['i']}", {}).get("memavailable_kb")))
    pts = [(x, y) for x, y in pts if y is not None]
    if len(pts) < 2:
        return None
    mx = statistics.fmean(x for x, _ in pts)
    my = statistics.fmean(y for _, y in pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return -sum((x - mx) * (y - my) for x, y in pts) / den if den else None


def problems_of(meta, src, guests):
    out = []
    for name in meta.get("sources", ",".join(SOURCES)).split(","):
        s = src.get(name)
        if s is None:
            out.append(f"{name}: not run")
            continue
        if "unavailable" in s:
            out.append(f"{name}: unavailable: {s['unavailable']}")
            continue
        g = guests.get(name)
        if not g:
            out.append(f"{name}: no daemon started ({s.get('limit', '?')})")
            continue
        if g["walk_failures"]:
            out.append(f"{name}: {g['walk_failures']} failed walks")
        if g["trace_failures"]:
            out.append(f"{name}: {g['trace_failures']} failed traces")
        host = s["host"]
        for key, what in [("vm_drop_slab", "slabs"), ("vm_drop_pagecache", "page cache")]:
            a, b = host.get("before", {}).get(key), host.get("after-trace", {}).get(key)
            if a is not None and b is not None and b != a:
                out.append(f"{name}: the host's {what} were dropped {b - a} times during the run (someone "
                           "wrote /proc/sys/vm/drop_caches): the slab and MemAvailable figures do not hold")
        stop = s.get("stop", {})
        left = {k: v for k, v in stop.items() if k.startswith("leftover_") and v}
        if left:
            out.append(f"{name}: left behind after the stop: {left}")
    if meta.get("top_level_unchanged") not in (None, "yes"):
        out.append("the host's top-level tracing state changed during the run")
    if meta.get("binary_from_checkout") == "no" and "binary" not in meta:
        out.append("the binary measured was not built from this checkout (a concurrent build into the same target dir?)")
    if meta.get("daemon_code", "").endswith("-dirty"):
        out.append(f"daemon code {meta['daemon_code']}: uncommitted changes (the run must name a commit)")
    return out


def f(v, digits=2):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.{digits}f}"


def mark(key, v):
    if v is None:
        return ""
    limit = TARGETS[key][0]
    ok = v < limit if key == "startup_ms" else v <= limit
    return " PASS" if ok else " **MISS**"


def table(meta, src, guests):
    names = [n for n in SOURCES if n in src]
    g = {n: guests.get(n) or {} for n in names}
    md = ["| per additional guest | " + " | ".join(names) + " | target (issue 15) |",
          "|---|" + "---|" * len(names) + "---|"]

    def row(label, cell, target=""):
        md.append(f"| {label} | " + " | ".join(cell(n) for n in names) + f" | {target} |")

    def started(n):
        s = src[n]
        if "unavailable" in s:
            return f"unavailable: {s['unavailable']}"
        cell = f"{s.get('started', 0)} of {s.get('requested', '?')}"
        return cell + (f" (stopped at: {s['limit']})" if s.get("limit") else "")

    row("daemons side by side", started)
    row("**private memory** after the walk (MiB, parent + child)",
        lambda n: f"**{f(g[n].get('private_mib'))}**{mark('private_mib', g[n].get('private_mib'))}",
        TARGETS["private_mib"][1])
    row("↳ after start-up, before any client (MiB)", lambda n: f(g[n].get("private_mib_after_start")))
    row("↳ of which the supervising parent (MiB)", lambda n: f(g[n].get("parent_private_mib")))
    row("PSS after the walk (MiB)", lambda n: f(g[n].get("pss_mib")))
    row("**host kernel**, idle after start-up (KiB)",
        lambda n: f"**{f(g[n].get('host_kernel_kib'))}**{mark('host_kernel_kib', g[n].get('host_kernel_kib'))}",
        TARGETS["host_kernel_kib"][1])
    idle = {n: g[n].get("checkpoints", {}).get("all-started", {}) for n in names}
    row("↳ tracefs share: `tracefs_inode_cache` + ring buffers", lambda n: f(g[n].get("tracefs_kib")))
    row("↳ slabs, all (`Slab:` of /proc/meminfo, Δ / N)", lambda n: f(idle[n].get("all_slabs_kib")))
    for slab in NAMED_SLABS:
        row(f"↳ of which `{slab}` (Δ / N)", lambda n, s=slab: f(idle[n].get(f"{s}_kib")))
    row("↳ ring buffers (the instance's `buffer_total_size_kb`)", lambda n: f(g[n].get("ring_buffer_kib")))
    row("↳ page tables (VmPTE) + kernel stacks (16 KiB × threads)",
        lambda n: "-" if g[n].get("page_tables_kib") is None else
        f"{f(g[n]['page_tables_kib'])} + {f(g[n]['kernel_stacks_kib'])} ({f(g[n]['threads'], 0)} threads)")
    row("MemAvailable drop / N, idle after start-up (KiB; user memory included)",
        lambda n: f(idle[n].get("memavailable_drop_kib")))
    row("↳ slope over the starts (KiB per daemon, least squares)",
        lambda n: f(g[n].get("memavailable_drop_per_start_kib")))
    row("MemAvailable drop / N after walk + trace (KiB; with the `--mount` client's dentries and FUSE inodes)",
        lambda n: f(g[n].get("checkpoints", {}).get("after-trace", {}).get("memavailable_drop_kib")))
    row("**idle CPU** (% of one core; mean / max)",
        lambda n: "-" if g[n].get("idle_cpu_pct") is None else
        f"**{g[n]['idle_cpu_pct']:.3f}** / {g[n]['idle_cpu_pct_max']:.3f}{mark('idle_cpu_pct', g[n]['idle_cpu_pct'])}",
        TARGETS["idle_cpu_pct"][1])
    row("↳ from utime + stime in ticks (mean / max)",
        lambda n: "-" if g[n].get("idle_cpu_pct_ticks") is None else
        f"{g[n]['idle_cpu_pct_ticks']:.3f} / {g[n]['idle_cpu_pct_ticks_max']:.3f}")
    row("**start-up** (ms; median / p95)",
        lambda n: "-" if g[n].get("startup_ms") is None else
        f"**{f(g[n]['startup_ms'], 1)}** / {f(g[n]['startup_ms_p95'], 1)}{mark('startup_ms', g[n]['startup_ms'])}",
        TARGETS["startup_ms"][1])
    row("walk: entries, median ms per `find`", lambda n: "-" if g[n].get("walk_entries") is None else
        f"{g[n]['walk_entries']:.0f}, {g[n]['walk_ms']:.0f} ms")
    row("failed walks / traces", lambda n: f"{g[n].get('walk_failures', '-')} / {g[n].get('trace_failures', '-')}")
    row("stop: SIGTERM to all exited (ms); left behind",
        lambda n: "-" if "stop" not in src[n] else
        f"{src[n]['stop'].get('ms', '-')}; " + (", ".join(f"{v} {k[9:]}" for k, v in src[n]["stop"].items()
                                                         if k.startswith("leftover_") and v) or "nothing"))
    md.append("")
    md.append("Host memory per daemon at each checkpoint (KiB, Δ since before the first daemon / N; "
              "machine-wide counters):\n")
    md.append("| source | checkpoint | " + " | ".join(f"`{s}`" for s in ALL_SLABS) + " | all slabs | MemAvailable drop |")
    md.append("|---|---|" + "---|" * (len(ALL_SLABS) + 2))
    for n in names:
        for when, label in CHECKPOINTS:
            c = g[n].get("checkpoints", {}).get(when)
            if not c:
                continue
            md.append(f"| {n} | {label} | " + " | ".join(f(c.get(f"{s}_kib")) for s in ALL_SLABS)
                      + f" | {f(c.get('all_slabs_kib'))} | {f(c.get('memavailable_drop_kib'))} |")
    tops = [(n, g[n].get("slab_growth_kib")) for n in names if g[n].get("slab_growth_kib")]
    if tops:
        md.append("")
        md.append("The slab caches that grew most, idle after start-up (KiB per daemon; /proc/slabinfo):\n")
        for n, top in tops:
            md.append(f"- {n}: " + ", ".join(f"`{name}` {f(kib)}" for name, kib in top))
    return md


def header(meta):
    return (f"Generated by `scripts/scale-bench.sh` on {meta.get('date', '?')}. Host: "
            f"{meta.get('cpu', '?').replace('_', ' ')}, {meta.get('cpus', '?')} CPUs, {meta.get('mem_gb', '?')} GB, "
            f"kernel {meta.get('host_kernel', '?')}; load average before/after "
            f"{meta.get('load_before', '?')} / {meta.get('load_after', '?')}. eventfsd {meta.get('eventfsd', '?')} "
            f"(daemon code as of {meta.get('daemon_code', '?')}; binary sha256 {meta.get('binary_sha256', '?')}, "
            f"built from this checkout: {meta.get('binary_from_checkout', '?')}), {meta.get('daemons', '?')} daemons per source "
            f"side by side, each with a stats file: {meta.get('stats_file', '?')}, idle window {meta.get('idle_s', '?')} s, whole run {meta.get('total_seconds', '?')} s; "
            f"host top-level tracing state unchanged: {meta.get('top_level_unchanged', '?')}.")


NOTES = """\
How the figures are taken (every number above comes from the one run in the header):

- Each daemon is `eventfsd --mount DIR --stats-file F.json [--source host]` with the default
  sandbox: the supervising parent and the serving child (pid 1 of its pid namespace). Memory
  and CPU are the sum of both. The host plays the guest through `/dev/fuse`: no QEMU.
- **Private memory**: `Private_Clean + Private_Dirty` of `/proc/PID/smaps_rollup`, after every
  client's `find` (all nodes looked up). PSS divides the shared pages (binary, embedded catalog)
  among the daemons, so it shrinks as N grows.
- **Host kernel**, the target's figure: taken idle, after all N started and before any client,
  because a `--mount` client is the host kernel itself: after the walk, `dentry` and
  `fuse_inode` also hold the client's nodes, which in a VM live in the guest's RAM (the
  checkpoint table shows them). It is the growth of all slabs (`Slab:` in /proc/meminfo, which
  also holds each daemon's namespaces, mounts and FUSE connection) per daemon, plus the host
  source's ring buffers (pages, not slab: the kernel's `buffer_total_size_kb` of the daemon's
  instance; the stats file's `ring_buffer_bytes` is in the JSON), plus the daemons' page
  tables and kernel stacks. Slab and MemAvailable figures are machine-wide: other work on the
  machine shows in them, divided by N. The host source makes its private instance on the
  guest's first open of a file, not at start-up, and a walk opens none: the instance's cost
  (its per-event slab and its ring buffers) first shows at the "after the trace" checkpoint,
  in a guest that asked for it.
- **Threads**: the serving child starts with its main thread and one request worker, and starts
  another worker only while a READ runs (one that may block, as `trace_pipe` does); the parent
  has one thread.
- **MemAvailable drop** is everything the host lost, the daemons' own memory included; the
  slope is fitted over the samples taken after each start.
- **Idle CPU**: on-CPU time of every thread (`/proc/PID/task/*/schedstat`, ns) over the idle
  window after the clients, per daemon; utime + stime from `/proc/PID/stat` count in 10 ms
  ticks, too coarse for a 0.05% target over a few seconds, and are shown for comparison. With a
  stats file (the header says whether this run had one) the daemon rewrites it every 500 ms,
  which is part of the idle cost; `--no-stats-file` measures without it.
- **Start-up**: from the fork of the daemon to the first successful `stat` of
  `DIR/events/sched/enable` through its mount, polled every millisecond; daemons start one
  after the other while the earlier ones keep running.
- The host source serves its default (safe) policy, whose hidden systems make its tree smaller
  than the catalog's (the walk row).
- PASS/MISS judge the mean (memory, CPU) and the median (start-up); a miss does not fail the run.
  A run with a failed walk or trace, anything left behind, or a `drop_caches` by someone else
  during it (vmstat `drop_slab`, `drop_pagecache`: it frees the slabs measured) is not published.
"""


def markdown_block(meta, src, guests, svg_rel, note=None):
    md = ["## Scale: what each additional guest costs the host\n",
          header(meta) + (f" {note.strip()}" if note else "") + "\n"]
    md += table(meta, src, guests)
    md.append("")
    if svg_rel:
        md.append(f"![host memory as daemons start, each cost against its target, start-up and idle CPU "
                  f"of each daemon]({svg_rel})\n")
    md.append(NOTES)
    md.append("Reproduce (root, no QEMU, nothing else running): `scripts/scale-bench.sh --out scale.json "
              "--write` (options: `--daemons N`, `--sources catalog,host`, `--idle SEC`, `--no-stats-file`). "
              "`scripts/scale-report.py scale.json --markdown BENCHMARKS.md --svg docs/scale-bench.svg` "
              "re-renders a saved run.\n")
    return "\n".join(md)


def replace_block(path, body):
    start, end = "<!-- scale -->", "<!-- /scale -->"
    text = open(path).read() if os.path.exists(path) else ""
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with open(path, "w") as fh:
        fh.write(text)


# ---- plot: hand-written SVG (no matplotlib needed) ------------------------------------------------
def nice_ticks(top, count=5):
    """Round tick values from 0 to at least `top`: steps of 1, 2 or 5 times a power of ten."""
    if top <= 0:
        return [0, 1]
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return [k * step for k in range(int(math.ceil(top / step - 1e-9)) + 1)]


def ratio_text(r):
    return f"{r:,.0f}×" if r >= 10 else f"{r:.3g}×"


def esc(t):
    return str(t).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def line_panel(out, box, title, sub, series, xlabel, log=None, line=None, end_fmt=None):
    """One line chart: series {source: [(x, y)]}; log=(lo, hi) decades for a log y axis; line=
    (y, label): a dashed reference (a target) from x=0 to the end, or (slope, label, 'slope')."""
    x0, y0, pw, ph = box
    pts_all = [p for pts in series.values() for p in pts]
    nmax = max([x for x, _ in pts_all] + [1])
    xticks = nice_ticks(nmax) if nmax >= 5 else list(range(nmax + 1))
    nmax = max(nmax, xticks[-1])
    sx = lambda x: x0 + pw * x / nmax
    if log:
        lo, hi = log
        sy = lambda y: y0 + ph - ph * (min(max(math.log10(max(y, 1e-12)), lo), hi) - lo) / (hi - lo)
        yticks = [10 ** e for e in range(lo, hi + 1)]
    else:
        top = max([y for _, y in pts_all] + [1])
        if line and len(line) == 3:
            top = max(top, line[0] * nmax)
        yticks = nice_ticks(top)
        sy = lambda y: y0 + ph - ph * max(y, 0) / yticks[-1]
    out.append(f'<text x="{x0}" y="{y0 - 18}" font-size="14" font-weight="bold">{esc(title)}</text>')
    out.append(f'<text x="{x0}" y="{y0 - 4}" fill="#555">{esc(sub)}</text>')
    for yv in yticks:
        out.append(f'<line x1="{x0}" y1="{sy(yv):.1f}" x2="{x0 + pw}" y2="{sy(yv):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 - 6}" y="{sy(yv) + 4:.1f}" text-anchor="end">{yv:,g}</text>')
    for xv in xticks:
        out.append(f'<text x="{sx(xv):.1f}" y="{y0 + ph + 16}" text-anchor="middle">{xv:g}</text>')
    out.append(f'<text x="{x0 + pw / 2}" y="{y0 + ph + 32}" text-anchor="middle">{esc(xlabel)}</text>')
    out.append(f'<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
    ly = y0 + 14
    if line:
        if len(line) == 3:  # a budget growing with the number of daemons
            ya, yb = sy(0), sy(line[0] * nmax)
        else:
            ya = yb = sy(line[0])
        out.append(f'<line x1="{x0}" y1="{ya:.1f}" x2="{x0 + pw}" y2="{yb:.1f}" stroke="#444" stroke-dasharray="6,4"/>')
        out.append(f'<line x1="{x0 + 10}" y1="{ly}" x2="{x0 + 34}" y2="{ly}" stroke="#444" stroke-dasharray="6,4"/>'
                   f'<text x="{x0 + 40}" y="{ly + 4}">{esc(line[1])}</text>')
        ly += 18
    for n, pts in series.items():
        if not pts:
            continue
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{COLORS[n]}" stroke-width="2"/>')
        if end_fmt:
            lx, lv = pts[-1]
            out.append(f'<text x="{sx(lx) - 4:.1f}" y="{sy(lv) - 6:.1f}" text-anchor="end" fill="{COLORS[n]}">'
                       f'{esc(end_fmt(lv))}</text>')
        out.append(f'<line x1="{x0 + 10}" y1="{ly}" x2="{x0 + 34}" y2="{ly}" stroke="{COLORS[n]}" stroke-width="2"/>'
                   f'<text x="{x0 + 40}" y="{ly + 4}">{esc(n)} source</text>')
        ly += 18


def svg(path, meta, src, guests):
    W, H = 980, 800
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="DejaVu Sans, Arial, sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>']
    names = [n for n in SOURCES if guests.get(n)]
    top, bottom, left, right, pw, ph = 50, 440, 70, 560, 390, 290

    # top left: MemAvailable drop (MiB) against daemons started, and the targets' budget
    mem = {}
    for n in names:
        s = src[n]
        base = s["host"].get("before", {}).get("memavailable_kb")
        pts = [(0, 0.0)]
        for d in s["daemons"]:
            v = s["host"].get(f"started-{d['i']}", {}).get("memavailable_kb")
            if base is not None and v is not None:
                pts.append((d["i"], (base - v) / 1024))
        mem[n] = pts
    budget = TARGETS["private_mib"][0] + TARGETS["host_kernel_kib"][0] / 1024  # MiB per guest
    line_panel(out, (left, top, pw, ph), "Host memory as daemons start",
               "MemAvailable drop (MiB), one daemon after the other", mem, "daemons started",
               line=(budget, "target budget: 1 MiB + 256 KiB per guest", "slope"),
               end_fmt=lambda v: f"{v:,.0f} MiB")

    # top right: each per-guest figure divided by its target, log scale; the line at 1 is the target
    x1, y0 = right, top
    metrics = [("private_mib", "private\nmemory"), ("host_kernel_kib", "host\nkernel"),
               ("idle_cpu_pct", "idle CPU\n(mean)"), ("startup_ms", "start-up\n(median)")]
    lo, hi = -2, 3  # 10^-2 .. 10^3
    sy2 = lambda r: y0 + ph - ph * (min(max(math.log10(max(r, 1e-9)), lo), hi) - lo) / (hi - lo)
    out.append(f'<text x="{x1}" y="{y0 - 18}" font-size="14" font-weight="bold">Per additional guest, against the target</text>')
    out.append(f'<text x="{x1}" y="{y0 - 4}" fill="#555">value / target (log scale; above the line: missed)</text>')
    for e in range(lo, hi + 1):
        out.append(f'<line x1="{x1}" y1="{sy2(10 ** e):.1f}" x2="{x1 + pw}" y2="{sy2(10 ** e):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{x1 - 6}" y="{sy2(10 ** e) + 4:.1f}" text-anchor="end">{10 ** e:g}×</text>')
    out.append(f'<rect x="{x1}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
    out.append(f'<line x1="{x1}" y1="{sy2(1):.1f}" x2="{x1 + pw}" y2="{sy2(1):.1f}" stroke="#444" stroke-width="1.5" stroke-dasharray="6,4"/>')
    gw = pw / len(metrics)
    bw = gw * 0.7 / max(1, len(names))
    for m, (key, label) in enumerate(metrics):
        cx = x1 + gw * (m + 0.5)
        for li, part in enumerate(label.split("\n")):
            out.append(f'<text x="{cx:.1f}" y="{y0 + ph + 16 + 13 * li}" text-anchor="middle">{esc(part)}</text>')
        for j, n in enumerate(names):
            v = guests[n].get(key)
            if v is None:
                continue
            r = v / TARGETS[key][0]
            bx = cx - gw * 0.35 + j * bw
            bar_top, base = sy2(r), sy2(10 ** lo)
            out.append(f'<rect x="{bx:.1f}" y="{min(bar_top, base):.1f}" width="{bw - 2:.1f}" '
                       f'height="{abs(base - bar_top):.1f}" fill="{COLORS[n]}"><title>{esc(n)}: {v:.4g} '
                       f'({r:.3g}× the target)</title></rect>')
            out.append(f'<text x="{bx + (bw - 2) / 2:.1f}" y="{bar_top - 4:.1f}" text-anchor="middle" '
                       f'font-size="10">{ratio_text(r)}</text>')
    for j, n in enumerate(names):
        ly = y0 + 14 + 18 * j  # top right: the start-up bars are the shortest there
        out.append(f'<rect x="{x1 + pw - 130}" y="{ly - 6}" width="24" height="10" fill="{COLORS[n]}"/>'
                   f'<text x="{x1 + pw - 100}" y="{ly + 4}">{esc(n)} source</text>')

    # bottom: start-up and idle CPU of each daemon, in start order (log scales)
    startup = {n: [(d["i"], d["startup_ms"]) for d in src[n]["daemons"]] for n in names}
    line_panel(out, (left, bottom, pw, ph), "Start-up of each daemon",
               "ms from exec to the mount answering (log scale), in start order", startup, "daemon",
               log=(0, 4), line=(TARGETS["startup_ms"][0], "target: < 50 ms"))
    cpu = {n: [(d["i"], 100 * d["cpu"]["ns"] / (d["cpu"]["window_us"] * 1000))
               for d in src[n]["daemons"] if d.get("cpu") and d["cpu"]["window_us"]] for n in names}
    line_panel(out, (right, bottom, pw, ph), "Idle CPU of each daemon",
               f"% of one core over {meta.get('idle_s', '?')} s after the clients (log scale)", cpu, "daemon",
               log=(-3, 1), line=(TARGETS["idle_cpu_pct"][0], "target: ≤ 0.05% of a core"))
    out.append(f'<text x="{W / 2}" y="{H - 10}" text-anchor="middle" fill="#555" font-size="11">'
               f'{esc(meta.get("daemons", "?"))} daemons per source side by side, eventfsd {esc(meta.get("eventfsd", "?"))} '
               f'(daemon code {esc(meta.get("daemon_code", "?"))}), {esc(meta.get("date", "?"))}, '
               f'{esc(meta.get("cpus", "?"))} CPUs, kernel {esc(meta.get("host_kernel", "?"))}</text>')
    out.append("</svg>")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as fh:
        fh.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results", help="scale-bench.sh's raw results, or a JSON written by --out")
    ap.add_argument("--out", help="write the numbers (and the raw lines) as JSON")
    ap.add_argument("--markdown", help="rewrite the <!-- scale --> block of this file")
    ap.add_argument("--svg", help="write the plot here")
    ap.add_argument("--note", help="a sentence to add after the header (e.g. which code this run is the baseline of)")
    a = ap.parse_args()
    with open(a.results) as fh:
        text = fh.read()
    raw = json.loads(text)["raw"] if text.lstrip().startswith("{") else text.splitlines()
    meta, src = parse(raw)
    guests = {n: per_guest(meta, s) for n, s in src.items()}
    md = table(meta, src, guests)
    print(header(meta) + "\n")
    print("\n".join(md))
    problems = problems_of(meta, src, guests)
    if a.out:
        doc = {"meta": meta, "targets": {k: v[0] for k, v in TARGETS.items()},
               "per_guest": guests, "problems": problems, "raw": raw}
        with open(a.out, "w") as fh:
            json.dump(doc, fh, indent=1, sort_keys=True)
            fh.write("\n")
    for p in problems:
        print(f"scale-report: {p}", file=sys.stderr)
    if problems:
        if a.markdown or a.svg:
            print("scale-report: nothing written into documents: this run cannot be published", file=sys.stderr)
        return 1
    if a.svg:
        svg(a.svg, meta, src, guests)
    if a.markdown:
        rel = os.path.relpath(a.svg, os.path.dirname(os.path.abspath(a.markdown))) if a.svg else None
        replace_block(a.markdown, markdown_block(meta, src, guests, rel, a.note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
