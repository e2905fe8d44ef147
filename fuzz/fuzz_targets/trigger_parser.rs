//! The `trigger` parser against a real event's fields (first byte picks the event); what
//! parses is applied to a trigger set twice (add, then the same command again).
#![no_main]

use ftrace_text::trigger::{self, TriggerSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((sel, text)) = eventfsd_fuzz::selector_and_text(data) else {
        return;
    };
    let (system, event, format) = eventfsd_fuzz::select_event(sel);
    let fields = eventfsd_fuzz::fields_of(format);
    match trigger::parse(&text, &fields, &eventfsd_fuzz::event_exists) {
        Ok(cmd) => {
            let mut set = TriggerSet::new();
            let _ = set.apply(cmd.clone());
            let _ = set.apply(cmd);
            for t in set.triggers() {
                let _ = format!("{t:?}");
            }
        }
        Err(e) => {
            assert_ne!(e.errno(), 0);
            let _ = e.error_log_entry(system, event);
        }
    }
});
