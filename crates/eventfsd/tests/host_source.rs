//! The host source through /dev/fuse: a private instance of this machine's live tracefs,
//! mounted on the host with the same `EventFs` the guest gets.
//!
//! These tests only ever touch instances they create (unique names, removed by Drop guards)
//! and check that the host's top-level tracing state is unchanged. They need root, /dev/fuse
//! and a mounted tracefs; where one is missing each test prints why it did not run.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuse_backend_rs::api::server::Server;

use eventfs_core::{NodeKind, TreeConfig, ROOT_INO};
use eventfsd::fs::{CachePolicy, EventFs};
use eventfsd::source::host::change_watch::ChangeWatch;
use eventfsd::source::host::{
    build_tree, rescan::rescan, ForwardLimits, HostControl, OwnInstanceAt, Policy,
};
use eventfsd::source::Source;
use eventfsd::stats::Stats;
use eventfsd::transport::fusedev::FuseMount;
use tracefs_raw::{decode_page, EventFormat, PageLayout};

#[path = "common/host_mount.rs"]
mod host_mount;
use host_mount::*;

const BIN: &str = env!("CARGO_BIN_EXE_eventfsd");

/// Kills and reaps a spawned daemon if the test fails before it stops it, so no daemon (or
/// mount) outlives a failed test.
struct ChildGuard(std::process::Child);

impl std::ops::Deref for ChildGuard {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Every path below `dir` (relative), in sorted order.
fn walk(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(dir.join(&rel)).unwrap() {
            let e = e.unwrap();
            let p = rel.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.insert(p.to_string_lossy().into_owned());
        }
    }
    out
}

/// Descriptors of this process that point into `dir`.
fn fds_into(dir: &Path) -> usize {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

#[test]
fn instance_is_created_served_and_removed() {
    // Every event shown: the served tree must be the instance's, system for system.
    let everything = "[events]\nhidden = []\n";
    let Some(m) = HostMount::new("lifecycle", Some(everything), ForwardLimits::default()) else {
        return;
    };
    assert!(m.instance.is_dir());
    // The served tree is the instance's: its events/ has the same systems, events and files.
    let served = walk(&m.path("events"));
    let host = walk(&m.host("events"));
    assert_eq!(served, host);
    for ev in [
        "sched/sched_switch",
        "irq/irq_handler_entry",
        "ftrace/function",
    ] {
        let f = format!("events/{ev}/format");
        assert_eq!(read(&m.path(&f)), read(&m.host(&f)), "{f}");
    }
    // Metadata is served from memory: a full walk leaves no host fd behind (only the O_PATH
    // descriptor of the instance directory points into it).
    let before = fds_into(&m.instance);
    assert_eq!(before, 1);
    let all = walk(&m.dir);
    assert!(all.len() > 10_000, "{}", all.len());
    assert_eq!(fds_into(&m.instance), before);
    assert_eq!(m.source.as_ref().unwrap().host_control().open_host_fds(), 0);
}

#[test]
fn global_files_are_hidden_by_default() {
    let Some(m) = HostMount::new("globals", None, ForwardLimits::default()) else {
        return;
    };
    let root = names(&m.dir);
    for hidden in [
        "kprobe_events",
        "dynamic_events",
        "uprobe_events",
        "synthetic_events",
        "available_filter_functions",
    ] {
        assert!(!root.contains(hidden), "{hidden} listed");
        assert_eq!(
            errno_of(fs::metadata(m.path(hidden))),
            Some(libc::ENOENT),
            "{hidden}"
        );
    }
    for shown in [
        "trace",
        "trace_pipe",
        "set_event",
        "available_events",
        "events",
    ] {
        assert!(root.contains(shown), "{shown} missing");
    }
    let available = read(&m.path("available_events"));
    assert!(available.lines().any(|l| l == "sched:sched_switch"));
}

#[test]
fn global_files_can_be_allowed() {
    let Some(top) = can_run("allowglobal-top") else {
        return;
    };
    if !top.join("dynamic_events").exists() {
        test_prereq::skip(
            "global_files_can_be_allowed",
            "this kernel's tracefs has no dynamic_events",
        );
        return;
    }
    let policy = "[dynamic]\nglobal_files = [\"dynamic_events\"]\n";
    let Some(m) = HostMount::new("allowglobal", Some(policy), ForwardLimits::default()) else {
        return;
    };
    // Read only: the test never writes the host's top level.
    assert_eq!(
        read(&m.path("dynamic_events")),
        read(&top.join("dynamic_events"))
    );
    assert_eq!(
        errno_of(fs::metadata(m.path("kprobe_events"))),
        Some(libc::ENOENT)
    );
}

#[test]
fn enable_and_filter_reach_the_instance_only() {
    let Some(m) = HostMount::new("enable", None, ForwardLimits::default()) else {
        return;
    };
    let top = &m.tracefs;
    let top_before = read(&top.join("events/sched/sched_switch/enable"));
    let ev = "events/sched/sched_switch";
    assert_eq!(read(&m.path(&format!("{ev}/enable"))), "0\n");
    assert_eq!(echo(&m.path(&format!("{ev}/enable")), "1"), None);
    assert_eq!(read(&m.path(&format!("{ev}/enable"))), "1\n");
    assert_eq!(read(&m.host(&format!("{ev}/enable"))), "1\n");
    assert_eq!(read(&m.path("events/sched/enable")), "X\n");
    // A bad value and a bad filter come back with the kernel's errno.
    assert_eq!(
        echo(&m.path(&format!("{ev}/enable")), "7"),
        Some(libc::EINVAL)
    );
    assert_eq!(
        echo(&m.path(&format!("{ev}/filter")), "no_such_field == 1"),
        Some(libc::EINVAL)
    );
    assert!(read(&m.path("error_log")).contains("no_such_field"));
    assert_eq!(
        echo(&m.path(&format!("{ev}/filter")), "prev_pid == 0"),
        None
    );
    assert_eq!(
        read(&m.path(&format!("{ev}/filter"))).trim(),
        "prev_pid == 0"
    );
    assert_eq!(echo(&m.path(&format!("{ev}/enable")), "0"), None);
    assert_eq!(
        read(&top.join("events/sched/sched_switch/enable")),
        top_before
    );
}

#[test]
fn trace_marker_trace_and_truncate() {
    let Some(m) = HostMount::new("trace", None, ForwardLimits::default()) else {
        return;
    };
    let marker = format!("eventfsd-marker-{}", std::process::id());
    assert_eq!(echo(&m.path("trace_marker"), &marker), None);
    assert!(read(&m.path("trace")).contains(&marker));
    assert!(read(&m.host("trace")).contains(&marker));
    // `> trace` (open with O_TRUNC) clears the instance's buffer.
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(m.path("trace"))
        .unwrap();
    assert!(!read(&m.path("trace")).contains(&marker));
    assert_eq!(read(&m.path("tracing_on")), "1\n");
    assert!(read(&m.path("current_tracer")).contains("nop"));
    assert!(!read(&m.path("buffer_size_kb")).is_empty());
}

/// Reading `trace` while an event records must end: each guest read is a round trip that
/// itself causes sched_switch records, so a reader that followed the live buffer would never
/// reach its end. `trace` is streamed; the daemon sets `pause-on-trace` in its instances.
#[test]
fn trace_of_a_live_buffer_ends() {
    let Some(m) = HostMount::new("live", None, ForwardLimits::default()) else {
        return;
    };
    let enable = m.path("events/sched/sched_switch/enable");
    assert_eq!(echo(&enable, "1"), None);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (tx, rx) = std::sync::mpsc::channel();
    let trace = m.path("trace");
    std::thread::spawn(move || {
        let mut file = fs::File::open(trace).unwrap();
        let mut total = 0usize;
        let mut buf = vec![0u8; 4096];
        // Small reads, as `cat` over virtio-fs makes them: many round trips.
        loop {
            let n = file.read(&mut buf).unwrap();
            if n == 0 || total > 512 << 20 {
                break;
            }
            total += n;
        }
        let _ = tx.send(total);
    });
    let total = rx.recv_timeout(std::time::Duration::from_secs(20));
    assert_eq!(echo(&enable, "0"), None);
    let total = total.expect("reading trace never reached its end");
    assert!(total > 0 && total < 512 << 20, "{total} bytes");
}

fn raw_read(fd: i32, buf: &mut [u8]) -> Result<usize, i32> {
    // SAFETY: buf is valid for its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap())
    } else {
        Ok(n as usize)
    }
}

fn open_raw(path: &Path, flags: i32) -> i32 {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid C string.
    let fd = unsafe { libc::open(c.as_ptr(), flags) };
    assert!(
        fd >= 0,
        "open {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    fd
}

#[test]
fn trace_pipe_blocks_without_stalling_other_requests() {
    // A long wait, so that a request stalled behind the blocked reader would take at least
    // PIPE_WAIT: the checks below allow half of it, a margin no slow machine comes near.
    const PIPE_WAIT: Duration = Duration::from_secs(30);
    let limits = ForwardLimits {
        max_blocked_readers: 1,
        pipe_wait: PIPE_WAIT,
    };
    let Some(m) = HostMount::new("pipe", None, limits) else {
        return;
    };
    // O_NONBLOCK on an empty pipe: EAGAIN at once.
    let fd = open_raw(&m.path("trace_pipe"), libc::O_RDONLY | libc::O_NONBLOCK);
    let mut buf = [0u8; 4096];
    assert_eq!(raw_read(fd, &mut buf), Err(libc::EAGAIN));
    // SAFETY: closing our own fd.
    unsafe { libc::close(fd) };

    const READ: u32 = fuse_backend_rs::abi::fuse_abi::Opcode::Read as u32;
    let reads_before = m.stats.requests(READ);
    let pipe = m.path("trace_pipe");
    let reader = std::thread::spawn(move || {
        let fd = open_raw(&pipe, libc::O_RDONLY);
        let mut buf = [0u8; 4096];
        let start = Instant::now();
        let mut got = String::new();
        // Retry EINTR like cat does: each wait is bounded by pipe_wait.
        while start.elapsed() < 3 * PIPE_WAIT {
            match raw_read(fd, &mut buf) {
                Ok(n) => {
                    got.push_str(&String::from_utf8_lossy(&buf[..n]));
                    if got.contains("pipe-marker") {
                        break;
                    }
                }
                Err(libc::EINTR) => continue,
                Err(e) => panic!("trace_pipe read: errno {e}"),
            }
        }
        // SAFETY: closing our own fd.
        unsafe { libc::close(fd) };
        got
    });
    // Wait until the reader's READ has reached the daemon (the request counter moves when a
    // request arrives, before it is served).
    let deadline = Instant::now() + PIPE_WAIT;
    while m.stats.requests(READ) == reads_before {
        assert!(Instant::now() < deadline, "the reader never read");
        std::thread::sleep(Duration::from_millis(20));
    }
    // While the reader waits, other requests are answered, not queued behind it...
    let start = Instant::now();
    for _ in 0..20 {
        read(&m.path("events/sched/sched_switch/enable"));
        read(&m.path("events/sched/sched_switch/format"));
        fs::metadata(m.path("events/irq")).unwrap();
    }
    assert!(
        start.elapsed() < PIPE_WAIT / 2,
        "requests waited behind the blocked reader: {:?}",
        start.elapsed()
    );
    assert!(!reader.is_finished(), "the reader returned without data");
    // ...and the host's own rule holds: one trace_pipe reader per instance (EBUSY).
    let c = CString::new(m.path("trace_pipe").as_os_str().as_bytes()).unwrap();
    // SAFETY: valid C string.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
    assert_eq!(fd, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EBUSY)
    );
    assert_eq!(echo(&m.path("trace_marker"), "pipe-marker"), None);
    let got = reader.join().unwrap();
    assert!(got.contains("pipe-marker"), "{got}");
    // trace_pipe consumed it.
    assert!(!read(&m.path("trace")).contains("pipe-marker"));
}

#[test]
fn blocked_readers_are_capped() {
    // With no worker to spare (a pool of one), a read that would wait gets EAGAIN.
    // A read that waited would take at least this long; the EAGAIN must come well before.
    const PIPE_WAIT: Duration = Duration::from_secs(30);
    let limits = ForwardLimits {
        max_blocked_readers: 0,
        pipe_wait: PIPE_WAIT,
    };
    let Some(m) = HostMount::new("pipecap", None, limits) else {
        return;
    };
    let fd = open_raw(&m.path("trace_pipe"), libc::O_RDONLY);
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    assert_eq!(raw_read(fd, &mut buf), Err(libc::EAGAIN));
    assert!(start.elapsed() < PIPE_WAIT / 2, "{:?}", start.elapsed());
    // Data that is already there is still returned.
    assert_eq!(echo(&m.path("trace_marker"), "cap-marker"), None);
    let n = raw_read(fd, &mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("cap-marker"));
    // SAFETY: closing our own fd.
    unsafe { libc::close(fd) };
}

const HIDING_POLICY: &str = r#"
[events]
hidden = ["sched/sched_wak*", "irq"]
[files]
read_only = ["buffer_size_kb"]
[limits]
max_filter_len = 64
"#;

#[test]
fn policy_hides_events_everywhere() {
    let Some(m) = HostMount::new("hidden", Some(HIDING_POLICY), ForwardLimits::default()) else {
        return;
    };
    // Hidden: ENOENT and not listed.
    for p in [
        "events/sched/sched_waking",
        "events/sched/sched_wakeup",
        "events/irq",
    ] {
        assert_eq!(errno_of(fs::metadata(m.path(p))), Some(libc::ENOENT), "{p}");
    }
    let sched = names(&m.path("events/sched"));
    assert!(sched.contains("sched_switch"));
    assert!(!sched.iter().any(|n| n.starts_with("sched_wak")));
    assert!(!names(&m.path("events")).contains("irq"));
    let available = read(&m.path("available_events"));
    assert!(!available.contains("sched:sched_waking"));
    assert!(!available.contains("irq:"));
    assert!(available.contains("sched:sched_switch"));
    // Not reachable through set_event or triggers either: a token that names only hidden
    // events is refused as one that names nothing, and one that covers visible events too
    // enables only those.
    for token in ["sched:sched_waking", "irq", "sched_waking", "irq:*"] {
        assert_eq!(
            echo(&m.path("set_event"), token),
            Some(libc::EINVAL),
            "{token}"
        );
    }
    // Every visible event at once is over the default max_enabled_events.
    assert_eq!(echo(&m.path("set_event"), "*:*"), Some(libc::ENOSPC));
    for token in ["sched:*", "sched"] {
        assert_eq!(echo(&m.path("set_event"), token), None, "{token}");
        assert_eq!(
            read(&m.host("events/sched/sched_waking/enable")),
            "0\n",
            "{token}"
        );
        assert_eq!(read(&m.host("events/irq/enable")), "0\n", "{token}");
        assert_eq!(echo(&m.path("events/enable"), "0"), None);
    }
    assert_eq!(echo(&m.path("set_event"), "sched:sched_switch"), None);
    assert!(read(&m.path("set_event")).contains("sched:sched_switch"));
    assert_eq!(echo(&m.path("set_event"), "!sched:*"), None);
    assert_eq!(
        echo(
            &m.path("events/sched/sched_switch/trigger"),
            "enable_event:sched:sched_waking"
        ),
        Some(libc::EINVAL)
    );
    // A system-wide enable reaches only the visible events.
    assert_eq!(echo(&m.path("events/sched/enable"), "1"), None);
    assert_eq!(read(&m.path("events/sched/enable")), "1\n");
    assert_eq!(read(&m.host("events/sched/sched_switch/enable")), "1\n");
    assert_eq!(read(&m.host("events/sched/sched_waking/enable")), "0\n");
    assert_eq!(echo(&m.path("events/enable"), "0"), None);
    assert_eq!(read(&m.host("events/sched/sched_switch/enable")), "0\n");
    // Read-only files and limits.
    assert_eq!(echo(&m.path("buffer_size_kb"), "4096"), Some(libc::EACCES));
    assert!(!read(&m.path("buffer_size_kb")).is_empty());
    let long = format!("prev_pid == {}", "1".repeat(80));
    assert_eq!(
        echo(&m.path("events/sched/sched_switch/filter"), &long),
        Some(libc::EINVAL)
    );
}

#[test]
fn writes_per_second_are_limited() {
    let policy = "[limits]\nwrites_per_second = 2\n";
    let Some(m) = HostMount::new("rate", Some(policy), ForwardLimits::default()) else {
        return;
    };
    let results: Vec<Option<i32>> = (0..5).map(|_| echo(&m.path("trace_marker"), "x")).collect();
    assert!(results.contains(&Some(libc::EAGAIN)), "{results:?}");
    // The budget comes back with time: wait for it (on the condition, not a fixed sleep).
    let deadline = Instant::now() + Duration::from_secs(10);
    while echo(&m.path("trace_marker"), "x") == Some(libc::EAGAIN) {
        assert!(Instant::now() < deadline, "writes stay refused");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn guest_names_are_checked_before_any_host_path() {
    let Some(m) = HostMount::new("names", None, ForwardLimits::default()) else {
        return;
    };
    let long = "x".repeat(256);
    assert_eq!(
        errno_of(fs::metadata(m.path(&format!("events/{long}")))),
        Some(libc::ENAMETOOLONG)
    );
    for bad in [
        "events/sched/..x",
        "events/no_such_system",
        "events/sched/ sched_switch",
    ] {
        assert_eq!(
            errno_of(fs::metadata(m.path(bad))),
            Some(libc::ENOENT),
            "{bad}"
        );
    }
    // No new directories on the host through the guest, except instances (tested below).
    assert_eq!(
        errno_of(fs::create_dir(m.path("events/x"))),
        Some(libc::EPERM)
    );
    assert_eq!(
        errno_of(fs::create_dir(m.path("instances/a b"))),
        Some(libc::EINVAL)
    );
    // Immutable files cannot be opened for writing.
    let r = fs::OpenOptions::new()
        .write(true)
        .custom_flags(0)
        .open(m.path("events/sched/sched_switch/format"));
    assert!(r.is_err());
}

/// A fake tracefs instance (plain directories) for the rescan, which must not create dynamic
/// events on the real host.
/// Writes the fake root's `available_events` from its `events/` directories, as the kernel
/// lists them (the rescan reads this file, not the directories).
fn sync_available_events(root: &Path) {
    let mut lines = String::new();
    let mut systems: Vec<_> = fs::read_dir(root.join("events"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().unwrap().is_dir())
        .collect();
    systems.sort_by_key(|e| e.file_name());
    // The kernel lists no `ftrace` events: they cannot be enabled.
    systems.retain(|e| e.file_name() != "ftrace");
    for system in systems {
        let mut events: Vec<_> = fs::read_dir(system.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().unwrap().is_dir())
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        events.sort();
        for event in events {
            lines.push_str(&format!(
                "{}:{event}\n",
                system.file_name().into_string().unwrap()
            ));
        }
    }
    fs::write(root.join("available_events"), lines).unwrap();
}

fn fake_event(root: &Path, sys: &str, ev: &str, id: u32) {
    let d = root.join("events").join(sys).join(ev);
    fs::create_dir_all(&d).unwrap();
    for f in ["enable", "filter", "trigger", "id"] {
        fs::write(d.join(f), "").unwrap();
    }
    fs::write(
        d.join("format"),
        format!("name: {ev}\nID: {id}\nformat:\n\tfield:int x;\toffset:8;\tsize:4;\tsigned:1;\n\nprint fmt: \"x\"\n"),
    )
    .unwrap();
    fs::write(root.join("events").join(sys).join("enable"), "").unwrap();
    fs::write(root.join("events").join(sys).join("filter"), "").unwrap();
    sync_available_events(root);
}

#[test]
fn rescan_adds_and_removes_dynamic_events() {
    let root = std::env::temp_dir().join(format!("eventfsd-fake-tracefs-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(root.join("events")).unwrap();
    fs::write(root.join("events/header_page"), "hp\n").unwrap();
    fs::write(root.join("events/header_event"), "he\n").unwrap();
    fs::write(root.join("trace"), "").unwrap();
    fake_event(&root, "sched", "sched_switch", 1);
    fake_event(&root, "ftrace", "function", 9);
    // Listed as dynamic at start-up: served as a dynamic node (short cache timeouts).
    fake_event(&root, "kprobes", "early", 2);
    fs::write(root.join("dynamic_events"), "p:kprobes/early do_sys_open\n").unwrap();
    let policy =
        Policy::parse("[events]\nhidden = [\"kprobes/secret*\"]\n[dynamic]\nshow = true").unwrap();
    let (tree, view, dynamic) = build_tree(&root, &root, &policy, TreeConfig::default()).unwrap();
    assert!(dynamic.contains(&("kprobes".to_string(), "early".to_string())));
    let early = tree.find_event("kprobes", "early").unwrap();
    let early_ino = tree.dir_ino(early);
    assert!(tree.node(early_ino).unwrap().dynamic);
    assert!(
        !tree
            .node(tree.dir_ino(tree.find_event("sched", "sched_switch").unwrap()))
            .unwrap()
            .dynamic
    );
    let control = HostControl::new(
        OwnInstanceAt::Existing(&root),
        &root,
        Arc::new(policy),
        view,
        ForwardLimits::default(),
    )
    .unwrap();

    fake_event(&root, "kprobes", "myprobe", 3);
    fake_event(&root, "kprobes", "secret_probe", 4);
    fake_event(&root, "synthetic", "wakeup_latency", 5);
    let report = rescan(&tree, &control).unwrap();
    assert_eq!(report.added.len(), 2, "{report:?}");
    let myprobe = tree.find_event("kprobes", "myprobe").expect("added");
    let ino = tree.dir_ino(myprobe);
    let node = tree.node(ino).unwrap();
    assert!(node.dynamic);
    assert_eq!(
        node.kind,
        NodeKind::Dir(eventfs_core::layout::DirKind::Event)
    );
    assert!(tree.find_event("kprobes", "secret_probe").is_none());
    assert!(tree.find_event("synthetic", "wakeup_latency").is_some());
    tree.with_format(myprobe, |f| assert!(f.contains("ID: 3")));

    fs::remove_dir_all(root.join("events/kprobes/myprobe")).unwrap();
    fs::remove_dir_all(root.join("events/synthetic")).unwrap();
    sync_available_events(&root);
    let report = rescan(&tree, &control).unwrap();
    assert_eq!(report.removed.len(), 2, "{report:?}");
    assert!(tree.find_event("kprobes", "myprobe").is_none());
    assert!(tree.node(ino).is_err());
    assert!(tree.find(ROOT_INO, b"events").is_ok());
    let events = tree.find(ROOT_INO, b"events").unwrap().node.ino;
    assert!(
        tree.find(events, b"synthetic").is_err(),
        "empty system removed"
    );
    assert!(tree.find_event("kprobes", "early").is_some());
    // The kernel's own formats are not in available_events and stay.
    assert!(tree.find_event("ftrace", "function").is_some());
    // Nothing changes on a quiet host.
    assert_eq!(rescan(&tree, &control).unwrap(), Default::default());
    drop(control);
    fs::remove_dir_all(&root).unwrap();
}

fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "daemon did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Removes a test-created instance even if the test fails.
struct InstanceGuard(PathBuf);

impl Drop for InstanceGuard {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
    }
}

#[test]
fn daemon_removes_its_instance_on_sigterm_and_reports_stale_ones() {
    let Some(tracefs) = can_run("daemon") else {
        return;
    };
    // A pid nobody runs whose instance name nobody uses (a leftover must not stop the test).
    let stale =
        std::iter::repeat_with(|| tracefs.join(format!("instances/eventfsd-{}", dead_pid())))
            .take(100)
            .find(|path| !path.exists())
            .expect("a free stale-instance name");
    fs::create_dir(&stale).unwrap();
    let _guard = InstanceGuard(stale.clone());
    // An instance the dead daemon's guest made (`record -B`) is its too.
    let stale_guest = stale.with_file_name(format!(
        "{}.b",
        stale.file_name().unwrap().to_string_lossy()
    ));
    fs::create_dir(&stale_guest).unwrap();
    let _guest_guard = InstanceGuard(stale_guest.clone());
    let dir = std::env::temp_dir().join(format!("eventfsd-host-daemon-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let store = std::env::temp_dir().join(format!("eventfsd-host-store-{}", std::process::id()));
    for (signal, reclaim) in [(libc::SIGTERM, false), (libc::SIGINT, true)] {
        let mut args = vec![
            "--source",
            "host",
            "--tracefs",
            tracefs.to_str().unwrap(),
            "--mount",
            dir.to_str().unwrap(),
            "--snapshot-dir",
            store.to_str().unwrap(),
        ];
        if reclaim {
            args.push("--reclaim-stale-instances");
        }
        let mut child = ChildGuard(
            Command::new(BIN)
                .args(&args)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let ours = tracefs.join(format!("instances/eventfsd-{}", child.id()));
        let deadline = Instant::now() + Duration::from_secs(15);
        while !dir.join("events/sched").exists() {
            assert!(Instant::now() < deadline, "daemon did not start");
            assert!(child.try_wait().unwrap().is_none(), "daemon exited early");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Served from the shared snapshot: the kernel's own formats, which available_events
        // does not list, are there too.
        assert!(dir.join("events/ftrace/function/format").exists());
        assert!(dir.join("events/sched/sched_switch/format").exists());
        // Listing and looking up need no instance: it is made on the first open of a file.
        assert!(
            !ours.exists(),
            "instance made before the guest opened anything"
        );
        assert_eq!(
            fs::read_to_string(dir.join("events/sched/sched_switch/enable")).unwrap(),
            "0\n"
        );
        assert!(ours.is_dir(), "no instance after the first open");
        assert_eq!(stale.exists(), !reclaim);
        assert_eq!(stale_guest.exists(), !reclaim);
        // SAFETY: signalling the child we spawned.
        unsafe { libc::kill(child.id() as i32, signal) };
        assert!(wait_exit(&mut child).success());
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(
            !ours.exists(),
            "instance left after signal {signal}:\n{err}"
        );
        // The first daemon walks a probe instance once and shares the snapshot; the second
        // maps it. Neither leaves the probe behind.
        let (first, shared) = ("host events snapshotted into", "from the shared snapshot");
        if reclaim {
            assert!(err.contains(shared) && !err.contains(first), "{err}");
        } else {
            assert!(err.contains(first), "{err}");
        }
        let probe = ours.with_file_name(format!(
            "{}.snapshot",
            ours.file_name().unwrap().to_string_lossy()
        ));
        assert!(!probe.exists(), "probe instance left behind");
        let stale_name = stale.file_name().unwrap().to_string_lossy().into_owned();
        if reclaim {
            assert!(err.contains("reclaimed stale instance"), "{err}");
        } else {
            assert!(
                err.contains("stale instance") && err.contains(&stale_name),
                "{err}"
            );
        }
    }
    let snapshots: Vec<_> = fs::read_dir(&store).unwrap().collect();
    assert_eq!(snapshots.len(), 1, "one snapshot file, no temporary left");
    fs::remove_dir_all(&store).unwrap();
    let _ = fs::remove_dir(&dir);
}

#[test]
fn daemon_refuses_an_existing_instance_with_one_line() {
    let Some(tracefs) = can_run("exists") else {
        return;
    };
    let name = format!("evtest-exists-{}", std::process::id());
    let existing = tracefs.join("instances").join(&name);
    fs::create_dir(&existing).unwrap();
    let _guard = InstanceGuard(existing.clone());
    let dir = std::env::temp_dir().join(format!("eventfsd-host-exists-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let out = Command::new(BIN)
        .args([
            "--source",
            "host",
            "--tracefs",
            tracefs.to_str().unwrap(),
            "--instance",
            &name,
            "--mount",
            dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // Every tracefs mount shows the same instances: a stale one another test made meanwhile
    // is reported (a warning line) before the refusal.
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| !l.contains("stale instance"))
        .collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert!(
        existing.is_dir(),
        "an instance we did not create was removed"
    );
    let bad = Command::new(BIN)
        .args([
            "--source",
            "host",
            "--tracefs",
            "/tmp",
            "--mount",
            dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a tracefs"));
    let _ = fs::remove_dir(&dir);
}

/// A fake tracefs with the given events, its tree and control (dynamic events shown), served
/// through /dev/fuse: for the tests of what the rescan changes under a mounted guest.
struct FakeHostMount {
    root: PathBuf,
    dir: PathBuf,
    tree: Arc<eventfs_core::Tree>,
    control: Arc<HostControl>,
    stats: Arc<Stats>,
    mount: FuseMount,
}

impl FakeHostMount {
    fn start(name: &str, events: &[(&str, &str, u32)]) -> FakeHostMount {
        let pid = std::process::id();
        let root = std::env::temp_dir().join(format!("eventfsd-fake-{name}-{pid}"));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("events")).unwrap();
        fs::write(root.join("events/header_page"), "hp\n").unwrap();
        fs::write(root.join("events/header_event"), "he\n").unwrap();
        for (system, event, id) in events {
            fake_event(&root, system, event, *id);
        }
        let policy = Policy::parse("[dynamic]\nshow = true").unwrap();
        let (tree, view, _) = build_tree(&root, &root, &policy, TreeConfig::default()).unwrap();
        let tree = Arc::new(tree);
        let control = Arc::new(
            HostControl::new(
                OwnInstanceAt::Existing(&root),
                &root,
                Arc::new(policy),
                view,
                ForwardLimits::default(),
            )
            .unwrap(),
        );
        let dir = std::env::temp_dir().join(format!("eventfsd-host-{name}-{pid}"));
        fs::create_dir_all(&dir).unwrap();
        let stats = Arc::new(Stats::default());
        let fs_ = EventFs::new(
            tree.clone(),
            control.clone(),
            stats.clone(),
            CachePolicy::default(),
        );
        let mount = FuseMount::start(Arc::new(Server::new(fs_)), stats.clone(), &dir, 2).unwrap();
        FakeHostMount {
            root,
            dir,
            tree,
            control,
            stats,
            mount,
        }
    }

    /// Unmounts and removes both directories.
    fn stop(self) {
        self.mount.stop();
        let _ = fs::remove_dir(&self.dir);
        fs::remove_dir_all(&self.root).unwrap();
    }
}

/// The guest caches the listings of `events/` and of each system (a warm walk sends no
/// READDIR), and still sees what the rescan adds or removes once the directory's attributes
/// time out: the changed mtime invalidates the cached listing.
#[test]
fn cached_listings_follow_the_rescan() {
    if can_run("listings").is_none() {
        return;
    }
    let m = FakeHostMount::start(
        "listings",
        &[("sched", "sched_switch", 1), ("sched", "sched_wakeup", 2)],
    );
    let (root, dir, tree, control, stats) = (&m.root, &m.dir, &m.tree, &m.control, &m.stats);
    let names = |path: &Path| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    let listings = || {
        stats.requests(fuse_backend_rs::abi::fuse_abi::Opcode::Readdirplus as u32)
            + stats.requests(fuse_backend_rs::abi::fuse_abi::Opcode::Readdir as u32)
    };
    let sched = dir.join("events/sched");
    assert_eq!(names(&sched).len(), 2 + 2, "two events, enable and filter");
    let before = listings();
    for _ in 0..3 {
        names(&sched);
        names(&dir.join("events"));
    }
    // `events/` was listed once by now only if the walk above listed it first: allow that one.
    assert!(listings() <= before + 2, "warm listings were read again");

    fake_event(root, "sched", "sched_stat", 3);
    fake_event(root, "kprobes", "probe", 4);
    rescan(tree, control).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(names(&sched).contains(&"sched_stat".to_string())
        && names(&dir.join("events")).contains(&"kprobes".to_string()))
    {
        assert!(
            Instant::now() < deadline,
            "the added event never showed in the listing"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    fs::remove_dir_all(root.join("events/sched/sched_stat")).unwrap();
    sync_available_events(root);
    rescan(tree, control).unwrap();
    while names(&sched).contains(&"sched_stat".to_string()) {
        assert!(
            Instant::now() < deadline,
            "the removed event stayed in the listing"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    m.stop();
}

/// The host's changes are checked for only while the guest looks: a change made while it
/// looks at nothing stays unseen by the tree (no thread, no timer), and the guest's next look
/// after the interval brings it in, the same request answered with it.
#[test]
fn host_changes_are_checked_when_the_guest_looks() {
    if can_run("watch").is_none() {
        return;
    }
    let m = FakeHostMount::start("watch", &[("sched", "sched_switch", 1)]);
    let (root, dir, tree, control) = (&m.root, &m.dir, &m.tree, &m.control);
    control.watch_changes(ChangeWatch::new(root, Duration::from_millis(100), rescan));
    let has_kprobes = |names: Vec<String>| names.iter().any(|n| n == "kprobes");
    let listing = || -> Vec<String> {
        fs::read_dir(dir.join("events"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    };
    assert!(!has_kprobes(listing()));
    fake_event(root, "kprobes", "probe", 4);
    fs::write(root.join("dynamic_events"), "p:kprobes/probe do_sys_open\n").unwrap();
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        tree.find_event("kprobes", "probe").is_none(),
        "the host was checked while the guest looked at nothing"
    );
    // The first look after the interval checks; the listing follows within the guest's
    // attribute timeout of `events/` (1 s).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !has_kprobes(listing()) {
        assert!(Instant::now() < deadline, "the new event never showed");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(tree.find_event("kprobes", "probe").is_some());
    fs::remove_dir_all(root.join("events/kprobes")).unwrap();
    fs::write(root.join("dynamic_events"), "").unwrap();
    sync_available_events(root);
    while has_kprobes(listing()) {
        assert!(Instant::now() < deadline, "the removed event stayed");
        std::thread::sleep(Duration::from_millis(100));
    }
    m.stop();
}

#[test]
fn removed_dynamic_event_gives_enodev_through_an_open_handle() {
    if can_run("enodev").is_none() {
        return;
    }
    let m = FakeHostMount::start("enodev", &[("sched", "sched_switch", 1)]);
    let (root, dir, tree, control) = (&m.root, &m.dir, &m.tree, &m.control);
    fake_event(root, "kprobes", "myprobe", 7);
    fs::write(root.join("events/kprobes/myprobe/enable"), "0\n").unwrap();
    rescan(tree, control).unwrap();
    let mut f = fs::File::open(dir.join("events/kprobes/myprobe/enable")).unwrap();
    let mut text = String::new();
    f.read_to_string(&mut text).unwrap();
    assert_eq!(text, "0\n");
    fs::remove_dir_all(root.join("events/kprobes")).unwrap();
    sync_available_events(root);
    rescan(tree, control).unwrap();
    let mut buf = [0u8; 16];
    use std::os::unix::fs::FileExt;
    assert_eq!(errno_of(f.read_at(&mut buf, 0)), Some(libc::ENODEV));
    drop(f);
    // The kernel may cache the dynamic entry for its 1 s timeout; then it is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while errno_of(fs::metadata(dir.join("events/kprobes/myprobe"))) != Some(libc::ENOENT) {
        assert!(Instant::now() < deadline, "the removed event stays visible");
        std::thread::sleep(Duration::from_millis(100));
    }
    m.stop();
}

/// `entries:` of a `stats` text.
fn stats_entries(path: &Path) -> u64 {
    read(path)
        .lines()
        .find_map(|l| l.strip_prefix("entries: "))
        .unwrap_or_else(|| panic!("{}: no entries line", path.display()))
        .parse()
        .unwrap()
}

#[test]
fn every_host_cpu_reaches_a_guest_with_fewer_cpus() {
    let Some(m) = HostMount::new("raw_fold", None, ForwardLimits::default()) else {
        return;
    };
    let host_cpus = names(&m.host("per_cpu")).len();
    // The mount serves one guest CPU (TreeConfig's default): it stands for every host CPU.
    assert_eq!(
        names(&m.path("per_cpu")),
        BTreeSet::from(["cpu0".to_string()])
    );
    assert!(host_cpus >= 1);
    assert_eq!(echo(&m.path("events/sched/sched_switch/enable"), "1"), None);
    // Context switches on every host CPU: short sleeps in several threads.
    let workers: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..50 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(echo(&m.path("tracing_on"), "0"), None);
    let per_host: Vec<u64> = (0..host_cpus)
        .map(|c| stats_entries(&m.host(&format!("per_cpu/cpu{c}/stats"))))
        .collect();
    let total: u64 = per_host.iter().sum();
    assert!(total > 0, "{per_host:?}");
    assert_eq!(
        stats_entries(&m.path("per_cpu/cpu0/stats")),
        total,
        "stats are the sum"
    );

    let layout = PageLayout::parse(&read(&m.path("events/header_page"))).unwrap();
    let switch = EventFormat::parse(&read(&m.path("events/sched/sched_switch/format"))).unwrap();
    let fd = open_raw(
        &m.path("per_cpu/cpu0/trace_pipe_raw"),
        libc::O_RDONLY | libc::O_NONBLOCK,
    );
    let mut page = vec![0u8; 4096];
    let mut records = 0u64;
    loop {
        match raw_read(fd, &mut page) {
            Ok(n) => {
                assert_eq!(n, 4096, "whole pages, as the host gives them");
                let decoded = decode_page(&page, &layout).unwrap();
                for e in &decoded.events {
                    assert_eq!(e.id(), Some(switch.id));
                    tracefs_raw::fields(&e.payload, &switch).unwrap();
                }
                records += decoded.events.len() as u64;
            }
            Err(errno) => {
                assert_eq!(errno, libc::EAGAIN);
                break;
            }
        }
    }
    // SAFETY: closing the fd open_raw returned.
    unsafe { libc::close(fd) };
    assert_eq!(
        records, total,
        "every host CPU's records, through the one guest CPU"
    );
    for c in 0..host_cpus {
        assert_eq!(stats_entries(&m.host(&format!("per_cpu/cpu{c}/stats"))), 0);
    }
}

#[test]
fn guest_instances_are_host_instances_within_the_policy() {
    let Some(m) = HostMount::new(
        "guest_inst",
        Some("[limits]\nmax_instances = 1\n"),
        ForwardLimits::default(),
    ) else {
        return;
    };
    let host_dir = m.guest_instance_dir("b1");
    fs::create_dir(m.path("instances/b1")).unwrap();
    assert!(
        host_dir.is_dir(),
        "{} is the guest's b1",
        host_dir.display()
    );
    assert_eq!(
        errno_of(fs::create_dir(m.path("instances/b2"))),
        Some(libc::EPERM),
        "limits.max_instances = 1"
    );
    assert_eq!(
        errno_of(fs::create_dir(m.path("instances/b1"))),
        Some(libc::EEXIST)
    );
    // The guest instance's files are that host instance's, and only its.
    let enable = "events/sched/sched_switch/enable";
    assert_eq!(echo(&m.path(&format!("instances/b1/{enable}")), "1"), None);
    assert_eq!(read(&host_dir.join(enable)), "1\n");
    assert_eq!(read(&m.host(enable)), "0\n");
    assert!(read(&m.path("instances/b1/per_cpu/cpu0/stats")).starts_with("entries: "));
    // The policy judges a guest instance's files as the top level's.
    assert_eq!(
        echo(
            &m.path("instances/b1/events/sched/sched_switch/filter"),
            "prev_pid == 1"
        ),
        None
    );
    assert_eq!(
        read(&host_dir.join("events/sched/sched_switch/filter")).trim(),
        "prev_pid == 1"
    );
    // Busy while one of its files is open, as in tracefs.
    let open = fs::File::open(m.path("instances/b1/trace")).unwrap();
    assert_eq!(
        errno_of(fs::remove_dir(m.path("instances/b1"))),
        Some(libc::EBUSY)
    );
    drop(open);
    // FUSE sends RELEASE after close(2) returns: the instance is free a moment later.
    let mut removed = fs::remove_dir(m.path("instances/b1"));
    for _ in 0..50 {
        if removed.as_ref().err().and_then(|e| e.raw_os_error()) != Some(libc::EBUSY) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        removed = fs::remove_dir(m.path("instances/b1"));
    }
    removed.unwrap();
    assert!(!host_dir.exists());
    assert!(!m.path("instances/b1").exists());
    // The bound counts live instances only; shutdown removes what the guest left.
    fs::create_dir(m.path("instances/b2")).unwrap();
    let b2 = m.guest_instance_dir("b2");
    assert!(b2.is_dir());
    m.source.as_ref().unwrap().shutdown();
    assert!(!b2.exists(), "shutdown removes the guest's instances");
}
