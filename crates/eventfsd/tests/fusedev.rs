//! Host integration tests through /dev/fuse: the same `EventFs` the guest gets, mounted on the
//! host, exercised with ordinary file system calls.
//!
//! They need root and /dev/fuse; where either is missing each test prints why it did not run.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirEntryExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fuse_backend_rs::abi::fuse_abi::Opcode;

use eventfs_core::catalog::{Catalog, EMBEDDED};
use eventfs_core::tree::NewEvent;
use eventfsd::fs::CachePolicy;

mod common;
use common::Mounted;

fn write_errno(path: &Path, data: &str) -> Option<i32> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.write_all(data.as_bytes())
        .err()
        .and_then(|e| e.raw_os_error())
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

fn drop_caches() {
    // Makes the kernel forget every unused dentry/inode, which sends FORGETs to us.
    fs::write("/proc/sys/vm/drop_caches", "2").unwrap();
}

/// Walks the tree like `find`, checking inode agreement and uniqueness on the way.
fn walk(dir: &Path, seen: &mut HashSet<u64>, count: &mut usize) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        assert_eq!(
            entry.ino(),
            meta.ino(),
            "readdir and stat disagree on {:?}",
            entry.path()
        );
        assert!(
            seen.insert(meta.ino()),
            "inode {} seen twice ({:?})",
            meta.ino(),
            entry.path()
        );
        *count += 1;
        if meta.is_dir() {
            walk(&entry.path(), seen, count);
        }
    }
}

#[test]
fn find_is_loop_free_with_unique_inodes_and_matching_formats() {
    let Some(m) = Mounted::new("find") else {
        return;
    };
    let mut seen = HashSet::new();
    let mut count = 0;
    walk(&m.path("events"), &mut seen, &mut count);
    let catalog = Catalog::decode(EMBEDDED).unwrap();
    // events/ holds enable, header_page, header_event, the systems and their files, the events
    // and their files.
    let expected: usize = 3 + catalog
        .systems
        .iter()
        .map(|s| {
            let files: usize = s.events.iter().map(|e| e.files.count_ones() as usize).sum();
            1 + s.files.count_ones() as usize + s.events.len() + files
        })
        .sum::<usize>();
    assert_eq!(count, expected);

    for system in &catalog.systems {
        for event in &system.events {
            let dir = m.path(&format!("events/{}/{}", system.name, event.name));
            assert_eq!(
                read(&dir.join("format")),
                event.format,
                "{}/{}",
                system.name,
                event.name
            );
            if event.files & 0b10000 != 0 {
                assert_eq!(read(&dir.join("id")), format!("{}\n", event.id));
            }
        }
    }
    let mode = |p: &str| fs::metadata(m.path(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("events/sched"), 0o755);
    assert_eq!(mode("events/sched/sched_switch/enable"), 0o640);
    assert_eq!(mode("events/sched/sched_switch/format"), 0o440);
    assert_eq!(mode("events/header_event"), 0o440);
}

/// getdents64 with a buffer that holds one to four entries, resuming from each returned offset.
fn tiny_getdents(dir: &Path) -> Vec<String> {
    let c = CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: plain syscalls on a descriptor we own, with a correctly sized buffer.
    unsafe {
        let fd = libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
        assert!(fd >= 0);
        let mut names = Vec::new();
        let mut buf = [0u8; 128];
        loop {
            let n = libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len());
            assert!(n >= 0, "getdents64 failed");
            if n == 0 {
                break;
            }
            let mut off = 0usize;
            while off < n as usize {
                let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
                let name = &buf[off + 19..off + reclen];
                let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
                names.push(String::from_utf8_lossy(&name[..end]).into_owned());
                off += reclen;
            }
        }
        libc::close(fd);
        names
    }
}

#[test]
fn tiny_getdents_buffer_lists_the_same_entries() {
    let Some(m) = Mounted::new("getdents") else {
        return;
    };
    for dir in [
        "events",
        "events/sched",
        "events/syscalls",
        "events/sched/sched_switch",
    ] {
        let mut normal: Vec<String> = fs::read_dir(m.path(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let mut tiny = tiny_getdents(&m.path(dir));
        assert!(
            tiny.len() >= 2 && tiny[0] == "." && tiny[1] == "..",
            "{dir}: {tiny:?}"
        );
        tiny.drain(..2);
        let unique: HashSet<&String> = tiny.iter().collect();
        assert_eq!(unique.len(), tiny.len(), "{dir}: duplicates in {tiny:?}");
        normal.sort();
        tiny.sort();
        assert_eq!(normal, tiny, "{dir}");
    }
}

#[test]
fn control_semantics_and_errnos() {
    let Some(m) = Mounted::new("control") else {
        return;
    };
    let ev = m.path("events/sched/sched_switch");
    let sys = m.path("events/sched");

    assert_eq!(read(&ev.join("enable")), "0\n");
    assert_eq!(write_errno(&ev.join("enable"), "1\n"), None);
    assert_eq!(read(&ev.join("enable")), "1\n");
    assert_eq!(read(&sys.join("enable")), "X\n");
    assert_eq!(write_errno(&ev.join("enable"), "2\n"), Some(libc::EINVAL));
    assert_eq!(write_errno(&sys.join("enable"), "1\n"), None);
    assert_eq!(read(&sys.join("enable")), "1\n");
    assert_eq!(read(&m.path("events/sched/sched_wakeup/enable")), "1\n");
    assert_eq!(write_errno(&m.path("events/enable"), "0\n"), None);
    assert_eq!(read(&m.path("events/enable")), "0\n");
    assert_eq!(read(&sys.join("enable")), "0\n");
    assert_eq!(
        fs::metadata(m.path("events/ftrace/enable"))
            .unwrap_err()
            .raw_os_error(),
        Some(libc::ENOENT),
        "the ftrace system has no enable file"
    );

    assert_eq!(read(&ev.join("filter")), "none\n");
    assert_eq!(write_errno(&ev.join("filter"), "prev_pid == 0\n"), None);
    assert_eq!(read(&ev.join("filter")), "prev_pid == 0\n");
    assert_eq!(
        write_errno(&ev.join("filter"), "no_such_field == 1\n"),
        Some(libc::EINVAL)
    );
    // Like the kernel, a rejected filter leaves the event unfiltered and shows the error.
    let shown = read(&ev.join("filter"));
    assert!(
        shown.starts_with("no_such_field == 1\n") && shown.contains("parse_error: Field not found"),
        "{shown:?}"
    );
    assert_eq!(write_errno(&ev.join("filter"), "0\n"), None);
    assert_eq!(read(&ev.join("filter")), "none\n");
    assert_eq!(
        write_errno(&ev.join("filter"), &"x".repeat(8192)),
        Some(libc::EINVAL)
    );

    assert!(read(&ev.join("trigger")).starts_with("# Available triggers:"));
    assert_eq!(write_errno(&ev.join("trigger"), "traceoff\n"), None);
    assert_eq!(read(&ev.join("trigger")), "traceoff:unlimited\n");
    assert_eq!(write_errno(&ev.join("trigger"), "!traceoff\n"), None);
    assert!(read(&ev.join("trigger")).starts_with("# Available triggers:"));
    assert_eq!(
        write_errno(&ev.join("trigger"), "bogus\n"),
        Some(libc::EINVAL)
    );

    let err = |p: PathBuf| fs::metadata(p).unwrap_err().raw_os_error();
    assert_eq!(err(sys.join("x".repeat(256))), Some(libc::ENAMETOOLONG));
    assert_eq!(err(sys.join("x".repeat(255))), Some(libc::ENOENT));
    assert_eq!(err(sys.join("no_such_event")), Some(libc::ENOENT));
    assert_eq!(
        fs::OpenOptions::new()
            .write(true)
            .open(ev.join("format"))
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EACCES)
    );
    assert_eq!(
        fs::create_dir(sys.join("new")).unwrap_err().raw_os_error(),
        Some(libc::EPERM)
    );
}

/// Requests of each opcode the daemon received while `f` ran.
fn requests_during(m: &Mounted, f: impl FnOnce()) -> Vec<(Opcode, u64)> {
    let ops = [
        Opcode::Opendir,
        Opcode::Releasedir,
        Opcode::Readdir,
        Opcode::Readdirplus,
        Opcode::Lookup,
        Opcode::Getattr,
        Opcode::Flush,
    ];
    let before: Vec<u64> = ops.iter().map(|&op| m.stats.requests(op as u32)).collect();
    f();
    ops.iter()
        .zip(before)
        .map(|(&op, b)| (op, m.stats.requests(op as u32) - b))
        .filter(|&(_, n)| n > 0)
        .collect()
}

#[test]
fn warm_walk_of_frozen_listings_stays_in_the_kernel_and_mkdir_still_shows() {
    let Some(m) = Mounted::new("warm") else {
        return;
    };
    let walk_all = || {
        let mut count = 0;
        walk(&m.path("events"), &mut HashSet::new(), &mut count);
        count
    };
    let n = walk_all();
    // The cold walk filled every listing through uncached readdirs, each of which invalidates
    // the directory's atime: the next stat of each directory asks once more. Now and then the
    // guest kernel drops a few cached listings and reads them again (about one run in eight,
    // before any change of ours too), so the test asks what caching guarantees: most warm
    // walks send nothing, and none sends more than a few requests (uncached, every walk would
    // send one READDIRPLUS per directory, thousands).
    walk_all();
    let mut noisy = Vec::new();
    let walks = 6;
    for _ in 0..walks {
        let mut count = 0;
        let sent = requests_during(&m, || count = walk_all());
        assert_eq!(count, n);
        if !sent.is_empty() {
            noisy.push(sent);
        }
    }
    assert!(
        noisy.len() <= walks / 2,
        "warm walks still sent requests: {noisy:?}"
    );
    for sent in &noisy {
        let total: u64 = sent.iter().map(|&(_, k)| k).sum();
        assert!(
            total < n as u64 / 100,
            "a warm walk sent {sent:?} for {n} entries"
        );
    }
    // Cached listings follow the guest's own mkdir/rmdir.
    let names = || -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(m.path("instances"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert!(names().is_empty());
    fs::create_dir(m.path("instances/warm")).unwrap();
    assert_eq!(names(), ["warm"]);
    fs::remove_dir(m.path("instances/warm")).unwrap();
    assert!(names().is_empty());
    // Closing a file sends no FLUSH (answered ENOSYS once).
    read(&m.path("events/sched/sched_switch/id"));
    let sent = requests_during(&m, || {
        read(&m.path("events/sched/sched_switch/id"));
        read(&m.path("events/sched/sched_switch/enable"));
    });
    assert!(
        !sent.iter().any(|(op, _)| matches!(op, Opcode::Flush)),
        "reads sent {sent:?}"
    );
}

#[test]
fn removed_event_gives_enodev_through_open_handles_and_enoent_on_lookup() {
    // This test adds and removes events behind the kernel's back, as the host source does.
    let Some(m) = Mounted::with_policy("remove", CachePolicy::default()) else {
        return;
    };
    m.tree
        .add_event(&NewEvent {
            system: "kprobes",
            name: "p_test",
            id: 9000,
            files: 0b11111,
            format: "name: p_test\nID: 9000\nformat:\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\nprint fmt: \"\"\n",
        })
        .unwrap();
    let dir = m.path("events/kprobes/p_test");
    assert_eq!(read(&dir.join("id")), "9000\n");
    let mut enable = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("enable"))
        .unwrap();
    m.tree.remove("kprobes", Some("p_test")).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(
        enable.read(&mut buf).unwrap_err().raw_os_error(),
        Some(libc::ENODEV)
    );
    assert_eq!(
        enable.write(b"1\n").unwrap_err().raw_os_error(),
        Some(libc::ENODEV)
    );
    // Dynamic nodes are cached for about a second; after that the guest sees them gone.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        fs::metadata(&dir).unwrap_err().raw_os_error(),
        Some(libc::ENOENT)
    );
}

#[test]
fn forget_frees_state_and_chmod_survives_it() {
    let Some(m) = Mounted::new("forget") else {
        return;
    };
    let baseline = m.tree.materialised();
    let enable = m.path("events/sched/sched_switch/enable");
    fs::set_permissions(&enable, fs::Permissions::from_mode(0o600)).unwrap();
    let mut count = 0;
    walk(&m.path("events"), &mut HashSet::new(), &mut count);
    assert!(
        m.tree.materialised() > baseline + 10_000,
        "{}",
        m.tree.materialised()
    );
    // The kernel forgets asynchronously; poll briefly for the FORGETs to arrive.
    drop_caches();
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.tree.materialised() > baseline + 8 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        drop_caches();
    }
    assert!(
        m.tree.materialised() <= baseline + 8,
        "still {} nodes",
        m.tree.materialised()
    );
    let mode = fs::metadata(&enable).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "chmod must survive forget and re-lookup");
}

#[test]
fn root_files_set_event_options_and_instances() {
    let Some(m) = Mounted::new("root") else {
        return;
    };
    let root = |p: &str| m.path(p);

    // set_event and the enable files agree both ways; O_TRUNC clears.
    assert_eq!(read(&root("set_event")), "");
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(root("set_event"))
        .unwrap();
    f.write_all(b"sched:sched_switch").unwrap();
    drop(f);
    assert_eq!(read(&root("events/sched/sched_switch/enable")), "1\n");
    assert_eq!(read(&root("set_event")), "sched:sched_switch\n");
    assert_eq!(
        write_errno(&root("events/sched/sched_wakeup/enable"), "1"),
        None
    );
    assert_eq!(
        read(&root("set_event")),
        "sched:sched_switch\nsched:sched_wakeup\n"
    );
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(root("set_event"))
        .unwrap();
    f.write_all(b"!sched:sched_switch").unwrap();
    drop(f);
    assert_eq!(read(&root("events/sched/sched_switch/enable")), "0\n");
    assert_eq!(
        write_errno(&root("set_event"), "sched:*"),
        None,
        "O_TRUNC then enable the system"
    );
    assert_eq!(read(&root("events/sched/enable")), "1\n");
    assert_eq!(
        write_errno(&root("set_event"), "no_such:event"),
        Some(libc::EINVAL)
    );
    assert_eq!(
        read(&root("set_event")),
        "",
        "the truncating open cleared everything"
    );
    assert!(read(&root("available_events"))
        .lines()
        .any(|l| l == "sched:sched_switch"));

    // Root files with values.
    assert_eq!(read(&root("tracing_on")), "1\n");
    assert_eq!(write_errno(&root("tracing_on"), "0"), None);
    assert_eq!(read(&root("tracing_on")), "0\n");
    assert_eq!(write_errno(&root("tracing_on"), "x"), Some(libc::EINVAL));
    assert_eq!(read(&root("current_tracer")), "nop\n");
    assert_eq!(
        write_errno(&root("current_tracer"), "function"),
        Some(libc::EINVAL)
    );
    // Only what the simulation runs is advertised, through the mount (the tree serves these
    // immutable texts; the snapshotted kernel listed `blk function nop` and set_ftrace_*).
    assert_eq!(read(&root("available_tracers")), "nop\n");
    let readme = read(&root("README"));
    assert!(readme.starts_with("tracing mini-HOWTO"));
    assert!(!readme.contains("set_ftrace_filter"), "{readme}");
    assert_eq!(
        fs::metadata(root("README")).unwrap().len(),
        readme.len() as u64
    );
    assert!(read(&root("trace_clock")).starts_with("[local]"));
    assert_eq!(write_errno(&root("trace_clock"), "global"), None);
    assert!(read(&root("trace_clock")).contains("[global]"));
    assert_eq!(
        write_errno(&root("trace_clock"), "sundial"),
        Some(libc::EINVAL)
    );
    assert_eq!(write_errno(&root("buffer_size_kb"), "64"), None);
    assert_eq!(read(&root("buffer_size_kb")), "64\n");
    assert_eq!(
        write_errno(&root("buffer_size_kb"), "-1"),
        Some(libc::EINVAL)
    );

    // options/ and trace_options are two views of the same flags.
    assert_eq!(read(&root("options/overwrite")), "1\n");
    assert!(read(&root("trace_options"))
        .lines()
        .any(|l| l == "overwrite"));
    assert_eq!(write_errno(&root("trace_options"), "nooverwrite"), None);
    assert_eq!(read(&root("options/overwrite")), "0\n");
    assert_eq!(write_errno(&root("options/overwrite"), "1"), None);
    assert!(read(&root("trace_options"))
        .lines()
        .any(|l| l == "overwrite"));

    // A filter error lands in error_log; writing clears it.
    assert_eq!(
        write_errno(&root("events/sched/sched_switch/filter"), "bogus == 1"),
        Some(libc::EINVAL)
    );
    assert!(
        read(&root("error_log")).contains("Field not found"),
        "{}",
        read(&root("error_log"))
    );
    assert_eq!(write_errno(&root("error_log"), ""), None);
    assert_eq!(read(&root("error_log")), "");

    // Instances: own events state; rmdir is EBUSY while a file is open.
    fs::create_dir(root("instances/foo")).unwrap();
    assert_eq!(
        fs::create_dir(root("instances/foo"))
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EEXIST)
    );
    assert_eq!(
        fs::create_dir(root("events/foo"))
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EPERM)
    );
    let inst = |p: &str| root(&format!("instances/foo/{p}"));
    assert_eq!(
        write_errno(&inst("events/sched/sched_waking/enable"), "1"),
        None
    );
    assert_eq!(read(&inst("set_event")), "sched:sched_waking\n");
    assert_eq!(
        read(&root("events/sched/sched_waking/enable")),
        "0\n",
        "the top level has its own state"
    );
    assert_eq!(write_errno(&root("events/enable"), "0"), None);
    assert_eq!(read(&inst("events/sched/sched_waking/enable")), "1\n");
    assert!(
        fs::metadata(inst("README")).is_err(),
        "README is global only"
    );
    let open = fs::File::open(inst("tracing_on")).unwrap();
    assert_eq!(
        fs::remove_dir(root("instances/foo"))
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EBUSY)
    );
    drop(open);
    // The kernel sends RELEASE asynchronously after close.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match fs::remove_dir(root("instances/foo")) {
            Ok(()) => break,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("rmdir: {e}"),
        }
    }
    assert!(fs::metadata(root("instances/foo")).is_err());
}

/// Polls `f` until it returns true (records are produced every 100 ms).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn trace_lines(path: &Path, event: &str) -> Vec<String> {
    read(path)
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(&format!(" {event}: ")))
        .map(String::from)
        .collect()
}

/// The value of `key=` in a rendered line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    line[start..].split_whitespace().next()
}

#[test]
fn trace_buffer_filters_markers_pipe_and_triggers() {
    let Some(m) = Mounted::new("trace") else {
        return;
    };
    let root = |p: &str| m.path(p);
    let trace = root("trace");
    assert!(read(&trace).starts_with("# tracer: nop\n#\n# entries-in-buffer/entries-written: 0/0"));

    // Enabled events produce lines in ftrace's format.
    assert_eq!(
        write_errno(&root("events/sched/sched_switch/enable"), "1"),
        None
    );
    eventually("sched_switch lines", || {
        trace_lines(&trace, "sched_switch").len() >= 5
    });
    let line = &trace_lines(&trace, "sched_switch")[0];
    assert!(
        line.contains("] ") && line.contains("prev_comm=") && line.contains(" ==> next_comm="),
        "{line}"
    );

    // A filter really drops records: every new line satisfies it.
    assert_eq!(
        write_errno(&root("events/sched/sched_switch/filter"), "prev_prio < 100"),
        None
    );
    assert_eq!(write_errno(&trace, ""), None, "O_TRUNC clears the buffer");
    assert_eq!(trace_lines(&trace, "sched_switch").len(), 0);
    eventually("filtered lines", || {
        trace_lines(&trace, "sched_switch").len() >= 3
    });
    for line in trace_lines(&trace, "sched_switch") {
        let prio: i64 = field(&line, "prev_prio").unwrap().parse().unwrap();
        assert!(prio < 100, "filter let through: {line}");
    }

    // trace_marker text appears as a print event.
    assert_eq!(
        write_errno(&root("trace_marker"), "hello from the test"),
        None
    );
    assert!(read(&trace).contains("tracing_mark_write: hello from the test"));

    // trace_pipe consumes: what one read returned is gone from the pipe.
    assert_eq!(
        write_errno(&root("events/sched/sched_switch/enable"), "0"),
        None
    );
    let mut pipe = fs::File::open(root("trace_pipe")).unwrap();
    let mut drained = Vec::new();
    let mut nonblock = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(root("trace_pipe"))
        .unwrap();
    let mut buf = vec![0u8; 65536];
    loop {
        match nonblock.read(&mut buf) {
            Ok(n) if n > 0 => drained.extend_from_slice(&buf[..n]),
            Ok(_) => break,
            Err(e) => {
                assert_eq!(
                    e.raw_os_error(),
                    Some(libc::EAGAIN),
                    "empty non-blocking pipe"
                );
                break;
            }
        }
    }
    assert!(String::from_utf8_lossy(&drained).contains("hello from the test"));
    // A blocking read waits until a record arrives, and other requests keep being served.
    let writer = {
        let marker = root("trace_marker");
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            assert_eq!(
                read(&root_path(&marker, "tracing_on")),
                "1\n",
                "served while a reader blocks"
            );
            assert_eq!(write_errno(&marker, "wake up"), None);
        })
    };
    let started = Instant::now();
    let n = pipe.read(&mut buf).unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "read returned before data existed"
    );
    assert!(String::from_utf8_lossy(&buf[..n]).contains("wake up"));
    writer.join().unwrap();

    // A traceoff trigger stops recording once the event fires.
    assert_eq!(
        write_errno(&root("events/sched/sched_wakeup/trigger"), "traceoff"),
        None
    );
    assert_eq!(
        read(&root("events/sched/sched_wakeup/enable")),
        "0*\n",
        "soft mode"
    );
    assert_eq!(
        write_errno(&root("events/sched/sched_wakeup/enable"), "1"),
        None
    );
    eventually("traceoff fired", || read(&root("tracing_on")) == "0\n");
    let frozen = read(&trace);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        trace_lines(&trace, "sched_wakeup").len(),
        trace_lines_in(&frozen, "sched_wakeup")
    );

    // enable_event switches the named event on when the trigger's event fires. The traceoff
    // trigger goes first: left in place (soft mode) it would fire again at once, as in the
    // kernel, and turn tracing off behind the test's back.
    assert_eq!(
        write_errno(&root("events/sched/sched_wakeup/trigger"), "!traceoff"),
        None
    );
    assert_eq!(
        write_errno(&root("events/sched/sched_wakeup/enable"), "0"),
        None
    );
    assert_eq!(write_errno(&root("tracing_on"), "1"), None);
    let waking = root("events/sched/sched_waking/enable");
    assert_eq!(
        write_errno(
            &root("events/sched/sched_switch/trigger"),
            "enable_event:sched:sched_waking:1"
        ),
        None
    );
    assert_eq!(read(&waking), "0*\n", "a trigger target runs in soft mode");
    assert_eq!(
        write_errno(&root("events/sched/sched_switch/enable"), "1"),
        None
    );
    eventually("enable_event fired", || read(&waking) == "1*\n");
    assert_eq!(
        read(&root("events/sched/sched_switch/trigger")),
        "enable_event:sched:sched_waking:count=0\n"
    );
    eventually("sched_waking recorded", || {
        !trace_lines(&trace, "sched_waking").is_empty()
    });
    assert_eq!(write_errno(&root("events/enable"), "0"), None);

    // An instance has its own buffer.
    fs::create_dir(root("instances/buf")).unwrap();
    assert_eq!(
        write_errno(&root("instances/buf/trace_marker"), "only in the instance"),
        None
    );
    assert!(read(&root("instances/buf/trace")).contains("only in the instance"));
    assert!(!read(&trace).contains("only in the instance"));

    // The buffer is bounded: with a tiny buffer, old records are overwritten.
    assert_eq!(
        write_errno(&root("instances/buf/buffer_size_kb"), "1"),
        None
    );
    assert_eq!(
        write_errno(&root("instances/buf/events/sched/sched_switch/enable"), "1"),
        None
    );
    eventually("overwrites", || {
        let text = read(&root("instances/buf/trace"));
        let counts = text.lines().nth(2).unwrap_or("").to_string();
        let (entries, written) = counts
            .split(": ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.split_once('/'))
            .map(|(a, b)| (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()))
            .unwrap();
        written > entries + 10 && entries < 40
    });
    assert_eq!(
        write_errno(&root("instances/buf/events/sched/sched_switch/enable"), "0"),
        None
    );
    drop(pipe);
    drop(nonblock);
    eventually("rmdir instance", || {
        fs::remove_dir(root("instances/buf")).is_ok()
    });
}

fn root_path(marker: &Path, name: &str) -> PathBuf {
    marker.parent().unwrap().join(name)
}

fn trace_lines_in(text: &str, event: &str) -> usize {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(&format!(" {event}: ")))
        .count()
}

/// Static files (`format`, `id`, `header_*`) read at odd offsets and sizes with O_DIRECT, so
/// that every read is answered by the daemon (not the page cache): the bytes are the
/// catalog's, whole (`header_page` included), and the daemon's byte counter sees each read.
#[test]
fn static_files_are_answered_at_every_offset() {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let Some(m) = Mounted::new("offsets") else {
        return;
    };
    let catalog = eventfs_core::catalog::Catalog::decode(eventfs_core::catalog::EMBEDDED).unwrap();
    let sched = catalog.systems.iter().find(|s| s.name == "sched").unwrap();
    let switch = sched
        .events
        .iter()
        .find(|e| e.name == "sched_switch")
        .unwrap();
    let files: [(&str, &[u8]); 4] = [
        ("events/header_page", catalog.header_page.as_bytes()),
        ("events/header_event", catalog.header_event.as_bytes()),
        ("events/sched/sched_switch/format", switch.format.as_bytes()),
        (
            "events/sched/sched_switch/id",
            format!("{}\n", switch.id).leak().as_bytes(),
        ),
    ];
    assert!(
        catalog.header_page.contains("field: char data;"),
        "header_page is whole"
    );
    for (rel, expected) in files {
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(m.path(rel))
            .unwrap();
        for chunk in [1usize, 7, 32, 4096] {
            let before = m
                .stats
                .bytes_read
                .load(std::sync::atomic::Ordering::Relaxed);
            let mut got = Vec::new();
            let mut buf = vec![0u8; chunk];
            loop {
                let n = file.read_at(&mut buf, got.len() as u64).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, expected, "{rel} read {chunk} bytes at a time");
            let answered = m
                .stats
                .bytes_read
                .load(std::sync::atomic::Ordering::Relaxed)
                - before;
            assert_eq!(
                answered,
                expected.len() as u64,
                "{rel}: the daemon answered every read"
            );
        }
        // Past the end: nothing, not an error.
        assert_eq!(file.read_at(&mut [0u8; 16], 1 << 20).unwrap(), 0);
    }
}
