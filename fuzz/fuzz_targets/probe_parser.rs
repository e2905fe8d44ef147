//! The dynamic-probe parser (`uprobe_events`/`dynamic_events` lines): first byte picks the
//! file; what parses is laid out (format, listing, value sources) and its format read back.
#![no_main]

use ftrace_text::format;
use ftrace_text::probe::{self, ProbeCommand, Via};
use libfuzzer_sys::fuzz_target;

/// Event probes may attach to any event of the embedded catalog.
struct Catalog;

impl probe::AttachTarget for Catalog {
    fn fields_of(&self, system: &str, event: &str) -> Option<Vec<(String, bool)>> {
        let (_, _, text) = eventfsd_fuzz::embedded_events()
            .iter()
            .find(|(s, e, _)| *s == system && *e == event)?;
        Some(
            format::fields(text)
                .map(|f| (f.name.to_string(), format::is_string(&f)))
                .collect(),
        )
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((sel, text)) = eventfsd_fuzz::selector_and_text(data) else {
        return;
    };
    let via = if sel & 1 == 0 {
        Via::UprobeEvents
    } else {
        Via::DynamicEvents
    };
    for line in probe::command_lines(&text) {
        match probe::parse_command(line, via, &Catalog) {
            Ok(Some(ProbeCommand::Define(def))) => {
                let layout = def.layout(u32::from(sel) + 2000);
                // The format it made is one the format reader takes, field by field.
                let fields: Vec<_> = format::fields(&layout.format).collect();
                assert_eq!(
                    fields.len(),
                    4 + def.args.len()
                        + usize::from(matches!(def.kind, probe::ProbeKind::Uprobe { .. }))
                        + usize::from(def.is_return())
                );
                let _ = def.listing();
                let _ = def.value_sources();
            }
            Ok(_) => {}
            Err(e) => {
                assert_ne!(e.errno, 0);
                if let Some(logged) = e.logged {
                    assert!(logged.position <= logged.command.len() + 1);
                    let _ = logged.entry_text();
                }
            }
        }
    }
});
