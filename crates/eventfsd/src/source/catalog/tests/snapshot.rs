//! The snapshot buffer over the guest kernel's catalog (Debian's 6.1 has `snapshot`; the
//! embedded 6.18 catalog does not).

use super::sim::Sim;

fn sim() -> Sim {
    Sim::debian_6_1_firing("sched:sched_process_fork 10\n")
}

#[test]
fn echo_1_swaps_and_0_frees() {
    let sim = sim();
    assert!(sim.read("snapshot").contains("# * Snapshot is freed *\n"));
    sim.write("trace_marker", "first\n").unwrap();
    sim.write("snapshot", "1\n").unwrap();
    assert!(sim.records("trace").is_empty());
    let taken = sim.records("snapshot");
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert!(taken[0].ends_with("tracing_mark_write: first"), "{taken:?}");
    sim.write("trace_marker", "second\n").unwrap();
    sim.write("snapshot", "1\n").unwrap();
    assert!(sim.records("trace")[0].ends_with(": first"));
    assert!(sim.records("snapshot")[0].ends_with(": second"));
    // A per-CPU file neither frees nor swaps (no CONFIG_RING_BUFFER_ALLOW_SWAP).
    for value in ["0\n", "1\n"] {
        assert!(sim.write("per_cpu/cpu0/snapshot", value).is_err());
    }
    sim.write("snapshot", "2\n").unwrap();
    assert!(sim
        .read("snapshot")
        .contains("# * Snapshot is allocated *\n"));
    sim.write("snapshot", "0\n").unwrap();
    assert!(sim.read("snapshot").contains("# * Snapshot is freed *\n"));
    assert!(sim.write("snapshot", "abc\n").is_err());
}

#[test]
fn the_trigger_allocates_and_swaps_when_its_event_fires() {
    let sim = sim();
    sim.write("trace_marker", "before\n").unwrap();
    sim.write("events/sched/sched_process_fork/trigger", "snapshot:1\n")
        .unwrap();
    assert!(sim
        .read("snapshot")
        .contains("# * Snapshot is allocated *\n"));
    sim.run_for(1000);
    assert_eq!(
        sim.read("events/sched/sched_process_fork/trigger"),
        "snapshot:count=0\n"
    );
    assert!(sim.records("snapshot")[0].ends_with(": before"));
    assert!(sim.records("trace").is_empty());
}
