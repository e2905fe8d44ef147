//! The stats in the Prometheus text exposition format (version 0.0.4), as node_exporter's
//! textfile collector reads them: `# HELP` and `# TYPE` once per metric family, then samples.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use eventfs_core::Tree;

use super::{FigureKind, ProcessFigures, Stats};

/// Metric names start with this.
const PREFIX: &str = "eventfsd";

/// Escapes a label value: backslash, double quote and newline (the format's only escapes).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Accumulates metric families, each sample labelled with the daemon's `vm`.
struct Exposition {
    text: String,
    vm: String,
}

impl Exposition {
    /// Starts a family: its help line and type.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {PREFIX}_{name} {help}");
        let _ = writeln!(self.text, "# TYPE {PREFIX}_{name} {kind}");
    }

    /// One sample of the current family; `labels` come after `vm`.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.text, "{PREFIX}_{name}{{vm=\"{}\"", self.vm);
        for (key, val) in labels {
            let _ = write!(self.text, ",{key}=\"{}\"", escape(val));
        }
        let _ = writeln!(self.text, "}} {value}");
    }

    /// A family of one unlabelled sample.
    fn figure(&mut self, kind: FigureKind, name: &str, help: &str, value: u64) {
        let kind = match kind {
            FigureKind::Counter => "counter",
            FigureKind::Gauge => "gauge",
        };
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// Renders the stats. `vm` names the guest (the label every sample carries).
pub fn render(stats: &Stats, tree: &Tree, process: &ProcessFigures, vm: &str) -> String {
    let mut out = Exposition {
        text: String::new(),
        vm: escape(vm),
    };
    out.family(
        "build_info",
        "gauge",
        "Always 1; the version label says which eventfsd this is.",
    );
    out.sample("build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1);

    out.family(
        "requests_total",
        "counter",
        "FUSE requests received, by opcode.",
    );
    for (opcode, n) in stats.requests_by_opcode() {
        out.sample("requests_total", &[("opcode", &opcode)], n);
    }
    use FigureKind::{Counter, Gauge};
    let transport = &stats.transport;
    let figures = [
        (
            Counter,
            "request_errors_total",
            "Requests answered with an errno.",
            &stats.errors,
        ),
        (
            Counter,
            "read_bytes_total",
            "Bytes returned by READ.",
            &stats.bytes_read,
        ),
        (
            Counter,
            "written_bytes_total",
            "Bytes accepted by WRITE.",
            &stats.bytes_written,
        ),
        (
            Counter,
            "sessions_total",
            "FUSE sessions started (INIT), including guest reboots.",
            &stats.sessions,
        ),
        (
            Counter,
            "over_forgets_total",
            "FORGETs for more references than were handed out.",
            &stats.over_forgets,
        ),
        (
            Gauge,
            "open_handles",
            "Files the guest has open.",
            &stats.open_handles,
        ),
        (
            Counter,
            "vhost_user_connections_total",
            "vhost-user connections accepted.",
            &transport.connections,
        ),
        (
            Counter,
            "vhost_user_chains_total",
            "Descriptor chains handed back to the guest.",
            &transport.chains_processed,
        ),
        (
            Counter,
            "vhost_user_error_replies_total",
            "Chains answered with an error by the transport itself.",
            &transport.error_replies,
        ),
        (
            Counter,
            "vhost_user_unanswerable_chains_total",
            "Chains handed back empty because no reply fit.",
            &transport.chains_unanswerable,
        ),
        (
            Counter,
            "vhost_user_stale_completions_total",
            "Completions dropped because the ring was stopped meanwhile.",
            &transport.stale_completions,
        ),
    ];
    for (kind, name, help, value) in figures {
        out.figure(kind, name, help, value.load(Relaxed));
    }
    out.figure(
        Gauge,
        "materialised_nodes",
        "Nodes with per-node state (looked up by the guest and not forgotten).",
        tree.materialised() as u64,
    );
    for figure in stats.source_figures() {
        let (name, help) = match figure.kind {
            Counter => (
                format!("source_{}_total", figure.name),
                "Event source counter (see the README's stats section).",
            ),
            Gauge => (
                format!("source_{}", figure.name),
                "Event source level (see the README's stats section).",
            ),
        };
        out.figure(figure.kind, &name, help, figure.value);
    }
    for (name, help, value) in [
        (
            "process_resident_memory_bytes",
            "Resident memory of the serving process.",
            process.resident_bytes,
        ),
        (
            "process_pss_bytes",
            "Proportional set size: shared pages divided among the processes that map them.",
            process.pss_bytes,
        ),
        (
            "process_private_memory_bytes",
            "Memory only this daemon maps: what one more guest costs.",
            process.private_bytes,
        ),
    ] {
        if let Some(value) = value {
            out.figure(Gauge, name, help, value);
        }
    }
    out.family(
        "process_cpu_seconds_total",
        "counter",
        "CPU time of the serving process, by mode.",
    );
    out.sample(
        "process_cpu_seconds_total",
        &[("mode", "user")],
        process.user_cpu.as_secs_f64(),
    );
    out.sample(
        "process_cpu_seconds_total",
        &[("mode", "system")],
        process.system_cpu.as_secs_f64(),
    );
    out.text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use super::*;
    use crate::stats::SourceFigure;
    use eventfs_core::TreeConfig;

    /// Checks the exposition format's rules that a scraper enforces: every sample's family was
    /// declared once, with HELP before TYPE, before its samples; names and labels are valid.
    fn check_exposition(text: &str) -> Vec<(String, String, String)> {
        let valid_name = |n: &str| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !n.starts_with(|c: char| c.is_ascii_digit())
        };
        let mut declared = BTreeSet::new();
        let mut current = String::new();
        let mut samples = Vec::new();
        let mut lines = text.lines().peekable();
        assert!(text.ends_with('\n'));
        while let Some(line) = lines.next() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                assert!(valid_name(name), "{line}");
                assert!(declared.insert(name.to_string()), "declared twice: {name}");
                let next = lines.next().expect("TYPE after HELP");
                let kind = next.strip_prefix(&format!("# TYPE {name} ")).expect(next);
                assert!(["counter", "gauge"].contains(&kind), "{next}");
                current = name.to_string();
                continue;
            }
            let (name, rest) = line.split_once('{').expect(line);
            assert_eq!(name, current, "sample outside its family: {line}");
            let (labels, value) = rest.rsplit_once("} ").expect(line);
            assert!(labels.starts_with("vm=\""), "{line}");
            value.parse::<f64>().expect(line);
            samples.push((name.to_string(), labels.to_string(), value.to_string()));
        }
        samples
    }

    #[test]
    fn renders_valid_exposition_with_every_figure() {
        let stats = Stats::default();
        stats.count_request(1);
        stats.count_request(1);
        stats.bytes_read.store(4096, Relaxed);
        let _ = stats.source.set(Box::new(|| {
            vec![
                SourceFigure {
                    name: "records",
                    value: 9,
                    kind: FigureKind::Counter,
                },
                SourceFigure {
                    name: "open_handles",
                    value: 2,
                    kind: FigureKind::Gauge,
                },
            ]
        }));
        let tree = Tree::embedded(TreeConfig::default());
        let process = ProcessFigures {
            private_bytes: Some(1 << 20),
            user_cpu: Duration::from_millis(1500),
            ..ProcessFigures::default()
        };
        let text = render(&stats, &tree, &process, "guest \"7\"\\");
        let samples = check_exposition(&text);
        let find = |name: &str| {
            samples
                .iter()
                .find(|(n, _, _)| n == name)
                .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
                .clone()
        };
        let vm = r#"vm="guest \"7\"\\""#;
        assert_eq!(
            find("eventfsd_requests_total"),
            (
                "eventfsd_requests_total".into(),
                format!("{vm},opcode=\"lookup\""),
                "2".into()
            )
        );
        assert_eq!(find("eventfsd_read_bytes_total").2, "4096");
        assert_eq!(find("eventfsd_source_records_total").2, "9");
        assert_eq!(find("eventfsd_source_open_handles").2, "2");
        assert_eq!(find("eventfsd_process_private_memory_bytes").2, "1048576");
        assert_eq!(find("eventfsd_process_cpu_seconds_total").2, "1.5");
        assert!(find("eventfsd_build_info").1.contains("version=\""));
        // Unknown memory is left out rather than reported as 0.
        assert!(!text.contains("eventfsd_process_pss_bytes"));
    }
}
