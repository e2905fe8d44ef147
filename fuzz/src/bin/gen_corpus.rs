//! Writes the seed corpora under `fuzz/corpus/<target>/seed-*` from real inputs: FUSE sessions
//! a guest produces against the embedded catalog, filters and triggers from the kernel's
//! documentation, small valid catalog images (and the embedded one truncated), the example
//! policy. Run from anywhere: `cargo run --manifest-path fuzz/Cargo.toml --bin gen-corpus`.

use std::path::{Path, PathBuf};

use fuse_backend_rs::abi::fuse_abi::{
    AccessIn, BatchForgetIn, ForgetIn, ForgetOne, GetattrIn, MkdirIn, Opcode, OpenIn, ReadIn,
    ReleaseIn, SetattrIn, WriteIn,
};
use vm_memory::ByteValued;

use eventfs_core::catalog::{Catalog, EventEntry, RawCatalog, SystemEntry, EMBEDDED};
use eventfs_core::{Tree, TreeConfig, ROOT_INO};
use eventfsd_fuzz::{frames, image_from_body, message, name_body, CURATED};

fn corpus_dir(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().starts_with("seed-") {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    dir
}

fn write_seeds(target: &str, seeds: &[(String, Vec<u8>)]) {
    let dir = corpus_dir(target);
    for (i, (name, bytes)) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}-{name}")), bytes).unwrap();
    }
    println!("{target}: {} seeds", seeds.len());
}

// ------------------------------------------------------------------------------------------
// FUSE sessions

/// Builds a request sequence with increasing `unique`s.
struct Session {
    tree: Tree,
    unique: u64,
    msgs: Vec<Vec<u8>>,
}

const O_RDONLY: u32 = 0;
const O_WRONLY: u32 = 1;
const O_TRUNC: u32 = 0o1000;
const O_APPEND: u32 = 0o2000;

impl Session {
    fn new() -> Session {
        Session {
            tree: Tree::embedded(TreeConfig::default()),
            unique: 2,
            msgs: Vec::new(),
        }
    }
    fn raw(&mut self, op: u32, node: u64, body: &[u8]) -> &mut Self {
        self.unique += 1;
        self.msgs.push(message(op, self.unique, node, body));
        self
    }
    fn op(&mut self, op: Opcode, node: u64, body: &[u8]) -> &mut Self {
        self.raw(op as u32, node, body)
    }
    /// Inode of `path` below the root (no lookup count taken in the generator's tree).
    fn ino(&self, path: &str) -> u64 {
        let mut ino = ROOT_INO;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            ino = self.tree.find(ino, part.as_bytes()).unwrap().node.ino;
        }
        ino
    }
    /// LOOKUPs of every component of `path`; returns the final inode.
    fn walk(&mut self, path: &str) -> u64 {
        let mut parent = ROOT_INO;
        let mut sofar = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            self.op(Opcode::Lookup, parent, &name_body(part.as_bytes()));
            sofar.push('/');
            sofar.push_str(part);
            parent = self.ino(&sofar);
        }
        parent
    }
    fn open(&mut self, ino: u64, flags: u32) -> &mut Self {
        let body = OpenIn {
            flags,
            fuse_flags: 0,
        };
        self.op(Opcode::Open, ino, body.as_slice())
    }
    fn read(&mut self, ino: u64, fh: u64, offset: u64, size: u32) -> &mut Self {
        let body = ReadIn {
            fh,
            offset,
            size,
            ..Default::default()
        };
        self.op(Opcode::Read, ino, body.as_slice())
    }
    fn write(&mut self, ino: u64, fh: u64, data: &[u8]) -> &mut Self {
        let body = WriteIn {
            fh,
            size: data.len() as u32,
            ..Default::default()
        };
        let mut b = body.as_slice().to_vec();
        b.extend_from_slice(data);
        self.op(Opcode::Write, ino, &b)
    }
    fn release(&mut self, ino: u64, fh: u64) -> &mut Self {
        let body = ReleaseIn {
            fh,
            ..Default::default()
        };
        self.op(Opcode::Release, ino, body.as_slice())
    }
    fn readdir(&mut self, plus: bool, ino: u64, offset: u64, size: u32) -> &mut Self {
        let op = if plus {
            Opcode::Readdirplus
        } else {
            Opcode::Readdir
        };
        self.op(Opcode::Opendir, ino, OpenIn::default().as_slice());
        let body = ReadIn {
            fh: 0,
            offset,
            size,
            ..Default::default()
        };
        self.op(op, ino, body.as_slice());
        self.op(Opcode::Releasedir, ino, ReleaseIn::default().as_slice())
    }
    /// Write `data` to the control file at `path` (lookup, open O_WRONLY|O_TRUNC, write,
    /// read back, release). `fh` is the handle the fresh control state gives this open.
    fn echo(&mut self, path: &str, fh: u64, data: &[u8]) -> &mut Self {
        let ino = self.walk(path);
        self.open(ino, O_WRONLY | O_TRUNC)
            .write(ino, fh, data)
            .release(ino, fh)
            .open(ino, O_RDONLY)
            .read(ino, fh + 1, 0, 4096)
            .release(ino, fh + 1)
    }
    fn take(&mut self) -> Vec<u8> {
        frames(&std::mem::take(&mut self.msgs))
    }
}

fn fuse_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let mut add = |name: &str, s: &mut Session| seeds.push((name.to_string(), s.take()));
    let mut s = Session::new();

    // cat events/sched/sched_switch/format, then the guest forgets it.
    let fmt = s.walk("events/sched/sched_switch/format");
    s.op(Opcode::Getattr, fmt, GetattrIn::default().as_slice())
        .open(fmt, O_RDONLY)
        .read(fmt, 0, 0, 4096)
        .read(fmt, 0, 4000, 4096)
        .release(fmt, 0)
        .op(Opcode::Forget, fmt, ForgetIn { nlookup: 1 }.as_slice());
    add("cat-format", &mut s);

    s.echo("events/sched/sched_switch/enable", 1, b"1\n");
    add("enable-event", &mut s);
    s.echo("events/sched/enable", 1, b"1\n");
    add("enable-system", &mut s);
    s.echo("events/enable", 1, b"0\n");
    add("enable-all", &mut s);
    s.echo("events/sched/sched_switch/filter", 1, b"prev_pid == 0\n");
    add("filter", &mut s);
    s.echo(
        "events/sched/sched_switch/filter",
        1,
        b"prev_comm ~ \"ba*\" && (next_pid > 1 || prev_prio < 100)\n",
    );
    add("filter-complex", &mut s);
    s.echo(
        "events/sched/sched_switch/filter",
        1,
        b"no_such_field == 1\n",
    );
    add("filter-bad", &mut s);
    s.echo("events/sched/filter", 1, b"common_pid != 0\n");
    add("filter-system", &mut s);
    s.echo(
        "events/kmem/kmalloc/trigger",
        1,
        b"hist:keys=call_site.sym:vals=bytes_req,bytes_alloc:sort=bytes_alloc.descending\n",
    );
    add("trigger-hist", &mut s);
    s.echo(
        "events/sched/sched_switch/trigger",
        1,
        b"traceoff:1 if prev_pid == 0\n",
    );
    add("trigger-traceoff", &mut s);
    s.echo("set_event", 1, b"sched:sched_switch\nirq:*\n");
    add("set-event", &mut s);
    s.echo("tracing_on", 1, b"0\n");
    add("tracing-on", &mut s);
    s.echo("buffer_size_kb", 1, b"4096\n");
    add("buffer-size", &mut s);
    s.echo("current_tracer", 1, b"nop\n");
    add("current-tracer", &mut s);
    s.echo("options/overwrite", 1, b"0\n");
    add("option", &mut s);
    s.echo("set_event_pid", 1, b"1 2 3\n");
    add("set-event-pid", &mut s);

    let marker = s.walk("trace_marker");
    let enable = s.walk("events/sched/sched_switch/enable");
    let trace = s.walk("trace");
    s.open(enable, O_WRONLY)
        .write(enable, 1, b"1")
        .open(marker, O_WRONLY | O_APPEND)
        .write(marker, 2, b"hello from the guest\n")
        .open(trace, O_RDONLY)
        .read(trace, 3, 0, 65536)
        .release(trace, 3)
        .release(marker, 2)
        .release(enable, 1);
    add("trace-marker", &mut s);

    let pipe = s.walk("trace_pipe");
    s.open(pipe, O_RDONLY)
        .read(pipe, 1, 0, 4096)
        .release(pipe, 1);
    add("trace-pipe", &mut s);

    for path in [
        "README",
        "available_events",
        "error_log",
        "trace_clock",
        "events/header_page",
    ] {
        let ino = s.walk(path);
        s.open(ino, O_RDONLY).read(ino, 1, 0, 8192).release(ino, 1);
    }
    add("read-root-files", &mut s);

    s.readdir(false, ROOT_INO, 0, 4096);
    add("readdir-root", &mut s);
    let sched = s.walk("events/sched");
    s.readdir(true, sched, 0, 4096)
        .readdir(true, sched, 7, 512)
        .readdir(false, sched, u64::MAX - 1, 4096);
    add("readdirplus-offsets", &mut s);
    let events = s.walk("events");
    s.readdir(true, events, 0, 65536);
    add("readdirplus-events", &mut s);

    let instances = s.walk("instances");
    let mut mkdir = MkdirIn {
        mode: 0o755,
        umask: 0o022,
    }
    .as_slice()
    .to_vec();
    mkdir.extend_from_slice(&name_body(b"foo"));
    s.op(Opcode::Mkdir, instances, &mkdir);
    s.op(Opcode::Lookup, instances, &name_body(b"foo"));
    s.op(Opcode::Rmdir, instances, &name_body(b"foo"));
    add("instance-mkdir-rmdir", &mut s);

    let en = s.walk("events/sched/sched_switch/enable");
    let chmod = SetattrIn {
        valid: 1,
        mode: 0o600,
        ..Default::default()
    };
    let trunc = SetattrIn {
        valid: 8,
        ..Default::default()
    };
    s.op(Opcode::Setattr, en, chmod.as_slice())
        .op(Opcode::Setattr, en, trunc.as_slice())
        .op(Opcode::Statfs, ROOT_INO, &[])
        .op(
            Opcode::Access,
            en,
            AccessIn {
                mask: 2,
                padding: 0,
            }
            .as_slice(),
        );
    add("setattr-statfs-access", &mut s);

    s.op(
        Opcode::Forget,
        0xdead_beef,
        ForgetIn { nlookup: u64::MAX }.as_slice(),
    )
    .op(
        Opcode::Forget,
        ROOT_INO,
        ForgetIn { nlookup: 1 << 40 }.as_slice(),
    );
    let ev = s.walk("events");
    let mut batch = BatchForgetIn { count: 3, dummy: 0 }.as_slice().to_vec();
    for (nodeid, nlookup) in [(ev, 1), (ev, u64::MAX), (12345, 7)] {
        batch.extend_from_slice(ForgetOne { nodeid, nlookup }.as_slice());
    }
    s.op(Opcode::BatchForget, 0, &batch);
    add("forgets", &mut s);

    s.raw(
        Opcode::Init as u32,
        0,
        &eventfsd_fuzz::init_message(0)[40..],
    )
    .op(Opcode::Getattr, ROOT_INO, GetattrIn::default().as_slice())
    .op(Opcode::Destroy, 0, &[])
    .op(Opcode::Getattr, ROOT_INO, GetattrIn::default().as_slice());
    add("init-again-destroy", &mut s);

    s.raw(99, ROOT_INO, &[0u8; 16])
        .raw(50, ROOT_INO, &[])
        .op(Opcode::Bmap, ROOT_INO, &[0u8; 16])
        .op(Opcode::Interrupt, 0, &7u64.to_le_bytes())
        .op(Opcode::Ioctl, ROOT_INO, &[0u8; 32])
        .op(Opcode::Getxattr, ROOT_INO, b"\x10\0\0\0\0\0\0\0user.x\0")
        .op(Opcode::Listxattr, ROOT_INO, &[0u8; 8])
        .op(Opcode::Lseek, ROOT_INO, &[0u8; 24]);
    add("unknown-and-unsupported", &mut s);

    s.op(Opcode::Lookup, ROOT_INO, &name_body(&[b'a'; 255]))
        .op(Opcode::Lookup, ROOT_INO, &name_body(&[b'a'; 256]))
        .op(Opcode::Lookup, ROOT_INO, &name_body(b"no\xffutf8"))
        .op(Opcode::Lookup, ROOT_INO, b"no-nul")
        .op(Opcode::Lookup, ROOT_INO, &name_body(b".."))
        .op(Opcode::Lookup, 0x7fff_ffff_ffff, &name_body(b"events"));
    add("odd-names", &mut s);

    let en = s.walk("events/sched/sched_switch/filter");
    s.open(en, O_WRONLY | O_TRUNC);
    let mut big = WriteIn {
        fh: 1,
        size: 1 << 20,
        ..Default::default()
    }
    .as_slice()
    .to_vec();
    big.extend_from_slice(&[b'x'; 200]);
    s.op(Opcode::Write, en, &big);
    add("write-size-lies", &mut s);

    let mut m = message(Opcode::Lookup as u32, 9, ROOT_INO, &name_body(b"events"));
    m[0..4].copy_from_slice(&4096u32.to_le_bytes());
    s.msgs.push(m);
    let mut m = message(Opcode::Getattr as u32, 10, ROOT_INO, &[]);
    m[0..4].copy_from_slice(&8u32.to_le_bytes());
    s.msgs.push(m);
    s.msgs.push(vec![0u8; 20]);
    add("header-len-lies", &mut s);

    let create = {
        let mut b = vec![0u8; 16];
        b.extend_from_slice(&name_body(b"newfile"));
        b
    };
    s.op(Opcode::Create, ROOT_INO, &create)
        .op(Opcode::Mknod, ROOT_INO, &create)
        .op(Opcode::Unlink, ROOT_INO, &name_body(b"trace"))
        .op(Opcode::Symlink, ROOT_INO, b"a\0b\0")
        .op(Opcode::Rename, ROOT_INO, b"\x01\0\0\0\0\0\0\0trace\0x\0");
    add("modifying-ops", &mut s);

    seeds
}

// ------------------------------------------------------------------------------------------
// Parsers

/// Filters from the kernel's Documentation/trace/events.rst (section 5) and histogram.rst,
/// with the curated event (index into `CURATED`) each applies to; and a few broken ones.
const FILTERS: &[(u8, &str)] = &[
    (0, "prev_pid == 0"),
    (0, "prev_comm == \"bash\""),
    (0, "next_comm ~ \"*sh\""),
    (0, "common_preempt_count > 4"),
    (0, "prev_pid > 0 && next_pid == 1"),
    (0, "!(prev_pid == 0) || prev_prio < 100"),
    (0, "prev_state & 2"),
    (0, "cpu & CPUS{0-3}"),
    (0, "comm ~ \"ba*\""),
    (0, "0"),
    (1, "pid == 1 && target_cpu == 0"),
    (2, "filename ~ \"/usr/bin/*\""),
    (3, "irq == 10 && name ~ \"eth*\""),
    (4, "filename.ustring ~ \"/etc/*\""),
    (5, "call_site.function == security_prepare_creds"),
    (5, "bytes_req > 1000 && bytes_alloc < 4096"),
    (
        6,
        "((sector >= 137 && sector <= 142) || (sector >= 2010 && sector <= 2015))",
    ),
    (7, "sig >= 10 && sig < 15 && comm != bash"),
    (8, "expires > 0 && mode == 1"),
    (9, "id == 257 || id == 2"),
    (0, "prev_pid =="),
    (0, "no_such_field == 1"),
    (0, "prev_pid == 1 &&"),
    (0, "(((prev_pid == 1)"),
    (0, "prev_comm > \"a\""),
    (0, "prev_pid ~ 1"),
    (0, "prev_pid == 0x"),
    (0, "CPUS{9999}"),
];

const TRIGGERS: &[(u8, &str)] = &[
    (0, "traceoff"),
    (0, "traceon:5"),
    (0, "snapshot"),
    (0, "stacktrace:5 if prev_pid == 0"),
    (0, "traceoff if prev_pid == 0"),
    (0, "!traceoff"),
    (0, "enable_event:kmem:kmalloc:3 if next_pid > 1"),
    (0, "disable_event:sched:sched_wakeup"),
    (0, "hist:keys=next_pid:vals=prev_pid if prev_prio < 100"),
    (
        0,
        "hist:key=common_pid.execname:val=hitcount:sort=hitcount.descending:size=4096",
    ),
    (0, "hist:keys=common_pid:pause"),
    (0, "hist:name=foo:keys=prev_pid"),
    (5, "hist:keys=call_site:vals=bytes_req"),
    (
        5,
        "hist:keys=call_site.sym:values=bytes_req,bytes_alloc:sort=bytes_alloc.descending",
    ),
    (5, "stacktrace:5 if bytes_req >= 65536"),
    (9, "hist:keys=id.syscall:vals=hitcount"),
    (3, "hist:keys=irq,name:sort=irq"),
    (6, "hist:keys=dev,sector.hex:vals=nr_sector"),
    (0, "traceon:abc"),
    (0, "foo"),
    (0, "hist:keys=nosuch"),
    (0, "snapshot if"),
    (0, "enable_event:nosys:noevent"),
    (0, "hist:keys=prev_pid:sort=nosuch"),
    // Regression: found by this fuzzer (size rounding overflowed above 2^63).
    (0, "hist:keys=prev_pid:size=13106511852580896768"),
];

/// Probe definitions of the kernel's self-tests and documentation (even selector:
/// `uprobe_events`, odd: `dynamic_events`).
const PROBES: &[(u8, &str)] = &[
    (0, "p /bin/sh:10"),
    (
        0,
        "p:myev /bin/bash:0x4245c0 a=%ax b=+0(%sp):u32 s=+0(%di):string c=$comm",
    ),
    (0, "r:grp/ret /bin/bash:0x4245c0 rv=$retval:s32"),
    (
        0,
        "p:myev /bin/sh:10%return(0x20) x=@+16:x8 y=\\7 z=\\\"str\\\"",
    ),
    (0, "-:uprobes/p_sh_0xa"),
    (
        1,
        "e:myopen syscalls.sys_enter_openat dfd=$dfd:s32 fn=+0($filename):ustring",
    ),
    (
        1,
        "e:eprobes/sw sched.sched_switch prev=$prev_pid if prev_prio < 100",
    ),
    (1, "p /bin/sh:10 # comment\n!:eprobes/sw"),
];

fn selector_seeds(list: &[(u8, &str)]) -> Vec<(String, Vec<u8>)> {
    list.iter()
        .map(|&(sel, text)| {
            let mut v = vec![sel];
            v.extend_from_slice(text.as_bytes());
            v.push(b'\n');
            let name: String = text
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .take(32)
                .collect();
            (name, v)
        })
        .collect()
}

fn policy_seeds() -> Vec<(String, Vec<u8>)> {
    let example = include_str!("../../../docs/policy.example.toml");
    let mut seeds = vec![
        ("example".into(), example.as_bytes().to_vec()),
        ("empty".into(), Vec::new()),
        (
            "example-probes".into(),
            format!(
                "{example}\n#--\nsched/sched_switch\nsched/sched_stat_runtime\nkvm/kvm_exit\n\
                 events/sched/sched_switch/filter\nbuffer_size_kb\noptions/overwrite\n\
                 kprobe_events\n"
            )
            .into_bytes(),
        ),
    ];
    let variants: &[(&str, &str)] = &[
        ("visible-all", "[events]\nvisible = [\"*\"]\nhidden = []\n"),
        (
            "globs",
            "[events]\nvisible = [\"**\", \"s?hed/*\", \"a/**/b\"]\nhidden = [\"*/*_stat_*\"]\n\
             [files]\nwritable = [\"events/**/filter\", \"enable\"]\nread_only = [\"**/trigger\"]\n",
        ),
        (
            "dynamic",
            "[dynamic]\nshow = false\nglobal_files = [\"kprobe_events\", \"synthetic_events\"]\n",
        ),
        (
            "limits",
            "[limits]\nmax_filter_len = 1\nwrites_per_second = 4294967295\n\
             max_buffer_size_kb = 18446744073709551615\n",
        ),
        ("bad-global", "[dynamic]\nglobal_files = [\"trace\"]\n"),
        ("bad-filter-len", "[limits]\nmax_filter_len = 0\n"),
        ("bad-toml", "[events\nvisible = \n"),
        ("bad-type", "[events]\nvisible = 3\n"),
        ("unknown-key", "[events]\nvisbile = [\"*\"]\n"),
        (
            "deep-globs",
            "[events]\nvisible = [\"**/**/**/**/**\"]\n#--\na/b/c/d/e/f/g/h/i/j/k/l/m\n",
        ),
    ];
    for (name, text) in variants {
        seeds.push((name.to_string(), text.as_bytes().to_vec()));
    }
    // The fuzzer's hang of the old backtracking matcher: runs of stars around a long
    // component, against paths that almost match.
    let stars = format!(
        "[events]\nvisible = [\"**/{}{}{}**/**/**\"]\n#--\na/b/c/d/e/f/g/h/i/{}**\n",
        "\u{f3}".repeat(8),
        "*".repeat(70),
        "\u{f3}".repeat(120),
        "\u{f3}".repeat(9),
    );
    seeds.push(("star-runs".to_string(), stars.into_bytes()));
    seeds
}

/// A small real catalog: a few events of the embedded one, with their real formats.
fn small_catalog() -> Catalog {
    let raw = RawCatalog::parse(EMBEDDED).unwrap();
    let full = Catalog::decode(EMBEDDED).unwrap();
    let text =
        |span: eventfs_core::catalog::Span| String::from_utf8(span.get(EMBEDDED).to_vec()).unwrap();
    let mut systems: Vec<SystemEntry> = Vec::new();
    for &(sys, ev) in &CURATED[..4] {
        let rs = raw
            .systems
            .iter()
            .find(|s| s.name.get(EMBEDDED) == sys.as_bytes())
            .unwrap();
        let re = rs
            .events
            .iter()
            .find(|e| e.name.get(EMBEDDED) == ev.as_bytes())
            .unwrap();
        let entry = EventEntry {
            name: ev.into(),
            id: re.id,
            files: re.files,
            format: text(re.format),
        };
        match systems.iter_mut().find(|s| s.name == sys) {
            Some(s) => s.events.push(entry),
            None => systems.push(SystemEntry {
                name: sys.into(),
                files: rs.files,
                events: vec![entry],
            }),
        }
    }
    Catalog {
        kernel_release: full.kernel_release,
        header_page: full.header_page,
        header_event: full.header_event,
        readme: "tracing mini-HOWTO:\n".into(),
        available_tracers: "nop\n".into(),
        trace_clock: "[local] global\n".into(),
        functions: "schedule\nvfs_read\nkvm_init [kvm]\n".into(),
        options: full.options.into_iter().take(6).collect(),
        systems,
    }
}

fn catalog_seeds() -> Vec<(String, Vec<u8>)> {
    let small = small_catalog();
    let image = small.encode();
    let body = &image[eventfs_core::catalog::HEADER_LEN..];
    assert_eq!(image_from_body(body), image);
    let mut seeds = Vec::new();
    let mut push = |name: &str, mode: u8, bytes: &[u8]| {
        let mut v = vec![mode];
        v.extend_from_slice(bytes);
        seeds.push((name.to_string(), v));
    };
    push("small-image", 0, &image);
    push("small-body", 1, body);
    let empty = Catalog {
        systems: Vec::new(),
        options: Vec::new(),
        ..small.clone()
    };
    push(
        "empty-body",
        1,
        &empty.encode()[eventfs_core::catalog::HEADER_LEN..],
    );
    let mut one = small.clone();
    one.systems.truncate(1);
    one.systems[0].events.truncate(1);
    push(
        "one-event-body",
        1,
        &one.encode()[eventfs_core::catalog::HEADER_LEN..],
    );
    for n in [0usize, 8, 31, 32, 40, 64, 200, 1024, 4000] {
        push(&format!("embedded-truncated-{n}"), 0, &EMBEDDED[..n]);
    }
    for n in [16usize, 100, 600, 2000] {
        push(
            &format!("small-body-truncated-{n}"),
            1,
            &body[..n.min(body.len())],
        );
    }
    seeds
}

fn main() {
    write_seeds("fuse_requests", &fuse_seeds());
    write_seeds("filter_parser", &selector_seeds(FILTERS));
    write_seeds("trigger_parser", &selector_seeds(TRIGGERS));
    write_seeds("probe_parser", &selector_seeds(PROBES));
    write_seeds("policy_parser", &policy_seeds());
    write_seeds("catalog_loader", &catalog_seeds());
    // The curated events must exist, or the selectors above point elsewhere.
    for (i, (sys, ev)) in CURATED.iter().enumerate() {
        let (s, e, _) = eventfsd_fuzz::select_event(i as u8);
        assert_eq!((s, e), (*sys, *ev), "curated event {sys}/{ev} missing");
    }
}
