//! Lazy host ring buffers: a host instance holds the smallest buffer while its guest traces
//! nothing into it, the size the guest asked for while it does, and shrinks back when the
//! guest stops and empties it, without ever losing a record the guest could still read. Each
//! test mounts the host source on a private tracefs through /dev/fuse and checks the host
//! instance, not the reply alone.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use eventfs_core::control::ControlFiles;
use eventfsd::source::Source;

#[path = "common/host_mount.rs"]
mod host_mount;
use host_mount::*;

/// The first word of a size file, as KiB.
fn kb(path: &Path) -> u64 {
    let text = read(path);
    text.split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("{}: {text:?}", path.display()))
}

/// What this kernel gives a new instance (per CPU), and the smallest size it keeps: read on a
/// scratch instance of the test's private tracefs.
fn kernel_sizes(m: &HostMount) -> (u64, u64) {
    // Named after the test's own instance: tests run in parallel.
    let scratch = m.instance.with_file_name(format!(
        "{}-scratch",
        m.instance.file_name().unwrap().to_string_lossy()
    ));
    fs::create_dir(&scratch).unwrap();
    let default = kb(&scratch.join("buffer_size_kb"));
    fs::write(scratch.join("buffer_size_kb"), "1").unwrap();
    let min = kb(&scratch.join("buffer_size_kb"));
    fs::remove_dir(&scratch).unwrap();
    assert!(min < default, "min {min}, default {default}");
    (default, min)
}

/// A mounted host source, with what its tests compare against: the kernel's default size of
/// a new instance and the smallest size it keeps (per CPU), and the host's CPU count.
fn mount(name: &str, policy: Option<&str>) -> Option<(HostMount, u64, u64, u64)> {
    let m = HostMount::new(name, policy, Default::default())?;
    let (default, min) = kernel_sizes(&m);
    let cpus = names(&m.host("per_cpu")).len() as u64;
    Some((m, default, min, cpus))
}

/// The source's figures in the stats file, by name.
fn figures(m: &HostMount) -> BTreeMap<&'static str, u64> {
    m.source
        .as_ref()
        .unwrap()
        .figures()
        .into_iter()
        .map(|f| (f.name, f.value))
        .collect()
}

/// Every host CPU of the instance at `dir` holds `want` KiB (as the kernel rounds it up to
/// whole sub-buffers: a few KiB more).
fn assert_host_size(dir: &Path, cpus: u64, want: u64, why: &str) {
    for cpu in 0..cpus {
        let got = kb(&dir.join(format!("per_cpu/cpu{cpu}/buffer_size_kb")));
        assert!(
            (want..want + 8).contains(&got),
            "{why}: host cpu{cpu} holds {got} KiB, want {want}"
        );
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `echo > trace`: an open with O_TRUNC.
fn clear(path: &Path) {
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
}

#[test]
fn an_idle_instance_holds_the_smallest_buffer_and_the_guest_reads_the_default() {
    let Some((m, default, min, cpus)) = mount("lazy_idle", None) else {
        return;
    };
    assert_eq!(kb(&m.host("buffer_size_kb")), min);
    assert_eq!(kb(&m.host("buffer_total_size_kb")), min * cpus);
    assert_eq!(read(&m.path("buffer_size_kb")), format!("{default}\n"));
    assert_eq!(
        read(&m.path("buffer_total_size_kb")),
        format!("{}\n", default * cpus)
    );
    assert_eq!(
        read(&m.path("per_cpu/cpu0/buffer_size_kb")),
        format!("{default}\n")
    );
    let f = figures(&m);
    assert_eq!(f["ring_buffer_bytes"], min * cpus * 1024, "{f:?}");
    assert_eq!(
        f["ring_buffer_requested_bytes"],
        default * cpus * 1024,
        "{f:?}"
    );
}

#[test]
fn a_size_is_a_request_until_the_guest_traces_then_the_host_holds_it() {
    let Some((m, _, min, cpus)) = mount("lazy_grow", None) else {
        return;
    };
    assert_eq!(echo(&m.path("buffer_size_kb"), "4096"), None);
    assert_eq!(read(&m.path("buffer_size_kb")), "4096\n");
    assert_eq!(read(&m.path("per_cpu/cpu0/buffer_size_kb")), "4096\n");
    assert_eq!(
        read(&m.path("buffer_total_size_kb")),
        format!("{}\n", 4096 * cpus)
    );
    assert_host_size(&m.instance, cpus, min, "idle after a size write");
    assert_eq!(
        figures(&m)["ring_buffer_requested_bytes"],
        4096 * cpus * 1024
    );

    // Far more marker text than the idle buffer holds: had the first line gone into a
    // minimal buffer, the later ones would have overwritten it. (Within the default policy's
    // 200 writes per second.)
    let mut marker = fs::OpenOptions::new()
        .write(true)
        .open(m.path("trace_marker"))
        .unwrap();
    for i in 0..150 {
        marker
            .write_all(format!("lazy-marker-{i:04} {}\n", "x".repeat(400)).as_bytes())
            .unwrap();
    }
    drop(marker);
    assert_host_size(&m.instance, cpus, 4096, "a trace_marker write");
    let trace = read(&m.path("trace"));
    assert!(
        trace.contains("lazy-marker-0000 "),
        "the first line was lost"
    );
    assert!(trace.contains("lazy-marker-0149 "));
    assert_eq!(
        read(&m.path("buffer_size_kb")),
        "4096\n",
        "the same while active"
    );

    // Active: a size write resizes the host at once (a guest CPU's, each host CPU it stands for).
    assert_eq!(echo(&m.path("buffer_size_kb"), "2048"), None);
    assert_host_size(&m.instance, cpus, 2048, "active size write");
    assert_eq!(echo(&m.path("per_cpu/cpu0/buffer_size_kb"), "1024"), None);
    assert_host_size(&m.instance, cpus, 1024, "active per-CPU size write");
    assert_eq!(read(&m.path("buffer_size_kb")), "1024\n");
    let f = figures(&m);
    assert_eq!(
        f["ring_buffer_bytes"],
        kb(&m.host("buffer_total_size_kb")) * 1024
    );
    assert_eq!(f["ring_buffer_requested_bytes"], 1024 * cpus * 1024);

    // Emptied, nothing enabled: idle again, the request kept.
    clear(&m.path("trace"));
    assert_host_size(&m.instance, cpus, min, "cleared");
    assert_eq!(read(&m.path("buffer_size_kb")), "1024\n");
    assert_eq!(figures(&m)["ring_buffer_bytes"], min * cpus * 1024);
}

#[test]
fn enabling_an_event_grows_the_instance_and_stopping_shrinks_it() {
    let Some((m, default, min, cpus)) = mount("lazy_event", None) else {
        return;
    };
    let enable = m.path("events/sched/sched_switch/enable");
    assert_eq!(echo(&enable, "1"), None);
    assert_host_size(&m.instance, cpus, default, "enabled");
    std::thread::sleep(Duration::from_millis(50));
    assert!(read(&m.path("trace")).contains("sched_switch:"));
    // Still enabled: a clear does not shrink it.
    clear(&m.path("trace"));
    assert_host_size(&m.instance, cpus, default, "cleared while enabled");
    std::thread::sleep(Duration::from_millis(50));
    // Disabled with records left: they stay readable at full size.
    assert_eq!(echo(&enable, "0"), None);
    assert_host_size(&m.instance, cpus, default, "records left");
    assert!(read(&m.path("trace")).contains("sched_switch:"));
    clear(&m.path("trace"));
    assert_host_size(&m.instance, cpus, min, "disabled and cleared");
    // set_event and system enables grow it too.
    assert_eq!(echo(&m.path("set_event"), "sched:sched_switch"), None);
    assert_host_size(&m.instance, cpus, default, "set_event");
    // `> set_event` disables everything; the clear empties it.
    assert_eq!(echo(&m.path("set_event"), ""), None);
    clear(&m.path("trace"));
    assert_host_size(&m.instance, cpus, min, "set_event cleared");
    assert_eq!(echo(&m.path("events/sched/enable"), "1"), None);
    assert_host_size(&m.instance, cpus, default, "system enable");
    assert_eq!(echo(&m.path("events/sched/enable"), "0"), None);
    clear(&m.path("trace"));
    assert_host_size(&m.instance, cpus, min, "system disabled");
}

#[test]
fn growth_waits_for_a_trace_reader_and_a_new_session_settles() {
    let Some((m, default, min, cpus)) = mount("lazy_busy", None) else {
        return;
    };
    // The kernel refuses a resize while `trace` is open for reading (nothing records
    // meanwhile: pause-on-trace): the enable succeeds and the growth waits for the close.
    let reader = fs::File::open(m.path("trace")).unwrap();
    let enable = m.path("events/sched/sched_switch/enable");
    assert_eq!(echo(&enable, "1"), None);
    assert_host_size(&m.instance, cpus, min, "trace open");
    drop(reader);
    wait_for("growth after the reader closed", || {
        kb(&m.host("per_cpu/cpu0/buffer_size_kb")) >= default
    });
    assert_host_size(&m.instance, cpus, default, "reader closed");
    assert_eq!(echo(&enable, "0"), None);
    clear(&m.path("trace"));
    assert_host_size(&m.instance, cpus, min, "cleared");

    // A marker consumed through trace_pipe leaves the instance active and empty; a new FUSE
    // session (a rebooted guest) finds it so and shrinks it.
    assert_eq!(echo(&m.path("trace_marker"), "consumed"), None);
    assert_host_size(&m.instance, cpus, default, "marker");
    let mut pipe = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(m.path("trace_pipe"))
        .unwrap();
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = pipe.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buf[..n]);
    }
    drop(pipe);
    assert!(String::from_utf8_lossy(&text).contains("consumed"));
    assert_host_size(&m.instance, cpus, default, "consumed, no clear");
    m.source.as_ref().unwrap().host_control().reset();
    assert_host_size(&m.instance, cpus, min, "new session");
}

#[test]
fn guest_instances_are_idle_until_traced() {
    let Some((m, default, min, cpus)) = mount("lazy_inst", None) else {
        return;
    };
    fs::create_dir(m.path("instances/g")).unwrap();
    let host = m.guest_instance_dir("g");
    assert_host_size(&host, cpus, min, "new guest instance");
    assert_eq!(
        read(&m.path("instances/g/buffer_size_kb")),
        format!("{default}\n")
    );
    assert_eq!(
        figures(&m)["ring_buffer_bytes"],
        2 * min * cpus * 1024,
        "both instances idle"
    );
    assert_eq!(echo(&m.path("instances/g/buffer_size_kb"), "512"), None);
    assert_host_size(&host, cpus, min, "size request");
    assert_eq!(read(&m.path("instances/g/buffer_size_kb")), "512\n");
    assert_eq!(read(&m.path("buffer_size_kb")), format!("{default}\n"));
    let enable = m.path("instances/g/events/sched/sched_switch/enable");
    assert_eq!(echo(&enable, "1"), None);
    assert_host_size(&host, cpus, 512, "enabled in the guest instance");
    assert_host_size(&m.instance, cpus, min, "ours untouched");
    assert_eq!(echo(&enable, "0"), None);
    clear(&m.path("instances/g/trace"));
    assert_host_size(&host, cpus, min, "stopped and cleared");
    fs::remove_dir(m.path("instances/g")).unwrap();
    assert!(!host.exists());
}

#[test]
fn the_policy_limit_still_refuses_sizes_over_the_maximum() {
    let Some((m, default, min, cpus)) =
        mount("lazy_limit", Some("[limits]\nmax_buffer_size_kb = 2048\n"))
    else {
        return;
    };
    let refused = |m: &HostMount| figures(m)["refused_by_policy"];
    let before = refused(&m);
    assert_eq!(echo(&m.path("buffer_size_kb"), "2049"), Some(libc::EACCES));
    assert_eq!(
        echo(&m.path("per_cpu/cpu0/buffer_size_kb"), "4096"),
        Some(libc::EACCES)
    );
    assert_eq!(echo(&m.path("buffer_size_kb"), "0"), Some(libc::EINVAL));
    assert_eq!(refused(&m), before + 3);
    assert_eq!(read(&m.path("buffer_size_kb")), format!("{default}\n"));
    assert_host_size(&m.instance, cpus, min, "refused while idle");
    assert_eq!(echo(&m.path("buffer_size_kb"), "2048"), None);
    assert_eq!(echo(&m.path("events/sched/sched_switch/enable"), "1"), None);
    assert_host_size(&m.instance, cpus, 2048, "enabled");
    assert_eq!(echo(&m.path("buffer_size_kb"), "4096"), Some(libc::EACCES));
    assert_host_size(&m.instance, cpus, 2048, "refused while active");
    assert_eq!(read(&m.path("buffer_size_kb")), "2048\n");
    assert_eq!(echo(&m.path("events/sched/sched_switch/enable"), "0"), None);
}
