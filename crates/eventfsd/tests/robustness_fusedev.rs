//! Robustness through /dev/fuse: events removed while readers loop on them, and a bounded
//! parallel find/cat/echo load. The daemon's `EventFs` runs in this process, so its counters,
//! lookup state and memory can be checked directly.
//!
//! They need root and /dev/fuse; where either is missing each test prints why it did not run.
//! EVENTFSD_LOAD_SECONDS sets the duration of each (default 3).

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use eventfs_core::tree::NewEvent;
use eventfs_core::Tree;
use eventfsd::fs::CachePolicy;

mod common;
use common::Mounted;

fn seconds() -> Duration {
    let s = std::env::var("EVENTFSD_LOAD_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    Duration::from_secs(s)
}

fn drop_caches() {
    fs::write("/proc/sys/vm/drop_caches", "2").unwrap();
}

/// Drops the kernel's caches and waits (up to 5 s) for its FORGETs to bring the materialised
/// nodes down to `baseline + 64`; returns the count reached.
fn settle_after_drop_caches(tree: &Tree, baseline: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        drop_caches();
        let n = tree.materialised();
        if n <= baseline + 64 || Instant::now() > deadline {
            return n;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn rss_kb() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Counts outcomes by errno (0 = success).
#[derive(Default)]
struct Outcomes(Mutex<BTreeMap<i32, u64>>);

impl Outcomes {
    fn add<T>(&self, r: std::io::Result<T>) -> Option<T> {
        let (errno, v) = match r {
            Ok(v) => (0, Some(v)),
            Err(e) => (e.raw_os_error().unwrap_or(-1), None),
        };
        *self.0.lock().unwrap().entry(errno).or_default() += 1;
        v
    }
    fn snapshot(&self) -> BTreeMap<i32, u64> {
        self.0.lock().unwrap().clone()
    }
}

const CHURN_FORMAT: &str = "name: p_churn\nID: 9100\nformat:\n\
    \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
    \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
    \tfield:unsigned long ip;\toffset:8;\tsize:8;\tsigned:0;\n\n\
    print fmt: \"(%lx)\", REC->ip\n";

fn add_churn(tree: &Tree) {
    tree.add_event(&NewEvent {
        system: "kprobes",
        name: "p_churn",
        id: 9100,
        files: 0b11111,
        format: CHURN_FORMAT,
    })
    .unwrap();
}

/// Readers loop on an event's files while another thread removes and re-adds the event (what
/// the host source does when a kprobe is deleted and recreated): the readers see the content or
/// ENOENT/ENODEV/ESTALE, never another error, a crash or a hang; afterwards no per-lookup state
/// is left over.
#[test]
fn events_removed_while_readers_loop() {
    let Some(m) = Mounted::with_policy("churn", CachePolicy::default()) else {
        return;
    };
    let baseline = m.tree.materialised();
    add_churn(&m.tree);
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Outcomes::default());
    let dir = m.path("events/kprobes/p_churn");
    let mut readers = Vec::new();
    for r in 0..3 {
        let (dir, stop, outcomes) = (dir.clone(), stop.clone(), outcomes.clone());
        readers.push(thread::spawn(move || {
            let mut buf = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match r {
                    0 => {
                        // cat format, id
                        for f in ["format", "id"] {
                            if let Some(mut file) = outcomes.add(fs::File::open(dir.join(f))) {
                                buf.clear();
                                outcomes.add(file.read_to_end(&mut buf));
                            }
                        }
                    }
                    1 => {
                        // echo 1 > enable; echo 'ip != 0' > filter
                        for (f, text) in [
                            ("enable", "1\n"),
                            ("filter", "ip != 0\n"),
                            ("enable", "0\n"),
                        ] {
                            let file = fs::OpenOptions::new()
                                .write(true)
                                .truncate(true)
                                .open(dir.join(f));
                            if let Some(mut file) = outcomes.add(file) {
                                outcomes.add(file.write_all(text.as_bytes()));
                            }
                        }
                    }
                    _ => {
                        // ls + stat, and an fd held open across removals.
                        if let Some(rd) = outcomes.add(fs::read_dir(&dir)) {
                            for e in rd.flatten() {
                                outcomes.add(fs::metadata(e.path()));
                            }
                        }
                        if let Some(mut file) = outcomes.add(fs::File::open(dir.join("enable"))) {
                            thread::sleep(Duration::from_millis(2));
                            buf.clear();
                            outcomes.add(file.read_to_end(&mut buf));
                        }
                    }
                }
            }
        }));
    }
    let deadline = Instant::now() + seconds();
    let mut churns = 0u64;
    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(3));
        m.tree.remove("kprobes", Some("p_churn")).unwrap();
        thread::sleep(Duration::from_millis(3));
        add_churn(&m.tree);
        churns += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let join_deadline = Instant::now() + Duration::from_secs(20);
    for r in readers {
        while !r.is_finished() {
            assert!(Instant::now() < join_deadline, "a reader hangs");
            thread::sleep(Duration::from_millis(10));
        }
        r.join().expect("reader panicked");
    }
    let seen = outcomes.snapshot();
    println!("churn: {churns} remove/re-add cycles, outcomes by errno: {seen:?}");
    for (&errno, &n) in &seen {
        assert!(
            matches!(errno, 0 | libc::ENOENT | libc::ENODEV | libc::ESTALE),
            "unexpected errno {errno} ({n} times)"
        );
    }
    assert!(
        seen.get(&0).copied().unwrap_or(0) > 0,
        "nothing ever succeeded"
    );
    m.tree.remove("kprobes", Some("p_churn")).unwrap();
    // Still serving, and the kernel's references go away with its caches.
    assert!(fs::read_to_string(m.path("events/sched/sched_switch/enable")).is_ok());
    let after = settle_after_drop_caches(&m.tree, baseline);
    println!("churn: materialised baseline {baseline}, after drop_caches {after}");
    assert!(
        after <= baseline + 64,
        "{after} nodes left (baseline {baseline})"
    );
    assert_eq!(m.stats.over_forgets.load(Ordering::Relaxed), 0);
}

/// Several threads doing find / cat / echo in parallel for a bounded time: no unexpected
/// errors (the only errors are the deliberately invalid filter writes), bounded RSS, and the
/// materialised nodes back near the baseline after drop_caches.
#[test]
fn parallel_find_cat_echo_load() {
    let Some(m) = Mounted::with_policy("load", CachePolicy::default()) else {
        return;
    };
    drop_caches();
    let baseline = m.tree.materialised();
    let rss_before = rss_kb();
    let systems: Vec<String> = fs::read_dir(m.path("events"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let systems = Arc::new(systems);
    let stop = Arc::new(AtomicBool::new(false));
    // Operations done by each kind of worker: find, cat, echo.
    let ops = Arc::new(std::array::from_fn::<AtomicU64, 3, _>(|_| {
        AtomicU64::new(0)
    }));
    let bad_writes = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let root = m.dir.clone();
    let mut workers = Vec::new();
    for w in 0..6usize {
        let (systems, stop, ops, bad_writes, failures, root) = (
            systems.clone(),
            stop.clone(),
            ops.clone(),
            bad_writes.clone(),
            failures.clone(),
            root.clone(),
        );
        workers.push(thread::spawn(move || {
            let mut i = w * 7919;
            let fail = |what: String| failures.lock().unwrap().push(what);
            while !stop.load(Ordering::Relaxed) {
                i = i.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let sys = &systems[(i >> 8) % systems.len()];
                let sysdir = root.join("events").join(sys);
                match w % 3 {
                    0 => {
                        // find events/<sys>
                        let Ok(rd) = fs::read_dir(&sysdir) else {
                            fail(format!("ls {sys}"));
                            continue;
                        };
                        for e in rd.flatten() {
                            if fs::metadata(e.path()).is_err() {
                                fail(format!("stat {:?}", e.path()));
                            }
                            if let Ok(sub) = fs::read_dir(e.path()) {
                                for f in sub.flatten() {
                                    let _ = fs::symlink_metadata(f.path())
                                        .map_err(|_| fail(format!("stat {:?}", f.path())));
                                    ops[w % 3].fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            ops[w % 3].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    1 => {
                        // cat format/id/enable/filter of an event, and root files
                        let Some(ev) = fs::read_dir(&sysdir).ok().and_then(|rd| {
                            rd.flatten()
                                .find(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                        }) else {
                            continue;
                        };
                        // Only files the listing shows: a negative lookup would count as an error.
                        let present = names_in(&ev.path());
                        for f in ["format", "id", "enable", "filter", "trigger"] {
                            let p = ev.path().join(f);
                            if present.iter().any(|n| n == f) && fs::read(&p).is_err() {
                                fail(format!("cat {p:?}"));
                            }
                            ops[w % 3].fetch_add(1, Ordering::Relaxed);
                        }
                        for f in ["README", "available_events", "tracing_on", "trace_clock"] {
                            if fs::read(root.join(f)).is_err() {
                                fail(format!("cat {f}"));
                            }
                            ops[w % 3].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {
                        // echo into enable and filter (one in 8 filters invalid: EINVAL)
                        let Some(ev) = fs::read_dir(&sysdir).ok().and_then(|rd| {
                            rd.flatten()
                                .find(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                        }) else {
                            continue;
                        };
                        let bad = i % 8 == 0;
                        let writes: [(&str, &str); 3] = [
                            ("enable", if i % 2 == 0 { "1\n" } else { "0\n" }),
                            (
                                "filter",
                                if bad {
                                    "no_such_field == 1\n"
                                } else {
                                    "common_pid != 0\n"
                                },
                            ),
                            ("filter", "0\n"),
                        ];
                        let present = names_in(&ev.path());
                        for (f, text) in writes {
                            let p = ev.path().join(f);
                            if !present.iter().any(|n| n == f) {
                                continue;
                            }
                            let r = fs::OpenOptions::new()
                                .write(true)
                                .truncate(true)
                                .open(&p)
                                .and_then(|mut file| file.write_all(text.as_bytes()));
                            match r {
                                Ok(()) => {}
                                Err(e)
                                    if bad
                                        && f == "filter"
                                        && text.starts_with("no_such")
                                        && e.raw_os_error() == Some(libc::EINVAL) =>
                                {
                                    bad_writes.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(e) => fail(format!("echo {text:?} > {p:?}: {e}")),
                            }
                            ops[w % 3].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }));
    }
    let duration = seconds();
    let started = Instant::now();
    let mut peak_rss = 0;
    while started.elapsed() < duration {
        thread::sleep(Duration::from_millis(100));
        peak_rss = peak_rss.max(rss_kb());
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker panicked");
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    // Disable everything again, then let the kernel forget.
    fs::write(m.path("events/enable"), "0\n").unwrap();
    let during = m.tree.materialised();
    let after = settle_after_drop_caches(&m.tree, baseline);
    let errors = m.stats.errors.load(Ordering::Relaxed);
    let bad = bad_writes.load(Ordering::Relaxed);
    let done: Vec<u64> = ops.iter().map(|n| n.load(Ordering::Relaxed)).collect();
    println!(
        "load: {done:?} find/cat/echo ops in {:?} by 6 threads; daemon: {}",
        started.elapsed(),
        m.stats
            .to_json(&m.tree, &eventfsd::stats::ProcessFigures::read())
    );
    // Each kind of worker really worked, and the invalid writes really happened.
    assert!(
        done.iter().all(|&n| n > 0),
        "a kind of worker did nothing: {done:?}"
    );
    assert!(bad > 0, "no deliberately invalid filter was written");
    println!(
        "load: errors {errors} (deliberate {bad}), RSS {rss_before} kB -> peak {peak_rss} kB, \
         materialised baseline {baseline} / loaded {during} / after drop_caches {after}"
    );
    // Every error the daemon counted is one of the deliberately invalid filters.
    assert_eq!(errors, bad, "errors {errors}, deliberate {bad}");
    assert_eq!(m.stats.over_forgets.load(Ordering::Relaxed), 0);
    assert!(
        after <= baseline + 64,
        "{after} nodes left after drop_caches (baseline {baseline})"
    );
    assert!(
        peak_rss < rss_before + 256 * 1024,
        "RSS {rss_before} kB -> {peak_rss} kB"
    );
}
