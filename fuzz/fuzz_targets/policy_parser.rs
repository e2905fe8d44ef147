//! The host source's TOML policy parser, then its globs matched against paths from the input.
#![no_main]

use eventfsd::source::host::policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The policy text, then (after a line "#--") paths to try against it.
    let (policy, probes) = match text.split_once("\n#--\n") {
        Some((p, rest)) => (p, rest),
        None => (
            &*text,
            "sched/sched_switch\nevents/sched/sched_switch/filter\nbuffer_size_kb",
        ),
    };
    let Ok(policy) = Policy::parse(policy) else {
        return;
    };
    for probe in probes.lines().take(16) {
        let (system, event) = probe.split_once('/').unwrap_or((probe, "x"));
        let _ = policy.event_visible(system, event);
        let _ = policy.file_writable(probe);
        let _ = policy.global_file_allowed(probe);
    }
});
