//! The function tracer over the guest kernel's catalog (its function list; the embedded
//! catalog's kernel hides it).

use super::sim::Sim;

fn sim() -> Sim {
    Sim::debian_6_1_firing("ftrace:function 100\n")
}

#[test]
fn calls_of_the_selected_functions_are_recorded() {
    let sim = sim();
    assert_eq!(sim.read("available_tracers"), "function nop\n");
    assert!(sim.read("available_filter_functions").lines().count() > 10_000);
    assert_eq!(
        sim.read("set_ftrace_filter"),
        "#### all functions enabled ####\n"
    );
    sim.write("set_ftrace_filter", "vfs_read\n").unwrap();
    assert_eq!(sim.read("set_ftrace_filter"), "vfs_read\n");
    // Appended, a name that matches nothing fails and leaves the filter as it was (`>`
    // would have emptied it first: every function, as in the kernel).
    assert!(sim
        .append("set_ftrace_filter", "no_such_function\n")
        .is_err());
    assert_eq!(sim.read("set_ftrace_filter"), "vfs_read\n");
    sim.write("current_tracer", "function\n").unwrap();
    assert_eq!(sim.read("current_tracer"), "function\n");
    sim.run_for(100);
    // Setting the current tracer again keeps the buffer (another one empties it).
    sim.write("current_tracer", "function\n").unwrap();
    assert!(sim.read("trace").starts_with("# tracer: function\n"));
    let recorded = sim.records("trace");
    assert_eq!(recorded.len(), 10, "{recorded:?}");
    assert!(
        recorded.iter().all(|l| l.contains(": vfs_read <-")),
        "{recorded:?}"
    );
    // notrace wins over the filter; set_ftrace_pid picks the tasks.
    sim.write("set_ftrace_notrace", "vfs_read\n").unwrap();
    sim.write("trace", "").unwrap();
    sim.run_for(100);
    assert!(sim.records("trace").is_empty());
    sim.write("set_ftrace_notrace", "").unwrap();
    sim.write("set_ftrace_pid", "4242\n").unwrap();
    sim.run_for(100);
    let recorded = sim.records("trace");
    assert_eq!(recorded.len(), 10);
    assert!(
        recorded.iter().all(|l| l.contains("-4242 ")),
        "{recorded:?}"
    );
    // Back to nop: the buffer starts empty and nothing more is recorded.
    sim.write("current_tracer", "nop\n").unwrap();
    sim.run_for(100);
    assert!(sim.records("trace").is_empty());
    assert!(sim.read("trace").starts_with("# tracer: nop\n"));
}

#[test]
fn a_catalog_without_functions_offers_no_function_tracer() {
    let sim = Sim::new();
    assert_eq!(sim.read("available_tracers"), "nop\n");
    assert!(sim.try_node("set_ftrace_filter").is_err());
    assert!(sim.write("current_tracer", "function\n").is_err());
}
