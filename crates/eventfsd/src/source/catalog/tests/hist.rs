//! Histograms over the guest kernel's catalog (Debian's 6.1 has `hist` files; the embedded
//! 6.18 catalog does not), on a manual clock.

use super::sim::Sim;

const FORK: &str = "events/sched/sched_process_fork";
const EXEC: &str = "events/sched/sched_process_exec";

/// 10 forks and 10 execs a second, nothing else.
fn sim() -> Sim {
    Sim::debian_6_1_firing("sched:sched_process_fork 10\nsched:sched_process_exec 10\n")
}

fn hits(sim: &Sim, event: &str) -> u64 {
    let text = sim.read(&format!("{event}/hist"));
    text.lines()
        .find_map(|l| l.strip_prefix("    Hits: "))
        .unwrap_or_else(|| panic!("no totals in {text:?}"))
        .parse()
        .unwrap()
}

#[test]
fn a_histogram_counts_every_occurrence_in_soft_mode() {
    let sim = sim();
    assert_eq!(sim.read(&format!("{FORK}/hist")), "");
    sim.write(&format!("{FORK}/trigger"), "hist:keys=common_pid\n")
        .unwrap();
    assert_eq!(sim.read(&format!("{FORK}/enable")), "0*\n");
    sim.run_for(1000);
    assert_eq!(hits(&sim, FORK), 10);
    let text = sim.read(&format!("{FORK}/hist"));
    assert!(text.starts_with(
        "# event histogram\n#\n# trigger info: hist:keys=common_pid:vals=hitcount:sort=hitcount:size=2048 [active]\n#\n\n{ common_pid: "
    ), "{text}");
    let counted: u64 = text
        .lines()
        .filter_map(|l| l.split(" hitcount: ").nth(1))
        .map(|n| n.trim().parse::<u64>().unwrap())
        .sum();
    assert_eq!(counted, 10, "{text}");
    // Paused: nothing more; 6.1 never finds the histogram :clear names.
    sim.append(&format!("{FORK}/trigger"), "hist:keys=common_pid:pause\n")
        .unwrap();
    sim.run_for(1000);
    assert_eq!(hits(&sim, FORK), 10);
    let clear = sim.append(&format!("{FORK}/trigger"), "hist:keys=common_pid:clear\n");
    assert!(clear.is_err(), "{clear:?}");
    assert!(sim
        .read("error_log")
        .contains("Can't clear or continue a nonexistent hist trigger"));
}

#[test]
fn an_open_hist_file_reads_one_text() {
    use eventfs_core::control::ControlFiles;
    let sim = sim();
    sim.write(&format!("{FORK}/trigger"), "hist:keys=common_timestamp\n")
        .unwrap();
    sim.run_for(1000);
    let node = sim.node(&format!("{FORK}/hist"));
    let handle = sim.control.open(&sim.tree, node, super::sim::READ).unwrap();
    let read = |offset| {
        sim.control
            .read(&sim.tree, node, handle, offset, 1 << 20, false)
            .unwrap()
    };
    let first = read(0);
    sim.run_for(1000);
    // Later reads of the same open file continue the text of the open (seq_file).
    assert_eq!(read(0), first);
    assert!(read(first.len() as u64).is_empty());
    sim.control.release(handle);
    assert_ne!(sim.read(&format!("{FORK}/hist")).into_bytes(), first);
}

#[test]
fn disable_hist_pauses_the_target_when_its_event_fires() {
    let sim = sim();
    sim.write(&format!("{FORK}/trigger"), "hist:keys=common_pid\n")
        .unwrap();
    sim.write(
        &format!("{EXEC}/trigger"),
        "disable_hist:sched:sched_process_fork\n",
    )
    .unwrap();
    sim.run_for(1000);
    let listing = sim.read(&format!("{FORK}/trigger"));
    assert_eq!(
        listing,
        "hist:keys=common_pid:vals=hitcount:sort=hitcount:size=2048 [paused]\n"
    );
    // Paused by the first exec: at most the forks before it counted.
    assert!(hits(&sim, FORK) < 10);
}

#[test]
fn named_histograms_share_one_table() {
    let sim = sim();
    for event in [FORK, EXEC] {
        sim.write(
            &format!("{event}/trigger"),
            "hist:name=both:keys=common_pid\n",
        )
        .unwrap();
    }
    sim.run_for(500);
    assert_eq!(hits(&sim, FORK), 10);
    let body = |event: &str| {
        let text = sim.read(&format!("{event}/hist"));
        text.lines()
            .filter(|l| l.starts_with('{'))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(body(FORK), body(EXEC));
    let other = sim.write(
        "events/sched/sched_switch/trigger",
        "hist:name=both:keys=prev_pid\n",
    );
    assert!(other.is_err());
    assert!(sim
        .read("error_log")
        .contains("Named hist trigger doesn't match existing named trigger"));
}

#[test]
fn only_what_the_simulation_does_is_advertised() {
    let sim = sim();
    assert_eq!(sim.read("available_tracers"), "function nop\n");
    let readme = sim.read("README");
    assert!(readme.contains("hist trigger\t- If set"), "{readme}");
    // Variables, expressions, handlers and actions are simulated.
    for kept in [
        "<var1>",
        "arithmetic",
        "onmatch(",
        "onmax(",
        "onchange(",
        "save(field",
        "snapshot()",
    ] {
        assert!(readme.contains(kept), "{kept} not in the README");
    }
    // Synthetic events can be defined.
    assert!(
        readme.contains("events/synthetic_events\t- Create"),
        "{readme}"
    );
    // The 6.1 kernel has histograms and snapshots: its help lists every command.
    assert_eq!(
        sim.read(&format!("{FORK}/trigger")),
        "# Available triggers:\n# traceon traceoff snapshot stacktrace enable_event disable_event enable_hist disable_hist hist\n"
    );
}

#[test]
fn onmatch_generates_synthetic_events_from_variables() {
    let sim = Sim::debian_6_1_firing("sched:sched_waking 200\nsched:sched_switch 200\n");
    sim.write(
        "synthetic_events",
        "wakeup_latency u64 lat; pid_t pid; char comm[16]\n",
    )
    .unwrap();
    sim.write(
        "events/sched/sched_waking/trigger",
        "hist:keys=pid:ts0=common_timestamp.usecs\n",
    )
    .unwrap();
    let switch = "hist:keys=next_pid:wakeup_lat=common_timestamp.usecs-$ts0:\
                  onmatch(sched.sched_waking).wakeup_latency($wakeup_lat,next_pid,next_comm)";
    sim.write("events/sched/sched_switch/trigger", &format!("{switch}\n"))
        .unwrap();
    assert_eq!(
        sim.read("events/sched/sched_switch/trigger"),
        "hist:keys=next_pid:vals=hitcount:wakeup_lat=common_timestamp.usecs-$ts0:\
         sort=hitcount:size=2048:clock=global:onmatch(sched.sched_waking).\
         wakeup_latency($wakeup_lat,next_pid,next_comm) [active]\n"
    );
    sim.write("events/synthetic/wakeup_latency/enable", "1\n")
        .unwrap();
    sim.run_for(1000);
    let lines = sim.records("trace");
    assert!(lines.len() > 10, "{lines:?}");
    for line in &lines {
        let body = line.split(" wakeup_latency: lat=").nth(1).expect(line);
        let lat: u64 = body.split(' ').next().unwrap().parse().expect(line);
        assert!(lat < 1_000_000, "{line}");
        assert!(body.contains(" pid=") && body.contains(" comm="), "{line}");
    }
    // The waking histogram cannot go while the switch one reads its variable.
    assert!(matches!(
        sim.append(
            "events/sched/sched_waking/trigger",
            "!hist:keys=pid:ts0=common_timestamp.usecs\n"
        ),
        Err(eventfs_core::FsError::Os(libc::EBUSY))
    ));
    // A switch counts only when its task's waking left a timestamp, which it consumes: each
    // counted switch generated one event.
    let hist = sim.read("events/sched/sched_switch/hist");
    assert!(
        hist.contains(&format!("    Hits: {}\n", lines.len())),
        "{} events, {hist}",
        lines.len()
    );
}

#[test]
fn references_must_exist_when_the_trigger_is_made() {
    let sim = sim();
    let refused = |text: &str, message: &str| {
        assert!(sim
            .write("events/sched/sched_switch/trigger", text)
            .is_err());
        let log = sim.read("error_log");
        assert!(log.contains(message), "{text}: {log}");
    };
    refused(
        "hist:keys=next_pid:lat=common_timestamp.usecs-$nosuch\n",
        "hist:sched:sched_switch: error: Couldn't find variable",
    );
    refused(
        "hist:keys=next_pid:onmatch(sched.sched_waking).nosynth(next_pid)\n",
        "error: Couldn't find synthetic event",
    );
    sim.write("synthetic_events", "one u64 a; pid_t p\n")
        .unwrap();
    // Parameters are type-checked in order, then counted.
    refused(
        "hist:keys=next_pid:onmatch(sched.sched_waking).one(next_pid,next_prio)\n",
        "error: Param type doesn't match synthetic event field type",
    );
    refused(
        "hist:keys=next_pid:x=next_prio:onmatch(sched.sched_waking).one($x)\n",
        "error: Param type doesn't match synthetic event field type",
    );
    // An expression has the type of its first operand: next_prio*2 is an int.
    refused(
        "hist:keys=next_pid:x=next_prio*2:onmatch(sched.sched_waking).one($x)\n",
        "error: Param type doesn't match synthetic event field type",
    );
    refused(
        "hist:keys=next_pid:x=2*next_prio:onmatch(sched.sched_waking).one($x)\n",
        "error: Param count doesn't match synthetic event field count",
    );
}

/// The `hist` file of `sched_switch` after 1 s of switches at 200/s under `trigger`
/// (`enable`: with the event itself recorded), and the simulation.
fn switch_hist(trigger: &str, enable: bool) -> (String, Sim) {
    let sim = Sim::debian_6_1_firing("sched:sched_switch 200\n");
    let event = "events/sched/sched_switch";
    sim.write(&format!("{event}/trigger"), &format!("{trigger}\n"))
        .unwrap();
    if enable {
        sim.write(&format!("{event}/enable"), "1\n").unwrap();
    }
    sim.run_for(1000);
    (sim.read(&format!("{event}/hist")), sim)
}

#[test]
fn onmax_keeps_the_largest_value_and_the_fields_of_its_event() {
    let (hist, _) = switch_hist(
        "hist:keys=next_pid:prio=next_prio:onmax($prio).save(next_comm,prev_pid)",
        false,
    );
    let tracked: Vec<&str> = hist.lines().filter(|l| l.starts_with("\tmax: ")).collect();
    let entries = hist.lines().filter(|l| l.starts_with('{')).count();
    assert!(entries > 1 && tracked.len() == entries, "{hist}");
    for line in tracked {
        // `\tmax: %10llu  next_comm: %-32s  prev_pid: %10llu`
        let (max, rest) = line["\tmax: ".len()..].split_at(10);
        assert!(max.trim().parse::<u64>().is_ok(), "{line}");
        let comm = rest.strip_prefix("  next_comm: ").expect(line);
        assert_eq!(comm.len(), 32 + "  prev_pid: ".len() + 10, "{line}");
        assert!(comm[32..].starts_with("  prev_pid: "), "{line}");
    }
}

#[test]
fn a_snapshot_action_swaps_the_buffer_when_its_variable_passes_across_entries() {
    let (hist, sim) = switch_hist("hist:keys=next_pid:p=next_prio:onmax($p).snapshot()", true);
    // No per-entry block for a snapshot action; one block for the last snapshot.
    assert!(!hist.contains("\tmax:"), "{hist}");
    let details = hist
        .split("\nSnapshot taken (see tracing/snapshot).  Details:\n")
        .nth(1)
        .expect(&hist);
    assert!(
        details.starts_with("\ttriggering value { onmax($p) }: "),
        "{details}"
    );
    assert!(
        details.contains("\ttriggered by event with key: { next_pid: "),
        "{details}"
    );
    // The snapshot buffer was allocated with the trigger and swapped in: it reads as a trace.
    let snapshot = sim.read("snapshot");
    assert!(!snapshot.contains("# * Snapshot is freed *"), "{snapshot}");
}
