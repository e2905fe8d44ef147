//! Counters a user or a test can read without a debugger, exported as a stats file in JSON or
//! in the Prometheus text format ([`file`]).

mod file;
pub mod process;
mod prometheus;

pub use file::{StatsFile, StatsFormat, StatsPacer};
pub use process::ProcessFigures;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use fuse_backend_rs::abi::fuse_abi::{InHeader, Opcode, OutHeader};
use fuse_backend_rs::api::server::MetricsHook;
use serde_json::json;

use eventfs_core::Tree;

/// Counters of the vhost-user transport, owned here so that every layer reports into one place.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Descriptor chains handed back to the guest (all queues).
    pub chains_processed: AtomicU64,
    /// Chains answered with an error reply written by the transport itself (EIO).
    pub error_replies: AtomicU64,
    /// Chains handed back with length 0 because not even an error reply could be written.
    pub chains_unanswerable: AtomicU64,
    /// Completions dropped because the ring was stopped or restarted meanwhile.
    pub stale_completions: AtomicU64,
    /// vhost-user connections accepted.
    pub connections: AtomicU64,
}

/// Number of FUSE opcodes we count individually (FUSE_REMOVEMAPPING is 49).
const OPCODES: usize = 50;

/// Daemon-wide counters. Cheap relaxed atomics: they are statistics, not synchronisation.
pub struct Stats {
    requests: [AtomicU64; OPCODES],
    unknown_requests: AtomicU64,
    /// Requests the filesystem answered with an error (any errno).
    pub errors: AtomicU64,
    /// Files currently open (open minus release).
    pub open_handles: AtomicU64,
    /// Bytes returned by READ.
    pub bytes_read: AtomicU64,
    /// Bytes accepted by WRITE.
    pub bytes_written: AtomicU64,
    /// FUSE sessions started (INIT), including guest reboots.
    pub sessions: AtomicU64,
    /// FORGETs for more references than were handed out (a confused or hostile client).
    pub over_forgets: AtomicU64,
    /// Counters of the vhost-user transport (descriptor chains, error replies, connections).
    pub transport: Arc<TransportStats>,
    /// Figures of the event source, read when the stats are written.
    pub source: OnceLock<SourceCounters>,
}

/// Whether a figure only grows (a count of events) or goes up and down (a level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FigureKind {
    /// Only grows, from 0 at start-up.
    Counter,
    /// A current level.
    Gauge,
}

/// One figure a source reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceFigure {
    /// snake_case name, unique within the source.
    pub name: &'static str,
    /// The value now.
    pub value: u64,
    /// Counter or gauge.
    pub kind: FigureKind,
}

/// A source's figures, read when the stats are written.
pub type SourceCounters = Box<dyn Fn() -> Vec<SourceFigure> + Send + Sync>;

impl Default for Stats {
    fn default() -> Self {
        Stats {
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            unknown_requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            open_handles: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            sessions: AtomicU64::new(0),
            over_forgets: AtomicU64::new(0),
            transport: Arc::default(),
            source: OnceLock::new(),
        }
    }
}

/// Name of a FUSE opcode for the stats output.
fn opcode_name(op: u32) -> String {
    // `Opcode::from` transmutes, so it must only see numbers the enum defines: the gaps
    // (0, 7 and 19) and anything past the last one are named by number.
    if (op as usize) < OPCODES && !matches!(op, 0 | 7 | 19) {
        format!("{:?}", Opcode::from(op)).to_lowercase()
    } else {
        format!("op{op}")
    }
}

impl Stats {
    /// Counts one request of opcode `op`.
    pub fn count_request(&self, op: u32) {
        match self.requests.get(op as usize) {
            Some(counter) => counter.fetch_add(1, Relaxed),
            None => self.unknown_requests.fetch_add(1, Relaxed),
        };
    }

    /// Requests seen for opcode `op`.
    pub fn requests(&self, op: u32) -> u64 {
        self.requests
            .get(op as usize)
            .map_or(0, |c| c.load(Relaxed))
    }

    /// Decrements the open-handle count without wrapping on a bogus RELEASE.
    pub fn closed(&self) {
        let _ = self
            .open_handles
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
    }

    /// A number that changes whenever the guest does anything (requests, sessions,
    /// connections, descriptor chains). Atomics only: the source's figures, which may read
    /// host files, are not polled for it.
    pub fn activity(&self) -> u64 {
        let transport = &self.transport;
        self.total_requests()
            .wrapping_add(self.sessions.load(Relaxed))
            .wrapping_add(transport.connections.load(Relaxed))
            .wrapping_add(transport.chains_processed.load(Relaxed))
    }

    /// Requests of all opcodes, including unknown ones.
    pub fn total_requests(&self) -> u64 {
        self.requests.iter().map(|c| c.load(Relaxed)).sum::<u64>()
            + self.unknown_requests.load(Relaxed)
    }

    /// Requests by opcode name, only those seen.
    pub fn requests_by_opcode(&self) -> BTreeMap<String, u64> {
        self.requests
            .iter()
            .enumerate()
            .map(|(op, counter)| (op as u32, counter.load(Relaxed)))
            .filter(|&(_, n)| n > 0)
            .map(|(op, n)| (opcode_name(op), n))
            .collect()
    }

    /// The source's figures now (none before a source registered).
    pub fn source_figures(&self) -> Vec<SourceFigure> {
        self.source
            .get()
            .map(|figures| figures())
            .unwrap_or_default()
    }

    /// The stats as a JSON object.
    pub fn to_json(&self, tree: &Tree, process: &ProcessFigures) -> serde_json::Value {
        let source: serde_json::Map<String, serde_json::Value> = self
            .source_figures()
            .into_iter()
            .map(|figure| (figure.name.to_string(), figure.value.into()))
            .collect();
        let transport = &self.transport;
        json!({
            "materialised_nodes": tree.materialised(),
            "open_handles": self.open_handles.load(Relaxed),
            "requests": self.total_requests(),
            "errors": self.errors.load(Relaxed),
            "bytes_read": self.bytes_read.load(Relaxed),
            "bytes_written": self.bytes_written.load(Relaxed),
            "sessions": self.sessions.load(Relaxed),
            "over_forgets": self.over_forgets.load(Relaxed),
            "unknown_opcodes": self.unknown_requests.load(Relaxed),
            "requests_by_opcode": self.requests_by_opcode(),
            "vhost_user": {
                "connections": transport.connections.load(Relaxed),
                "chains": transport.chains_processed.load(Relaxed),
                "error_replies": transport.error_replies.load(Relaxed),
                "unanswerable_chains": transport.chains_unanswerable.load(Relaxed),
                "stale_completions": transport.stale_completions.load(Relaxed),
            },
            "source": source,
            "process": {
                "resident_bytes": process.resident_bytes,
                "pss_bytes": process.pss_bytes,
                "private_bytes": process.private_bytes,
                "user_cpu_seconds": process.user_cpu.as_secs_f64(),
                "system_cpu_seconds": process.system_cpu.as_secs_f64(),
            },
        })
    }
}

/// Feeds per-request counters from fuse-backend-rs's server loop. (The server calls
/// `release` without the reply header, so errors are counted by the filesystem instead.)
pub struct StatsHook(pub Arc<Stats>);

impl MetricsHook for StatsHook {
    fn collect(&self, ih: &InHeader) {
        self.0.count_request(ih.opcode);
    }

    fn release(&self, _oh: Option<&OutHeader>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventfs_core::TreeConfig;

    #[test]
    fn json_has_the_counters() {
        let stats = Stats::default();
        stats.count_request(Opcode::Lookup as u32);
        stats.count_request(Opcode::Lookup as u32);
        stats.count_request(999);
        // A guest may send the numbers the protocol leaves unused.
        for gap in [0, 7, 19] {
            stats.count_request(gap);
        }
        let _ = stats.source.set(Box::new(|| {
            vec![SourceFigure {
                name: "records",
                value: 7,
                kind: FigureKind::Counter,
            }]
        }));
        let tree = Tree::embedded(TreeConfig::default());
        let json = stats.to_json(&tree, &ProcessFigures::read());
        assert_eq!(json["requests"], 6);
        assert_eq!(json["requests_by_opcode"]["op7"], 1);
        assert_eq!(json["requests_by_opcode"]["op0"], 1);
        assert_eq!(json["unknown_opcodes"], 1);
        assert_eq!(json["requests_by_opcode"]["lookup"], 2);
        assert_eq!(json["source"]["records"], 7);
        assert_eq!(json["materialised_nodes"], 0);
        assert_eq!(json["vhost_user"]["connections"], 0);
        assert!(json["process"]["private_bytes"].as_u64().unwrap() > 0);
    }
}
