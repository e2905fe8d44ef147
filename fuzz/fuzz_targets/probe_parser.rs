//! The dynamic-event parser (`uprobe_events`/`kprobe_events`/`synthetic_events`/
//! `dynamic_events` lines): the first byte picks the file; what parses is laid out (format, listing, value sources) and its
//! format read back.
#![no_main]

use ftrace_text::format;
use ftrace_text::probe::{self, ProbeCommand, Via};
use libfuzzer_sys::fuzz_target;

/// Event probes may attach to any event of the embedded catalog; kprobes may probe a few
/// functions (one of them listed twice).
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

    fn has_kprobes(&self) -> bool {
        true
    }

    fn has_synthetic_events(&self) -> bool {
        true
    }

    fn synthetic_event_exists(&self, name: &str) -> bool {
        name == "wakeup_latency"
    }

    fn functions_named(&self, symbol: &str) -> usize {
        match symbol {
            "vfs_read" | "schedule" | "kvm:kvm_exit" => 1,
            "show_stat" => 2,
            _ => 0,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((sel, text)) = eventfsd_fuzz::selector_and_text(data) else {
        return;
    };
    let via = match sel % 4 {
        0 => Via::UprobeEvents,
        1 => Via::DynamicEvents,
        2 => Via::KprobeEvents,
        _ => Via::SyntheticEvents,
    };
    for line in probe::command_lines(&text) {
        match probe::parse_command(line, via, &Catalog) {
            Ok(Some(ProbeCommand::Define(def))) => {
                let layout = def.layout(u32::from(sel) + 2000);
                // The format it made is one the format reader takes, field by field.
                let fields: Vec<_> = format::fields(&layout.format).collect();
                let expected = match &def.kind {
                    probe::ProbeKind::Synthetic { fields } => 4 + fields.len(),
                    probe::ProbeKind::Eprobe { .. } => 4 + def.args.len(),
                    _ => 5 + def.args.len() + usize::from(def.is_return()),
                };
                assert_eq!(fields.len(), expected);
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
