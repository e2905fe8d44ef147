//! The catalog source driven through [`ControlFiles`] on a real tree, without FUSE.

mod function_tracer;
mod hist;
mod hist_refs;
mod kprobes;
mod sim;
mod snapshot;
mod synthetic;

use std::time::Duration;

use eventfs_core::control::{ControlFiles, OpenFlags};
use eventfs_core::layout::{DirKind, FileKind, RootFile};
use eventfs_core::tree::NodeKind;
use eventfs_core::FsError;

use sim::{Sim, READ};

#[test]
fn enable_fans_out_and_summarises() {
    let sim = Sim::new();
    assert_eq!(sim.read("events/sched/enable"), "0\n");
    sim.write("events/sched/sched_switch/enable", "1\n")
        .unwrap();
    assert_eq!(sim.read("events/sched/sched_switch/enable"), "1\n");
    assert_eq!(sim.read("events/sched/enable"), "X\n");
    assert_eq!(sim.read("events/enable"), "X\n");
    assert_eq!(sim.read("set_event"), "sched:sched_switch\n");
    sim.write("events/sched/enable", "1").unwrap();
    assert_eq!(sim.read("events/sched/enable"), "1\n");
    sim.write("events/enable", "0").unwrap();
    assert_eq!(sim.read("events/enable"), "0\n");
    assert_eq!(sim.read("set_event"), "");
    assert!(matches!(
        sim.write("events/sched/sched_switch/enable", "2"),
        Err(FsError::Invalid(_))
    ));
}

#[test]
fn set_event_and_its_truncation() {
    let sim = Sim::new();
    sim.write("set_event", "sched:sched_switch irq:*").unwrap();
    assert_eq!(sim.read("events/sched/sched_switch/enable"), "1\n");
    assert_eq!(sim.read("events/irq/enable"), "1\n");
    // `>>` keeps what is set: `!` disables only what it names.
    sim.append("set_event", "!irq:*").unwrap();
    assert_eq!(sim.read("events/irq/enable"), "0\n");
    assert_eq!(sim.read("events/sched/sched_switch/enable"), "1\n");
    sim.append("set_event", "sched:sched_wakeup").unwrap();
    assert_eq!(
        sim.read("set_event"),
        "sched:sched_switch\nsched:sched_wakeup\n"
    );
    assert!(sim.append("set_event", "nosuch:event").is_err());
    // O_TRUNC with nothing written clears every event (`echo > set_event`).
    sim.write("set_event", "").unwrap();
    assert_eq!(sim.read("events/enable"), "0\n");
}

#[test]
fn bad_filter_is_shown_and_logged_like_the_kernel() {
    let sim = Sim::new();
    let event = "events/sched/sched_switch/filter";
    sim.write(event, "prev_pid > 10").unwrap();
    assert_eq!(sim.read(event), "prev_pid > 10\n");
    assert!(matches!(
        sim.write(event, "no_such_field == 1"),
        Err(FsError::Invalid(_))
    ));
    assert!(sim.read(event).contains("error"), "{}", sim.read(event));
    assert!(sim.read("error_log").contains("no_such_field"));
    sim.write(event, "0").unwrap();
    assert_eq!(sim.read(event), "none\n");
    sim.write("error_log", "").unwrap();
    assert_eq!(sim.read("error_log"), "");
}

#[test]
fn filtered_records_satisfy_the_filter() {
    let sim = Sim::new();
    sim.write("events/sched/sched_switch/filter", "prev_prio < 100")
        .unwrap();
    sim.write("events/sched/sched_switch/enable", "1").unwrap();
    sim.run_for(200);
    let trace = sim.read("trace");
    let lines: Vec<&str> = trace.lines().filter(|l| !l.starts_with('#')).collect();
    let (records, filtered, _) = sim.control.data_plane_counters();
    // Both sides of the filter happened: some records kept, some dropped.
    assert!(
        records > 0 && filtered > 0,
        "{records} kept, {filtered} filtered"
    );
    assert!(records + filtered >= 150, "{records} + {filtered}");
    assert_eq!(lines.len() as u64, records);
    for line in lines {
        let prio: i64 = line
            .split("prev_prio=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no prev_prio in {line}"));
        assert!(prio < 100, "{line}");
    }
}

#[test]
fn traceoff_trigger_stops_the_buffer() {
    let sim = Sim::new();
    sim.write("events/sched/sched_switch/trigger", "traceoff:1")
        .unwrap();
    assert!(
        sim.read("events/sched/sched_switch/trigger")
            .starts_with("traceoff:count=1"),
        "{}",
        sim.read("events/sched/sched_switch/trigger")
    );
    // A trigger alone puts the event in soft mode.
    assert_eq!(sim.read("events/sched/sched_switch/enable"), "0*\n");
    assert_eq!(sim.read("tracing_on"), "1\n");
    sim.run_for(100);
    assert_eq!(sim.read("tracing_on"), "0\n");
    assert!(sim
        .read("events/sched/sched_switch/trigger")
        .starts_with("traceoff:count=0"));
    assert!(matches!(
        sim.write("events/sched/sched_switch/trigger", "traceoff:1"),
        Err(FsError::Exists)
    ));
    sim.write("events/sched/sched_switch/trigger", "!traceoff")
        .unwrap();
    assert_eq!(sim.read("events/sched/sched_switch/enable"), "0\n");
}

/// The `trace` lines (no header) and their timestamps in seconds.
fn trace_lines(sim: &Sim) -> Vec<(String, f64)> {
    sim.read("trace")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let ts = l
                .split_whitespace()
                .find_map(|w| w.strip_suffix(':')?.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no timestamp in {l}"));
            (l.to_string(), ts)
        })
        .collect()
}

#[test]
fn what_happened_is_in_trace_before_the_next_command() {
    let sim = Sim::with_built_in_profile();
    sim.write("events/sched/sched_switch/enable", "1").unwrap();
    // 10 ms at sched_switch's 400/s: exactly 4 switches, visible at once.
    sim.run_for(10);
    assert_eq!(trace_lines(&sim).len(), 4);
    // Disabled now: the next second adds nothing.
    sim.write("events/sched/sched_switch/enable", "0").unwrap();
    sim.run_for(1000);
    assert_eq!(trace_lines(&sim).len(), 4);
    // A rare event stays rare: 1 s of an OOM kill at 0.01/s fires nothing.
    sim.write("events/oom/mark_victim/enable", "1").unwrap();
    sim.run_for(1000);
    assert_eq!(trace_lines(&sim).len(), 4);
}

#[test]
fn events_of_one_interval_interleave_in_time_order() {
    let sim = Sim::with_built_in_profile();
    sim.write("events/sched/sched_switch/enable", "1").unwrap();
    sim.write("events/irq/irq_handler_entry/enable", "1")
        .unwrap();
    sim.run_for(100);
    let lines = trace_lines(&sim);
    // 40 switches and 10 interrupts, mixed, never going back in time.
    assert_eq!(lines.len(), 50);
    assert_eq!(
        lines
            .iter()
            .filter(|(l, _)| l.contains("irq_handler_entry"))
            .count(),
        10
    );
    assert!(lines.windows(2).all(|w| w[0].1 <= w[1].1), "{lines:?}");
    let first_irq = lines
        .iter()
        .position(|(l, _)| l.contains("irq_handler_entry"));
    let last_switch = lines.iter().rposition(|(l, _)| l.contains("sched_switch"));
    assert!(first_irq < last_switch, "the two events interleave");
    // The span of the records is the 100 ms that passed.
    let span = lines.last().unwrap().1 - lines[0].1;
    assert!(span > 0.08 && span <= 0.1, "{span}");
}

#[test]
fn a_marker_comes_after_everything_that_fired_before_it() {
    let sim = Sim::with_built_in_profile();
    sim.write("events/sched/sched_switch/enable", "1").unwrap();
    sim.run_for(50);
    sim.write("trace_marker", "checkpoint").unwrap();
    sim.run_for(50);
    let lines = trace_lines(&sim);
    let marker = lines
        .iter()
        .position(|(l, _)| l.contains("checkpoint"))
        .unwrap();
    assert_eq!(marker, 20, "20 switches in the first 50 ms: {lines:?}");
    assert_eq!(lines.len(), 41);
    assert!(lines.windows(2).all(|w| w[0].1 <= w[1].1));
}

// The trigger-order tests below follow the live kernel (6.18, a private instance): the
// event a `traceoff` or a `traceon` fires on is in the buffer, and a `stacktrace` entry
// comes right after its event.
#[test]
fn traceoff_keeps_the_event_that_fired_it() {
    let sim = Sim::with_built_in_profile();
    sim.write("events/sched/sched_switch/trigger", "traceoff")
        .unwrap();
    sim.write("events/sched/sched_switch/enable", "1").unwrap();
    sim.run_for(5);
    // Within 5 ms of simulated time the trigger has fired and tracing is off.
    assert_eq!(sim.read("tracing_on"), "0\n");
    let lines = trace_lines(&sim);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].0.contains("sched_switch: "));
}

#[test]
fn traceon_records_the_event_that_fired_it() {
    let sim = Sim::with_built_in_profile();
    sim.write("tracing_on", "0").unwrap();
    sim.write("events/sched/sched_switch/trigger", "traceon:1")
        .unwrap();
    sim.write("events/sched/sched_switch/enable", "1").unwrap();
    sim.run_for(100);
    assert_eq!(sim.read("tracing_on"), "1\n");
    assert_eq!(
        trace_lines(&sim).len(),
        40,
        "every switch, the first included"
    );
}

#[test]
fn stacktrace_entries_follow_their_event() {
    let sim = Sim::with_built_in_profile();
    sim.write("events/sched/sched_switch/trigger", "stacktrace:2")
        .unwrap();
    sim.write("events/sched/sched_switch/enable", "1").unwrap();
    sim.run_for(10);
    let trace = sim.read("trace");
    let body: Vec<&str> = trace.lines().filter(|l| !l.starts_with('#')).collect();
    // 4 switches; the first two are followed by a stack of 4 to 8 frames.
    let stacks: Vec<usize> = body
        .iter()
        .enumerate()
        .filter(|(_, l)| l.ends_with(": <stack trace>"))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(stacks.len(), 2, "{trace}");
    for &at in &stacks {
        assert!(body[at - 1].contains("sched_switch: "), "{trace}");
        let frames = body[at + 1..]
            .iter()
            .take_while(|l| l.starts_with(" => 0xffffffff81"))
            .count();
        assert!((4..=8).contains(&frames), "{trace}");
    }
    assert!(sim
        .read("events/sched/sched_switch/trigger")
        .starts_with("stacktrace:count=0"));
}

#[test]
fn hist_and_snapshot_are_not_in_this_kernel() {
    let sim = Sim::new();
    for command in [
        "hist:keys=prev_pid",
        "snapshot",
        "enable_hist:sched:sched_wakeup",
    ] {
        assert!(
            matches!(
                sim.write("events/sched/sched_switch/trigger", command),
                Err(FsError::Invalid(_))
            ),
            "{command}"
        );
    }
    assert!(sim.try_node("events/sched/sched_switch/hist").is_err());
    assert_eq!(sim.read("error_log"), "", "unknown commands are not logged");
}

#[test]
fn a_conditional_trigger_runs_after_its_record() {
    let sim = Sim::with_built_in_profile();
    sim.write(
        "events/sched/sched_switch/trigger",
        "traceoff if prev_pid >= 0",
    )
    .unwrap();
    sim.write("events/sched/sched_switch/enable", "1").unwrap();
    sim.run_for(100);
    assert_eq!(sim.read("tracing_on"), "0\n");
    assert_eq!(
        trace_lines(&sim).len(),
        1,
        "the record that fired it is kept"
    );
}

#[test]
fn counted_triggers_count_only_what_they_changed() {
    let sim = Sim::with_built_in_profile();
    sim.write("events/sched/sched_switch/trigger", "traceoff:3")
        .unwrap();
    sim.write("events/sched/sched_switch/enable", "1").unwrap();
    sim.run_for(100);
    // 40 switches, but only the first one turned tracing off.
    assert!(sim
        .read("events/sched/sched_switch/trigger")
        .starts_with("traceoff:count=2"));
    sim.write("tracing_on", "1").unwrap();
    sim.run_for(100);
    assert!(sim
        .read("events/sched/sched_switch/trigger")
        .starts_with("traceoff:count=1"));
}

#[test]
fn an_event_switched_on_by_a_trigger_fires_for_the_rest_of_the_interval() {
    let sim = Sim::with_built_in_profile();
    // timer_start (200/s) is enabled by the first sched_switch (400/s) of the interval.
    sim.write(
        "events/sched/sched_switch/trigger",
        "enable_event:timer:timer_start:1",
    )
    .unwrap();
    sim.write("events/sched/sched_wakeup/enable", "1").unwrap();
    sim.run_for(1000);
    let lines = trace_lines(&sim);
    let timers: Vec<f64> = lines
        .iter()
        .filter(|(l, _)| l.contains("timer_start"))
        .map(|(_, ts)| *ts)
        .collect();
    // Switched on within the first few ms: nearly a second of timer_start records.
    assert!((190..=200).contains(&timers.len()), "{}", timers.len());
    // Enabled, and still soft-mode while the (spent) trigger exists, as in the kernel.
    assert_eq!(sim.read("events/timer/timer_start/enable"), "1*\n");
}

#[test]
fn a_long_unobserved_gap_costs_one_bounded_catch_up() {
    let sim = Sim::with_built_in_profile();
    sim.write("events/sched/sched_switch/enable", "1").unwrap();
    sim.run_for(3_600_000);
    sim.read("tracing_on");
    // Only the last 10 s are simulated: 4000 switches fired (most overwritten).
    let (records, _, _) = sim.control.data_plane_counters();
    assert_eq!(records, 4000);
}

#[test]
fn enable_event_trigger_soft_enables_its_target() {
    let sim = Sim::new();
    sim.write(
        "events/sched/sched_switch/trigger",
        "enable_event:sched:sched_wakeup",
    )
    .unwrap();
    assert_eq!(sim.read("events/sched/sched_wakeup/enable"), "0*\n");
    sim.run_for(100);
    assert_eq!(sim.read("events/sched/sched_wakeup/enable"), "1*\n");
}

#[test]
fn marker_pipe_and_truncation() {
    let sim = Sim::new();
    sim.write("trace_marker", "hello from the test").unwrap();
    assert!(sim
        .read("trace")
        .contains("tracing_mark_write: hello from the test"));

    let pipe = sim.node("trace_pipe");
    let nonblock = OpenFlags {
        nonblock: true,
        ..READ
    };
    let handle = sim.control.open(&sim.tree, pipe, nonblock).unwrap();
    let first = sim
        .control
        .read(&sim.tree, pipe, handle, 0, 4096, true)
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("hello from the test"));
    // Consumed: the next non-blocking read finds nothing.
    assert!(matches!(
        sim.control.read(&sim.tree, pipe, handle, 0, 4096, true),
        Err(FsError::Os(libc::EAGAIN))
    ));
    sim.control.release(handle);

    sim.write("trace_marker", "second").unwrap();
    sim.write("trace", "").unwrap();
    assert!(!sim.read("trace").contains("second"));
}

#[test]
fn tracing_off_records_nothing() {
    let sim = Sim::new();
    sim.write("tracing_on", "0").unwrap();
    sim.write("events/irq/enable", "1").unwrap();
    sim.run_for(300);
    assert_eq!(sim.control.data_plane_counters().0, 0);
    assert!(sim.read("trace").lines().all(|l| l.starts_with('#')));
}

#[test]
fn set_event_pid_puts_the_pids_on_records() {
    let sim = Sim::new();
    sim.write("set_event_pid", "4242").unwrap();
    assert_eq!(sim.read("set_event_pid"), "4242\n");
    sim.write("events/sched/sched_wakeup/enable", "1").unwrap();
    sim.run_for(50);
    let trace = sim.read("trace");
    let lines: Vec<&str> = trace.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|l| l.contains("-4242 ")), "{trace}");
}

#[test]
fn pid_lists_parse_like_the_kernel_and_append_without_truncation() {
    let sim = Sim::new();
    sim.write("set_event_pid", "0x10 010\n12").unwrap();
    assert_eq!(sim.read("set_event_pid"), "8\n12\n16\n");
    sim.append("set_event_pid", "5").unwrap();
    assert_eq!(sim.read("set_event_pid"), "5\n8\n12\n16\n");
    assert!(matches!(
        sim.append("set_event_pid", "7 abc"),
        Err(FsError::Invalid(_))
    ));
    sim.write("set_event_notrace_pid", "99").unwrap();
    assert_eq!(sim.read("set_event_notrace_pid"), "99\n");
    sim.write("set_event_notrace_pid", "").unwrap();
    assert_eq!(sim.read("set_event_notrace_pid"), "");
}

#[test]
fn notrace_pids_are_never_recorded() {
    let sim = Sim::new();
    sim.write("events/sched/sched_wakeup/enable", "1").unwrap();
    sim.run_for(50);
    let pid_of = |line: &str| -> u32 {
        let task = line.split_whitespace().next().unwrap();
        task.rsplit('-').next().unwrap().parse().unwrap()
    };
    let before: Vec<u32> = trace_lines(&sim).iter().map(|(l, _)| pid_of(l)).collect();
    let busiest = before[0];
    sim.write("trace", "").unwrap();
    sim.write("set_event_notrace_pid", &busiest.to_string())
        .unwrap();
    sim.run_for(200);
    let after: Vec<u32> = trace_lines(&sim).iter().map(|(l, _)| pid_of(l)).collect();
    assert!(after.len() > 100, "{}", after.len());
    assert!(!after.contains(&busiest), "{busiest} in {after:?}");
    // Listed and excluded at once: nothing is recorded.
    sim.write("trace", "").unwrap();
    sim.write("set_event_pid", "4242").unwrap();
    sim.append("set_event_notrace_pid", "4242").unwrap();
    sim.run_for(100);
    assert!(trace_lines(&sim).is_empty());
}

#[test]
fn options_have_two_views() {
    let sim = Sim::new();
    let before = sim.read("options/print-parent");
    let flipped = if before == "1\n" {
        "noprint-parent"
    } else {
        "print-parent"
    };
    sim.write("trace_options", flipped).unwrap();
    assert_ne!(sim.read("options/print-parent"), before);
    assert!(sim.read("trace_options").contains(&format!("{flipped}\n")));
    assert!(sim.write("trace_options", "nosuchoption").is_err());
}

#[test]
fn instances_have_their_own_state_and_refuse_rmdir_while_open() {
    let sim = Sim::new();
    let instances = sim.node("instances");
    assert_eq!(instances.kind, NodeKind::Dir(DirKind::Instances));
    sim.control.mkdir(&sim.tree, instances, "one").unwrap();
    sim.write("instances/one/events/sched/sched_switch/enable", "1")
        .unwrap();
    assert_eq!(sim.read("events/sched/sched_switch/enable"), "0\n");
    assert_eq!(sim.read("instances/one/set_event"), "sched:sched_switch\n");

    let trace = sim.node("instances/one/trace");
    let handle = sim.control.open(&sim.tree, trace, READ).unwrap();
    assert!(matches!(
        sim.control.rmdir(&sim.tree, instances, "one"),
        Err(FsError::Busy)
    ));
    sim.control.release(handle);
    sim.control.rmdir(&sim.tree, instances, "one").unwrap();
    assert!(sim.try_node("instances/one").is_err());
    // Not under instances/: refused.
    let events = sim.node("events");
    assert!(matches!(
        sim.control.mkdir(&sim.tree, events, "x"),
        Err(FsError::Os(libc::EPERM))
    ));
}

#[test]
fn reset_wakes_blocked_readers_and_forgets_handles() {
    let sim = std::sync::Arc::new(Sim::new());
    let pipe = sim.node("trace_pipe");
    let handle = sim.control.open(&sim.tree, pipe, READ).unwrap();
    // A reader blocks on the empty pipe...
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = {
        let sim = sim.clone();
        std::thread::spawn(move || {
            let got = sim.control.read(&sim.tree, pipe, handle, 0, 4096, false);
            let _ = tx.send(got.map(|data| data.len()));
        })
    };
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "the reader did not block on an empty pipe"
    );
    // ...and a new session (INIT) wakes it: it returns end-of-file, not data, not a hang.
    sim.control.reset();
    let got = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("reset woke the blocked reader");
    assert_eq!(got, Ok(0));
    reader.join().unwrap();
    // The handle is gone: a read through it is EBADF, not a wait.
    assert!(matches!(
        sim.control.read(&sim.tree, pipe, handle, 0, 10, false),
        Err(FsError::Os(libc::EBADF))
    ));
}

#[test]
fn static_files_are_the_trees() {
    let sim = Sim::new();
    let node = sim.node("events/sched/sched_switch/format");
    assert_eq!(node.kind, NodeKind::File(FileKind::EventFormat));
    let root = sim.node("tracing_on");
    assert_eq!(
        root.kind,
        NodeKind::File(FileKind::Root(RootFile::TracingOn))
    );
    assert!(sim.read("README").contains("tracing mini-HOWTO"));
    // Only what the simulation does is advertised, and what is advertised exists.
    assert_eq!(sim.read("available_tracers"), "nop\n");
    let readme = sim.read("README");
    for gone in ["set_ftrace_filter", "trace_marker_raw", "timestamp_mode"] {
        assert!(!readme.contains(gone), "{gone} in {readme}");
    }
    for name in [
        "trace_pipe",
        "buffer_size_kb",
        "set_event",
        "saved_cmdlines_size",
        "uprobe_events",
        "dynamic_events",
    ] {
        assert!(readme.contains(&format!("  {name}")), "{name} missing");
        sim.node(name);
    }
    for hidden in ["kprobe_events", "synthetic_events"] {
        assert!(
            matches!(sim.try_node(hidden), Err(FsError::NotFound)),
            "{hidden}"
        );
    }
    // Static files come from the tree (the catalog), byte for byte.
    let format = sim
        .tree
        .with_static_content(node.ino, <[u8]>::to_vec)
        .unwrap();
    assert_eq!(
        sim.read("events/sched/sched_switch/format").as_bytes(),
        format
    );
    assert!(sim
        .read("events/sched/sched_switch/format")
        .starts_with("name: sched_switch\n"));
    assert!(sim
        .read("events/sched/sched_switch/trigger")
        .starts_with("# Available triggers:"));
}

#[test]
fn per_cpu_raw_pages_carry_the_records_trace_shows() {
    use std::collections::HashMap;
    use tracefs_raw::{decode_page, EventFormat, PageLayout, Value};

    let sim = Sim::with_cpus(2);
    for event in ["sched_switch", "sched_wakeup"] {
        sim.write(&format!("events/sched/{event}/enable"), "1")
            .unwrap();
    }
    sim.run_for(300);
    sim.write("tracing_on", "0").unwrap();
    let trace = sim.read("trace");
    let cpu_traces: Vec<String> = (0..2)
        .map(|c| sim.read(&format!("per_cpu/cpu{c}/trace")))
        .collect();
    let layout = PageLayout::parse(&sim.read("events/header_page")).unwrap();
    let formats: HashMap<u16, EventFormat> = ["sched_switch", "sched_wakeup"]
        .iter()
        .map(|e| {
            let f = EventFormat::parse(&sim.read(&format!("events/sched/{e}/format"))).unwrap();
            (f.id, f)
        })
        .collect();
    let entries: Vec<u64> = (0..2).map(|c| sim.stat(c, "entries")).collect();
    assert!(
        entries.iter().all(|&n| n > 50),
        "records on every CPU: {entries:?}"
    );
    let saved = sim.read("saved_cmdlines");

    let mut decoded = 0u64;
    for cpu in 0..2u32 {
        let pages = sim.drain_raw(cpu);
        let mut last_ts = 0;
        for page in &pages {
            let page = decode_page(page, &layout).unwrap();
            assert_eq!(page.missed, None);
            for event in &page.events {
                assert!(event.ts >= last_ts, "per-CPU pages are in time order");
                last_ts = event.ts;
                let format = &formats[&event.id().unwrap()];
                let values: HashMap<String, Value> = tracefs_raw::fields(&event.payload, format)
                    .unwrap()
                    .into_iter()
                    .collect();
                let us = (event.ts + 500) / 1000; // the kernel's ns2usecs rounds
                let ts = format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
                let pid = values["common_pid"].to_string();
                // The same record, with the same values, in the text `trace` rendered.
                let want: Vec<String> = match format.name.as_str() {
                    "sched_switch" => vec![
                        format!("-{pid} "),
                        format!(
                            " {ts}: sched_switch: prev_comm={} prev_pid={} ",
                            values["prev_comm"], values["prev_pid"]
                        ),
                        format!(
                            " next_comm={} next_pid={} ",
                            values["next_comm"], values["next_pid"]
                        ),
                    ],
                    _ => vec![
                        format!("-{pid} "),
                        format!(
                            " {ts}: sched_wakeup: comm={} pid={} prio={} ",
                            values["comm"], values["pid"], values["prio"]
                        ),
                    ],
                };
                let cpu_col = format!("[{cpu:03}]");
                let line = trace
                    .lines()
                    .find(|l| want.iter().all(|w| l.contains(w.as_str())) && l.contains(&cpu_col))
                    .unwrap_or_else(|| {
                        let near: Vec<&str> = trace.lines().filter(|l| l.contains(&ts)).collect();
                        panic!("cpu{cpu}: no trace line has {want:?}; lines at {ts}: {near:#?}")
                    });
                assert!(
                    cpu_traces[cpu as usize].contains(line),
                    "per_cpu/cpu{cpu}/trace"
                );
                if pid != "0" {
                    assert!(
                        saved.lines().any(|l| l.starts_with(&format!("{pid} "))),
                        "saved_cmdlines lacks {pid}"
                    );
                }
                decoded += 1;
            }
        }
        assert_eq!(sim.stat(cpu, "entries"), 0, "trace_pipe_raw consumes");
        assert_eq!(sim.stat(cpu, "read events"), entries[cpu as usize]);
    }
    assert_eq!(decoded, entries.iter().sum::<u64>());
    assert_eq!(
        trace.lines().filter(|l| !l.starts_with('#')).count() as u64,
        decoded
    );
}

#[test]
fn raw_reads_report_lost_events_and_wait_bounded() {
    use tracefs_raw::{decode_page, PageLayout};
    let sim = Sim::with_cpus(1);
    sim.write("per_cpu/cpu0/buffer_size_kb", "4").unwrap();
    assert_eq!(sim.read("per_cpu/cpu0/buffer_size_kb"), "4\n");
    assert_eq!(sim.read("buffer_size_kb"), "4\n");
    sim.write("events/sched/sched_switch/enable", "1").unwrap();
    sim.run_for(1000);
    let overrun = sim.stat(0, "overrun");
    assert!(overrun > 0, "a 4 KiB ring overflows");
    let layout = PageLayout::parse(&sim.read("events/header_page")).unwrap();
    let pages = sim.drain_raw(0);
    let first = decode_page(&pages[0], &layout).unwrap();
    assert_eq!(
        first.missed,
        Some(Some(overrun)),
        "the first page reports the lost records"
    );
    assert!(pages[1..]
        .iter()
        .all(|p| decode_page(p, &layout).unwrap().missed.is_none()));

    // Blocking on an empty CPU: returns 0 after a bounded wait, never EAGAIN.
    sim.write("tracing_on", "0").unwrap();
    let node = sim.node("per_cpu/cpu0/trace_pipe_raw");
    let handle = sim.control.open(&sim.tree, node, READ).unwrap();
    let started = std::time::Instant::now();
    let got = sim
        .control
        .read(&sim.tree, node, handle, 0, 65536, false)
        .unwrap();
    assert!(got.is_empty());
    assert!(started.elapsed() < Duration::from_secs(5));
    // A read smaller than a page gets the page in parts.
    sim.write("tracing_on", "1").unwrap();
    sim.run_for(50);
    let mut page = Vec::new();
    while page.len() < 4096 {
        let part = sim
            .control
            .read(&sim.tree, node, handle, 0, 1000, true)
            .unwrap();
        assert!(!part.is_empty() && part.len() <= 1000);
        page.extend_from_slice(&part);
    }
    assert_eq!(page.len(), 4096);
    assert!(!decode_page(&page, &layout).unwrap().events.is_empty());
    sim.control.release(handle);
    sim.write("saved_cmdlines_size", "0").unwrap_err();
    sim.write("saved_cmdlines_size", "7").unwrap();
    assert_eq!(sim.read("saved_cmdlines_size"), "7\n");
}

#[test]
fn uprobes_are_defined_listed_fired_and_removed() {
    let sim = Sim::with_built_in_profile();
    sim.append(
        "uprobe_events",
        "p:myev /bin/sh:0x10 a=%ax b=+0(%sp):u32\np /bin/ls:42\n",
    )
    .unwrap();
    assert_eq!(
        sim.read("uprobe_events"),
        "p:uprobes/myev /bin/sh:0x0000000000000010 a=%ax b=+0(%sp):u32\n\
         p:uprobes/p_ls_0x2a /bin/ls:0x000000000000002a\n"
    );
    assert_eq!(sim.read("dynamic_events"), sim.read("uprobe_events"));
    let format = sim.read("events/uprobes/myev/format");
    assert!(format.starts_with("name: myev\nID: "), "{format}");
    assert!(format.contains("\tfield:u32 b;\toffset:24;\tsize:4;\tsigned:0;"));
    let id: u32 = sim.read("events/uprobes/myev/id").trim().parse().unwrap();
    assert!(format.contains(&format!("ID: {id}\n")));
    assert!(sim.try_node("events/uprobes/myev/hist").is_err());
    assert!(sim.read("available_events").contains("uprobes:myev\n"));
    // Enabled, it fires (10/s, the default rate) and renders as the kernel prints probes.
    sim.write("events/uprobes/myev/enable", "1").unwrap();
    sim.run_for(1000);
    let lines = trace_lines(&sim);
    assert_eq!(lines.len(), 10, "{lines:?}");
    assert!(lines[0].0.contains(" myev: (0x"), "{}", lines[0].0);
    assert!(lines[0].0.contains(") a=0x"), "{}", lines[0].0);
    // Busy while enabled: neither a removal nor a truncation goes through.
    assert!(matches!(
        sim.append("uprobe_events", "-:myev"),
        Err(FsError::Os(libc::EBUSY))
    ));
    assert!(matches!(
        sim.write("uprobe_events", ""),
        Err(FsError::Os(libc::EBUSY))
    ));
    sim.write("events/uprobes/myev/enable", "0").unwrap();
    sim.append("uprobe_events", "-:uprobes/myev").unwrap();
    assert!(sim.try_node("events/uprobes/myev").is_err());
    // ENOENT as an errno of the write, not a missing node (which reads as ENODEV through an
    // open handle).
    assert!(matches!(
        sim.append("uprobe_events", "-:myev"),
        Err(FsError::Os(libc::ENOENT))
    ));
    // Truncation removes the rest, and the empty group with it.
    sim.write("uprobe_events", "").unwrap();
    assert_eq!(sim.read("uprobe_events"), "");
    assert!(sim.try_node("events/uprobes").is_err());
}

#[test]
fn probe_errors_are_logged_like_the_kernel() {
    let sim = Sim::new();
    assert!(matches!(
        sim.append("uprobe_events", "p /bin/sh:10a"),
        Err(FsError::Invalid(_))
    ));
    let log = sim.read("error_log");
    assert!(
        log.ends_with(
            "trace_uprobe: error: Invalid uprobe offset\n  Command: p /bin/sh:10a\n                     ^\n"
        ),
        "{log}"
    );
    // The same probe twice, and a name a static event has.
    sim.append("uprobe_events", "p:ev /bin/sh:10").unwrap();
    assert!(matches!(
        sim.append("uprobe_events", "p:ev /bin/sh:10"),
        Err(FsError::Exists)
    ));
    assert!(sim
        .read("error_log")
        .contains("There is already the exact same probe event"));
    assert!(matches!(
        sim.append("uprobe_events", "p:sched/sched_switch /bin/sh:10"),
        Err(FsError::Exists)
    ));
    // Another place of the same event joins it: two lines, one directory.
    sim.append("uprobe_events", "p:ev /bin/sh:20").unwrap();
    assert_eq!(sim.read("uprobe_events").lines().count(), 2);
    // uprobe_events takes no event probes; a bad line stops the write after the good ones.
    assert!(sim.append("uprobe_events", "e sched.sched_switch").is_err());
    assert!(sim
        .append("uprobe_events", "p /bin/a:1\nbogus\np /bin/b:2")
        .is_err());
    assert!(sim.read("uprobe_events").contains("p_a_0x1"));
    assert!(!sim.read("uprobe_events").contains("p_b_0x2"));
}

#[test]
fn event_probes_fire_with_their_event() {
    let sim = Sim::with_built_in_profile();
    sim.append(
        "dynamic_events",
        "e:sw sched.sched_switch prev=$prev_pid:s32 who=$comm",
    )
    .unwrap();
    assert_eq!(
        sim.read("dynamic_events"),
        "e:eprobes/sw sched.sched_switch prev=$prev_pid:s32 who=$comm\n"
    );
    assert_eq!(
        sim.read("uprobe_events"),
        "",
        "uprobe_events lists uprobes only"
    );
    sim.write("events/eprobes/sw/enable", "1").unwrap();
    sim.write("events/sched/sched_switch/enable", "1").unwrap();
    sim.run_for(10);
    let lines = trace_lines(&sim);
    // 4 switches, each followed by its probe's entry carrying its prev_pid and task.
    assert_eq!(lines.len(), 8, "{lines:?}");
    for pair in lines.chunks(2) {
        let prev = pair[0]
            .0
            .split("prev_pid=")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        assert!(
            pair[1]
                .0
                .contains(&format!(" sw: (sched.sched_switch) prev={prev} who=\"")),
            "{pair:?}"
        );
    }
    // Only the probe enabled: the switches fire for it without being recorded.
    sim.write("trace", "").unwrap();
    sim.write("events/sched/sched_switch/enable", "0").unwrap();
    sim.run_for(10);
    let lines = trace_lines(&sim);
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines.iter().all(|(l, _)| l.contains(" sw: ")));
    sim.write("events/eprobes/sw/enable", "0").unwrap();
    sim.append("dynamic_events", "-:eprobes/sw").unwrap();
    assert_eq!(sim.read("dynamic_events"), "");
}

#[test]
fn probe_events_exist_in_instances_too() {
    let sim = Sim::with_built_in_profile();
    let instances = sim.node("instances");
    sim.control.mkdir(&sim.tree, instances, "i1").unwrap();
    sim.append("uprobe_events", "p:ev /bin/sh:10").unwrap();
    sim.node("instances/i1/events/uprobes/ev/enable");
    sim.write("instances/i1/events/uprobes/ev/enable", "1")
        .unwrap();
    sim.run_for(1000);
    assert!(
        trace_lines(&sim).is_empty(),
        "the top level did not enable it"
    );
    assert!(sim.read("instances/i1/trace").contains(" ev: (0x"));
    assert!(matches!(
        sim.write("uprobe_events", ""),
        Err(FsError::Os(libc::EBUSY))
    ));
}

#[test]
fn event_fork_puts_the_children_of_listed_tasks_on_the_list() {
    let sim = Sim::with_built_in_profile();
    sim.write("set_event_pid", "4242").unwrap();
    // Off: forks happen, the list stays.
    sim.run_for(1000);
    assert_eq!(sim.read("set_event_pid"), "4242\n");
    sim.write("options/event-fork", "1").unwrap();
    sim.write("events/sched/sched_process_fork/enable", "1")
        .unwrap();
    // sched_process_fork fires twice a second: two children of 4242 join the list.
    sim.run_for(1000);
    let pids: Vec<u32> = sim
        .read("set_event_pid")
        .lines()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert!(pids.contains(&4242));
    let forks: Vec<String> = trace_lines(&sim).into_iter().map(|(l, _)| l).collect();
    assert_eq!(forks.len(), 2, "{forks:?}");
    for (fork, child) in forks.iter().zip(pids.iter().filter(|&&p| p != 4242)) {
        assert!(
            fork.ends_with(&format!("child_pid={child}")),
            "{fork} / {pids:?}"
        );
    }
    // Children come and go: at most a few are alive, and the list stays bounded.
    sim.run_for(10_000);
    let alive = sim.read("set_event_pid").lines().count();
    assert!((2..=5).contains(&alive), "{alive}");
    // The event need not be enabled: the kernel follows forks through its own hook.
    sim.write("events/sched/sched_process_fork/enable", "0")
        .unwrap();
    sim.write("set_event_pid", "4242").unwrap();
    sim.run_for(1000);
    assert_eq!(
        sim.read("set_event_pid").lines().count(),
        3,
        "{}",
        sim.read("set_event_pid")
    );
}
