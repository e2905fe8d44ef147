//! Kprobes over the guest kernel's catalog (its function list; the embedded catalog's kernel
//! has no `kprobe_events`).

use eventfs_core::control::ControlFiles;
use eventfs_core::FsError;

use super::sim::{Sim, WRITE};

fn sim() -> Sim {
    Sim::debian_6_1_firing("function:vfs_read 100\nfunction:vfs_write 50\n")
}

#[test]
fn a_kprobe_fires_at_its_functions_rate_and_prints_its_place() {
    let sim = sim();
    sim.write("kprobe_events", "p:myk vfs_read $arg1\n")
        .unwrap();
    sim.append("kprobe_events", "r:myr vfs_write $retval\n")
        .unwrap();
    assert_eq!(
        sim.read("kprobe_events"),
        "p:kprobes/myk vfs_read arg1=$arg1\nr10:kprobes/myr vfs_write arg1=$retval\n"
    );
    sim.write("events/kprobes/enable", "1\n").unwrap();
    sim.run_for(100);
    let recorded = sim.records("trace");
    let (entries, returns): (Vec<_>, Vec<_>) =
        recorded.iter().partition(|line| line.contains(" myk: "));
    assert_eq!((entries.len(), returns.len()), (10, 5), "{recorded:?}");
    assert!(
        entries
            .iter()
            .all(|l| l.contains(" myk: (vfs_read+0x0/0x40) arg1=0x")),
        "{entries:?}"
    );
    assert!(
        returns
            .iter()
            .all(|l| l.contains("/0x40 <- vfs_write) arg1=0x")),
        "{returns:?}"
    );
    let profile = sim.read("kprobe_profile");
    let hits: Vec<&str> = profile
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(hits, ["10", "5"], "{profile}");
    // Enabled, it cannot go; disabled, it goes with its directory and its group.
    assert!(sim.append("kprobe_events", "-:myk\n").is_err());
    sim.write("events/kprobes/enable", "0\n").unwrap();
    sim.write("kprobe_events", "").unwrap();
    assert_eq!(sim.read("kprobe_events"), "");
    assert_eq!(sim.read("kprobe_profile"), "");
    assert!(sim.try_node("events/kprobes").is_err());
}

#[test]
fn probes_appended_to_an_event_add_their_rates() {
    let sim = sim();
    sim.write("kprobe_events", "p:multi vfs_read\n").unwrap();
    sim.append("kprobe_events", "p:multi vfs_write\n").unwrap();
    sim.write("events/kprobes/multi/enable", "1\n").unwrap();
    sim.run_for(100);
    let recorded = sim.records("trace");
    assert_eq!(recorded.len(), 15, "{recorded:?}");
    assert!(recorded.iter().any(|l| l.contains("(vfs_write+0x0/0x40)")));
    assert!(recorded.iter().any(|l| l.contains("(vfs_read+0x0/0x40)")));
}

#[test]
fn a_catalog_without_functions_has_no_kprobes() {
    let sim = Sim::new();
    assert!(sim.try_node("kprobe_events").is_err());
    assert!(sim.try_node("kprobe_profile").is_err());
    // dynamic_events hands `p` to the uprobe parser alone there, which wants a path.
    assert!(sim.try_node("dynamic_events").is_ok());
    assert!(sim.append("dynamic_events", "p:k vfs_read\n").is_err());
    sim.append("dynamic_events", "p:u /bin/sh:0x10\n").unwrap();
}

#[test]
fn control_writes_to_a_removed_kprobe_are_enodev_not_a_parse_error() {
    let sim = sim();
    sim.write("kprobe_events", "p:gone vfs_read\n").unwrap();
    sim.write("events/kprobes/gone/filter", "common_pid != 0\n")
        .unwrap();
    let open = |file: &str| {
        let node = sim.node(&format!("events/kprobes/gone/{file}"));
        (node, sim.control.open(&sim.tree, node, WRITE).unwrap())
    };
    let (filter, trigger) = (open("filter"), open("trigger"));
    // Removed between the opens and the writes (a host-side deletion while a guest writes):
    // the writes meet a retired event, whose format is gone.
    sim.tree.remove("kprobes", Some("gone")).unwrap();
    for ((node, handle), text) in [(filter, "common_pid != 0\n"), (trigger, "traceoff\n")] {
        assert_eq!(
            sim.control.write(&sim.tree, node, handle, text.as_bytes()),
            Err(FsError::Removed),
            "{text}"
        );
        sim.control.release(handle);
    }
}
