#!/usr/bin/env python3
"""Turns scripts/bench.sh's raw results into a markdown table, key=value lines and a chart.

Usage: bench-report.py RESULTS [--markdown FILE] [--png FILE] [--notes FILE] [--readme FILE]

Every number a document states comes from RESULTS, one recorded run: BENCHMARKS.md whole (but
for the `<!-- scale -->` block of scripts/scale-bench.sh, carried over unchanged), and
in the README the blocks between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` markers
(`footprint`, `summary`). A run in which any workload operation failed, or a configuration is
missing or incomplete, writes nothing and exits 1: a run that fails fast would look fast.

RESULTS lines (written by scripts/bench.sh):
  meta KEY=VALUE
  footprint KEY=VALUE ...
  CONFIG sample w=WORKLOAD rep=N us=MICROSECONDS n=ENTRIES err=FAILED_OPERATIONS
  CONFIG info KEY=VALUE ...
  CONFIG mem cp=CHECKPOINT rss_kb=N pss_kb=N fds=N threads=N pte_kb=N cpu_ms=N [nodes=N]
  CONFIG slab when=before|peak|after dentry_objs=N dentry_kb=N ...
  CONFIG skipped w=WORKLOAD reason=TEXT     (not run by design, e.g. native enable toggles)
  CONFIG unavailable|incomplete reason=TEXT
  CONFIG wall seconds=S
"""
import argparse
import os
import re
import statistics
import sys

CONFIGS = ["eventfsd-catalog", "eventfsd-host", "virtiofsd", "native"]
SHORT = {"eventfsd-catalog": "catalog", "eventfsd-host": "host", "virtiofsd": "virtiofsd", "native": "native"}
WORKLOADS = [
    ("cold_find", "cold `find events` (after mount / drop_caches)", "entry"),
    ("warm_find", "warm `find events` (second pass)", "entry"),
    ("cat_formats", "`cat` of every `format`", "file"),
    ("read_ids", "`cat` of every `id`", "file"),
    ("enable_toggle", "1000 writes to one `enable` (1/0)", "write"),
    ("ls_largest", "`ls -l` of the largest system dir", "entry"),
    ("parallel4", "4 processes × (find + cat formats)", "entry"),
    ("raw_records", "records from enable to parsed: `trace_pipe_raw` pages (3 s)", "record"),
    ("text_records", "records from enable to parsed: `trace_pipe` text (3 s)", "record"),
]
CHECKPOINTS = [
    ("start", "after start"),
    ("after-mount", "after guest mount"),
    ("idle-after-mount", "guest idle since the mount (--idle)"),
    ("after-find-cat", "after full find + cat"),
    ("after-drop-caches", "after guest drop_caches"),
    ("after-idle", "guest idle since the workloads (--idle)"),
]


def kv(tokens):
    out = {}
    for t in tokens:
        if "=" in t:
            k, v = t.split("=", 1)
            out[k] = v
    return out


def parse(path):
    meta, samples, info, mem, slab, status, wall = {}, {}, {}, {}, {}, {}, {}
    errors, skipped = {}, {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2:
                continue
            if parts[0] in ("meta", "footprint"):
                meta.update({f"{parts[0]}_{k}" if parts[0] == "footprint" else k: v
                             for k, v in kv(parts[1:]).items()})
                continue
            cfg, kind, rest = parts[0], parts[1], kv(parts[2:])
            if kind == "sample":
                samples.setdefault(cfg, {}).setdefault(rest["w"], []).append(
                    (int(rest["us"]), int(rest["n"]))
                )
                # A sample without an error count comes from a guest that did not count.
                errors.setdefault(cfg, {}).setdefault(rest["w"], 0)
                errors[cfg][rest["w"]] += int(rest.get("err", "1"))
            elif kind == "skipped":
                skipped.setdefault(cfg, {})[rest.get("w", "?")] = rest.get("reason", "?").replace("_", " ")
            elif kind == "info":
                info.setdefault(cfg, {}).update(rest)
            elif kind == "mem":
                cp = rest.pop("cp")
                mem.setdefault(cfg, {})[cp] = {k: int(v) for k, v in rest.items()}
            elif kind == "slab":
                when = rest.pop("when")
                slab.setdefault(cfg, {})[when] = {k: int(v) for k, v in rest.items()}
            elif kind in ("unavailable", "incomplete"):
                status[cfg] = f"{kind}: {rest.get('reason', '?').replace('_', ' ')}"
            elif kind == "wall":
                wall[cfg] = rest.get("seconds")
    return meta, samples, info, mem, slab, status, wall, errors, skipped


def problems_of(meta, samples, status, errors, skipped, wanted):
    """Why this run cannot be published: failed operations, missing or incomplete parts."""
    out = []
    for cfg in wanted:
        if cfg in status:
            out.append(f"{cfg}: {status[cfg]}")
            continue
        for w, _, _ in WORKLOADS:
            if w in skipped.get(cfg, {}):
                continue
            if not samples.get(cfg, {}).get(w):
                out.append(f"{cfg}: no {w} samples")
            elif errors.get(cfg, {}).get(w, 0):
                out.append(f"{cfg}: {errors[cfg][w]} failed operations in {w}")
    if "-dirty" in meta.get("eventfsd", ""):
        out.append(f"eventfsd {meta['eventfsd']}: uncommitted changes (the run must name a commit)")
    return out


def replace_block(path, name, body):
    """Rewrites the text between <!-- bench:NAME --> and <!-- /bench:NAME --> in `path`."""
    with open(path) as f:
        text = f.read()
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"bench-report: {path} has no {start} ... {end} block")
    text = pattern.sub(lambda _: f"{start}\n{body.rstrip()}\n{end}", text)
    with open(path, "w") as f:
        f.write(text)


def per_entry(samples, cfg, w):
    """(median, min, max) in microseconds per unit, or None."""
    s = samples.get(cfg, {}).get(w)
    if not s:
        return None
    vals = [us / n for us, n in s if n > 0]
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals), len(vals), statistics.median(us for us, _ in s)


def fmt_us(v):
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--markdown")
    ap.add_argument("--png")
    ap.add_argument("--notes", default=os.path.join(os.path.dirname(__file__), "..", "docs", "bench-notes.md"))
    ap.add_argument("--readme", help="README whose bench blocks to rewrite")
    ap.add_argument("--only", default=",".join(SHORT[c] for c in CONFIGS),
                    help="the configurations this run had to measure (bench.sh's --only)")
    a = ap.parse_args()
    meta, samples, info, mem, slab, status, wall, errors, skipped = parse(a.results)
    present = [c for c in CONFIGS if c in samples or c in status]
    wanted = [c for c in CONFIGS if SHORT[c] in a.only.split(",")]
    problems = problems_of(meta, samples, status, errors, skipped, wanted)
    if problems:
        for p in problems:
            print(f"bench-report: {p}", file=sys.stderr)
        if a.markdown or a.readme or a.png:
            print("bench-report: nothing written: this run cannot be published", file=sys.stderr)
        return 1

    md = []
    md.append("# Benchmarks: eventfsd vs virtiofsd vs the guest's own tracefs\n")
    md.append(
        f"Generated by `scripts/bench.sh` on {meta.get('date', '?')}. "
        f"Host: {meta.get('cpu', '?').replace('_', ' ')}, {meta.get('cpus', '?')} CPUs, "
        f"{meta.get('mem_gb', '?')} GB, kernel {meta.get('host_kernel', '?')}; "
        f"load average before/after: {meta.get('load_before', '?')} / {meta.get('load_after', '?')}. "
        f"Guest: Debian kernel {meta.get('guest_kernel', '?').replace('_', ' ')}, QEMU {meta.get('qemu', '?')} "
        f"({meta.get('accel', '?').upper()}), 2 vCPUs, 1 GB, busybox. "
        f"eventfsd {meta.get('eventfsd', '?')} (fuse-backend-rs {meta.get('fuse_backend_rs', '?')}), "
        f"virtiofsd {meta.get('virtiofsd', '?')} (crates.io, `--cache never --sandbox none`). "
        f"Repetitions: {meta.get('reps', '?')} per workload, {meta.get('preps', '?')} for the 4-process run; "
        f"whole run {meta.get('total_seconds', '?')} s.\n"
    )
    md.append("Configurations:\n")
    md.append("- **eventfsd-catalog**: `eventfsd` (default source), the embedded catalog snapshot of this machine's tracefs.")
    md.append("- **eventfsd-host**: `eventfsd --source host`, a private instance of the host tracefs.")
    md.append(
        "- **virtiofsd**: virtiofsd `--cache never` sharing `instances/eventfsd-bench-<pid>` of the host tracefs "
        "(created and removed by the script)."
    )
    md.append("- **native**: the guest kernel's own tracefs (6.1), no virtio-fs; the physical limit.\n")
    for c in present:
        if c in status:
            md.append(f"- {c}: **{status[c]}**")
    md.append("")

    # tree sizes
    md.append("## Trees\n")
    md.append("| | " + " | ".join(present) + " |")
    md.append("|---|" + "---|" * len(present))
    for key, label in [("entries", "entries under `events/`"), ("formats", "`format` files"),
                       ("ids", "`id` files"), ("largest", "largest system dir"),
                       ("failed", "failed operations, all workloads"),
                       ("wall", "wall time of the guest run (s)"), ("load", "load average at its start")]:
        row = []
        for c in present:
            i = info.get(c, {})
            if key == "largest":
                row.append(f"{i.get('largest', '-').replace('events/', '')} ({i.get('largest_n', '-')})" if i else "-")
            elif key == "failed":
                row.append(str(sum(errors.get(c, {}).values())))
            elif key == "wall":
                row.append(str(wall.get(c, "-")))
            elif key == "load":
                row.append(meta.get(f"load_at_{c.replace('-', '_')}", "-"))
            else:
                row.append(i.get(key, "-"))
        md.append(f"| {label} | " + " | ".join(row) + " |")
    md.append("")

    # speed table
    md.append("## Time per entry (µs; median, with min–max over the repetitions)\n")
    md.append("| workload | unit | " + " | ".join(present) + " |")
    md.append("|---|---|" + "---|" * len(present))
    for w, label, unit in WORKLOADS:
        row = []
        for c in present:
            p = per_entry(samples, c, w)
            if w in skipped.get(c, {}):
                row.append(f"not run: {skipped[c][w]}")
            elif p is None:
                row.append("-")
            elif unit == "record":
                # A rate reads better than its inverse: records per second, slowest to fastest rep.
                med, lo, hi, n, tot = p
                row.append(f"**{1e6 / med:,.0f}/s** ({1e6 / hi:,.0f}–{1e6 / lo:,.0f}/s; n={n})")
            else:
                med, lo, hi, n, tot = p
                row.append(f"**{fmt_us(med)}** ({fmt_us(lo)}–{fmt_us(hi)}; {tot / 1000:.0f} ms, n={n})")
        shown = "records/s" if unit == "record" else f"µs/{unit}"
        md.append(f"| {label} | {shown} | " + " | ".join(row) + " |")
    md.append("")
    md.append(
        "The 4-process run divides the wall time by 4 × (entries + formats). Cold finds: the first right after "
        "the mount, the others right after `echo 3 > /proc/sys/vm/drop_caches` in the guest. Records: "
        "`sched_switch` and `sched_wakeup` enabled, then 3 s of reading, counted from the `enable` write; the "
        "catalog source offers 20000 records per second per event (`--rate 20000`), the host source, "
        "virtiofsd and the guest's own tracefs whatever their kernel records while `yes | head` ping-pongs "
        "through a pipe in the guest. `trace_pipe_raw`: `tracefs-rawread --drain` (every CPU, O_NONBLOCK, "
        "drained every 10 ms, each page decoded); `trace_pipe`: `cat`, lines parsed afterwards.\n"
    )

    # memory table
    daemons = [c for c in present if c != "native" and c in mem]
    if daemons:
        md.append("## Daemon memory and descriptors\n")
        md.append(
            "RSS / PSS in KiB, summed over the daemon's processes, then *own* RSS: RSS without the mapped guest "
            "RAM (QEMU's memfd, shared with QEMU: the descriptor buffers the daemon has written into), then "
            "open fds, threads (each holds a 16 KiB kernel stack) and page tables (which also map the guest RAM "
            "the daemon touched), the host kernel memory charged to the daemon's own memory cgroup (page tables, "
            "kernel stacks, slab: what one more guest costs the host kernel), for eventfsd its materialised-node "
            "count, and the daemon's CPU time (user + system) so far.\n"
        )
        md.append("| checkpoint | " + " | ".join(daemons) + " |")
        md.append("|---|" + "---|" * len(daemons))
        for cp, label in CHECKPOINTS:
            row = []
            for c in daemons:
                m = mem[c].get(cp)
                if not m:
                    row.append("-")
                    continue
                cell = f"{m['rss_kb']} / {m['pss_kb']}, own {m['rss_kb'] - m.get('guest_rss_kb', 0)}, {m['fds']} fds"
                if "threads" in m:
                    cell += f", {m['threads']} threads, page tables {m['pte_kb']} KiB"
                if "kmem_kb" in m:
                    cell += f", **host kernel {m['kmem_kb']} KiB**"
                if "nodes" in m:
                    cell += f", {m['nodes']} nodes"
                if "cpu_ms" in m:
                    cell += f", CPU {m['cpu_ms'] / 1000:.1f} s"
                row.append(cell)
            md.append(f"| {label} | " + " | ".join(row) + " |")
        md.append("")
    slabbed = [c for c in present if c in slab]
    if slabbed:
        md.append("## Host slab (`/proc/slabinfo`: objects / KiB; machine-wide, other work included)\n")
        md.append("| cache | when | " + " | ".join(slabbed) + " |")
        md.append("|---|---|" + "---|" * len(slabbed))
        for cache in ["dentry", "tracefs_inode_cache", "eventfs_inode"]:
            for when in ["before", "peak", "after"]:
                row = []
                seen = False
                for c in slabbed:
                    s = slab[c].get(when, {})
                    if f"{cache}_objs" in s:
                        seen = True
                        row.append(f"{s[f'{cache}_objs']} / {s[f'{cache}_kb']}")
                    else:
                        row.append("-")
                if seen:
                    md.append(f"| {cache} | {when} | " + " | ".join(row) + " |")
        md.append("")

    # key=value
    kvs = []

    def put(k, v):
        if v is None:
            return
        kvs.append(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}")

    for c in present:
        for w, _, _ in WORKLOADS:
            p = per_entry(samples, c, w)
            if p:
                put(f"{SHORT[c]}_{w}_us_per_entry", p[0])
                put(f"{SHORT[c]}_{w}_spread_us", p[2] - p[1])
        for cp, _ in CHECKPOINTS:
            m = mem.get(c, {}).get(cp)
            if m:
                put(f"{SHORT[c]}_rss_kb_{cp.replace('-', '_')}", m["rss_kb"])
                put(f"{SHORT[c]}_pss_kb_{cp.replace('-', '_')}", m["pss_kb"])
                put(f"{SHORT[c]}_own_rss_kb_{cp.replace('-', '_')}", m["rss_kb"] - m.get("guest_rss_kb", 0))
                put(f"{SHORT[c]}_fds_{cp.replace('-', '_')}", m["fds"])
        if c in status:
            kvs.append(f"{SHORT[c]}_status={status[c].replace(' ', '_')}")

    def pe(c, w):
        p = per_entry(samples, c, w)
        return p[0] if p else None

    def rss(c, cp):
        m = mem.get(c, {}).get(cp)
        return m["rss_kb"] if m else None

    def own_rss(c, cp):
        m = mem.get(c, {}).get(cp)
        return m["rss_kb"] - m.get("guest_rss_kb", 0) if m else None

    def fds_per_node(c, entries=None):
        m0, m1 = mem.get(c, {}).get("after-mount"), mem.get(c, {}).get("after-find-cat")
        if not m0 or not m1:
            return None
        nodes = (m1.get("nodes", 0) - m0.get("nodes", 0)) if "nodes" in m1 else entries
        if not nodes:
            return None
        return (m1["fds"] - m0["fds"]) / nodes

    targets = []
    for c, suffix in [("eventfsd-catalog", ""), ("eventfsd-host", "_host")]:
        if c not in samples:
            continue
        cold = ratio(pe("virtiofsd", "cold_find"), pe(c, "cold_find"))
        warm = ratio(pe(c, "warm_find"), pe("native", "warm_find"))
        cat = ratio(pe("virtiofsd", "cat_formats"), pe(c, "cat_formats"))
        r = ratio(rss(c, "after-find-cat"), rss("virtiofsd", "after-find-cat"))
        drop = ratio(rss(c, "after-drop-caches"), rss(c, "after-mount"))
        own_r = ratio(own_rss(c, "after-find-cat"), own_rss("virtiofsd", "after-find-cat"))
        own_drop = ratio(own_rss(c, "after-drop-caches"), own_rss(c, "after-mount"))
        fpn = fds_per_node(c)
        idle_rss = ratio(rss(c, "after-idle"), rss(c, "after-mount"))
        # Issue 15: an idle guest adds <= 256 KiB of host kernel memory; a guest that traced
        # costs what it asked for (the host source's instance), so that figure is shown, not
        # held to the target.
        idle_kmem = mem.get(c, {}).get("idle-after-mount", {}).get("kmem_kb")
        traced_kmem = mem.get(c, {}).get("after-idle", {}).get("kmem_kb")
        put(f"rss_idle_vs_after_mount{suffix}", idle_rss)
        put(f"host_kernel_kb_idle{suffix}", idle_kmem)
        put(f"host_kernel_kb_idle_after_workloads{suffix}", traced_kmem)
        put(f"cold_find_vs_virtiofsd{suffix}", cold)
        put(f"warm_find_vs_native{suffix}", warm)
        put(f"cat_formats_vs_virtiofsd{suffix}", cat)
        put(f"rss_after_find_vs_virtiofsd{suffix}", r)
        put(f"rss_after_drop_vs_after_mount{suffix}", drop)
        put(f"own_rss_after_find_vs_virtiofsd{suffix}", own_r)
        put(f"own_rss_after_drop_vs_after_mount{suffix}", own_drop)
        put(f"fds_per_looked_up_node{suffix}", fpn)

        def t(name, v, ok, want):
            targets.append((c, name, "-" if v is None else f"{v:.2f}", want,
                            "n/a" if v is None else ("met" if ok(v) else "**missed**")))

        t("cold find speed-up vs virtiofsd", cold, lambda v: v >= 5, "≥ 5x")
        t("warm find per entry vs native", warm, lambda v: v <= 1.5, "≤ 1.5x")
        t("cat formats speed-up vs virtiofsd", cat, lambda v: v >= 5, "≥ 5x")
        t("RSS after find vs virtiofsd", r, lambda v: v < 1, "< 1x")
        t("RSS after drop_caches vs after mount", drop, lambda v: v <= 1.10, "≤ 1.10x")
        t("own RSS (without guest RAM) after find vs virtiofsd", own_r, lambda v: v < 1, "< 1x")
        t("own RSS after drop_caches vs after mount", own_drop, lambda v: v <= 1.10, "≤ 1.10x")
        t("fds per looked-up node", fpn, lambda v: abs(v) < 0.001, "0")
        t("RSS of the idle guest's daemon vs after mount", idle_rss, lambda v: v <= 1.10, "≤ 1.10x")
        t("host kernel memory of an idle guest's daemon (KiB)", idle_kmem, lambda v: v <= 256, "≤ 256")
    vf = fds_per_node("virtiofsd", int(info.get("virtiofsd", {}).get("entries", 0)) or None)
    put("fds_per_looked_up_node_virtiofsd", vf)

    if targets:
        md.append("## Targets\n")
        md.append("| config | target | value | goal | |")
        md.append("|---|---|---|---|---|")
        for row in targets:
            md.append("| " + " | ".join(row) + " |")
        md.append("")
    md.append("## key=value\n")
    md.append("```")
    md.extend(kvs)
    md.append("```\n")
    if a.png:
        md.append(f"![per-entry times]({os.path.relpath(a.png, os.path.dirname(os.path.abspath(a.markdown)) if a.markdown else '.')})\n")
    if a.notes and os.path.exists(a.notes):
        with open(a.notes) as f:
            md.append(f.read().rstrip() + "\n")

    # The README's blocks: the metadata footprint and the headline comparison.
    if a.readme:
        fp = {k[len("footprint_"):]: v for k, v in meta.items() if k.startswith("footprint_")}
        if fp:
            replace_block(a.readme, "footprint", footprint_table(fp, meta))
        replace_block(a.readme, "summary", summary_text(meta, pe, present, mem))

    text = "\n".join(md)
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    if a.markdown:
        text = text.rstrip() + "\n" + kept_blocks(a.markdown)
        with open(a.markdown, "w") as f:
            f.write(text)
    if a.png:
        chart(a.png, samples, present)
    return 0


def kept_blocks(path):
    """Sections of `path` that another script writes (scripts/scale-bench.sh's `<!-- scale -->`
    block): carried over unchanged when this run rewrites the file."""
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        return ""
    found = [m.group(0) for m in re.finditer(r"<!-- (scale) -->.*?<!-- /\1 -->", old, re.S)]
    return "".join("\n" + b + "\n" for b in found)


def footprint_table(fp, meta):
    """The README's footprint table, from `cargo run --release --example footprint`."""
    kib = lambda b: f"{int(b) / 1024:.0f} KiB"
    rows = [
        ("catalog", f"{fp['systems']} systems, {fp['events']} events, {fp['dirs']} directories, "
                    f"{fp['files']} files"),
        ("metadata heap for the whole catalog", kib(fp["metadata_heap_bytes"])),
        ("catalog image (read-only data in the binary)", kib(fp["catalog_image_bytes"])),
        ("heap per materialised (looked-up) node", f"{fp['bytes_per_materialised_node']} bytes"),
        ("heap after forgetting every node", f"{fp['heap_after_forget_all_bytes']} bytes over the baseline"),
        ("heap allocations per lookup+getattr+read of `format`/`id`", fp["allocs_per_static_read"]),
        ("lookup", f"{fp['lookup_ns']} ns"),
        ("readdir", f"{fp['readdir_entry_ns']} ns per entry"),
    ]
    out = [f"Measured by `scripts/bench.sh` on {meta.get('date', '?')} (eventfsd {meta.get('eventfsd', '?')}, "
           "`cargo run --release -p eventfs-core --example footprint`):", "",
           "| metric | value |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(out)


def summary_text(meta, pe, present, mem):
    """The README's headline comparison, every figure from this run."""
    def cmp(w, label, a, b, better):
        va, vb = pe(a, w), pe(b, w)
        if va is None or vb is None:
            return None
        factor = vb / va if better == "faster" else va / vb
        word = "times faster than" if better == "faster" else "times the time of"
        return f"- {label}: {fmt_us(va)} µs per entry against {fmt_us(vb)} for {b}: {factor:.1f} {word} {b}."
    lines = [f"From `scripts/bench.sh` on {meta.get('date', '?')} (eventfsd {meta.get('eventfsd', '?')}, "
             f"{meta.get('accel', '?').upper()} guest, {meta.get('total_seconds', '?')} s; medians; "
             "every figure in [BENCHMARKS.md](BENCHMARKS.md)):", ""]
    for item in [
        cmp("cold_find", "cold `find events`, catalog source", "eventfsd-catalog", "virtiofsd", "faster"),
        cmp("cat_formats", "`cat` of every `format`, catalog source", "eventfsd-catalog", "virtiofsd", "faster"),
        cmp("warm_find", "warm `find events`, catalog source", "eventfsd-catalog", "native", "slower"),
        cmp("warm_find", "warm `find events`, host source", "eventfsd-host", "native", "slower"),
    ]:
        if item:
            lines.append(item)
    def kmem_line(cp, when):
        idle = {c: mem.get(c, {}).get(cp, {}).get("kmem_kb") for c in present}
        if idle.get("eventfsd-catalog") is None or idle.get("virtiofsd") is None:
            return
        host = idle.get("eventfsd-host")
        lines.append(
            f"- host kernel memory of the daemon of a guest idle for {meta.get('idle', '35')} s {when}: "
            f"{idle['eventfsd-catalog']} KiB for the catalog source"
            + (f" and {host} KiB for the host source" if host is not None else "")
            + f", against {idle['virtiofsd']} KiB for virtiofsd."
        )

    kmem_line("idle-after-mount", "after the mount")
    kmem_line("after-idle", "after the workloads (walks, reads, a trace)")
    return "\n".join(lines)


def chart(path, samples, present):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench-report: matplotlib missing, no chart", file=sys.stderr)
        return
    cfgs = [c for c in present if c in samples]
    ws = [w for w, _, _ in WORKLOADS]
    fig, ax = plt.subplots(figsize=(11, 5.2))
    width = 0.8 / max(1, len(cfgs))
    colors = {"eventfsd-catalog": "#2b8cbe", "eventfsd-host": "#7bccc4", "virtiofsd": "#e34a33", "native": "#636363"}
    for i, c in enumerate(cfgs):
        xs, meds, lo, hi = [], [], [], []
        for j, w in enumerate(ws):
            p = per_entry(samples, c, w)
            if p is None:
                continue
            xs.append(j + (i - (len(cfgs) - 1) / 2) * width)
            meds.append(p[0])
            lo.append(p[0] - p[1])
            hi.append(p[2] - p[0])
        ax.bar(xs, meds, width, yerr=[lo, hi], capsize=2, label=c, color=colors.get(c))
    ax.set_yscale("log")
    ax.set_xticks(range(len(ws)))
    ax.set_xticklabels([w.replace("_", "\n") for w in ws])
    ax.set_ylabel("µs per entry / file / write (log scale)")
    ax.set_title("Guest time per entry (median, min–max bars); lower is better")
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
