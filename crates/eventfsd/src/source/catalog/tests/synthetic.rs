//! Synthetic events over the guest kernel's catalog (the embedded catalog's kernel has none).

use eventfs_core::FsError;

use super::super::RateProfile;
use super::sim::Sim;

#[test]
fn synthetic_events_are_defined_listed_and_removed() {
    let sim = Sim::debian_6_1(RateProfile::uniform(10.0));
    sim.write("synthetic_events", "lat u64 lat; pid_t pid\n")
        .unwrap();
    sim.append("dynamic_events", "s:two char name[]\n").unwrap();
    assert_eq!(
        sim.read("synthetic_events"),
        "lat\tu64 lat; pid_t pid\ntwo\tchar[] name\n"
    );
    assert_eq!(
        sim.read("dynamic_events"),
        "s:synthetic/lat\tu64 lat; pid_t pid\ns:synthetic/two\tchar[] name\n"
    );
    assert!(sim
        .read("events/synthetic/lat/format")
        .contains("\tfield:pid_t pid;\toffset:16;"));
    // Defined twice: EEXIST with the kernel's entry.
    assert!(matches!(
        sim.append("synthetic_events", "lat u64 x\n"),
        Err(FsError::Exists)
    ));
    assert!(sim
        .read("error_log")
        .contains("synthetic_events: error: Event already exists"));
    // Nothing generates a synthetic event but a histogram action: enabled, it stays silent.
    sim.write("events/synthetic/lat/enable", "1\n").unwrap();
    sim.run_for(1000);
    assert!(sim.records("trace").is_empty());
    assert!(matches!(
        sim.append("synthetic_events", "!lat\n"),
        Err(FsError::Os(libc::EBUSY))
    ));
    sim.write("events/synthetic/lat/enable", "0\n").unwrap();
    sim.append("synthetic_events", "!lat\n").unwrap();
    assert!(matches!(
        sim.append("synthetic_events", "!lat\n"),
        Err(FsError::Os(libc::ENOENT))
    ));
    sim.write("synthetic_events", "").unwrap();
    assert_eq!(sim.read("dynamic_events"), "");
    assert!(sim.try_node("events/synthetic").is_err());
}

#[test]
fn a_kernel_without_synthetic_events_has_no_file() {
    let sim = Sim::new();
    assert!(sim.try_node("synthetic_events").is_err());
}
