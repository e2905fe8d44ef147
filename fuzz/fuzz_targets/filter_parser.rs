//! The `filter` parser against a real event's fields (first byte picks the event), and the
//! compiled filter evaluated against a record built from those fields.
#![no_main]

use ftrace_text::filter::{self, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((sel, text)) = eventfsd_fuzz::selector_and_text(data) else {
        return;
    };
    let (_, _, format) = eventfsd_fuzz::select_event(sel);
    let fields = eventfsd_fuzz::fields_of(format);
    let cpus = u32::from(sel % 5) + 1;
    match filter::parse_with_nr_cpus(&text, &fields, cpus) {
        Ok(f) => {
            // Whatever parsed can be shown and evaluated.
            let _ = f.filter_file_text();
            let _ = f.field_names();
            let value_of = |name: &str| -> Option<Value<'static>> {
                let field = fields.iter().find(|f| f.name == name);
                Some(match field {
                    Some(f) if ftrace_text::format::is_string(f) => Value::Str("sh"),
                    Some(f) if f.signed => Value::Int(-(f.offset as i64)),
                    Some(f) => Value::UInt(u64::from(f.size) << 60),
                    None => Value::Int(0),
                })
            };
            let _ = f.matches(&value_of);
        }
        Err(e) => {
            assert_ne!(e.errno(), 0);
            let _ = e.filter_file_text();
            let _ = e.error_log_entry();
            let _ = e.reason();
        }
    }
    let _ = filter::parse_for_system(&text, &fields);
});
