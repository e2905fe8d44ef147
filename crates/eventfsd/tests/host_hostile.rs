//! A hostile guest against the host source: every attack a guest can make with ordinary file
//! operations on the tree, through a host /dev/fuse mount of a private tracefs instance. After
//! each, the host instance and the host's top level are checked, not the reply alone.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Child, Command};

use eventfsd::source::Source;

#[path = "common/host_mount.rs"]
mod host_mount;
use host_mount::*;

/// The top level's state a guest must never change: tracer, options, buffer, events, pids.
fn top_level_state(tracefs: &Path) -> BTreeMap<String, String> {
    let mut state = BTreeMap::new();
    for file in [
        "current_tracer",
        "tracing_on",
        "buffer_size_kb",
        "set_event",
        "set_event_pid",
        "trace_clock",
        "tracing_cpumask",
        "events/sched/sched_waking/enable",
        "events/sched/sched_waking/trigger",
    ] {
        state.insert(
            file.into(),
            fs::read_to_string(tracefs.join(file)).unwrap_or_default(),
        );
    }
    for entry in fs::read_dir(tracefs.join("options")).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        state.insert(
            format!("options/{name}"),
            fs::read_to_string(entry.path()).unwrap_or_default(),
        );
    }
    state
}

/// Runs `attacks` on a mount with `policy`, then checks that the host's top level is as it was.
fn battery(name: &str, policy: Option<&str>, attacks: impl FnOnce(&HostMount)) {
    let Some(m) = HostMount::new(name, policy, Default::default()) else {
        return;
    };
    let before = top_level_state(&m.tracefs);
    attacks(&m);
    let after = top_level_state(&m.tracefs);
    assert_eq!(before, after, "the guest changed the host's top level");
}

fn host_read(m: &HostMount, rel: &str) -> String {
    read(&m.host(rel))
}

/// Hides one sched event so that system-wide writes must be spread.
const SCHED_HIDING: &str = "[events]\nhidden = [\"sched/sched_waking\", \"kvm\", \"printk\"]\n";

#[test]
fn numbers_read_as_the_kernel_reads_them_cannot_enable_hidden_events() {
    battery("numbers", Some(SCHED_HIDING), |m| {
        for one in [&b"01"[..], b"+1", b"1\0junk", b"0001\n"] {
            assert_eq!(
                echo_bytes(&m.path("events/sched/enable"), one),
                Ok(one.len())
            );
            assert_eq!(
                host_read(m, "events/sched/sched_switch/enable"),
                "1\n",
                "{one:?}"
            );
            assert_eq!(
                host_read(m, "events/sched/sched_waking/enable"),
                "0\n",
                "{one:?} reached a hidden event"
            );
            assert_eq!(echo(&m.path("events/sched/enable"), "0"), None);
        }
        for bad in [&b" 1"[..], b"1 1", b"2", b"0x1"] {
            assert_eq!(
                echo_bytes(&m.path("events/sched/enable"), bad),
                Err(libc::EINVAL),
                "{bad:?}"
            );
        }
        // The limit judges the value the kernel would take: 99999999, not "unparseable".
        let size = host_read(m, "buffer_size_kb");
        let guest_size = read(&m.path("buffer_size_kb"));
        assert_eq!(
            echo_bytes(&m.path("buffer_size_kb"), b"99999999\0"),
            Err(libc::EACCES)
        );
        assert_eq!(
            echo_bytes(&m.path("per_cpu/cpu0/buffer_size_kb"), b"+99999999"),
            Err(libc::EACCES)
        );
        assert_eq!(host_read(m, "buffer_size_kb"), size);
        assert_eq!(read(&m.path("buffer_size_kb")), guest_size);
        assert_eq!(echo(&m.path("buffer_size_kb"), "2048"), None);
        // The host holds the size while the guest traces (host_buffers.rs); the kernel rounds
        // it up to whole pages.
        assert_eq!(echo(&m.path("events/sched/sched_switch/enable"), "1"), None);
        let kb: u64 = host_read(m, "per_cpu/cpu0/buffer_size_kb")
            .trim()
            .parse()
            .unwrap();
        assert!((2048..2048 + 8).contains(&kb), "{kb}");
        assert_eq!(echo(&m.path("events/sched/sched_switch/enable"), "0"), None);
    });
}

#[test]
fn triggers_and_set_event_split_like_the_kernel() {
    battery("splits", Some(SCHED_HIDING), |m| {
        let trigger = m.path("events/sched/sched_switch/trigger");
        for attack in [
            "enable_event sched sched_waking",
            "enable_event\tsched\tsched_waking",
            "enable_event:sched:sched_waking",
            "enable_event:sched:sched_waking:1 if prev_pid > 0",
            "enable_hist:sched:sched_waking",
            "enable_event:kvm:kvm_exit",
        ] {
            assert!(echo(&trigger, attack).is_some(), "{attack:?} was accepted");
        }
        assert!(!host_read(m, "events/sched/sched_switch/trigger").contains("sched_waking"));
        // 0xA0 is white space to the kernel: two tokens, and the hidden one stays off. (Each
        // write here truncates, which clears set_event: check after each.)
        let _ = echo_bytes(&m.path("set_event"), b"sched:sched_waking\xa0");
        let _ = echo_bytes(&m.path("set_event"), b"kvm:kvm_exit");
        assert_eq!(host_read(m, "events/sched/sched_waking/enable"), "0\n");
        assert_eq!(host_read(m, "events/kvm/kvm_exit/enable"), "0\n");
        assert_eq!(
            echo_bytes(
                &m.path("set_event"),
                b"sched:sched_switch\xa0sched:sched_waking"
            ),
            Ok(19),
            "the first token is done, the second refused by the next write"
        );
        assert_eq!(host_read(m, "events/sched/sched_waking/enable"), "0\n");
        assert!(host_read(m, "set_event").contains("sched:sched_switch"));
        // A system name reaches only what the guest sees.
        assert_eq!(echo(&m.path("set_event"), "sched"), None);
        assert_eq!(host_read(m, "events/sched/sched_waking/enable"), "0\n");
        assert_eq!(echo(&m.path("events/enable"), "0"), None);
    });
}

#[test]
fn options_tracers_and_kernel_addresses_are_out_of_reach() {
    battery("options", None, |m| {
        let options = host_read(m, "trace_options");
        for attack in [
            "sym-addr",
            "sym-offset",
            "nohash-ptr",
            "trace_printk_dest",
            "copy_trace_marker",
            "userstacktrace",
            "stacktrace",
            "function-trace",
            "nopause-on-trace",
        ] {
            assert_eq!(
                echo(&m.path("trace_options"), attack),
                Some(libc::EACCES),
                "{attack}"
            );
        }
        for (file, value) in [
            ("options/sym-addr", "1"),
            ("options/hash-ptr", "0"),
            ("options/trace_printk_dest", "1"),
            ("options/function-trace", "1"),
        ] {
            assert_eq!(echo(&m.path(file), value), Some(libc::EACCES), "{file}");
        }
        assert_eq!(host_read(m, "trace_options"), options);
        // Their safe values are accepted: trace-cmd turns function-trace off before recording.
        assert_eq!(echo(&m.path("options/function-trace"), "0"), None);
        assert_eq!(host_read(m, "options/function-trace"), "0\n");
        assert_eq!(echo(&m.path("trace_options"), "nosym-addr"), None);
        assert_eq!(echo(&m.path("trace_options"), "nooverwrite"), None);
        assert_eq!(host_read(m, "options/overwrite"), "0\n");
        for tracer in [
            "function",
            "function_graph",
            "hwlat",
            "osnoise",
            "timerlat",
            "blk",
        ] {
            assert!(
                echo(&m.path("current_tracer"), tracer).is_some(),
                "{tracer}"
            );
        }
        assert_eq!(host_read(m, "current_tracer"), "nop\n");
        assert_eq!(read(&m.path("available_tracers")), "nop\n");
        let trigger = m.path("events/sched/sched_switch/trigger");
        for attack in [
            "stacktrace",
            "stacktrace:3 if prev_pid == 1",
            "snapshot",
            "hist:keys=prev_pid.sym",
            "hist:keys=prev_pid.hex",
            "hist:keys=common_stacktrace",
            "hist:keys=prev_pid:name=shared",
        ] {
            assert_eq!(echo(&trigger, attack), Some(libc::EACCES), "{attack}");
        }
        assert_eq!(
            echo(
                &m.path("events/sched/sched_switch/filter"),
                "prev_comm.ustring ~ \"x*\""
            ),
            Some(libc::EACCES)
        );
        // Forged records: refused where the kernel has `inject` (absent without
        // CONFIG_EVENT_INJECT).
        let inject = echo(&m.path("events/sched/sched_switch/inject"), "x");
        if m.host("events/sched/sched_switch/inject").exists() {
            assert_eq!(inject, Some(libc::EACCES));
        } else {
            assert_eq!(inject, Some(libc::ENOENT));
        }
    });
}

#[test]
fn other_tenants_and_the_host_are_hidden_by_default() {
    battery("hidden", None, |m| {
        for path in [
            "events/kvm",
            "events/printk",
            "events/syscalls",
            "events/tcp",
            "printk_formats",
            "saved_cmdlines",
            "saved_tgids",
            "kprobe_events",
            "dynamic_events",
            "uprobe_events",
        ] {
            assert_eq!(
                errno_of(fs::metadata(m.path(path))),
                Some(libc::ENOENT),
                "{path}"
            );
        }
        let available = read(&m.path("available_events"));
        assert!(!available.contains("kvm:") && !available.contains("printk:"));
        assert_eq!(echo(&m.path("set_event"), "kvm:*"), Some(libc::EINVAL));
        assert_eq!(echo(&m.path("set_event"), "printk"), Some(libc::EINVAL));
    });
}

#[test]
fn what_the_guest_can_make_the_host_hold_is_bounded() {
    let policy = "[limits]\nmax_open_handles = 8\nmax_trace_bytes = 1\nmax_enabled_events = 3\n\
                  writes_per_second = 0\n";
    battery("limits", Some(policy), |m| {
        let mut held = Vec::new();
        let mut refused = None;
        for _ in 0..20 {
            match fs::File::open(m.path("tracing_on")) {
                Ok(f) => held.push(f),
                Err(e) => {
                    refused = e.raw_os_error();
                    break;
                }
            }
        }
        assert_eq!(refused, Some(libc::EMFILE));
        assert!(held.len() <= 8, "{} handles", held.len());
        drop(held);
        // Folded per-CPU `trace` text is held within max_trace_bytes.
        assert_eq!(
            errno_of(fs::read(m.path("per_cpu/cpu0/trace"))),
            Some(libc::ENOMEM)
        );
        assert_eq!(
            echo(&m.path("events/sched/enable"), "1"),
            Some(libc::ENOSPC)
        );
        assert_eq!(host_read(m, "events/sched/enable"), "0\n");
        assert_eq!(echo(&m.path("events/sched/sched_switch/enable"), "1"), None);
        let counters: BTreeMap<_, _> = m
            .source
            .as_ref()
            .unwrap()
            .figures()
            .into_iter()
            .map(|f| (f.name, f.value))
            .collect();
        assert!(counters["refused_open_handles"] >= 1, "{counters:?}");
        assert_eq!(counters["refused_trace_bytes"], 1, "{counters:?}");
        assert_eq!(counters["refused_enabled_events"], 1, "{counters:?}");
        assert_eq!(echo(&m.path("events/sched/sched_switch/enable"), "0"), None);
        // The host memory the guest holds in ring buffers, as the kernel counts it.
        let figure = |name: &str| {
            m.source
                .as_ref()
                .unwrap()
                .figures()
                .into_iter()
                .find(|f| f.name == name)
                .unwrap()
                .value
        };
        let total_kb: u64 = host_read(m, "buffer_total_size_kb").trim().parse().unwrap();
        assert_eq!(figure("ring_buffer_bytes"), total_kb * 1024);
        assert_eq!(figure("guest_instances"), 0);
        std::fs::create_dir(m.path("instances/extra")).unwrap();
        assert_eq!(figure("guest_instances"), 1);
        assert!(figure("ring_buffer_bytes") > total_kb * 1024);
        std::fs::remove_dir(m.path("instances/extra")).unwrap();
        assert_eq!(figure("ring_buffer_bytes"), total_kb * 1024);
    });
}

/// A process tree to scope to: a `sleep` that the test kills when done.
struct Tenant(Child);

impl Drop for Tenant {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pids_of(text: &str) -> Vec<u32> {
    text.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[test]
fn a_scoped_guest_narrows_the_pid_filter_but_never_widens_it() {
    let tenant = Tenant(Command::new("sleep").arg("60").spawn().unwrap());
    let tenant_pid = tenant.0.id();
    let Some(m) = HostMount::with("scope", None, |o| o.scope_pid = Some(tenant_pid)) else {
        return;
    };
    let before = top_level_state(&m.tracefs);
    assert_eq!(pids_of(&host_read(&m, "set_event_pid")), [tenant_pid]);
    assert_eq!(host_read(&m, "options/event-fork"), "1\n");
    // Another process: refused, in any number syntax the kernel reads.
    let me = std::process::id();
    for attack in [
        me.to_string(),
        format!("{me:#x}"),
        format!("{tenant_pid} 1"),
    ] {
        assert_eq!(
            echo(&m.path("set_event_pid"), &attack),
            Some(libc::EACCES),
            "{attack}"
        );
        assert_eq!(pids_of(&host_read(&m, "set_event_pid")), [tenant_pid]);
    }
    // Clearing (a truncating open, in the kernel "every task") keeps the scope.
    assert_eq!(echo(&m.path("set_event_pid"), ""), None);
    assert_eq!(pids_of(&host_read(&m, "set_event_pid")), [tenant_pid]);
    drop(
        fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(m.path("set_event_pid")),
    );
    assert_eq!(pids_of(&host_read(&m, "set_event_pid")), [tenant_pid]);
    assert_eq!(
        echo(&m.path("set_event_pid"), &tenant_pid.to_string()),
        None
    );
    // Turning off event-fork is not the guest's to do.
    assert_eq!(echo(&m.path("options/event-fork"), "0"), Some(libc::EACCES));
    // An instance the guest makes is pinned too.
    fs::create_dir(m.path("instances/mine")).unwrap();
    let guest_instance = m.tracefs.to_path_buf().join(format!(
        "instances/{}.mine",
        m.instance.file_name().unwrap().to_string_lossy()
    ));
    assert_eq!(
        pids_of(&read(&guest_instance.join("set_event_pid"))),
        [tenant_pid]
    );
    fs::remove_dir(m.path("instances/mine")).unwrap();
    assert_eq!(before, top_level_state(&m.tracefs));
    drop(tenant);
}
